// Where PPO's rewards come from, chosen by one option: the scalar RM's normalised score on the last
// token (ordinary PPO), the seq2seq RM's token scores (PPO-T) or their sum/mean on the last token
// (PPO-S), the positive-only and negative-only ablations, or a user's function.
import { type Model, type Prompt, type Template, type Tokenizer, encodePrompt } from '@s2s/core';
import {
  type LoadedRewardModel,
  type RewardStats,
  type TokenScoreConfig,
  aggregateScores,
  decodeGenerated,
  extractRewards,
  normalizeReward,
  sequenceRewards,
} from '@s2s/rm';

/**
 * A user's reward: one number for the response (put on its last token), or one per token. The
 * prompt is text or (chat mode) a conversation; the response's text leaves out special tokens and
 * ids the tokenizer has none for (see decodeGenerated).
 */
export type CustomReward = (prompt: Prompt, response: string, tokens: readonly number[]) => number | number[] | Promise<number | number[]>;

export type RewardSpec =
  | { type: 'scalar'; model: Model; stats?: RewardStats }
  | { type: 'token' | 'token-positive' | 'token-negative'; model: Model; scores?: Partial<Omit<TokenScoreConfig, 'variant'>> }
  | { type: 'sentence'; model: Model; aggregate?: 'sum' | 'mean'; scores?: Partial<Omit<TokenScoreConfig, 'variant'>> }
  | { type: 'custom'; fn: CustomReward; name?: string };

export type RewardType = RewardSpec['type'];
export const REWARD_TYPES: readonly RewardType[] = ['scalar', 'token', 'sentence', 'token-positive', 'token-negative', 'custom'];

export interface RewardBatch {
  prompts: readonly Prompt[];
  /** the policy's responses as token ids, the stop token included when it stopped */
  responses: readonly (readonly number[])[];
}

export interface Rewards {
  /** the reward of each response token (sequence-level rewards sit on the last token) */
  perToken: number[][];
  /** one number per response: the RM's score, or the sum of its token scores (TRL's `scores`) */
  scores: number[];
}

/** The reward types a reward model's folder gives: 'scalar' from a scalar one, the rest from a seq2seq one. */
export type ModelRewardType = Exclude<RewardType, 'custom'>;

/**
 * The reward spec for a reward model opened with @s2s/rm's loadRewardModel: `type` defaults to
 * 'scalar' for a scalar reward model (normalised by its reward_stats.json when it has one) and
 * 'token' (PPO-T) for a seq2seq one; a type the model cannot give is a RangeError.
 */
export function rewardFromModel(
  rm: LoadedRewardModel,
  type: ModelRewardType = rm.kind === 'scalar' ? 'scalar' : 'token',
  opts: { aggregate?: 'sum' | 'mean'; scores?: Partial<Omit<TokenScoreConfig, 'variant'>> } = {},
): RewardSpec {
  if ((type === 'scalar') !== (rm.kind === 'scalar'))
    throw new RangeError(
      type === 'scalar'
        ? `a 'scalar' reward needs a scalar reward model, but ${rm.dir} is a seq2seq one: use 'token', 'sentence', 'token-positive' or 'token-negative' with it`
        : `a '${type}' reward needs a seq2seq reward model's token scores, but ${rm.dir} is a scalar one (one number per response): use 'scalar' with it`,
    );
  if (rm.kind === 'scalar') return { type: 'scalar', model: rm.model, ...(rm.stats ? { stats: rm.stats } : {}) };
  if (type === 'sentence') return { type, model: rm.model, ...(opts.aggregate ? { aggregate: opts.aggregate } : {}), ...(opts.scores ? { scores: opts.scores } : {}) };
  return { type: type as 'token' | 'token-positive' | 'token-negative', model: rm.model, ...(opts.scores ? { scores: opts.scores } : {}) };
}

export class RewardError extends Error {
  override name = 'RewardError';
}

function onLastToken(responses: RewardBatch['responses'], scores: readonly number[]): number[][] {
  return responses.map((r, i) => r.map((_, t) => (t === r.length - 1 ? scores[i] : 0)));
}

async function custom(fn: CustomReward, tok: Tokenizer, batch: RewardBatch): Promise<Rewards> {
  const perToken: number[][] = [];
  const scores: number[] = [];
  for (let i = 0; i < batch.responses.length; i++) {
    const tokens = batch.responses[i];
    let out: number | number[];
    try {
      out = await fn(batch.prompts[i], decodeGenerated(tok, tokens, { skipSpecialTokens: true }), tokens);
    } catch (e) {
      throw new RewardError(`the custom reward threw for response ${i}: ${(e as Error).message}`);
    }
    if (typeof out === 'number') {
      if (!Number.isFinite(out)) throw new RewardError(`the custom reward returned ${out} for response ${i}; rewards must be finite numbers`);
      perToken.push(tokens.map((_, t) => (t === tokens.length - 1 ? out : 0)));
      scores.push(out);
    } else if (Array.isArray(out)) {
      if (out.length !== tokens.length)
        throw new RewardError(`the custom reward returned ${out.length} values for response ${i}, which has ${tokens.length} tokens; return one number, or one per token`);
      const bad = out.findIndex((x) => typeof x !== 'number' || !Number.isFinite(x));
      if (bad >= 0) throw new RewardError(`the custom reward returned ${out[bad]} for response ${i}, token ${bad}; rewards must be finite numbers`);
      perToken.push([...out]);
      scores.push(out.reduce((a, b) => a + b, 0));
    } else {
      throw new RewardError(`the custom reward returned ${typeof out} for response ${i}; return a number or an array of numbers`);
    }
  }
  return { perToken, scores };
}

export async function computeRewards(spec: RewardSpec, tok: Tokenizer, tpl: Template, batch: RewardBatch): Promise<Rewards> {
  switch (spec.type) {
    case 'scalar': {
      // the query as the policy saw it, cut (from the left of the prompt) to fit the reward model too
      const seqs = batch.prompts.map((p, i) => {
        const r = batch.responses[i];
        const q = encodePrompt(tok, tpl, p, { maxLength: spec.model.config.maxSeqLen - r.length });
        if (!q) throw new RewardError(`response ${i} has ${r.length} tokens: with the template it does not fit the scalar reward model's context (${spec.model.config.maxSeqLen})`);
        return [...q, ...r];
      });
      const raw = await sequenceRewards(spec.model, seqs, tok.padId ?? 0);
      const scores = spec.stats ? raw.map((r) => normalizeReward(r, spec.stats!)) : raw;
      return { perToken: onLastToken(batch.responses, scores), scores };
    }
    case 'token':
    case 'token-positive':
    case 'token-negative': {
      const variant = spec.type === 'token' ? 'full' : spec.type === 'token-positive' ? 'positive-only' : 'negative-only';
      const ex = await extractRewards(spec.model, tok, tpl, batch.prompts.map((prompt, i) => ({ prompt, response: batch.responses[i] })), {
        config: { ...spec.scores, variant },
      });
      return { perToken: ex.map((e) => e.scores), scores: ex.map((e) => aggregateScores(e.scores, 'sum')) };
    }
    case 'sentence': {
      const ex = await extractRewards(spec.model, tok, tpl, batch.prompts.map((prompt, i) => ({ prompt, response: batch.responses[i] })), {
        config: spec.scores,
      });
      const scores = ex.map((e) => aggregateScores(e.scores, spec.aggregate ?? 'sum'));
      return { perToken: onLastToken(batch.responses, scores), scores };
    }
    case 'custom':
      return custom(spec.fn, tok, batch);
  }
}
