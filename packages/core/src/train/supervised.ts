// The supervised (sequence-MLE) trainer: the loss is the mean negative log-likelihood of the
// target tokens (the response, never the prompt). SFT and the seq2seq reward model both train
// with it.
import { type TokenExample, collate } from '../data/batching.js';
import { loadTrainingCheckpoint } from './checkpoints.js';
import { TRAIN_DEFAULTS, type TrainConfig, Trainer, type TrainerOptions, type TrainerState } from './trainer.js';

export type SupervisedConfig = TrainConfig;
export const SUPERVISED_DEFAULTS: SupervisedConfig = TRAIN_DEFAULTS;

/** An encoded example; `weight` scales its tokens' share of the loss (default 1). */
export interface SupervisedExample extends TokenExample {
  weight?: number;
}

export interface SupervisedTrainerOptions extends TrainerOptions<SupervisedConfig> {
  train: readonly SupervisedExample[];
  eval?: readonly SupervisedExample[];
  /** the padding id for batches (any id works: padded positions are never trained on) */
  padId: number;
}

export class SupervisedTrainer extends Trainer<SupervisedConfig> {
  protected readonly kind = 'supervised';
  private readonly data: SupervisedTrainerOptions;

  constructor(opts: SupervisedTrainerOptions) {
    super(opts, SUPERVISED_DEFAULTS, opts.train.length, 'supervised');
    this.data = opts;
    opts.train.forEach((e, i) => {
      if (e.weight !== undefined && !(Number.isFinite(e.weight) && e.weight >= 0))
        throw new RangeError(`supervised trainer: example ${i} has weight ${e.weight}; weights must be finite and >= 0`);
    });
  }

  /**
   * A trainer that continues the run saved in `dir` (a checkpoint-<step> folder): exactly, or with
   * the training options in `opts.config` changed (say, more steps).
   */
  static async resume(dir: string, opts: Omit<SupervisedTrainerOptions, 'model'>): Promise<SupervisedTrainer> {
    const { model, state, tokenizer } = await loadTrainingCheckpoint<TrainerState>(dir);
    const t = new SupervisedTrainer({ ...opts, model, config: { ...state.config, ...opts.config }, tokenizer: opts.tokenizer ?? tokenizer });
    t.restore(state, dir);
    return t;
  }

  /** Mean NLL per target token over `examples` (default: the evaluation set), each rank scoring its shard. */
  async evalLoss(examples: readonly SupervisedExample[] = this.data.eval ?? []): Promise<number> {
    if (examples.length === 0) throw new RangeError('evalLoss: no evaluation examples');
    let nll = 0;
    let tokens = 0;
    const mine = this.dist.shard(examples);
    for (let i = 0; i < mine.length; i += this.config.batchSize) {
      const batch = collate(mine.slice(i, i + this.config.batchSize), this.data.padId);
      const { logprob } = await this.model.forward(batch);
      for (let j = 0; j < logprob.length; j++) {
        nll -= batch.lossMask[j] * logprob[j];
        tokens += batch.lossMask[j];
      }
    }
    [nll, tokens] = await this.dist.sum([nll, tokens]);
    return nll / Math.max(1, tokens);
  }

  protected async evaluate(): Promise<Record<string, number> | undefined> {
    return this.data.eval?.length ? { evalLoss: await this.evalLoss() } : undefined;
  }

  protected async gradients(parts: number[][]): Promise<{ loss: number; items: number }> {
    const { train, padId } = this.data;
    // (a rank's shard of a short last batch can be empty)
    const batches = parts.filter((p) => p.length > 0).map((indices) => ({ batch: collate(indices.map((i) => train[i]), padId), indices }));
    // One normaliser for the whole step (all ranks), so that accumulation equals one big batch.
    const local = batches.reduce((n, { batch }) => n + batch.lossMask.reduce((a, b) => a + b, 0), 0);
    const tokens = await this.globalCount(local);
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
    return { loss: loss / Math.max(1, tokens), items: local };
  }
}
