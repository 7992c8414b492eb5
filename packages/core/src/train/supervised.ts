// The supervised (sequence-MLE) trainer: the loss is the mean negative log-likelihood of the
// target tokens (the response, never the prompt), with AdamW, warmup + cosine, clipping, gradient
// accumulation, periodic evaluation, checkpoints and an exact resume. SFT and the seq2seq reward
// model both train with it.
import * as path from 'node:path';

import { saveModel } from '../checkpoint.js';
import { BatchSampler, type SamplerState, type TokenExample, collate } from '../data/batching.js';
import type { Model } from '../model.js';
import type { Tokenizer } from '../tokenizer.js';
import { TRAINER_STATE_FILE, checkpointDir, loadTrainingCheckpoint, saveTrainingCheckpoint } from './checkpoints.js';
import { learningRate } from './schedule.js';

export interface SupervisedConfig {
  /** peak learning rate (small models from scratch like 1e-3; fine-tuning a large one, 1e-5..1e-4) */
  lr: number;
  /** warmup steps; when 0, warmupRatio of the total */
  warmupSteps: number;
  warmupRatio: number;
  /** the cosine's floor as a fraction of lr */
  minLrRatio: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** clip the global gradient norm to this (0: no clipping) */
  maxGradNorm: number;
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
  /** checkpoints kept on disk (Hugging Face's save_total_limit) */
  saveTotalLimit: number;
  /** history entries every this many steps */
  logEvery: number;
  /** fixes the data order */
  seed: number;
}

export const SUPERVISED_DEFAULTS: SupervisedConfig = {
  lr: 1e-3,
  warmupSteps: 0,
  warmupRatio: 0.05,
  minLrRatio: 0.1,
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  maxGradNorm: 1,
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

/** An encoded example; `weight` scales its tokens' share of the loss (default 1). */
export interface SupervisedExample extends TokenExample {
  weight?: number;
}

export type TrainerEvent =
  | {
      type: 'step';
      step: number;
      totalSteps: number;
      epoch: number;
      loss: number;
      lr: number;
      gradNorm: number;
      tokensPerSecond: number;
      elapsedMs: number;
      etaMs: number;
    }
  | { type: 'eval'; step: number; evalLoss: number }
  | { type: 'checkpoint'; step: number; dir: string };

export interface HistoryEntry {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  evalLoss?: number;
}

/** trainer_state.json */
export interface SupervisedState {
  kind: 'supervised';
  step: number;
  totalSteps: number;
  config: SupervisedConfig;
  sampler: SamplerState;
  history: HistoryEntry[];
  recentLosses: number[];
}

export interface SupervisedTrainerOptions {
  model: Model;
  train: readonly SupervisedExample[];
  eval?: readonly SupervisedExample[];
  config?: Partial<SupervisedConfig>;
  /** the padding id for batches (the tokenizer's pad id, or any id: padded positions are never trained on) */
  padId: number;
  /** checkpoints go to outputDir/checkpoint-<step>, the trained model to outputDir/final */
  outputDir?: string;
  /** saved with every checkpoint */
  tokenizer?: Tokenizer;
  /** extra config.json fields for every checkpoint (eos_token_id, pad_token_id, ...) */
  hfConfig?: Record<string, unknown>;
  onEvent?: (e: TrainerEvent) => void;
  /** when aborted, the trainer checkpoints (if it has an outputDir) and returns at the next step */
  signal?: AbortSignal;
}

export interface SupervisedResult {
  steps: number;
  stopped: boolean;
  /** mean training loss of the last logEvery steps */
  loss: number;
  evalLoss?: number;
  history: HistoryEntry[];
  /** where the trained model was saved (outputDir/final), or the checkpoint when stopped */
  savedTo?: string;
}

function checkConfig(c: SupervisedConfig): SupervisedConfig {
  const positiveInt = ['batchSize', 'gradAccumulation', 'logEvery'] as const;
  for (const k of positiveInt)
    if (!Number.isInteger(c[k]) || c[k] < 1) throw new RangeError(`supervised config: ${k} must be a positive integer, got ${c[k]}`);
  for (const k of ['maxSteps', 'evalEvery', 'saveEvery', 'saveTotalLimit', 'warmupSteps', 'seed'] as const)
    if (!Number.isInteger(c[k]) || c[k] < 0) throw new RangeError(`supervised config: ${k} must be a non-negative integer, got ${c[k]}`);
  if (!(c.epochs > 0)) throw new RangeError(`supervised config: epochs must be > 0, got ${c.epochs}`);
  if (!(c.warmupRatio >= 0 && c.warmupRatio < 1)) throw new RangeError(`supervised config: warmupRatio must be in [0, 1), got ${c.warmupRatio}`);
  if (!(c.minLrRatio >= 0 && c.minLrRatio <= 1)) throw new RangeError(`supervised config: minLrRatio must be in [0, 1], got ${c.minLrRatio}`);
  return c;
}

export class SupervisedTrainer {
  readonly config: SupervisedConfig;
  readonly model: Model;
  private readonly opts: SupervisedTrainerOptions;
  private readonly sampler: BatchSampler;
  private step = 0;
  private history: HistoryEntry[] = [];
  /** the last logEvery step losses (the logged loss is their mean) */
  private recent: number[] = [];
  readonly totalSteps: number;

  constructor(opts: SupervisedTrainerOptions) {
    this.opts = opts;
    this.model = opts.model;
    this.config = checkConfig({ ...SUPERVISED_DEFAULTS, ...opts.config });
    if (opts.train.length === 0) throw new RangeError('supervised trainer: the training set is empty');
    opts.train.forEach((e, i) => {
      if (e.weight !== undefined && !(Number.isFinite(e.weight) && e.weight >= 0))
        throw new RangeError(`supervised trainer: example ${i} has weight ${e.weight}; weights must be finite and >= 0`);
    });
    this.sampler = new BatchSampler(opts.train.length, { batchSize: this.config.batchSize, seed: this.config.seed });
    this.totalSteps =
      this.config.maxSteps > 0
        ? this.config.maxSteps
        : Math.max(1, Math.ceil((this.config.epochs * this.sampler.batchesPerEpoch) / this.config.gradAccumulation));
  }

  /** A trainer that continues the run saved in `dir` (a checkpoint-<step> folder) exactly. */
  static async resume(dir: string, opts: Omit<SupervisedTrainerOptions, 'model' | 'config'>): Promise<SupervisedTrainer> {
    const { model, state, tokenizer } = await loadTrainingCheckpoint<SupervisedState>(dir);
    if (state.kind !== 'supervised') throw new Error(`${dir} holds a ${String(state.kind)} run, not a supervised one`);
    const t = new SupervisedTrainer({ ...opts, model, config: state.config, tokenizer: opts.tokenizer ?? tokenizer });
    t.sampler.restore(state.sampler);
    t.step = state.step;
    t.history = state.history;
    t.recent = state.recentLosses;
    return t;
  }

  get currentStep(): number {
    return this.step;
  }

  /** Mean NLL per target token over the evaluation set. */
  async evaluate(examples: readonly SupervisedExample[] = this.opts.eval ?? []): Promise<number> {
    if (examples.length === 0) throw new RangeError('evaluate: no evaluation examples');
    let nll = 0;
    let tokens = 0;
    for (let i = 0; i < examples.length; i += this.config.batchSize) {
      const batch = collate(examples.slice(i, i + this.config.batchSize), this.opts.padId);
      const { logprob } = await this.model.forward(batch);
      for (let j = 0; j < logprob.length; j++) {
        nll -= batch.lossMask[j] * logprob[j];
        tokens += batch.lossMask[j];
      }
    }
    return nll / Math.max(1, tokens);
  }

  private state(): SupervisedState {
    return {
      kind: 'supervised',
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
      keep: this.config.saveTotalLimit,
    });
    this.opts.onEvent?.({ type: 'checkpoint', step: this.step, dir });
    return dir;
  }

  /** One optimizer step over gradAccumulation batches; returns the step's mean token loss. */
  private async trainStep(): Promise<{ loss: number; tokens: number; epoch: number }> {
    const { train, padId } = this.opts;
    const parts = Array.from({ length: this.config.gradAccumulation }, () => this.sampler.next());
    const batches = parts.map((p) => ({ batch: collate(p.indices.map((i) => train[i]), padId), indices: p.indices }));
    // One normaliser for the whole step, so that accumulation equals one big batch.
    const tokens = batches.reduce((n, { batch }) => n + batch.lossMask.reduce((a, b) => a + b, 0), 0);
    let loss = 0;
    for (const { batch, indices } of batches) {
      const { logprob } = await this.model.forward(batch);
      const dlogprob = new Float32Array(batch.B * batch.T);
      for (let b = 0; b < batch.B; b++) {
        const w = train[indices[b]].weight ?? 1;
        for (let t = 0; t < batch.T; t++) {
          const j = b * batch.T + t;
          loss -= w * batch.lossMask[j] * logprob[j];
          dlogprob[j] = (-w * batch.lossMask[j]) / Math.max(1, tokens);
        }
      }
      await this.model.backward({ dlogprob });
    }
    return { loss: loss / Math.max(1, tokens), tokens, epoch: parts.at(-1)!.epoch };
  }

  async train(): Promise<SupervisedResult> {
    const c = this.config;
    const warmup = c.warmupSteps > 0 ? c.warmupSteps : Math.round(c.warmupRatio * this.totalSteps);
    const started = performance.now();
    const startStep = this.step;
    let evalLoss: number | undefined;
    while (this.step < this.totalSteps) {
      if (this.opts.signal?.aborted) {
        const savedTo = await this.checkpoint();
        return { steps: this.step, stopped: true, loss: mean(this.recent), evalLoss, history: this.history, savedTo };
      }
      const t0 = performance.now();
      const { loss, tokens, epoch } = await this.trainStep();
      this.step++;
      const lr = learningRate(this.step, { lr: c.lr, warmupSteps: warmup, totalSteps: this.totalSteps, minLrRatio: c.minLrRatio });
      const gradNorm = await this.model.step({
        lr,
        beta1: c.beta1,
        beta2: c.beta2,
        eps: c.eps,
        weightDecay: c.weightDecay,
        maxGradNorm: c.maxGradNorm,
      });
      this.recent.push(loss);
      if (this.recent.length > c.logEvery) this.recent.shift();
      const elapsedMs = performance.now() - started;
      const perStep = elapsedMs / (this.step - startStep);
      this.opts.onEvent?.({
        type: 'step',
        step: this.step,
        totalSteps: this.totalSteps,
        epoch,
        loss,
        lr,
        gradNorm,
        tokensPerSecond: tokens / ((performance.now() - t0) / 1000),
        elapsedMs,
        etaMs: perStep * (this.totalSteps - this.step),
      });
      const logNow = this.step % c.logEvery === 0 || this.step === this.totalSteps;
      const evalNow = !!this.opts.eval?.length && ((c.evalEvery > 0 && this.step % c.evalEvery === 0) || this.step === this.totalSteps);
      if (evalNow) {
        evalLoss = await this.evaluate();
        this.opts.onEvent?.({ type: 'eval', step: this.step, evalLoss });
      }
      if (logNow || evalNow) this.history.push({ step: this.step, loss: mean(this.recent), lr, gradNorm, ...(evalNow ? { evalLoss } : {}) });
      if (c.saveEvery > 0 && this.step % c.saveEvery === 0 && this.step < this.totalSteps) await this.checkpoint();
    }
    let savedTo: string | undefined;
    if (this.opts.outputDir) {
      savedTo = path.join(this.opts.outputDir, 'final');
      await saveModel(this.model, savedTo, {
        config: this.opts.hfConfig,
        files: { ...(this.opts.tokenizer?.files() ?? {}), [TRAINER_STATE_FILE]: JSON.stringify(this.state(), null, 2) + '\n' },
      });
    }
    return { steps: this.step, stopped: false, loss: mean(this.recent), evalLoss, history: this.history, savedTo };
  }
}

function mean(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN;
}
