// The prompt/response template every stage shares (SFT, both reward models, the policy), applied at
// the token level so a response's ids are the same wherever it appears: plain-text markers, or the
// model's own chat template (chat mode); with the rule for long examples.
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';

import { SPECIAL_TOKENS_IN_TEXT, type SpecialTokensInText, type Tokenizer, TokenizerError } from '../tokenizer.js';
import { type ChatMessage, type ChatTemplateSpec, ChatTemplateError, RESPONSE_PLACEHOLDER, endOfTurnId, renderChat, resolveChatTemplateSpec } from './chat-template.js';

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
  /**
   * Chat mode: the model's own chat template lays every sequence out (see "Chat mode" below) and
   * the five fields above are not used. Absent: the plain-text layout above.
   */
  chat?: ChatTemplateSpec;
  /**
   * What special-token text inside the data's text (prompts, completions, message contents; never
   * the template's own markup) becomes: 'encode' (default, Hugging Face's behaviour) the control
   * token, 'literal' ordinary characters, 'error' refused. A run setting, not saved with the
   * template (templateFiles leaves it out); an encode call's own option overrides it.
   */
  specialTokensInText?: SpecialTokensInText;
}

/** A prompt: text, or (chat mode) the conversation so far; in chat mode text is one user turn. */
export type Prompt = string | readonly ChatMessage[];
/** A response: text, or (chat mode) the assistant's turn as a list of one message; in chat mode text is that turn's content. */
export type Completion = string | readonly ChatMessage[];

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
  const { chat, ...plain } = t;
  const out: Template = { ...DEFAULT_TEMPLATE, ...plain };
  for (const k of ['promptPrefix', 'responsePrefix', 'rewritePrefix'] as const)
    if (typeof out[k] !== 'string') throw new TypeError(`template.${k} must be a string, got ${JSON.stringify(out[k])}`);
  for (const k of ['addBos', 'addEos'] as const)
    if (typeof out[k] !== 'boolean') throw new TypeError(`template.${k} must be a boolean, got ${JSON.stringify(out[k])}`);
  if (chat !== undefined) out.chat = resolveChatTemplateSpec(chat);
  if (out.specialTokensInText === undefined) delete out.specialTokensInText;
  else if (!SPECIAL_TOKENS_IN_TEXT.includes(out.specialTokensInText))
    throw new TypeError(`template.specialTokensInText must be one of ${SPECIAL_TOKENS_IN_TEXT.join(', ')}, got ${JSON.stringify(out.specialTokensInText)}`);
  return out;
}

/** A chat-mode template: sequences laid out by `chat` (from loadChatTemplate or createChatTemplate). */
export function chatModeTemplate(chat: ChatTemplateSpec): Template {
  return resolveTemplate({ chat });
}

/** The template's file in a checkpoint folder: every stage reads the template its model was trained with. */
export const TEMPLATE_FILE = 's2s_template.json';

/** The template as a file to save beside a checkpoint (saveModel's `files`). */
export function templateFiles(tpl: Template): Record<string, string> {
  const { specialTokensInText: _runSetting, ...saved } = resolveTemplate(tpl);
  return { [TEMPLATE_FILE]: JSON.stringify(saved, null, 2) + '\n' };
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
  return templateFromJSON(json, file);
}

/** A template from parsed s2s_template.json (plain or chat); errors name `file` and the field. */
export function templateFromJSON(json: unknown, file: string): Template {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${file}: a template must be a JSON object`);
  // specialTokensInText is a run setting, not a saved field: refused here as unknown
  const unknown = Object.keys(json).filter((k) => !(k in DEFAULT_TEMPLATE) && k !== 'chat');
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
  /** the prompt's own tokens (after any truncation), without the template's prefixes; in chat mode the whole rendered query */
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
  /** what special-token text in the data's text becomes (see Template.specialTokensInText); overrides the template's */
  specialTokensInText?: SpecialTokensInText;
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

/** Plain mode takes text; a conversation there needs the model's chat template. */
function text(v: Prompt | Completion, where: string): string {
  if (typeof v === 'string') return v;
  throw new TypeError(
    `${where} is a conversation (a list of messages), which is laid out by the model's chat template; this template is plain text (give it a chat template: loadChatTemplate, chatModeTemplate)`,
  );
}

/** The special-token policy of one call: the call's option, else the template's, else 'encode'. */
function policyOf(tpl: Template, opts: { specialTokensInText?: SpecialTokensInText }): SpecialTokensInText {
  const p = opts.specialTokensInText ?? tpl.specialTokensInText ?? 'encode';
  if (!SPECIAL_TOKENS_IN_TEXT.includes(p)) throw new TypeError(`specialTokensInText must be one of ${SPECIAL_TOKENS_IN_TEXT.join(', ')}, got ${JSON.stringify(p)}`);
  return p;
}

function specialTextError(tok: Tokenizer, found: string, what: string, at: string | undefined): TokenizerError {
  return new TokenizerError(
    `${at ? `${at}: ` : ''}${what} contains the special token ${JSON.stringify(found)} of the tokenizer (${tok.source}); ` +
      `specialTokensInText is 'error' ('encode' makes it the control token, 'literal' ordinary text)`,
  );
}

/** The ids of the data's own text (not the template's markup) under the special-token policy. */
function dataIds(tok: Tokenizer, policy: SpecialTokensInText, s: string, what: string, at: string | undefined): number[] {
  if (policy === 'error') {
    const found = tok.findSpecialToken(s);
    if (found !== undefined) throw specialTextError(tok, found, what, at);
  }
  return tok.encode(s, { specialTokensInText: policy });
}

/** The policy's query: what it sees before generating. Null when skipped under `opts`. */
export function encodePrompt(tok: Tokenizer, tpl: Template, prompt: Prompt, opts: LengthOptions = {}): number[] | null {
  const policy = policyOf(tpl, opts);
  if (tpl.chat) {
    const c = chatData(tok, policy, opts.at, 'encodePrompt', promptMessages(prompt, 'encodePrompt'));
    return fitChat(c, tpl.chat, c.messages, [], opts, new Date())?.ids ?? null;
  }
  return fit(head(tok, tpl), dataIds(tok, policy, text(prompt, 'encodePrompt: the prompt'), 'encodePrompt: the prompt', opts.at), tok.encode(tpl.responsePrefix), opts)?.ids ?? null;
}

/**
 * A response's token ids as the policy writes them after the prompt, ending the way it learns to
 * stop: plain mode, the completion's ids and EOS (addEos); chat mode, the assistant turn as the
 * template renders it after the query, through its end-of-turn token. These are encodeSupervised's
 * target, and what the seq2seq RM rewrites and is trained to write (encodeRewrite). With
 * `finished: false` (a response cut off at the token limit, finishReason "length") the stop token is
 * left off: the ids the policy actually wrote.
 */
export function encodeResponse(
  tok: Tokenizer,
  tpl: Template,
  prompt: Prompt,
  completion: Completion,
  opts: { specialTokensInText?: SpecialTokensInText; at?: string; finished?: boolean } = {},
): number[] {
  const policy = policyOf(tpl, opts);
  let ids: number[];
  if (tpl.chat) {
    const c = chatData(tok, policy, opts.at, 'encodeResponse', promptMessages(prompt, 'encodeResponse'), completionMessages(tpl.chat, completion, 'encodeResponse'));
    ids = chatResponseIds(c, tpl.chat, c.messages, c.completion, new Date());
  } else ids = withEos(tok, tpl, dataIds(tok, policy, text(completion, 'encodeResponse: the completion'), 'encodeResponse: the completion', opts.at));
  // a response cut off at the token limit never wrote the stop token the layout ends it with
  if (opts.finished === false && ids.length > 0 && stopTokenIds(tok, tpl).includes(ids[ids.length - 1])) ids.pop();
  return ids;
}

/**
 * The ids that end a generated response, for Model.generate's `eos`: the tokenizer's EOS, and in
 * chat mode first the template's end-of-turn token (Llama 3's <|eot_id|> is not its eos_token).
 */
export function stopTokenIds(tok: Tokenizer, tpl: Template): number[] {
  const ids = tpl.chat ? [endOfTurnId(tok, tpl.chat)] : [];
  if (tok.eosId !== undefined && !ids.includes(tok.eosId)) ids.push(tok.eosId);
  return ids;
}

/** A supervised (SFT) example: the query, then the completion and EOS, which alone carry loss. */
export function encodeSupervised(tok: Tokenizer, tpl: Template, prompt: Prompt, completion: Completion, opts: LengthOptions = {}): EncodedExample | null {
  let f: ReturnType<typeof fit>;
  let target: number[];
  const policy = policyOf(tpl, opts);
  if (tpl.chat) {
    const now = new Date();
    const c = chatData(tok, policy, opts.at, 'encodeSupervised', promptMessages(prompt, 'encodeSupervised'), completionMessages(tpl.chat, completion, 'encodeSupervised'));
    target = chatResponseIds(c, tpl.chat, c.messages, c.completion, now);
    f = fitChat(c, tpl.chat, c.messages, target, opts, now);
  } else {
    target = withEos(tok, tpl, dataIds(tok, policy, text(completion, 'encodeSupervised: the completion'), 'encodeSupervised: the completion', opts.at));
    const responsePrefix = tok.encode(tpl.responsePrefix);
    const promptIds = dataIds(tok, policy, text(prompt, 'encodeSupervised: the prompt'), 'encodeSupervised: the prompt', opts.at);
    f = fit(head(tok, tpl), promptIds, [...responsePrefix, ...target], opts);
  }
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
 * and one encoded from text look alike. In chat mode the layout is the chat one (see "Chat mode").
 */
export function encodeRewrite(
  tok: Tokenizer,
  tpl: Template,
  prompt: Prompt,
  responseIds: readonly number[],
  targetIds: readonly number[],
  opts: LengthOptions = {},
): EncodedExample | null {
  checkIds(tok, responseIds, 'encodeRewrite responseIds');
  checkIds(tok, targetIds, 'encodeRewrite targetIds');
  let f: ReturnType<typeof fit>;
  let source: number[];
  let target: number[];
  let sourceStart: (f: NonNullable<ReturnType<typeof fit>>) => number;
  const policy = policyOf(tpl, opts);
  if (tpl.chat) {
    const now = new Date();
    const c = chatData(tok, policy, opts.at, 'encodeRewrite', promptMessages(prompt, 'encodeRewrite'));
    const messages = c.messages;
    const stops = stopTokenIds(tok, tpl);
    const withEot = (ids: readonly number[]) => (ids.length > 0 && stops.includes(ids[ids.length - 1]) ? [...ids] : [...ids, stops[0]]);
    source = withEot(responseIds);
    target = withEot(targetIds);
    f = fitChat(c, tpl.chat, messages, [...source, ...chatRewriteIds(c, tpl.chat, messages, now), ...target], opts, now);
    sourceStart = (f) => f.promptSpan[1];
  } else {
    source = withEos(tok, tpl, responseIds);
    target = withEos(tok, tpl, targetIds);
    const responsePrefix = tok.encode(tpl.responsePrefix);
    const rewritePrefix = tok.encode(tpl.rewritePrefix);
    const promptIds = dataIds(tok, policy, text(prompt, 'encodeRewrite: the prompt'), 'encodeRewrite: the prompt', opts.at);
    f = fit(head(tok, tpl), promptIds, [...responsePrefix, ...source, ...rewritePrefix, ...target], opts);
    sourceStart = (f) => f.promptSpan[1] + responsePrefix.length;
  }
  if (!f) return null;
  const start = f.ids.length - target.length;
  const s = sourceStart(f);
  return {
    ids: f.ids,
    lossMask: f.ids.map((_, t) => (t >= start ? 1 : 0)),
    promptSpan: f.promptSpan,
    sourceSpan: [s, s + source.length],
    targetSpan: [start, f.ids.length],
    promptTokensDropped: f.dropped,
  };
}

// ---- chat mode ----
//
// With Template.chat the model's own chat template (rendered as transformers'
// apply_chat_template(tokenize=False), then encoded with no added special tokens, as
// apply_chat_template(tokenize=True) and TRL do) lays every sequence out. With P the prompt's
// messages (a text prompt is one user turn), R a response and W the rewrite target:
//
//   policy query:  encode(render(P, add_generation_prompt=True))
//   supervised:    query | response
//   seq2seq RM:    query | source | between | target
//
// where
//   response = the tokens of the assistant turn after the query, through the template's
//              end-of-turn token: render(P + [assistant R]) must start with the query's text (the
//              prefix property; a template that breaks it is an error), and the turn is that
//              text's rest, cut after the first end-of-turn ('<|im_end|>', '<|eot_id|>'), so a
//              template's text after it ("\n", or Llama 3.0's unconditional assistant header)
//              is left out, as the policy stops there. Its ids are encode(query + turn) past the
//              query's ids, or encode(turn) alone where BPE merges across that boundary.
//   source   = the response to correct, as token ids (the policy's own, or encodeResponse's),
//              ending with the end-of-turn (added when it does not end with it or EOS)
//   between  = encode of the text render(P + [assistant ·, user rewriteInstruction],
//              add_generation_prompt=True) has after the assistant's end-of-turn: the close of
//              that turn, the user turn asking for a rewrite, and the assistant header again
//   target   = the rewrite, ids ending with the end-of-turn as for source
//
// So the RM reads the conversation [P, assistant: R, user: instruction] and answers with W. Its
// input starts with exactly the policy's own sequence (query then response ids), and the target
// follows the same generation header as the policy's response did, with the same ids: position
// t of the target lines up with token t of the response, which reward extraction relies on.
// Each of query, source, between and target is its own id list; none is re-tokenized with its
// neighbours. The plain fields (prefixes, addBos, addEos) are not used: BOS is wherever the
// template writes it.
//
// Long prompts: the query is what shrinks. Whole earlier turns are dropped first (after any
// leading system messages, up to the next user turn, keeping the last), then the first remaining
// turn's content loses tokens from its start, down to one; promptTokensDropped counts query
// tokens, and promptSpan covers the whole (truncated) query.

function checkMessages(v: unknown, where: string): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) throw new TypeError(`${where} must be a non-empty list of messages`);
  return v.map((m, i) => {
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new TypeError(`${where}: message ${i + 1} must be an object with "role" and "content"`);
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== 'string' || role === '') throw new TypeError(`${where}: message ${i + 1}'s role must be a non-empty string, got ${JSON.stringify(role)}`);
    if (typeof content !== 'string') throw new TypeError(`${where}: message ${i + 1}'s content must be a string, got ${JSON.stringify(content)}`);
    return m as ChatMessage;
  });
}

function promptMessages(prompt: Prompt, fn: string): ChatMessage[] {
  if (typeof prompt === 'string') return [{ role: 'user', content: prompt }];
  const messages = checkMessages(prompt, `${fn}: the prompt`);
  if (messages[messages.length - 1].role === 'assistant')
    throw new TypeError(`${fn}: the prompt ends with an assistant message; a prompt is the conversation before the response, ending with a user (or system, tool) turn`);
  return messages;
}

function completionMessages(spec: ChatTemplateSpec, completion: Completion, fn: string): ChatMessage[] {
  const messages = typeof completion === 'string' ? [{ role: 'assistant', content: completion }] : checkMessages(completion, `${fn}: the completion`);
  if (messages.length !== 1 || messages[0].role !== 'assistant')
    throw new TypeError(`${fn}: the completion must be one assistant message (the turn the policy writes), got ${messages.map((m) => m.role).join(', ')}`);
  if (messages[0].content.includes(spec.endOfTurn))
    throw new TypeError(`${fn}: the completion contains the end-of-turn token ${JSON.stringify(spec.endOfTurn)}, where the policy would stop`);
  return messages;
}

/** Where two texts part, for errors. */
function parting(a: string, b: string): string {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return `at character ${i}: ${JSON.stringify(a.slice(i, i + 40))} vs ${JSON.stringify(b.slice(i, i + 40))}`;
}

function notPrefix(spec: ChatTemplateSpec, query: string, full: string): ChatTemplateError {
  return new ChatTemplateError(
    `${spec.source}: the chat template renders the prompt for generation (add_generation_prompt) differently from the start of the conversation with its response, ` +
      `so the response cannot be split from the query (${parting(query, full)})`,
  );
}

/**
 * A conversation's data under the special-token policy, and how its rendered text is encoded. The
 * template renders special tokens on purpose (its markup is encoded as it is); only the messages'
 * content is data. 'error' refuses content holding special-token text; 'literal' stands a
 * private-use character (plane 15) in for each special token's text in the content before
 * rendering, and encodes the rendered text in pieces: the text between stand-ins as it is, each
 * stand-in as the special token's characters with the special tokens left out (Tokenizer.encode's
 * 'literal'); a BPE merge never spans such a cut, as between a template's pieces.
 */
interface ChatData {
  tok: Tokenizer;
  policy: SpecialTokensInText;
  messages: ChatMessage[];
  completion: ChatMessage[];
  /** the ids of rendered text */
  encode(rendered: string): number[];
  /** a content's own text (stand-ins back to the special tokens' text) */
  unshield(content: string): string;
  /** a content's text with stand-ins */
  shield(content: string): string;
}

const STAND_IN = 0xf0000;
const escapeRegex = (x: string) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function chatData(tok: Tokenizer, policy: SpecialTokensInText, at: string | undefined, fn: string, messages: ChatMessage[], completion: ChatMessage[] = []): ChatData {
  const plain: ChatData = { tok, policy, messages, completion, encode: (r) => tok.encode(r), unshield: (c) => c, shield: (c) => c };
  if (policy === 'encode' || tok.specialTokenStrings.length === 0) return plain;
  const where = (list: ChatMessage[], i: number, what: string) => `${fn}: ${what}${list.length > 1 ? ` (message ${i + 1}, ${JSON.stringify(list[i].role)})` : ''}`;
  let any = false;
  for (const [list, what] of [
    [messages, 'the prompt'],
    [completion, 'the completion'],
  ] as const)
    for (let i = 0; i < list.length; i++) {
      const found = tok.findSpecialToken(list[i].content);
      if (found === undefined) continue;
      if (policy === 'error') throw specialTextError(tok, found, where(list, i, what), at);
      any = true;
    }
  if (!any) return plain;
  const specials = tok.specialTokenStrings;
  const last = String.fromCodePoint(STAND_IN + specials.length - 1);
  const standIns = new RegExp(`[${String.fromCodePoint(STAND_IN)}-${last}]`, 'gu');
  const find = new RegExp(specials.map(escapeRegex).join('|'), 'g');
  const shield = (c: string) => {
    if (standIns.test(c)) {
      standIns.lastIndex = 0;
      throw new TokenizerError(`${at ? `${at}: ` : ''}${fn}: a message holds private-use characters of plane 15, which specialTokensInText 'literal' uses in chat mode`);
    }
    return c.replace(find, (m) => String.fromCodePoint(STAND_IN + specials.indexOf(m)));
  };
  const unshield = (c: string) => c.replace(standIns, (ch) => specials[ch.codePointAt(0)! - STAND_IN]);
  const encode = (rendered: string) => {
    const ids: number[] = [];
    let from = 0;
    for (const m of rendered.matchAll(standIns)) {
      ids.push(...tok.encode(rendered.slice(from, m.index)));
      ids.push(...tok.encode(specials[m[0].codePointAt(0)! - STAND_IN], { specialTokensInText: 'literal' }));
      from = m.index + m[0].length;
    }
    ids.push(...tok.encode(rendered.slice(from)));
    return ids;
  };
  const shieldAll = (list: ChatMessage[]) => list.map((m) => ({ ...m, content: shield(m.content) }));
  return { tok, policy, messages: shieldAll(messages), completion: shieldAll(completion), encode, unshield, shield };
}

function chatResponseIds(c: ChatData, spec: ChatTemplateSpec, messages: ChatMessage[], completion: ChatMessage[], now: Date): number[] {
  const tok = c.tok;
  const query = renderChat(spec, messages, { addGenerationPrompt: true, now });
  const full = renderChat(spec, [...messages, ...completion], { now });
  if (!full.startsWith(query)) throw notPrefix(spec, query, full);
  const rest = full.slice(query.length);
  const end = rest.indexOf(spec.endOfTurn);
  if (end < 0) throw new ChatTemplateError(`${spec.source}: the assistant turn as rendered (${JSON.stringify(rest.slice(0, 80))}) has no end-of-turn ${JSON.stringify(spec.endOfTurn)}`);
  const turn = rest.slice(0, end + spec.endOfTurn.length);
  const queryIds = c.encode(query);
  const both = c.encode(query + turn);
  const ids = queryIds.every((id, i) => both[i] === id) ? both.slice(queryIds.length) : c.encode(turn);
  if (ids[ids.length - 1] !== endOfTurnId(tok, spec)) throw new ChatTemplateError(`${spec.source}: the assistant turn does not end with the end-of-turn token ${JSON.stringify(spec.endOfTurn)}`);
  return ids;
}

/** The ids between the source's end-of-turn and the target (see "Chat mode"). */
function chatRewriteIds(c: ChatData, spec: ChatTemplateSpec, messages: ChatMessage[], now: Date): number[] {
  const query = renderChat(spec, messages, { addGenerationPrompt: true, now });
  const conv = renderChat(
    spec,
    [...messages, { role: 'assistant', content: RESPONSE_PLACEHOLDER }, { role: 'user', content: spec.rewriteInstruction }],
    { addGenerationPrompt: true, now },
  );
  if (!conv.startsWith(query)) throw notPrefix(spec, query, conv);
  if (!conv.startsWith(RESPONSE_PLACEHOLDER, query.length))
    throw new ChatTemplateError(`${spec.source}: the chat template does not write an assistant message right after the generation prompt (${parting(query + RESPONSE_PLACEHOLDER, conv)})`);
  const rest = conv.slice(query.length + RESPONSE_PLACEHOLDER.length);
  const end = rest.indexOf(spec.endOfTurn);
  if (end < 0) throw new ChatTemplateError(`${spec.source}: the assistant turn as rendered has no end-of-turn ${JSON.stringify(spec.endOfTurn)}`);
  return c.encode(rest.slice(end + spec.endOfTurn.length));
}

/** The chat query + tail under the length rule (see "Chat mode"); null (counted) when skipped. */
function fitChat(
  c: ChatData,
  spec: ChatTemplateSpec,
  messages: ChatMessage[],
  tail: number[],
  opts: LengthOptions,
  now: Date,
): { ids: number[]; promptSpan: Span; dropped: number } | null {
  const max = opts.maxLength;
  if (max !== undefined && (!Number.isInteger(max) || max < 1)) throw new RangeError(`maxLength must be a positive integer, got ${max}`);
  const r = opts.report;
  if (r) r.examples++;
  const query = (m: ChatMessage[]) => c.encode(renderChat(spec, m, { addGenerationPrompt: true, now }));
  const fitting = (m: ChatMessage[]) => {
    const q = query(m);
    return max === undefined || q.length + tail.length <= max ? q : undefined;
  };
  const whole = query(messages);
  let q: number[] | undefined = whole;
  if (max !== undefined && whole.length + tail.length > max) {
    q = (opts.overflow ?? 'truncate') === 'truncate' ? truncateConversation(c, messages, fitting) : undefined;
    if (!q) {
      if (r) {
        r.skipped++;
        notePlace(r, opts, `skipped, ${whole.length + tail.length} tokens`);
      }
      return null;
    }
    if (r) {
      r.truncated++;
      r.promptTokensDropped += whole.length - q.length;
      notePlace(r, opts, `truncated by ${whole.length - q.length} tokens`);
    }
  }
  return { ids: [...q, ...tail], promptSpan: [0, q.length], dropped: whole.length - q.length };
}

/** The first shortening of the conversation whose query `fitting` accepts (see "Chat mode"), or undefined. */
function truncateConversation(c: ChatData, messages: ChatMessage[], fitting: (m: ChatMessage[]) => number[] | undefined): number[] | undefined {
  const tok = c.tok;
  const k = messages.findIndex((m) => m.role !== 'system');
  if (k < 0) return undefined;
  const system = messages.slice(0, k);
  const turns = messages.slice(k);
  let start = 0;
  for (let i = 1; i < turns.length; i++) {
    if (turns[i].role !== 'user') continue;
    start = i;
    const q = fitting([...system, ...turns.slice(i)]);
    if (q) return q;
  }
  const kept = [...system, ...turns.slice(start)];
  // the content's own text, under the policy ('literal': special-token text as characters)
  const content = tok.encode(c.unshield(kept[k].content), { specialTokensInText: c.policy });
  const cut = (n: number) => kept.map((m, j) => (j === k ? { ...m, content: c.shield(tok.decode(content.slice(n))) } : m));
  // the fewest tokens cut that fit, keeping at least one
  let best: number[] | undefined;
  for (let lo = 1, hi = content.length - 1; lo <= hi; ) {
    const mid = (lo + hi) >> 1;
    const q = fitting(cut(mid));
    if (q) {
      best = q;
      hi = mid - 1;
    } else lo = mid + 1;
  }
  return best;
}
