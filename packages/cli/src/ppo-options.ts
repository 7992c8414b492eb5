// PPO's config (PPOConfig) as flags, one per field, with PPO_DEFAULTS as their defaults (the
// optimizer's the same group as every trainer's); and the config a run (new or resumed) trains with.
import { PPO_DEFAULTS, type PPOConfig, resolvePPOConfig } from '@s2s/ppo';

import { checkpointOptions, optimizerOption, optimizerOptions } from './optimizer-options.js';
import { type OptionSchema, UsageError, configErrorAsUsage, flagName } from './options.js';
import type { PartialValues } from './parse-options.js';

const d = PPO_DEFAULTS;
const R = 'rollout';
const U = 'update';
const K = 'reward and KL';
const S = 'run';

export const ppoOptions = {
  steps: { type: 'int', min: 1, default: d.steps, group: R, help: 'PPO steps (each: one rollout batch, then --ppo-epochs passes over it)' },
  batchSize: { type: 'int', min: 1, default: d.batchSize, group: R, help: 'prompts per rollout' },
  maxNewTokens: { type: 'int', min: 1, default: d.maxNewTokens, group: R, help: 'longest response in tokens' },
  temperature: { type: 'float', min: 0, exclusiveMin: true, default: d.temperature, group: R, help: 'sampling temperature' },
  topK: { type: 'int', min: 0, default: d.topK, group: R, help: 'only 0 (all tokens): PPO samples from the distribution its ratio and KL are computed from; lower --temperature instead' },
  topP: { type: 'float', min: 0, max: 1, exclusiveMin: true, default: d.topP, group: R, help: 'only 1, as --top-k' },
  seed: { type: 'int', min: 0, default: d.seed, group: R, help: "fixes the prompt order, the samples and a new critic head's weights" },
  klCoef: { type: 'float', min: 0, default: d.klCoef, group: K, help: 'initial (or fixed) coefficient of the per-token KL penalty against --ref' },
  klEstimator: { type: 'enum', values: ['k1', 'k3'], default: d.klEstimator, group: K, help: 'per-token KL estimator' },
  targetKl: { type: 'float', min: 0, default: d.targetKL, group: K, help: 'adapt the KL coefficient toward this mean KL per response (0: fixed)' },
  klHorizon: { type: 'int', min: 1, default: d.klHorizon, group: K, help: "the adaptive KL controller's horizon, in responses" },
  missingEosPenalty: { type: 'float', min: 0, default: d.missingEosPenalty, group: K, help: 'subtracted from the score of a response that ends without EOS' },
  rewardClip: { type: 'float', min: 0, default: d.rewardClip, group: K, help: "clip each token's score to [-X, X] (0: no clipping)" },
  whitenRewards: { type: 'bool', default: d.whitenRewards, group: K, help: 'whiten the token rewards of each rollout' },
  miniBatchSize: { type: 'int', min: 1, default: d.miniBatchSize, group: U, help: 'responses per forward/backward in the update (divides --batch-size)' },
  ppoEpochs: { type: 'int', min: 1, default: d.ppoEpochs, group: U, help: 'passes over each rollout batch' },
  criticLr: { ...optimizerOption('lr', d.criticLr, "the critic's peak learning rate, on --lr's schedule (--lr is the policy's)"), group: U },
  clipRange: { type: 'float', min: 0, default: d.clipRange, group: U, help: "the surrogate's ratio clip" },
  clipRangeValue: { type: 'float', min: 0, default: d.clipRangeValue, group: U, help: "the value loss's clip around the rollout's values" },
  vfCoef: { type: 'float', min: 0, default: d.vfCoef, group: U, help: 'weight of the value loss in the reported total loss' },
  gamma: { type: 'float', min: 0, max: 1, default: d.gamma, group: U, help: 'discount' },
  lam: { type: 'float', min: 0, max: 1, default: d.lam, group: U, help: "GAE's lambda" },
  whitenAdvantages: { type: 'bool', default: d.whitenAdvantages, group: U, help: 'whiten the advantages of each rollout (on by default; --no-whiten-advantages turns it off)' },
  earlyStopKl: { type: 'float', min: 0, default: d.earlyStopKL, group: U, help: "stop a rollout's epochs when the approximate KL exceeds this (0: never)" },
  lossAveraging: {
    type: 'enum',
    values: ['token', 'sequence'],
    default: d.lossAveraging,
    group: U,
    help: "the losses' mean over a minibatch: over its tokens (TRL), or each response's mean then over responses (safe-rlhf, the paper authors')",
  },
  ...optimizerOptions(d),
  ...checkpointOptions(d),
  sampleEvery: { type: 'int', min: 0, default: d.sampleEvery, group: S, help: 'log sample completions to samples.jsonl every N steps (0: never)' },
  samples: { type: 'int', min: 0, default: d.samples, group: S, help: 'completions logged each time' },
} as const satisfies OptionSchema;

// the flags are kebab-case of the option names; PPOConfig spells KL in capitals
const FIELD: Record<string, keyof PPOConfig> = { targetKl: 'targetKL', earlyStopKl: 'earlyStopKL' };
const OPTION = Object.fromEntries(Object.entries(FIELD).map(([o, f]) => [f, o])) as Record<string, string>;

export const optionOfField = (field: keyof PPOConfig): string => OPTION[field] ?? field;

/** The PPOConfig fields of `values`, over `base` where a value is absent; checked as PPOTrainer will check them. */
export function pickPPOConfig(values: PartialValues | object, base: PPOConfig = PPO_DEFAULTS): PPOConfig {
  const v = values as Record<string, unknown>;
  const out: Record<string, unknown> = { ...base };
  for (const key of Object.keys(ppoOptions)) if (v[key] !== undefined) out[FIELD[key] ?? key] = v[key];
  try {
    return resolvePPOConfig(out as Partial<PPOConfig>);
  } catch (e) {
    // resolvePPOConfig names fields as PPOConfig does; a user knows them as flags
    throw configErrorAsUsage(e, (w) => (Object.hasOwn(PPO_DEFAULTS, w) ? flagName(optionOfField(w as keyof PPOConfig)) : undefined));
  }
}

/**
 * A resumed PPO run may change its settings (more --steps, say), as the other trainers allow, but
 * not the ones that fix which prompts it draws: --batch-size and --seed.
 */
export function checkResumedPPOConfig(saved: PPOConfig, explicit: PartialValues, checkpoint: string): void {
  for (const key of ['batchSize', 'seed'] as const) {
    const now = explicit[key];
    const was = saved[FIELD[key] ?? (key as keyof PPOConfig)];
    if (now !== undefined && now !== was)
      throw new UsageError(`--${flagName(key)} ${now} differs from the run in ${checkpoint} (${was}); it fixes the prompt order, so a resumed run keeps it`);
  }
}
