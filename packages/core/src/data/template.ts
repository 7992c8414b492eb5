// The prompt/response template every stage shares (SFT, both reward models, the policy), applied at
// the token level so a response's ids are the same wherever it appears; with the rule for long examples.
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';

import type { Tokenizer } from '../tokenizer.js';

/**
 * How prompt and responses are laid out as one token sequence:
 *
 *   policy query:  [BOS] promptPrefix prompt responsePrefix
 *   supervised:    [BOS] promptPrefix prompt responsePrefix completion [EOS]
 *   seq2seq RM:    [BOS] promptPrefix prompt responsePrefix response [EOS] rewritePrefix target [EOS]
 *
 * Each piece is encoded on its own and the ids are concatenated: a BPE merge never spans two
 * pieces, so the ids of a response are the same after the prompt, as the text to correct, and as
 * the rewrite target. That is what lines the seq2seq RM's positions up with the policy's tokens.
 */
export interface Template {
  /** text put before the prompt */
  promptPrefix: string;
  /** text between the prompt and the response; the policy generates right after it */
  responsePrefix: string;
  /** seq2seq RM: text between the response to correct and its rewrite */
  rewritePrefix: string;
  /** start every sequence with the tokenizer's bos_token (GPT-2 does not) */
  addBos: boolean;
  /** end each response with the tokenizer's eos_token, so the policy learns to stop */
  addEos: boolean;
}

/** Plain-text markers a base LM can follow; no BOS, as GPT-2 was trained; EOS ends responses. */
export const DEFAULT_TEMPLATE: Readonly<Template> = Object.freeze({
  promptPrefix: '',
  responsePrefix: '\n\nResponse:',
  rewritePrefix: '\n\nRewrite:',
  addBos: false,
  addEos: true,
});

/** A template with defaults filled in; every error names the field. */
export function resolveTemplate(t: Partial<Template> = {}): Template {
  const out = { ...DEFAULT_TEMPLATE, ...t };
  for (const k of ['promptPrefix', 'responsePrefix', 'rewritePrefix'] as const)
    if (typeof out[k] !== 'string') throw new TypeError(`template.${k} must be a string, got ${JSON.stringify(out[k])}`);
  for (const k of ['addBos', 'addEos'] as const)
    if (typeof out[k] !== 'boolean') throw new TypeError(`template.${k} must be a boolean, got ${JSON.stringify(out[k])}`);
  return out;
}

/** The template's file in a checkpoint folder: every stage reads the template its model was trained with. */
export const TEMPLATE_FILE = 's2s_template.json';

/** The template as a file to save beside a checkpoint (saveModel's `files`). */
export function templateFiles(tpl: Template): Record<string, string> {
  return { [TEMPLATE_FILE]: JSON.stringify(resolveTemplate(tpl), null, 2) + '\n' };
}

/** The template saved in `dir`, or undefined when there is none; a malformed one is an error naming the file. */
export async function loadTemplate(dir: string): Promise<Template | undefined> {
  const file = path.join(dir, TEMPLATE_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: invalid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${file}: a template must be a JSON object`);
  const unknown = Object.keys(json).filter((k) => !(k in DEFAULT_TEMPLATE));
  if (unknown.length) throw new Error(`${file}: unknown template field ${JSON.stringify(unknown[0])}`);
  try {
    return resolveTemplate(json as Partial<Template>);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
}

/** The whitespace-separated words of the template's texts: what a word-level vocabulary must hold. */
export function templateWords(tpl: Template): string[] {
  return [...new Set([tpl.promptPrefix, tpl.responsePrefix, tpl.rewritePrefix].flatMap((s) => s.split(/\s+/).filter((w) => w.length > 0)))];
}

/** [start, end) positions in an example's ids. */
export type Span = [number, number];

export interface EncodedExample {
  ids: number[];
  /** 1 where ids[t] is trained on (predicted from ids[<t]): the target's tokens and its EOS; else 0 */
  lossMask: number[];
  /** the prompt's own tokens (after any truncation), without the template's prefixes */
  promptSpan: Span;
  /** encodeRewrite only: the response being corrected, with its EOS */
  sourceSpan?: Span;
  /** the trained tokens: the completion, or the rewrite target, with EOS; where lossMask is 1 */
  targetSpan: Span;
  /** prompt tokens dropped from the left to fit maxLength */
  promptTokensDropped: number;
}

/**
 * Long examples. Over `maxLength` tokens, 'truncate' (default) drops prompt tokens from the left
 * (the start of the prompt; its end, next to the response, stays), keeping the template's markers,
 * BOS and every response token whole, and down to no fewer than one prompt token; an example that
 * still does not fit is skipped. 'skip' skips every example over the limit.
 */
export interface LengthOptions {
  maxLength?: number;
  overflow?: 'truncate' | 'skip';
  /** counts of what happened, added to (see lengthReport()) */
  report?: LengthReport;
  /** where the example comes from ("file:line", see rowSource()), named in the report when it is cut */
  at?: string;
}

/** Running counts over many encode calls; nothing is cut or left out without being counted here. */
export interface LengthReport {
  /** calls made (encoded + skipped) */
  examples: number;
  /** examples whose prompt lost tokens */
  truncated: number;
  /** examples left out (the call returned null) */
  skipped: number;
  /** prompt tokens dropped in all */
  promptTokensDropped: number;
  /** the first few examples truncated or skipped: "file:line (skipped)", or "example N (...)" without `at` */
  places: string[];
}

/** How many cut examples a LengthReport names. */
const PLACES_KEPT = 5;

export const lengthReport = (): LengthReport => ({ examples: 0, truncated: 0, skipped: 0, promptTokensDropped: 0, places: [] });

export function describeLengthReport(r: LengthReport, maxLength?: number): string {
  const limit = maxLength === undefined ? '' : ` (maxLength ${maxLength})`;
  const cut = r.truncated + r.skipped;
  const places = r.places.length ? `; ${cut > r.places.length ? 'first: ' : ''}${r.places.join(', ')}${cut > r.places.length ? ', ...' : ''}` : '';
  return `${r.examples} examples${limit}: ${r.truncated} truncated (${r.promptTokensDropped} prompt tokens dropped), ${r.skipped} skipped${places}`;
}

function notePlace(r: LengthReport, opts: LengthOptions, what: string): void {
  if (r.places.length < PLACES_KEPT) r.places.push(`${opts.at ?? `example ${r.examples}`} (${what})`);
}

function specialId(tok: Tokenizer, id: number | undefined, key: string, field: string): number {
  if (id === undefined) throw new Error(`template.${field} is set but the tokenizer (${tok.source}) has no ${key}`);
  return id;
}

/** `ids` ending in EOS: responses the policy finished already carry it; text-born ones get it here. */
function withEos(tok: Tokenizer, tpl: Template, ids: readonly number[]): number[] {
  if (!tpl.addEos) return [...ids];
  const eos = specialId(tok, tok.eosId, 'eos_token', 'addEos');
  return ids.length > 0 && ids[ids.length - 1] === eos ? [...ids] : [...ids, eos];
}

function checkIds(tok: Tokenizer, ids: readonly number[], what: string): void {
  for (const id of ids)
    if (!Number.isInteger(id) || id < 0 || id >= tok.vocabSize) throw new RangeError(`${what}: token id ${id} is outside the vocabulary (${tok.vocabSize} ids)`);
}

/**
 * head + prompt + tail under the length rule; the prompt is the only part that may shrink.
 * Returns null (and counts it) when the example is skipped.
 */
function fit(head: number[], prompt: number[], tail: number[], opts: LengthOptions): { ids: number[]; promptSpan: Span; dropped: number } | null {
  const max = opts.maxLength;
  if (max !== undefined && (!Number.isInteger(max) || max < 1)) throw new RangeError(`maxLength must be a positive integer, got ${max}`);
  const r = opts.report;
  if (r) r.examples++;
  let dropped = 0;
  if (max !== undefined && head.length + prompt.length + tail.length > max) {
    const room = max - head.length - tail.length;
    if ((opts.overflow ?? 'truncate') === 'skip' || room < Math.min(1, prompt.length)) {
      if (r) {
        r.skipped++;
        notePlace(r, opts, `skipped, ${head.length + prompt.length + tail.length} tokens`);
      }
      return null;
    }
    dropped = prompt.length - room;
    if (r) {
      r.truncated++;
      r.promptTokensDropped += dropped;
      notePlace(r, opts, `truncated by ${dropped} tokens`);
    }
  }
  const kept = prompt.slice(dropped);
  return { ids: [...head, ...kept, ...tail], promptSpan: [head.length, head.length + kept.length], dropped };
}

function head(tok: Tokenizer, tpl: Template): number[] {
  const bos = tpl.addBos ? [specialId(tok, tok.bosId, 'bos_token', 'addBos')] : [];
  return [...bos, ...tok.encode(tpl.promptPrefix)];
}

/** The policy's query: what it sees before generating. Null when skipped under `opts`. */
export function encodePrompt(tok: Tokenizer, tpl: Template, prompt: string, opts: LengthOptions = {}): number[] | null {
  return fit(head(tok, tpl), tok.encode(prompt), tok.encode(tpl.responsePrefix), opts)?.ids ?? null;
}

/** A supervised (SFT) example: the query, then the completion and EOS, which alone carry loss. */
export function encodeSupervised(tok: Tokenizer, tpl: Template, prompt: string, completion: string, opts: LengthOptions = {}): EncodedExample | null {
  const target = withEos(tok, tpl, tok.encode(completion));
  const responsePrefix = tok.encode(tpl.responsePrefix);
  const f = fit(head(tok, tpl), tok.encode(prompt), [...responsePrefix, ...target], opts);
  if (!f) return null;
  const start = f.ids.length - target.length;
  return {
    ids: f.ids,
    lossMask: f.ids.map((_, t) => (t >= start ? 1 : 0)),
    promptSpan: f.promptSpan,
    targetSpan: [start, f.ids.length],
    promptTokensDropped: f.dropped,
  };
}

/**
 * A seq2seq reward model example: the prompt and the response to correct (`responseIds`), then
 * the rewrite prefix and the target (`targetIds`) with EOS, which alone carry loss. Correction
 * mapping passes the rejected response and the chosen one; identity mapping, and reward
 * extraction's teacher-forced pass, the same response twice. Both responses are token ids, as the
 * policy's come; each gets EOS unless it already ends with it, so a response the policy finished
 * and one encoded from text look alike.
 */
export function encodeRewrite(
  tok: Tokenizer,
  tpl: Template,
  prompt: string,
  responseIds: readonly number[],
  targetIds: readonly number[],
  opts: LengthOptions = {},
): EncodedExample | null {
  checkIds(tok, responseIds, 'encodeRewrite responseIds');
  checkIds(tok, targetIds, 'encodeRewrite targetIds');
  const source = withEos(tok, tpl, responseIds);
  const target = withEos(tok, tpl, targetIds);
  const responsePrefix = tok.encode(tpl.responsePrefix);
  const rewritePrefix = tok.encode(tpl.rewritePrefix);
  const f = fit(head(tok, tpl), tok.encode(prompt), [...responsePrefix, ...source, ...rewritePrefix, ...target], opts);
  if (!f) return null;
  const start = f.ids.length - target.length;
  const sourceStart = f.promptSpan[1] + responsePrefix.length;
  return {
    ids: f.ids,
    lossMask: f.ids.map((_, t) => (t >= start ? 1 : 0)),
    promptSpan: f.promptSpan,
    sourceSpan: [sourceStart, sourceStart + source.length],
    targetSpan: [start, f.ids.length],
    promptTokensDropped: f.dropped,
  };
}
