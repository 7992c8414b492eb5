// The optimizer's config (OptimizerConfig in @s2s/core: AdamW and the learning-rate schedule) as one
// group of flags, made from core's table of its fields, for every training command (sft, rm train,
// ppo): the same flags, help and checks -- core's own, so a value the engine would refuse is refused
// here, at parse time -- each command with its trainer's defaults. And the checkpoint flags, which
// mean the same in every trainer too.
import { OPTIMIZER_FIELDS, type OptimizerConfig, optimizerFieldProblem } from '@s2s/core';

import type { EnumOption, FloatOption, IntOption, OptionSchema, OptionValue } from './options.js';

export const OPTIMIZER_GROUP = 'optimizer';
export const CHECKPOINT_GROUP = 'checkpoints';

/** Each field's --help line; the flag is the field's kebab-case (warmupSteps: --warmup-steps). */
const HELP: Record<keyof OptimizerConfig, string> = {
  lr: 'peak learning rate',
  lrSchedule: "after warmup: a cosine or linear (TRL's) decay to --min-lr-ratio of --lr over the run, or constant",
  warmupSteps: 'linear warmup steps; 0: --warmup-ratio of all steps',
  warmupRatio: 'warmup as a share of all steps',
  minLrRatio: 'where the decay ends, as a share of --lr',
  weightDecay: 'AdamW decoupled weight decay',
  beta1: "AdamW's beta1",
  beta2: "AdamW's beta2",
  eps: "AdamW's epsilon",
  maxGradNorm: 'clip the global gradient norm (0: no clipping)',
};

type NumberKey = { [K in keyof OptimizerConfig]: OptimizerConfig[K] extends number ? K : never }[keyof OptimizerConfig];
type SpecOf<K extends keyof OptimizerConfig, D> = (K extends NumberKey ? IntOption | FloatOption : EnumOption & { values: readonly OptimizerConfig[K][] }) &
  (D extends undefined ? unknown : { default: OptimizerConfig[K] });

/** The option for one optimizer field: core's type, range and check; `defaultValue` absent where a command chooses it later (rm train's lr). */
export function optimizerOption<K extends keyof OptimizerConfig, D extends OptimizerConfig[K] | undefined>(
  field: K,
  defaultValue: D,
  help: string = HELP[field],
): SpecOf<K, D> {
  const f = OPTIMIZER_FIELDS[field];
  const check = (v: OptionValue) => optimizerFieldProblem(field, v);
  const common = { group: OPTIMIZER_GROUP, help, check, ...(defaultValue !== undefined ? { default: defaultValue } : {}) };
  const spec =
    f.type === 'enum'
      ? { type: 'enum' as const, values: f.values, ...common }
      : { type: f.type, min: f.min, ...(f.max !== undefined ? { max: f.max } : {}), exclusiveMin: f.exclusiveMin, exclusiveMax: f.exclusiveMax, ...common };
  return spec as unknown as SpecOf<K, D>;
}

/** Every OptimizerConfig field as an option, with the trainer's `defaults`. */
export function optimizerOptions(defaults: OptimizerConfig) {
  const o = <K extends keyof OptimizerConfig>(k: K) => optimizerOption(k, defaults[k]);
  return {
    lr: o('lr'),
    lrSchedule: o('lrSchedule'),
    warmupSteps: o('warmupSteps'),
    warmupRatio: o('warmupRatio'),
    minLrRatio: o('minLrRatio'),
    weightDecay: o('weightDecay'),
    beta1: o('beta1'),
    beta2: o('beta2'),
    eps: o('eps'),
    maxGradNorm: o('maxGradNorm'),
  } satisfies Record<keyof OptimizerConfig, unknown> & OptionSchema;
}

/** When a run checkpoints and how many checkpoints it keeps: the same for every trainer (rotateCheckpoints in @s2s/core). */
export function checkpointOptions(defaults: { saveEvery: number; saveTotalLimit: number }) {
  return {
    saveEvery: { type: 'int', min: 0, default: defaults.saveEvery, group: CHECKPOINT_GROUP, help: 'checkpoint every N steps (0: only when stopped)' },
    saveTotalLimit: {
      type: 'int',
      min: 0,
      default: defaults.saveTotalLimit,
      group: CHECKPOINT_GROUP,
      help: 'checkpoint-N folders kept in --out, the oldest deleted first (0: all); final/ is not one',
    },
  } as const satisfies OptionSchema;
}
