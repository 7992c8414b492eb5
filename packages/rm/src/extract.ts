// Reward extraction, the paper's second stage: the seq2seq reward model is run teacher-forced over
// (prompt, y) -> y, and each token of y is scored by whether it is what the model would write there:
// +1 before the first divergence, then -1 where y diverges and 0 where it still matches.
import {
  type EncodedExample,
  type LengthOptions,
  type Model,
  type Prompt,
  type Template,
  type Tokenizer,
  collate,
  encodeRewrite,
  lengthReport,
  stopTokenIds,
} from '@s2s/core';

/** The paper's ablations keep only one sign of the scores. */
export type TokenScoreVariant = 'full' | 'positive-only' | 'negative-only';

export interface TokenScoreConfig {
  /** score of a token before the first divergence */
  positive: number;
  /** score of a diverging token at or after the first divergence */
  negative: number;
  /** score of a matching token after the first divergence */
  neutral: number;
  variant: TokenScoreVariant;
}

export const TOKEN_SCORE_DEFAULTS: TokenScoreConfig = { positive: 1, negative: -1, neutral: 0, variant: 'full' };

export interface TokenScores {
  /** one score per response token */
  scores: number[];
  /** index of the first token the reward model would not have written, or -1 when it matches throughout */
  firstDivergence: number;
}

/** The scoring rule on one response, from its matches (m_t = 1 when token t is the model's argmax). */
export function tokenScores(match: ArrayLike<number | boolean>, config: Partial<TokenScoreConfig> = {}): TokenScores {
  const c = { ...TOKEN_SCORE_DEFAULTS, ...config };
  const { positive, negative } = ruleScores(c);
  const scores: number[] = [];
  let firstDivergence = -1;
  for (let t = 0; t < match.length; t++) {
    const m = Boolean(match[t]);
    if (firstDivergence < 0 && m) scores.push(positive);
    else {
      if (firstDivergence < 0) firstDivergence = t;
      scores.push(m ? c.neutral : negative);
    }
  }
  return { scores, firstDivergence };
}

/** The rule's three values with an ablation folded in (it zeroes one sign: its score becomes neutral). */
export function ruleScores(config: Partial<TokenScoreConfig> = {}): { positive: number; negative: number; neutral: number } {
  const c = { ...TOKEN_SCORE_DEFAULTS, ...config };
  return {
    positive: c.variant === 'negative-only' ? c.neutral : c.positive,
    negative: c.variant === 'positive-only' ? c.neutral : c.negative,
    neutral: c.neutral,
  };
}

/** PPO-S: a response's token scores made into one number. */
export function aggregateScores(scores: readonly number[], how: 'sum' | 'mean' = 'sum'): number {
  const sum = scores.reduce((a, b) => a + b, 0);
  return how === 'sum' ? sum : scores.length ? sum / scores.length : 0;
}

export interface RewardItem {
  /** text, or (chat mode) the conversation before the response */
  prompt: Prompt;
  /** the response's token ids as the policy produced them (its EOS included when it stopped) */
  response: readonly number[];
}

export interface ExtractedRewards extends TokenScores {
  /** the reward model's own choice at each response position */
  argmax: number[];
}

export interface ExtractOptions {
  config?: Partial<TokenScoreConfig>;
  /** sequences per engine call (default 32) */
  batchSize?: number;
}

/**
 * encodeRewrite for responses as a policy wrote them, which may hold ids the tokenizer has no token
 * for (a padded vocabulary's: Qwen2.5's embedding has 271 rows past its tokenizer's ids, and a
 * policy can sample them), which encodeRewrite refuses. Those are laid out as a stand-in id and put
 * back after, so that the reward model reads the policy's own ids (its embedding has rows for them)
 * at their own positions; other responses are encodeRewrite's as they are.
 */
export function encodeRewriteOfGenerated(
  tok: Tokenizer,
  tpl: Template,
  prompt: Prompt,
  responseIds: readonly number[],
  targetIds: readonly number[],
  opts: LengthOptions = {},
): EncodedExample | null {
  const outside = (id: number) => id >= tok.vocabSize;
  if (!responseIds.some(outside) && !targetIds.some(outside)) return encodeRewrite(tok, tpl, prompt, responseIds, targetIds, opts);
  // not a stop id, so that the layout adds its EOS or end-of-turn as it would for the real id
  const stops = stopTokenIds(tok, tpl);
  let standIn = 0;
  while (stops.includes(standIn)) standIn++;
  const swap = (ids: readonly number[]) => ids.map((id) => (outside(id) ? standIn : id));
  const e = encodeRewrite(tok, tpl, prompt, swap(responseIds), swap(targetIds), opts);
  if (!e) return null;
  const ids = [...e.ids];
  responseIds.forEach((id, k) => (ids[e.sourceSpan![0] + k] = id));
  targetIds.forEach((id, k) => (ids[e.targetSpan[0] + k] = id));
  return { ...e, ids };
}

/**
 * Token scores for a batch of responses: one fused divergence pass of the reward model per batch
 * (argmax, match, first-divergence scan and the rule, in the engine; no logits leave it). Prompts
 * too long for the reward model's context are cut from the left; a response that does not fit at
 * all is an error.
 */
export async function extractRewards(
  rm: Model,
  tok: Tokenizer,
  tpl: Template,
  items: readonly RewardItem[],
  opts: ExtractOptions = {},
): Promise<ExtractedRewards[]> {
  const batchSize = opts.batchSize ?? 32;
  const out: ExtractedRewards[] = [];
  const report = lengthReport();
  for (let i = 0; i < items.length; i += batchSize) {
    const chunk = items.slice(i, i + batchSize);
    const encoded = chunk.map((it, k) => {
      const e = encodeRewriteOfGenerated(tok, tpl, it.prompt, it.response, it.response, { maxLength: rm.config.maxSeqLen, report });
      if (!e)
        throw new RangeError(
          `extractRewards: response ${i + k} has ${it.response.length} tokens; twice that plus the template does not fit the reward model's context (${rm.config.maxSeqLen})`,
        );
      return e;
    });
    const batch = collate(encoded, tok.padId ?? 0);
    // score exactly the response's own tokens: a target EOS the template appended is not the policy's
    const spans = encoded.map((e, k) => [e.targetSpan[0], e.targetSpan[0] + chunk[k].response.length] as const);
    const r = await rm.divergence(batch, spans, ruleScores(opts.config));
    spans.forEach(([s, e], k) => {
      const row = k * batch.T;
      out.push({
        scores: Array.from(r.scores.subarray(row + s, row + e)),
        firstDivergence: r.firstDivergence[k],
        argmax: Array.from(r.argmax.subarray(row + s, row + e)),
      });
    });
  }
  return out;
}
