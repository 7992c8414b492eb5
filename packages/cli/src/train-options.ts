// The trainer's config (TrainConfig) as flags, one per field, shared by every training command,
// and the config a run (new or resumed) trains with.
import { TRAIN_DEFAULTS, type TrainConfig, checkTrainConfig } from '@s2s/core';

import { checkpointOptions, optimizerOptions } from './optimizer-options.js';
import { type OptionSchema, UsageError, configErrorAsUsage, flagName } from './options.js';
import type { PartialValues } from './parse-options.js';

const G = 'training';
const d = TRAIN_DEFAULTS;

/** Every TrainConfig field as an option: the optimizer's group (with `defaults`), the loop's, the checkpoints'. */
export function trainOptions(defaults: TrainConfig = TRAIN_DEFAULTS) {
  return {
    ...optimizerOptions(defaults),
    batchSize: { type: 'int', min: 1, default: d.batchSize, group: G, help: 'examples per forward/backward pass' },
    gradAccumulation: { type: 'int', min: 1, default: d.gradAccumulation, group: G, help: 'passes per optimizer step' },
    epochs: { type: 'float', min: 0, exclusiveMin: true, default: d.epochs, group: G, help: 'passes over the training set' },
    maxSteps: { type: 'int', min: 0, default: d.maxSteps, group: G, help: 'when > 0, exactly this many optimizer steps (overrides --epochs)' },
    evalEvery: { type: 'int', min: 0, default: d.evalEvery, group: G, help: 'evaluate every N steps (0: only at the end)' },
    logEvery: { type: 'int', min: 1, default: d.logEvery, group: G, help: 'trainer_state.json history entry every N steps' },
    seed: { type: 'int', min: 0, default: d.seed, group: G, help: 'fixes weights of new parameters, data order and the eval split' },
    ...checkpointOptions(defaults),
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

/** `config` checked as the trainer will check it (a run saved by an older version may lack fields: they take `defaults`), its errors naming flags. */
export function checkedTrainConfig(config: TrainConfig, defaults: TrainConfig, command: string): TrainConfig {
  try {
    return checkTrainConfig({ ...defaults, ...config }, command);
  } catch (e) {
    throw configErrorAsUsage(e, (w) => (Object.hasOwn(TRAIN_DEFAULTS, w) ? flagName(w) : undefined));
  }
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
