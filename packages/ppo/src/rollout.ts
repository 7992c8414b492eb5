// One PPO rollout: sample responses from the policy, then read the policy's, the reference's and
// the critic's per-token quantities, the rewards, the KL penalty and the advantages.
import { type Model, type Prompt, type Template, type Tokenizer, encodePrompt } from '@s2s/core';
import { generationStopIds } from '@s2s/rm';

import { type SumOverRanks, gae, klPenalty, whitenAcross } from './advantages.js';
import type { PPOConfig } from './config.js';
import { type RewardSpec, computeRewards } from './rewards.js';

export interface Rollout {
  /** text, or (chat mode) conversations */
  prompts: Prompt[];
  /** the policy's query ids (template applied) */
  queries: number[][];
  /** response ids, the stop token (EOS, or a chat template's end-of-turn) included when the policy stopped */
  responses: number[][];
  /** whether each response ended with a stop token */
  eos: boolean[];
  /** per response token: */
  logprobs: number[][];
  refLogprobs: number[][];
  values: number[][];
  kl: number[][];
  /** score + KL penalty */
  rewards: number[][];
  advantages: number[][];
  returns: number[][];
  /** per response: the reward's score (after any missing-EOS penalty) */
  scores: number[];
  /** the KL coefficient used */
  klCoef: number;
}

/** Queries + responses as one right-padded batch, targets on the response tokens only. */
export function sequenceBatch(queries: readonly (readonly number[])[], responses: readonly (readonly number[])[], padId: number) {
  const B = queries.length;
  const T = Math.max(...queries.map((q, i) => q.length + responses[i].length));
  const tokens = new Int32Array(B * T).fill(padId);
  const targets = new Int32Array(B * T).fill(-1);
  queries.forEach((q, b) => {
    const r = responses[b];
    tokens.set(q, b * T);
    tokens.set(r, b * T + q.length);
    // position q.length - 1 + t predicts response token t
    for (let t = 0; t < r.length; t++) targets[b * T + q.length - 1 + t] = r[t];
  });
  /** per-row response-aligned slices of a [B*T] output */
  const gather = (x: Float32Array): number[][] => queries.map((q, b) => Array.from(x.subarray(b * T + q.length - 1, b * T + q.length - 1 + responses[b].length)));
  return { tokens, targets, B, T, gather };
}

export interface RolloutModels {
  policy: Model;
  /** the frozen reference (the SFT model) for the KL penalty */
  ref: Model;
  /** the value model (a value head), initialised from the scalar RM or the SFT model */
  critic: Model;
  reward: RewardSpec;
  tokenizer: Tokenizer;
  template: Template;
}

/** Where a rollout's rows sit in a data-parallel run's global batch, and how to sum over the ranks. */
export interface RolloutShard {
  /** the global index of this rank's first row: its sampling streams (GenerateOptions.firstRow) */
  firstRow: number;
  sumOverRanks: SumOverRanks;
}

const ONE_PROCESS: RolloutShard = { firstRow: 0, sumOverRanks: async (v) => v };

export async function collectRollout(
  m: RolloutModels,
  c: PPOConfig,
  prompts: readonly Prompt[],
  klCoef: number,
  seed: number,
  shard: RolloutShard = ONE_PROCESS,
): Promise<Rollout> {
  const tok = m.tokenizer;
  const queries = prompts.map((p, i) => {
    const q = encodePrompt(tok, m.template, p, { maxLength: m.policy.config.maxSeqLen - c.maxNewTokens });
    if (!q) throw new RangeError(`prompt ${i} does not fit the policy's context (${m.policy.config.maxSeqLen}) with maxNewTokens ${c.maxNewTokens}`);
    return q;
  });
  const gens = await m.policy.generate(queries, {
    maxNewTokens: c.maxNewTokens,
    temperature: c.temperature,
    topK: c.topK,
    topP: c.topP,
    // a response ends on any stop id: the template's (end-of-turn, EOS) and the model's generation_config ones
    eos: generationStopIds(m.policy, tok, m.template),
    seed,
    firstRow: shard.firstRow,
  });
  const responses = gens.map((g) => g.tokens);
  const eos = gens.map((g) => g.finishReason === 'eos');
  const batch = sequenceBatch(queries, responses, tok.padId ?? 0);
  // log-probs are recomputed by forward, so the first update's ratio is exactly 1
  const pol = await m.policy.forward(batch, { temperature: c.temperature });
  const ref = await m.ref.forward(batch, { temperature: c.temperature });
  const val = await m.critic.forward(batch, { logprob: false, values: true });
  const logprobs = batch.gather(pol.logprob);
  const refLogprobs = batch.gather(ref.logprob);
  const values = batch.gather(val.values!);

  const r = await computeRewards(m.reward, tok, m.template, { prompts, responses });
  const shaped = await shapeRewards(r, eos, logprobs, refLogprobs, values, c, klCoef, shard.sumOverRanks);
  return {
    prompts: [...prompts],
    queries,
    responses,
    eos,
    logprobs,
    refLogprobs,
    values,
    ...shaped,
    klCoef,
  };
}

/** The settings shapeRewards reads. */
export type ShapingConfig = Pick<PPOConfig, 'rewardClip' | 'missingEosPenalty' | 'klEstimator' | 'whitenRewards' | 'whitenAdvantages' | 'gamma' | 'lam'>;

/**
 * From the reward's scores to the advantages, one response per row: each token's score clipped to
 * [-rewardClip, rewardClip], the missing-EOS penalty taken off the last token (and the reported
 * score) of a response that did not stop, the KL penalty klCoef * KL_t subtracted at every token,
 * rewards optionally scaled to unit variance, then GAE and optional whitening of the advantages.
 * Whitening is over the global batch: `sumOverRanks` adds the ranks' statistics (data parallel).
 */
export async function shapeRewards(
  r: { scores: readonly number[]; perToken: readonly (readonly number[])[] },
  eos: readonly boolean[],
  logprobs: readonly (readonly number[])[],
  refLogprobs: readonly (readonly number[])[],
  values: readonly (readonly number[])[],
  c: ShapingConfig,
  klCoef: number,
  sumOverRanks: SumOverRanks = async (v) => v,
): Promise<Pick<Rollout, 'scores' | 'kl' | 'rewards' | 'advantages' | 'returns'>> {
  const scores = [...r.scores];
  const scoreTokens = r.perToken.map((row) => (c.rewardClip > 0 ? row.map((x) => Math.max(-c.rewardClip, Math.min(c.rewardClip, x))) : [...row]));
  if (c.missingEosPenalty > 0)
    eos.forEach((stopped, i) => {
      if (stopped || scoreTokens[i].length === 0) return;
      scores[i] -= c.missingEosPenalty;
      scoreTokens[i][scoreTokens[i].length - 1] -= c.missingEosPenalty;
    });
  const kl = logprobs.map((lp, i) => klPenalty(lp, refLogprobs[i], c.klEstimator));
  let rewards = scoreTokens.map((row, i) => row.map((s, t) => s - klCoef * kl[i][t]));
  if (c.whitenRewards) rewards = await whitenAcross(rewards, sumOverRanks, { shiftMean: false });
  const est = rewards.map((rw, i) => gae(rw, values[i], c.gamma, c.lam));
  const advantages = c.whitenAdvantages ? await whitenAcross(est.map((e) => e.advantages), sumOverRanks) : est.map((e) => e.advantages);
  return { scores, kl, rewards, advantages, returns: est.map((e) => e.returns) };
}
