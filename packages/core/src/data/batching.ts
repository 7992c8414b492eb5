// Encoded examples into the engine's [B, T] batches (right-padded, next-token targets, -1 outside
// the loss), and a batch sampler whose position can be saved and resumed.
import { checkSeed, mix, permutation } from '../random.js';

/** What collate needs of an example (EncodedExample has it). */
export interface TokenExample {
  ids: readonly number[];
  /** 1 where ids[t] is trained on */
  lossMask: readonly number[];
}

export interface CollatedBatch {
  /** [B*T] ids, right-padded with padId */
  tokens: Int32Array;
  /** [B*T] targets[b,t] = ids[b][t+1] where that token is trained on, else -1 (engine: log-prob 0, no gradient) */
  targets: Int32Array;
  /** [B*T] 1 where targets is not -1: lossMask[b][t+1], aligned with targets */
  lossMask: Float32Array;
  /**
   * [B*T] 1 on each row's real tokens, 0 on its padding (Hugging Face's attention_mask). The
   * engine needs none (see collate); it is here for code that reads the batch, such as a pooling
   * or a per-token statistic that must skip the pads.
   */
  attentionMask: Uint8Array;
  B: number;
  /** the longest example's length (or padTo): column t is position t of every example */
  T: number;
  /** each row's real length */
  lengths: number[];
}

/**
 * Stacks examples into one batch. Padding goes on the right: the engine's attention is causal
 * and unmasked, so pads after a row's end never reach its real positions. Columns are not
 * shifted (tokens[b,t] = ids[b][t]), so an example's spans index the batch directly.
 */
export function collate(examples: readonly TokenExample[], padId: number, opts: { padTo?: number } = {}): CollatedBatch {
  const B = examples.length;
  if (B === 0) throw new RangeError('collate: no examples');
  if (!Number.isInteger(padId) || padId < 0) throw new RangeError(`collate: padId must be a non-negative integer, got ${padId}`);
  const lengths = examples.map((e, b) => {
    if (e.lossMask.length !== e.ids.length) throw new RangeError(`collate: example ${b} has ${e.ids.length} ids but ${e.lossMask.length} lossMask entries`);
    return e.ids.length;
  });
  const longest = Math.max(...lengths);
  const T = opts.padTo ?? longest;
  if (!Number.isInteger(T) || T < 1) throw new RangeError(`collate: T must be a positive integer, got ${T} (are all examples empty?)`);
  if (longest > T) throw new RangeError(`collate: an example has ${longest} tokens, more than padTo ${T}`);
  const tokens = new Int32Array(B * T).fill(padId);
  const targets = new Int32Array(B * T).fill(-1);
  const lossMask = new Float32Array(B * T);
  const attentionMask = new Uint8Array(B * T);
  examples.forEach((e, b) => {
    const row = b * T;
    attentionMask.fill(1, row, row + e.ids.length);
    for (let t = 0; t < e.ids.length; t++) {
      tokens[row + t] = e.ids[t];
      if (t + 1 < e.ids.length && e.lossMask[t + 1]) {
        targets[row + t] = e.ids[t + 1];
        lossMask[row + t] = 1;
      }
    }
  });
  return { tokens, targets, lossMask, attentionMask, B, T, lengths };
}

// ---- batch sampler ----

export interface BatchSamplerOptions {
  batchSize: number;
  /** fixes every epoch's order (default 0) */
  seed?: number;
  /** a new order each epoch (default true); false: 0..size-1 every epoch */
  shuffle?: boolean;
  /** leave out each epoch's last, smaller batch (default false: every example is seen each epoch) */
  dropLast?: boolean;
}

/** Where a sampler is, as plain JSON, to save with a checkpoint. */
export interface SamplerState {
  size: number;
  batchSize: number;
  seed: number;
  shuffle: boolean;
  dropLast: boolean;
  epoch: number;
  /** batches already taken in this epoch */
  index: number;
}

export interface SampledBatch {
  epoch: number;
  /** the batch's place in its epoch */
  index: number;
  /** example indices */
  indices: number[];
}

/**
 * Batches of example indices, epoch after epoch, each epoch in its own order drawn from
 * (seed, epoch). The order is recomputed from those two numbers, so (epoch, index) is all a
 * resumed run needs to continue with exactly the same batches.
 */
export class BatchSampler {
  readonly size: number;
  readonly batchSize: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly batchesPerEpoch: number;
  private _epoch = 0;
  private _index = 0;
  private order: number[] | undefined;

  constructor(size: number, opts: BatchSamplerOptions) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`BatchSampler: size must be a positive integer, got ${size}`);
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new RangeError(`BatchSampler: batchSize must be a positive integer, got ${opts.batchSize}`);
    this.size = size;
    this.batchSize = opts.batchSize;
    this.seed = checkSeed(opts.seed ?? 0);
    this.shuffle = opts.shuffle ?? true;
    this.dropLast = opts.dropLast ?? false;
    this.batchesPerEpoch = this.dropLast ? Math.floor(size / this.batchSize) : Math.ceil(size / this.batchSize);
    if (this.batchesPerEpoch === 0) throw new RangeError(`BatchSampler: ${size} examples make no full batch of ${this.batchSize} (dropLast)`);
  }

  get epoch(): number {
    return this._epoch;
  }

  /** batches already taken in the current epoch */
  get index(): number {
    return this._index;
  }

  /** The order of `epoch`'s examples. */
  epochOrder(epoch: number): number[] {
    return this.shuffle ? permutation(this.size, mix(this.seed, epoch)) : Array.from({ length: this.size }, (_, i) => i);
  }

  /** The next batch; after an epoch's last batch comes the next epoch's first. */
  next(): SampledBatch {
    if (this._index >= this.batchesPerEpoch) {
      this._epoch++;
      this._index = 0;
      this.order = undefined;
    }
    this.order ??= this.epochOrder(this._epoch);
    const start = this._index * this.batchSize;
    const batch = { epoch: this._epoch, index: this._index, indices: this.order.slice(start, start + this.batchSize) };
    this._index++;
    return batch;
  }

  state(): SamplerState {
    const { size, batchSize, seed, shuffle, dropLast } = this;
    return { size, batchSize, seed, shuffle, dropLast, epoch: this._epoch, index: this._index };
  }

  /**
   * Continues from a saved state. The dataset and options must be the ones it was saved with;
   * anything else would quietly give other batches, so a difference is an error naming it.
   */
  restore(s: SamplerState): void {
    for (const k of ['size', 'batchSize', 'seed', 'shuffle', 'dropLast'] as const)
      if (s[k] !== this[k]) throw new RangeError(`BatchSampler.restore: the saved ${k} is ${JSON.stringify(s[k])} but this sampler's is ${JSON.stringify(this[k])}`);
    if (!Number.isInteger(s.epoch) || s.epoch < 0) throw new RangeError(`BatchSampler.restore: epoch must be a non-negative integer, got ${s.epoch}`);
    if (!Number.isInteger(s.index) || s.index < 0 || s.index > this.batchesPerEpoch)
      throw new RangeError(`BatchSampler.restore: index must be an integer in [0, ${this.batchesPerEpoch}], got ${s.index}`);
    this._epoch = s.epoch;
    this._index = s.index;
    this.order = undefined;
  }

  /** A sampler at the saved position, made from the state alone. */
  static fromState(s: SamplerState): BatchSampler {
    const sampler = new BatchSampler(s.size, s);
    sampler.restore(s);
    return sampler;
  }
}
