// The optimizer every trainer uses (SFT, both reward models, PPO): AdamW with gradient clipping and
// a learning-rate schedule, as one config with one set of checks. The checks are the engine's own
// (native/src/backend.cc check_adamw, on the 32-bit floats it computes in), so that a value this
// accepts never fails at the first model.step(), after a rollout or an epoch of work.
import type { AdamWOptions } from '../model.js';
import { LR_SCHEDULES, type LRSchedule, type ScheduleConfig } from './schedule.js';

export interface OptimizerConfig {
  /** peak learning rate (small models from scratch like 1e-3; fine-tuning a large one, 1e-5..1e-4) */
  lr: number;
  /** the decay after warmup: 'cosine', 'linear' or 'constant' (see LRSchedule) */
  lrSchedule: LRSchedule;
  /** linear warmup steps; when 0, warmupRatio of the run's steps */
  warmupSteps: number;
  warmupRatio: number;
  /** where the decay ends, as a fraction of lr */
  minLrRatio: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** AdamW's decoupled weight decay (matrices and embeddings only) */
  weightDecay: number;
  /** clip the global gradient norm to this (0: no clipping) */
  maxGradNorm: number;
}

/** The supervised trainers' defaults; a trainer may override them (PPO: a linear decay to 0, no warmup). */
export const OPTIMIZER_DEFAULTS: Readonly<OptimizerConfig> = Object.freeze({
  lr: 1e-3,
  lrSchedule: 'cosine',
  warmupSteps: 0,
  warmupRatio: 0.05,
  minLrRatio: 0.1,
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  maxGradNorm: 1,
});

/** A number field's range; `engine`: the engine receives it as a 32-bit float, checked as such. */
export interface NumberField {
  type: 'float' | 'int';
  min: number;
  max?: number;
  exclusiveMin?: boolean;
  exclusiveMax?: boolean;
  engine?: boolean;
}
export interface ChoiceField {
  type: 'enum';
  values: readonly string[];
}
export type OptimizerField = NumberField | ChoiceField;

/** Every field's type and range: what resolveOptimizerConfig checks, and what the CLI's flags are made from. */
export const OPTIMIZER_FIELDS: { readonly [K in keyof OptimizerConfig]: OptimizerConfig[K] extends number ? NumberField : ChoiceField } = {
  lr: { type: 'float', min: 0, engine: true },
  lrSchedule: { type: 'enum', values: LR_SCHEDULES },
  warmupSteps: { type: 'int', min: 0 },
  warmupRatio: { type: 'float', min: 0, max: 1, exclusiveMax: true },
  minLrRatio: { type: 'float', min: 0, max: 1 },
  weightDecay: { type: 'float', min: 0, engine: true },
  beta1: { type: 'float', min: 0, max: 1, exclusiveMax: true, engine: true },
  beta2: { type: 'float', min: 0, max: 1, exclusiveMax: true, engine: true },
  eps: { type: 'float', min: 0, exclusiveMin: true, engine: true },
  maxGradNorm: { type: 'float', min: 0, engine: true },
};

export const OPTIMIZER_KEYS = Object.keys(OPTIMIZER_FIELDS) as ReadonlyArray<keyof OptimizerConfig>;

function rangeText(f: NumberField): string {
  if (f.type === 'int') return f.min === 0 ? 'a non-negative integer' : `an integer >= ${f.min}`;
  if (f.max === undefined) return `a finite number ${f.exclusiveMin ? '>' : '>='} ${f.min}`;
  return `a number in ${f.exclusiveMin ? '(' : '['}${f.min}, ${f.max}${f.exclusiveMax ? ')' : ']'}`;
}

function inRange(x: number, f: NumberField): boolean {
  return (
    Number.isFinite(x) &&
    (f.exclusiveMin ? x > f.min : x >= f.min) &&
    (f.max === undefined || (f.exclusiveMax ? x < f.max : x <= f.max))
  );
}

/** What is wrong with `value` as the optimizer field `field` ("must be ..., got ..."), or undefined when nothing is. */
export function optimizerFieldProblem(field: keyof OptimizerConfig, value: unknown): string | undefined {
  const f: OptimizerField = OPTIMIZER_FIELDS[field];
  const got = typeof value === 'number' ? String(value) : JSON.stringify(value);
  if (f.type === 'enum')
    return typeof value === 'string' && f.values.includes(value) ? undefined : `must be one of ${f.values.map((v) => `'${v}'`).join(', ')}, got ${got}`;
  if (typeof value !== 'number' || !inRange(value, f) || (f.type === 'int' && !Number.isInteger(value))) return `must be ${rangeText(f)}, got ${got}`;
  // the engine computes in 32-bit floats: 0.99999999999 is 1 there, 1e-50 is 0, 1e39 is Infinity
  const single = Math.fround(value);
  if (f.engine && !inRange(single, f)) return `must be ${rangeText(f)}, got ${got} (${single} as the engine's 32-bit float)`;
  return undefined;
}

/**
 * The optimizer fields of `input` over `defaults`, each checked: a RangeError names the field and
 * `source` ("PPO config: beta1 must be a number in [0, 1), got 1"). Other fields of `input` are
 * ignored, so a trainer's whole config can be passed.
 */
export function resolveOptimizerConfig(
  input: Partial<OptimizerConfig> = {},
  source = 'optimizer config',
  defaults: Readonly<OptimizerConfig> = OPTIMIZER_DEFAULTS,
): OptimizerConfig {
  const out: Record<string, unknown> = {};
  for (const k of OPTIMIZER_KEYS) {
    const v = input[k] === undefined ? defaults[k] : input[k];
    const problem = optimizerFieldProblem(k, v);
    if (problem) throw new RangeError(`${source}: ${k} ${problem}`);
    out[k] = v;
  }
  return out as unknown as OptimizerConfig;
}

/** The schedule of a run of `totalSteps` optimizer steps (warmupRatio made steps); `lr` for a second model's rate (PPO's critic). */
export function scheduleOf(c: OptimizerConfig, totalSteps: number, lr = c.lr): ScheduleConfig {
  const warmupSteps = c.warmupSteps > 0 ? c.warmupSteps : Math.round(c.warmupRatio * totalSteps);
  return { lr, warmupSteps, totalSteps, minLrRatio: c.minLrRatio, lrSchedule: c.lrSchedule };
}

/** model.step()'s options at learning rate `lr`. */
export function adamWOptions(c: OptimizerConfig, lr: number): AdamWOptions {
  return { lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: c.weightDecay, maxGradNorm: c.maxGradNorm };
}
