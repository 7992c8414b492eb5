// The trainer's config (TrainConfig) as flags, one per field, shared by every training command,
// and the config a run (new or resumed) trains with.
import { TRAIN_DEFAULTS, type TrainConfig } from '@s2s/core';

import { type OptionSchema, UsageError, flagName } from './options.js';
import type { PartialValues } from './parse-options.js';

const G = 'training';
const d = TRAIN_DEFAULTS;

/** Every TrainConfig field as an option; `lr` is left to the caller where kinds differ. */
export function trainOptions(defaults: TrainConfig = TRAIN_DEFAULTS) {
  return {
    lr: { type: 'float', min: 0, default: defaults.lr, group: G, help: 'peak learning rate' },
    batchSize: { type: 'int', min: 1, default: d.batchSize, group: G, help: 'examples per forward/backward pass' },
    gradAccumulation: { type: 'int', min: 1, default: d.gradAccumulation, group: G, help: 'passes per optimizer step' },
    epochs: { type: 'float', min: 0, exclusiveMin: true, default: d.epochs, group: G, help: 'passes over the training set' },
    maxSteps: { type: 'int', min: 0, default: d.maxSteps, group: G, help: 'when > 0, exactly this many optimizer steps (overrides --epochs)' },
    warmupSteps: { type: 'int', min: 0, default: d.warmupSteps, group: G, help: 'linear warmup steps; 0: --warmup-ratio of all steps' },
    warmupRatio: { type: 'float', min: 0, max: 1, exclusiveMax: true, default: d.warmupRatio, group: G, help: 'warmup as a share of all steps' },
    minLrRatio: { type: 'float', min: 0, max: 1, default: d.minLrRatio, group: G, help: 'the cosine decay ends at this share of --lr' },
    weightDecay: { type: 'float', min: 0, default: d.weightDecay, group: G, help: 'AdamW decoupled weight decay' },
    beta1: { type: 'float', min: 0, max: 1, exclusiveMax: true, default: d.beta1, group: G, help: "AdamW's beta1" },
    beta2: { type: 'float', min: 0, max: 1, exclusiveMax: true, default: d.beta2, group: G, help: "AdamW's beta2" },
    eps: { type: 'float', min: 0, exclusiveMin: true, default: d.eps, group: G, help: "AdamW's epsilon" },
    maxGradNorm: { type: 'float', min: 0, default: d.maxGradNorm, group: G, help: 'clip the global gradient norm (0: no clipping)' },
    evalEvery: { type: 'int', min: 0, default: d.evalEvery, group: G, help: 'evaluate every N steps (0: only at the end)' },
    saveEvery: { type: 'int', min: 0, default: d.saveEvery, group: G, help: 'checkpoint every N steps (0: only when stopped)' },
    saveTotalLimit: { type: 'int', min: 0, default: d.saveTotalLimit, group: G, help: 'checkpoints kept in --out (0: all)' },
    logEvery: { type: 'int', min: 1, default: d.logEvery, group: G, help: 'trainer_state.json history entry every N steps' },
    seed: { type: 'int', min: 0, default: d.seed, group: G, help: 'fixes weights of new parameters, data order and the eval split' },
  } as const satisfies OptionSchema;
}

const KEYS = Object.keys(TRAIN_DEFAULTS) as Array<keyof TrainConfig>;

/** The TrainConfig fields of `values`, over `defaults` where a value is absent. */
export function pickTrainConfig(values: PartialValues | object, defaults: TrainConfig): TrainConfig {
  const v = values as Record<string, unknown>;
  const out = { ...defaults };
  for (const k of KEYS) if (v[k] !== undefined) (out as Record<string, unknown>)[k] = v[k];
  return out;
}

/**
 * A resumed run trains with its saved config, except where a flag (or --config) now says
 * otherwise, as Hugging Face's Trainer takes its arguments anew. Batch size and seed fix the data
 * order, so changing them could not continue the same run.
 */
export function resumedTrainConfig(saved: TrainConfig, explicit: PartialValues, checkpoint: string): TrainConfig {
  for (const k of ['batchSize', 'seed'] as const)
    if (explicit[k] !== undefined && explicit[k] !== saved[k])
      throw new UsageError(`--${flagName(k)} ${explicit[k]} differs from the run in ${checkpoint} (${saved[k]}); a resumed run keeps its batch size and seed`);
  return pickTrainConfig(explicit, saved);
}
