// PPO's settings, with defaults as TRL's PPO has them (clip 0.2, gamma 1, lambda 0.95, 4 epochs,
// KL coefficient 0.05, temperature 0.7), written next to every checkpoint. The optimizer's fields
// (AdamW and the learning-rate schedule) are @s2s/core's OptimizerConfig, checked as every trainer's.
import { OPTIMIZER_DEFAULTS, type OptimizerConfig, optimizerFieldProblem, resolveOptimizerConfig } from '@s2s/core';

import type { KLEstimator } from './advantages.js';

export type LossAveraging = 'token' | 'sequence';

/** `lr` is the policy's learning rate; the critic has criticLr on the same schedule, over `steps`. */
export interface PPOConfig extends OptimizerConfig {
  /** optimizer steps (each: one rollout batch, then ppoEpochs passes over it) */
  steps: number;
  /** prompts per rollout */
  batchSize: number;
  /** responses per forward/backward in the update */
  miniBatchSize: number;
  ppoEpochs: number;
  /** the critic's peak learning rate (`lr` is the policy's) */
  criticLr: number;
  clipRange: number;
  clipRangeValue: number;
  /** weight of the value loss in the reported total loss (the critic has its own optimizer) */
  vfCoef: number;
  gamma: number;
  lam: number;
  whitenAdvantages: boolean;
  /** whiten the token rewards of each rollout (TRL's whiten_rewards) */
  whitenRewards: boolean;
  /** clip each token's score to [-rewardClip, rewardClip] (0: no clipping) */
  rewardClip: number;
  /** per-token KL penalty against the reference: initial beta, estimator, adaptive target */
  klCoef: number;
  klEstimator: KLEstimator;
  /** adapt beta toward this mean KL per response (0: fixed beta) */
  targetKL: number;
  klHorizon: number;
  /** stop a rollout's epochs early when the approximate KL to the rollout policy exceeds this (0: never) */
  earlyStopKL: number;
  /**
   * How the policy and value losses average over a minibatch: 'token', over all its response tokens
   * (TRL's masked_mean), so a long response weighs more; 'sequence', each response's mean over its
   * tokens, then the mean over responses (safe-rlhf's and align-anything's, the paper authors' own
   * trainers), so every response weighs the same whatever its length.
   */
  lossAveraging: LossAveraging;
  /** subtracted from the score of a response that ends without EOS (0: none) */
  missingEosPenalty: number;
  /** generation */
  maxNewTokens: number;
  temperature: number;
  /** 0 only: kept so saved configs read back; PPO samples from the whole distribution (see resolvePPOConfig) */
  topK: number;
  /** 1 only, as topK */
  topP: number;
  seed: number;
  /** checkpoint every this many steps (0: only when stopped and at the end) */
  saveEvery: number;
  /** checkpoint-<step> folders kept in outputDir, oldest deleted first (0: all); final/ is not one (see rotateCheckpoints in @s2s/core) */
  saveTotalLimit: number;
  /** log sample completions every this many steps (0: never) */
  sampleEvery: number;
  samples: number;
}

export const PPO_DEFAULTS: PPOConfig = {
  steps: 100,
  batchSize: 32,
  miniBatchSize: 8,
  ppoEpochs: 4,
  ...OPTIMIZER_DEFAULTS,
  lr: 3e-6,
  criticLr: 3e-6,
  // TRL's: a linear decay of both learning rates to 0 over the run, no warmup
  lrSchedule: 'linear',
  warmupSteps: 0,
  warmupRatio: 0,
  minLrRatio: 0,
  clipRange: 0.2,
  clipRangeValue: 0.2,
  vfCoef: 0.1,
  gamma: 1,
  lam: 0.95,
  whitenAdvantages: true,
  whitenRewards: false,
  rewardClip: 0,
  klCoef: 0.05,
  klEstimator: 'k1',
  targetKL: 0,
  klHorizon: 10000,
  earlyStopKL: 0,
  lossAveraging: 'token',
  missingEosPenalty: 0,
  maxNewTokens: 53,
  temperature: 0.7,
  topK: 0,
  topP: 1,
  seed: 0,
  saveEvery: 0,
  saveTotalLimit: 2,
  sampleEvery: 10,
  samples: 3,
};

/** Fills the defaults and checks every field; a RangeError names the field ("PPO config: beta1 must be ..."). */
export function resolvePPOConfig(c: Partial<PPOConfig> = {}): PPOConfig {
  const out = { ...PPO_DEFAULTS, ...c };
  const unknown = Object.keys(c).filter((k) => !(k in PPO_DEFAULTS));
  if (unknown.length) throw new RangeError(`PPO config: unknown field ${JSON.stringify(unknown[0])}`);
  Object.assign(out, resolveOptimizerConfig(out, 'PPO config', out));
  // the critic's learning rate is checked as the policy's is
  const critic = optimizerFieldProblem('lr', out.criticLr);
  if (critic) throw new RangeError(`PPO config: criticLr ${critic}`);
  const int = (k: keyof PPOConfig, min: number) => {
    const v = out[k] as number;
    if (!Number.isInteger(v) || v < min) throw new RangeError(`PPO config: ${k} must be an integer >= ${min}, got ${v}`);
  };
  const num = (k: keyof PPOConfig, min: number, max = Infinity, openMin = false) => {
    const v = out[k] as number;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (openMin && v === min))
      throw new RangeError(`PPO config: ${k} must be a number in ${openMin ? '(' : '['}${min}, ${max}], got ${v}`);
  };
  for (const k of ['steps', 'batchSize', 'miniBatchSize', 'ppoEpochs', 'maxNewTokens', 'klHorizon'] as const) int(k, 1);
  for (const k of ['topK', 'seed', 'saveEvery', 'saveTotalLimit', 'sampleEvery', 'samples'] as const) int(k, 0);
  for (const k of ['clipRange', 'clipRangeValue', 'vfCoef', 'rewardClip', 'klCoef', 'targetKL', 'earlyStopKL', 'missingEosPenalty'] as const) num(k, 0);
  num('gamma', 0, 1);
  num('lam', 0, 1);
  num('temperature', 0, Infinity, true);
  num('topP', 0, 1, true);
  // The ratio, the KL penalty and the critic's targets all use softmax(logits / temperature): a
  // rollout sampled from a truncated distribution would be off-policy without saying so (TRL's PPO
  // samples with top_k 0 and top_p 1 for the same reason).
  if (out.topK !== 0)
    throw new RangeError(`PPO config: topK must be 0 (all tokens), got ${out.topK}: PPO's ratio and KL are computed from the whole softmax(logits / temperature), and top-k sampling would make every rollout off-policy; lower temperature to sample more narrowly`);
  if (out.topP !== 1)
    throw new RangeError(`PPO config: topP must be 1 (the whole distribution), got ${out.topP}: PPO's ratio and KL are computed from the whole softmax(logits / temperature), and nucleus sampling would make every rollout off-policy; lower temperature to sample more narrowly`);
  if (out.batchSize % out.miniBatchSize !== 0)
    throw new RangeError(`PPO config: batchSize (${out.batchSize}) must be a multiple of miniBatchSize (${out.miniBatchSize})`);
  if (out.klEstimator !== 'k1' && out.klEstimator !== 'k3') throw new RangeError(`PPO config: klEstimator must be 'k1' or 'k3', got ${JSON.stringify(out.klEstimator)}`);
  if (out.lossAveraging !== 'token' && out.lossAveraging !== 'sequence')
    throw new RangeError(`PPO config: lossAveraging must be 'token' or 'sequence', got ${JSON.stringify(out.lossAveraging)}`);
  return out;
}
