// The loop every offline trainer shares (supervised MLE, the scalar reward model): batches drawn by
// a resumable sampler, gradient accumulation, AdamW with its schedule and clipping, periodic
// evaluation, checkpoints laid out as Hugging Face's Trainer does, an AbortSignal that stops with a
// checkpoint, and an exact resume. A subclass says how a step's batches become gradients and what
// its evaluation measures.
import * as path from 'node:path';

import { type WeightDType, saveModel } from '../checkpoint.js';
import { BatchSampler, type SamplerState } from '../data/batching.js';
import type { FileData } from '../fsutil.js';
import type { Model } from '../model.js';
import type { Tokenizer } from '../tokenizer.js';
import { TRAINER_STATE_FILE, checkpointDir, saveTrainingCheckpoint } from './checkpoints.js';
import { OPTIMIZER_DEFAULTS, type OptimizerConfig, adamWOptions, resolveOptimizerConfig, scheduleOf } from './optimizer.js';
import { learningRate } from './schedule.js';

/**
 * The offline trainers' settings: the optimizer (OptimizerConfig, shared with PPO) and the loop's.
 * `saveTotalLimit` is Hugging Face's save_total_limit, as rotateCheckpoints keeps it.
 */
export interface TrainConfig extends OptimizerConfig {
  /** examples per forward/backward */
  batchSize: number;
  /** forward/backward passes per optimizer step */
  gradAccumulation: number;
  epochs: number;
  /** when > 0, train for exactly this many optimizer steps instead of `epochs` */
  maxSteps: number;
  /** evaluate every this many steps (0: only at the end) */
  evalEvery: number;
  /** checkpoint every this many steps (0: only when stopped) */
  saveEvery: number;
  /** checkpoint-<step> folders kept in outputDir, oldest deleted first (0: all); final/ is not one (see rotateCheckpoints) */
  saveTotalLimit: number;
  /** history entries every this many steps */
  logEvery: number;
  /** fixes the data order */
  seed: number;
}

export const TRAIN_DEFAULTS: TrainConfig = {
  ...OPTIMIZER_DEFAULTS,
  batchSize: 16,
  gradAccumulation: 1,
  epochs: 1,
  maxSteps: 0,
  evalEvery: 0,
  saveEvery: 0,
  saveTotalLimit: 2,
  logEvery: 10,
  seed: 0,
};

export type TrainerEvent =
  | {
      type: 'step';
      step: number;
      totalSteps: number;
      epoch: number;
      loss: number;
      lr: number;
      gradNorm: number;
      /** items (tokens, pairs) per second in this step */
      throughput: number;
      elapsedMs: number;
      etaMs: number;
    }
  | { type: 'eval'; step: number; metrics: Record<string, number> }
  | { type: 'checkpoint'; step: number; dir: string };

export interface HistoryEntry {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  eval?: Record<string, number>;
}

/** trainer_state.json */
export interface TrainerState<C extends TrainConfig = TrainConfig> {
  kind: string;
  step: number;
  totalSteps: number;
  config: C;
  sampler: SamplerState;
  history: HistoryEntry[];
  /** the last logEvery step losses (the logged loss is their mean) */
  recentLosses: number[];
}

export interface TrainerOptions<C extends TrainConfig> {
  model: Model;
  config?: Partial<C>;
  /** checkpoints go to outputDir/checkpoint-<step>, the trained model to outputDir/final */
  outputDir?: string;
  /** saved with every checkpoint */
  tokenizer?: Tokenizer;
  /** extra config.json fields for every checkpoint (eos_token_id, pad_token_id, ...) */
  hfConfig?: Record<string, unknown>;
  /** more files for every checkpoint and the final folder (the template, the run's options, ...) */
  files?: Record<string, FileData>;
  /** the final model's weights dtype (default: saveModel's, the dtype the model came in); checkpoints keep float32 */
  saveDtype?: WeightDType;
  onEvent?: (e: TrainerEvent) => void;
  /** when aborted, the trainer checkpoints (if it has an outputDir) and returns before the next step */
  signal?: AbortSignal;
}

export interface TrainResult {
  steps: number;
  stopped: boolean;
  /** mean training loss of the last logEvery steps */
  loss: number;
  /** the last evaluation's metrics */
  eval?: Record<string, number>;
  history: HistoryEntry[];
  /** where the trained model was saved (outputDir/final), or the checkpoint when stopped */
  savedTo?: string;
}

/** Checks a trainer's config (the optimizer's fields with resolveOptimizerConfig); errors name the field. */
export function checkTrainConfig<C extends TrainConfig>(c: C, what: string): C {
  Object.assign(c, resolveOptimizerConfig(c, `${what} config`, c));
  for (const k of ['batchSize', 'gradAccumulation', 'logEvery'] as const)
    if (!Number.isInteger(c[k]) || c[k] < 1) throw new RangeError(`${what} config: ${k} must be a positive integer, got ${c[k]}`);
  for (const k of ['maxSteps', 'evalEvery', 'saveEvery', 'saveTotalLimit', 'seed'] as const)
    if (!Number.isInteger(c[k]) || c[k] < 0) throw new RangeError(`${what} config: ${k} must be a non-negative integer, got ${c[k]}`);
  if (!(c.epochs > 0)) throw new RangeError(`${what} config: epochs must be > 0, got ${c.epochs}`);
  return c;
}

export abstract class Trainer<C extends TrainConfig = TrainConfig> {
  readonly config: C;
  readonly model: Model;
  readonly totalSteps: number;
  protected readonly opts: TrainerOptions<C>;
  protected readonly sampler: BatchSampler;
  protected step = 0;
  protected history: HistoryEntry[] = [];
  protected recent: number[] = [];

  /** trainer_state.json's kind; a resume checks it */
  protected abstract readonly kind: string;

  /**
   * Forward and backward over one optimizer step's batches (example indices, gradAccumulation of
   * them), leaving the step's gradients accumulated in the model. Returns the step's loss and how
   * many items (tokens, pairs) it processed.
   */
  protected abstract gradients(batches: number[][]): Promise<{ loss: number; items: number }>;

  /** Metrics on the evaluation set, or undefined when there is none. */
  protected abstract evaluate(): Promise<Record<string, number> | undefined>;

  /** Extra files for the final model's folder. */
  protected async finalFiles(): Promise<Record<string, FileData>> {
    return {};
  }

  protected constructor(opts: TrainerOptions<C>, defaults: C, datasetSize: number, what: string) {
    this.opts = opts;
    this.model = opts.model;
    this.config = checkTrainConfig({ ...defaults, ...opts.config }, what);
    if (datasetSize === 0) throw new RangeError(`${what} trainer: the training set is empty`);
    this.sampler = new BatchSampler(datasetSize, { batchSize: this.config.batchSize, seed: this.config.seed });
    this.totalSteps =
      this.config.maxSteps > 0
        ? this.config.maxSteps
        : Math.max(1, Math.ceil((this.config.epochs * this.sampler.batchesPerEpoch) / this.config.gradAccumulation));
  }

  /**
   * Continues a saved run from its position (step, data order, log): what resume() does, open to
   * callers that build the trainer themselves, e.g. with training options changed as Hugging
   * Face's Trainer allows on resume. The data must be the run's own.
   */
  restore(state: TrainerState<TrainConfig>, dir: string): void {
    if (state.kind !== this.kind) throw new Error(`${dir} holds a ${String(state.kind)} run, not a ${this.kind} one`);
    if (state.sampler?.size !== this.sampler.size)
      throw new Error(`the run in ${dir} trained on ${state.sampler?.size} examples but this trainer has ${this.sampler.size}: a run continues on its own data`);
    this.sampler.restore(state.sampler);
    this.step = state.step;
    this.history = state.history;
    this.recent = state.recentLosses;
  }

  get currentStep(): number {
    return this.step;
  }

  protected state(): TrainerState<C> {
    return {
      kind: this.kind,
      step: this.step,
      totalSteps: this.totalSteps,
      config: this.config,
      sampler: this.sampler.state(),
      history: this.history,
      recentLosses: this.recent,
    };
  }

  private async checkpoint(): Promise<string | undefined> {
    if (!this.opts.outputDir) return undefined;
    const dir = checkpointDir(this.opts.outputDir, this.step);
    await saveTrainingCheckpoint(dir, this.model, this.state(), {
      tokenizer: this.opts.tokenizer,
      config: this.opts.hfConfig,
      files: this.opts.files,
      keep: this.config.saveTotalLimit,
    });
    this.opts.onEvent?.({ type: 'checkpoint', step: this.step, dir });
    return dir;
  }

  async train(): Promise<TrainResult> {
    const c = this.config;
    const schedule = scheduleOf(c, this.totalSteps);
    const started = performance.now();
    const startStep = this.step;
    let evalMetrics: Record<string, number> | undefined;
    while (this.step < this.totalSteps) {
      if (this.opts.signal?.aborted) {
        const savedTo = await this.checkpoint();
        return { steps: this.step, stopped: true, loss: mean(this.recent), eval: evalMetrics, history: this.history, savedTo };
      }
      const t0 = performance.now();
      const parts = Array.from({ length: c.gradAccumulation }, () => this.sampler.next());
      const { loss, items } = await this.gradients(parts.map((p) => p.indices));
      this.step++;
      const lr = learningRate(this.step, schedule);
      const gradNorm = await this.model.step(adamWOptions(c, lr));
      this.recent.push(loss);
      if (this.recent.length > c.logEvery) this.recent.shift();
      const elapsedMs = performance.now() - started;
      this.opts.onEvent?.({
        type: 'step',
        step: this.step,
        totalSteps: this.totalSteps,
        epoch: parts.at(-1)!.epoch,
        loss,
        lr,
        gradNorm,
        throughput: items / ((performance.now() - t0) / 1000),
        elapsedMs,
        etaMs: (elapsedMs / (this.step - startStep)) * (this.totalSteps - this.step),
      });
      const last = this.step === this.totalSteps;
      const logNow = this.step % c.logEvery === 0 || last;
      const evalNow = (c.evalEvery > 0 && this.step % c.evalEvery === 0) || last;
      const metrics = evalNow ? await this.evaluate() : undefined;
      if (metrics) {
        evalMetrics = metrics;
        this.opts.onEvent?.({ type: 'eval', step: this.step, metrics });
      }
      if (logNow || metrics) this.history.push({ step: this.step, loss: mean(this.recent), lr, gradNorm, ...(metrics ? { eval: metrics } : {}) });
      if (c.saveEvery > 0 && this.step % c.saveEvery === 0 && !last) await this.checkpoint();
    }
    let savedTo: string | undefined;
    if (this.opts.outputDir) {
      savedTo = path.join(this.opts.outputDir, 'final');
      await saveModel(this.model, savedTo, {
        dtype: this.opts.saveDtype,
        config: this.opts.hfConfig,
        files: {
          ...(this.opts.tokenizer?.files() ?? {}),
          ...this.opts.files,
          ...(await this.finalFiles()),
          [TRAINER_STATE_FILE]: JSON.stringify(this.state(), null, 2) + '\n',
        },
      });
    }
    return { steps: this.step, stopped: false, loss: mean(this.recent), eval: evalMetrics, history: this.history, savedTo };
  }
}

export function mean(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN;
}
