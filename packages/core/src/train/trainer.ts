// The loop every offline trainer shares (supervised MLE, the scalar reward model): batches drawn by
// a resumable sampler, gradient accumulation, AdamW with its schedule and clipping, periodic
// evaluation, checkpoints laid out as Hugging Face's Trainer does, an AbortSignal that stops with a
// checkpoint, and an exact resume. A subclass says how a step's batches become gradients and what
// its evaluation measures.
//
// Data parallel (opts.dist with several ranks): every rank draws the same global batch of
// batchSize * worldSize examples and trains on its own shard of it; gradients are summed over the
// ranks before the step (a subclass normalises by the step's global count, globalCount()), so every
// rank takes the same step and holds the same weights. Rank 0 writes checkpoints and reports
// events; the ranks agree each step on whether to stop.
import * as path from 'node:path';

import { type WeightDType, saveModel } from '../checkpoint.js';
import { Distributed } from '../distributed.js';
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
  /** examples per forward/backward on each rank (the global batch is batchSize * ranks) */
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
  /** how many data-parallel ranks trained it (absent: 1) */
  worldSize?: number;
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
  /** the data-parallel ranks this trainer is one of (default: the single-rank run) */
  dist?: Distributed;
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
  protected readonly dist: Distributed;
  protected readonly sampler: BatchSampler;
  protected step = 0;
  protected history: HistoryEntry[] = [];
  protected recent: number[] = [];

  /** trainer_state.json's kind; a resume checks it */
  protected abstract readonly kind: string;

  /**
   * Forward and backward over one optimizer step's batches (example indices, gradAccumulation of
   * them: this rank's shards), leaving the step's gradients accumulated in the model. Returns this
   * rank's share of the step's loss and how many items (tokens, pairs) it processed. A loss that is
   * a mean divides by the whole step's count over all ranks (globalCount), so that the ranks'
   * gradients and losses add up to the single-process step's.
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
    this.dist = opts.dist ?? Distributed.single;
    this.config = checkTrainConfig({ ...defaults, ...opts.config }, what);
    if (datasetSize === 0) throw new RangeError(`${what} trainer: the training set is empty`);
    // every rank draws the same global batch and takes its shard of it
    this.sampler = new BatchSampler(datasetSize, { batchSize: this.config.batchSize * this.dist.worldSize, seed: this.config.seed });
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
    const ranks = state.worldSize ?? 1;
    if (ranks !== this.dist.worldSize)
      throw new Error(
        `the run in ${dir} was trained on ${ranks} data-parallel rank${ranks > 1 ? 's' : ''} and this one has ${this.dist.worldSize}: ` +
          `an exact resume needs the same world size (its global batch is batchSize x ranks); resume with ${ranks} rank${ranks > 1 ? 's' : ''}, ` +
          'or start a new run from the checkpoint as the model',
      );
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
      worldSize: this.dist.worldSize,
    };
  }

  /** The sum of a per-rank count (tokens, pairs) over the ranks: the step's normaliser. */
  protected async globalCount(local: number): Promise<number> {
    return (await this.dist.sum([local]))[0];
  }

  protected emit(e: TrainerEvent): void {
    if (this.dist.isMain) this.opts.onEvent?.(e);
  }

  /** Writes on rank 0 only, after checking that every rank holds the same weights; the others wait. */
  private async onMain(what: string, write: () => Promise<void>): Promise<void> {
    await this.dist.checkSameWeights(this.model, what);
    if (this.dist.isMain) await write();
    await this.dist.barrier();
  }

  private async checkpoint(): Promise<string | undefined> {
    if (!this.opts.outputDir) return undefined;
    const dir = checkpointDir(this.opts.outputDir, this.step);
    await this.onMain(`the checkpoint at step ${this.step}`, () =>
      saveTrainingCheckpoint(dir, this.model, this.state(), {
        tokenizer: this.opts.tokenizer,
        config: this.opts.hfConfig,
        files: this.opts.files,
        keep: this.config.saveTotalLimit,
      }),
    );
    this.emit({ type: 'checkpoint', step: this.step, dir });
    return dir;
  }

  async train(): Promise<TrainResult> {
    const c = this.config;
    const schedule = scheduleOf(c, this.totalSteps);
    const started = performance.now();
    const startStep = this.step;
    let evalMetrics: Record<string, number> | undefined;
    // the ranks start from rank 0's weights and optimizer state, as DDP does
    await this.dist.syncModel(this.model, { optimizer: true });
    while (this.step < this.totalSteps) {
      if (await this.dist.any(this.opts.signal?.aborted ?? false)) {
        const savedTo = await this.checkpoint();
        return { steps: this.step, stopped: true, loss: mean(this.recent), eval: evalMetrics, history: this.history, savedTo };
      }
      const t0 = performance.now();
      const parts = Array.from({ length: c.gradAccumulation }, () => this.sampler.next());
      const mine = await this.gradients(parts.map((p) => this.dist.shard(p.indices)));
      const [loss, items] = await this.dist.sum([mine.loss, mine.items]);
      await this.dist.reduceGradients(this.model);
      this.step++;
      const lr = learningRate(this.step, schedule);
      const gradNorm = await this.model.step(adamWOptions(c, lr));
      this.recent.push(loss);
      if (this.recent.length > c.logEvery) this.recent.shift();
      const elapsedMs = performance.now() - started;
      this.emit({
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
        this.emit({ type: 'eval', step: this.step, metrics });
      }
      if (logNow || metrics) this.history.push({ step: this.step, loss: mean(this.recent), lr, gradNorm, ...(metrics ? { eval: metrics } : {}) });
      if (c.saveEvery > 0 && this.step % c.saveEvery === 0 && !last) await this.checkpoint();
    }
    let savedTo: string | undefined;
    if (this.opts.outputDir) {
      savedTo = path.join(this.opts.outputDir, 'final');
      const finalFiles = await this.finalFiles();
      await this.onMain('the final model', () =>
        saveModel(this.model, savedTo!, {
          dtype: this.opts.saveDtype,
          config: this.opts.hfConfig,
          files: {
            ...(this.opts.tokenizer?.files() ?? {}),
            ...this.opts.files,
            ...finalFiles,
            [TRAINER_STATE_FILE]: JSON.stringify(this.state(), null, 2) + '\n',
          },
        }),
      );
    }
    return { steps: this.step, stopped: false, loss: mean(this.recent), eval: evalMetrics, history: this.history, savedTo };
  }
}

export function mean(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN;
}
