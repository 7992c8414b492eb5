// The seq2seq reward model's data and evaluation: it learns, by sequence MLE, the correction
// mapping (prompt, rejected) -> chosen and the identity mapping (prompt, chosen) -> chosen; it is
// judged by how often its greedy rewrite reproduces the chosen response.
import {
  type Completion,
  type LengthOptions,
  type LengthReport,
  type Model,
  type Prompt,
  type SupervisedExample,
  type Template,
  type Tokenizer,
  encodeResponse,
  lengthReport,
  rowSource,
} from '@s2s/core';

import { encodeRewriteOfGenerated } from './extract.js';
import { generationStopIds } from './generated.js';

/**
 * A preference pair: text (a PreferenceRow), or in chat mode a conversation and two assistant
 * turns (a ConversationalPreferenceRow), as @s2s/core reads them.
 */
export interface PreferencePair {
  prompt: Prompt;
  chosen: Completion;
  rejected: Completion;
}

export interface RewriteMixture {
  /** loss weight of correction-mapping examples (default 1) */
  correctionWeight: number;
  /** loss weight of identity-mapping examples (default 1) */
  identityWeight: number;
}

export const REWRITE_MIXTURE_DEFAULTS: RewriteMixture = { correctionWeight: 1, identityWeight: 1 };

export type Mapping = 'correction' | 'identity';

export interface RewriteExamples {
  examples: SupervisedExample[];
  /** which mapping each example is */
  mappings: Mapping[];
  report: LengthReport;
}

/**
 * Both mappings for every pair, as supervised examples whose loss covers only the rewrite (with
 * its EOS). Examples longer than `maxLength` follow the length rule (LengthOptions: prompt
 * tokens dropped from the left, or the example skipped); the report counts both.
 */
export function rewriteExamples(
  tok: Tokenizer,
  tpl: Template,
  pairs: readonly PreferencePair[],
  opts: Partial<RewriteMixture> & Omit<LengthOptions, 'report'> = {},
): RewriteExamples {
  const mix = { ...REWRITE_MIXTURE_DEFAULTS, ...opts };
  const report = lengthReport();
  const examples: SupervisedExample[] = [];
  const mappings: Mapping[] = [];
  for (const p of pairs) {
    // each response as the policy writes it (with its EOS, or end-of-turn in chat mode)
    const chosen = encodeResponse(tok, tpl, p.prompt, p.chosen);
    const rejected = encodeResponse(tok, tpl, p.prompt, p.rejected);
    const add = (source: number[], mapping: Mapping, weight: number) => {
      if (weight === 0) return;
      const at = rowSource(p);
      const e = encodeRewriteOfGenerated(tok, tpl, p.prompt, source, chosen, { maxLength: opts.maxLength, overflow: opts.overflow, report, at: at && `${at} ${mapping}` });
      if (e) {
        examples.push({ ids: e.ids, lossMask: e.lossMask, weight });
        mappings.push(mapping);
      }
    };
    add(rejected, 'correction', mix.correctionWeight);
    add(chosen, 'identity', mix.identityWeight);
  }
  return { examples, mappings, report };
}

export interface RewriteItem {
  /** text, or (chat mode) the conversation before the response */
  prompt: Prompt;
  /** the response to rewrite, as token ids */
  response: readonly number[];
}

/** The reward model's greedy rewrite of each response (token ids, its EOS or end-of-turn included when it stopped). */
export async function rewrite(rm: Model, tok: Tokenizer, tpl: Template, items: readonly RewriteItem[], opts: { maxNewTokens?: number; batchSize?: number } = {}): Promise<number[][]> {
  const batchSize = opts.batchSize ?? 32;
  const out: number[][] = [];
  for (let i = 0; i < items.length; i += batchSize) {
    const queries = items.slice(i, i + batchSize).map((it, k) => {
      const maxNew = opts.maxNewTokens ?? Math.max(1, Math.min(2 * it.response.length + 8, rm.config.maxSeqLen >> 1));
      const e = encodeRewriteOfGenerated(tok, tpl, it.prompt, it.response, [], { maxLength: rm.config.maxSeqLen - maxNew });
      if (!e) throw new RangeError(`rewrite: item ${i + k} does not fit the reward model's context (${rm.config.maxSeqLen})`);
      return { ids: e.ids.slice(0, e.targetSpan[0]), maxNew };
    });
    const maxNewTokens = Math.max(...queries.map((q) => q.maxNew));
    const room = Math.min(...queries.map((q) => rm.config.maxSeqLen - q.ids.length));
    const gens = await rm.generate(queries.map((q) => q.ids), { maxNewTokens: Math.min(maxNewTokens, room), temperature: 0, eos: generationStopIds(rm, tok, tpl) });
    out.push(...gens.map((g) => g.tokens));
  }
  return out;
}

export interface RewriteAccuracy {
  /** share of rewrites equal to the chosen response (EOS included) */
  exactMatch: number;
  /** share of positions where the rewrite has the chosen response's token, over the longer of the two */
  tokenAccuracy: number;
  n: number;
}

function accuracy(rewrites: readonly number[][], targets: readonly number[][]): RewriteAccuracy {
  let exact = 0;
  let acc = 0;
  rewrites.forEach((r, i) => {
    const t = targets[i];
    const n = Math.max(r.length, t.length);
    let same = 0;
    for (let k = 0; k < Math.min(r.length, t.length); k++) same += r[k] === t[k] ? 1 : 0;
    acc += n ? same / n : 1;
    exact += same === n ? 1 : 0;
  });
  return { exactMatch: exact / Math.max(1, rewrites.length), tokenAccuracy: acc / Math.max(1, rewrites.length), n: rewrites.length };
}

/** Greedy rewrites of held-out pairs against their chosen responses, per mapping. */
export async function evaluateRewrites(
  rm: Model,
  tok: Tokenizer,
  tpl: Template,
  pairs: readonly PreferencePair[],
): Promise<Record<Mapping, RewriteAccuracy>> {
  // responses and targets as the policy writes them, stop token included (encodeRewrite keeps it)
  const targets = pairs.map((p) => encodeResponse(tok, tpl, p.prompt, p.chosen));
  const correction = await rewrite(rm, tok, tpl, pairs.map((p) => ({ prompt: p.prompt, response: encodeResponse(tok, tpl, p.prompt, p.rejected) })));
  const identity = await rewrite(rm, tok, tpl, pairs.map((p, i) => ({ prompt: p.prompt, response: targets[i] })));
  return { correction: accuracy(correction, targets), identity: accuracy(identity, targets) };
}
