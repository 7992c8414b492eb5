// Model: the GPT in the native engine, as TypeScript sees it. Every call returns a Promise and runs
// off the JavaScript thread; calls on one model run in the order they were made.
// checkpoint.js imports this module too; the cycle is safe, as neither uses the other while loading.
import { inheritCheckpointSource } from './checkpoint.js';
import { type GPTConfig, type GPTConfigInput, resolveConfig } from './config.js';
import { getDefaultDevice } from './engine.js';
import { native, type NativeModel, type NativeTensorInfo, type ProcessGroup } from './native.js';

export type TensorInfo = NativeTensorInfo;

/** A batch of B rows of T token ids, row-major. */
export interface Batch {
  tokens: Int32Array;
  B: number;
  T: number;
}

export interface ForwardOptions {
  /** false skips the LM head, for models read only through their value head (default true) */
  logprob?: boolean;
  /** per-position values from the value head */
  values?: boolean;
  /** per-position entropy of the next-token distribution */
  entropy?: boolean;
  /** log-probs of softmax(logits / temperature); default 1 */
  temperature?: number;
}

export interface ForwardResult {
  /** [B*T] log p(targets[b,t] | tokens[b, <=t]); 0 where the target is -1 (empty with logprob: false) */
  logprob: Float32Array;
  values?: Float32Array;
  entropy?: Float32Array;
}

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** decoupled weight decay on matrices and embeddings (not biases or LayerNorm) */
  weightDecay?: number;
  /** clip the global gradient norm to this (0 or absent: no clipping) */
  maxGradNorm?: number;
}

export interface GenerateOptions {
  maxNewTokens: number;
  /** 0 is greedy; default 1 */
  temperature?: number;
  topK?: number;
  topP?: number;
  /** token id(s) that end a row; the EOS token is part of the output */
  eos?: number | number[];
  /** fixes the samples (same seed, same prompts, same model: same tokens) */
  seed?: number | bigint;
  /**
   * row b samples from the seed's stream firstRow + b (default 0): the rows of a batch split into
   * parts (a data-parallel rank's share) sample what they would in the whole batch
   */
  firstRow?: number;
}

export interface Generation {
  /** generated token ids (EOS included when the row ended with it) */
  tokens: number[];
  /** log-prob of each generated token under softmax(logits / temperature) (temperature 1 when greedy) */
  logprobs: number[];
  finishReason: 'eos' | 'length';
}

export interface GreedyMatchResult {
  /** [B*T] 1 where the model's argmax at t-1 equals tokens[t], for t inside the row's span */
  match: Uint8Array;
  /** [B*T] the model's argmax prediction for position t inside spans, -1 elsewhere */
  argmax: Int32Array;
}

export type BufferKind = 'params' | 'grads' | 'adam_m' | 'adam_v';

/**
 * Where a model runs: 'auto' takes CUDA when cudaStatus() says it can, else the CPU. A model
 * created without one goes to getDefaultDevice() (setDefaultDevice, else S2S_DEVICE, else 'auto').
 */
export type Device = 'auto' | 'cpu' | 'cuda';

export interface DivergenceScores {
  /** score of a token before the first divergence (default 1) */
  positive?: number;
  /** score of a diverging token at or after it (default -1) */
  negative?: number;
  /** score of a matching token after it (default 0) */
  neutral?: number;
}

export interface DivergenceResult {
  /** [B*T] each span position's score by the rule, 0 outside spans */
  scores: Float32Array;
  /** [B] offset within the row's span of its first mismatch, -1 when there is none */
  firstDivergence: Int32Array;
  /** [B*T] the model's argmax prediction for position t inside spans, -1 elsewhere */
  argmax: Int32Array;
}

const GENERATE_KEYS = ['maxNewTokens', 'temperature', 'topK', 'topP', 'eos', 'seed', 'firstRow'] as const;

/** Refuses an options object with a key outside `known`: a misspelt option is an error, not a default. */
function checkKeys(what: string, opts: object, known: readonly string[]): void {
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${what} must be an object`);
  for (const k of Object.keys(opts))
    if (!known.includes(k)) throw new TypeError(`${what}: unknown key ${JSON.stringify(k)} (known: ${known.join(', ')})`);
}

/**
 * A copy of a typed-array argument, taken when the call is made (the engine runs it later: an
 * array changed or transferred meanwhile must not change the call). A detached ArrayBuffer (one
 * transferred to another thread) is refused: its contents are gone. Anything else passes as it is,
 * for the engine to refuse with its own message.
 */
function copyArg<A>(name: string, a: A): A {
  if (!ArrayBuffer.isView(a) || a instanceof DataView) return a;
  try {
    new Uint8Array(a.buffer, 0, 0); // throws on a detached buffer (Node 20 has no ArrayBuffer.prototype.detached)
  } catch {
    throw new TypeError(`${name}'s ArrayBuffer is detached (transferred or freed): there is nothing to read`);
  }
  return (a as unknown as Int32Array).slice() as unknown as A;
}

/** An options object as it is at the call (the engine refuses unknown keys and wrong types). */
function copyOpts<O>(o: O): O {
  return o !== null && typeof o === 'object' && !Array.isArray(o) ? { ...o } : o;
}

/** The [start, end) spans, flat; each an integer (refused, not coerced by Int32Array). */
function spanArray(what: string, spans: ReadonlyArray<readonly [number, number]>): Int32Array {
  const flat = spans.flat();
  flat.forEach((x, i) => {
    if (!Number.isInteger(x) || Math.abs(x) > 2 ** 31 - 1)
      throw new RangeError(`${what}: span of row ${Math.floor(i / 2)} has ${i % 2 ? 'end' : 'start'} ${String(x)}, not an integer position`);
  });
  return Int32Array.from(flat);
}

/** A token id must be an integer in [0, V): refused, not coerced, naming where it was. */
function checkTokenId(id: unknown, V: number, where: string): void {
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= V)
    throw new RangeError(`token id ${typeof id === 'string' ? JSON.stringify(id) : String(id)} at ${where} is not an integer in [0, ${V}) (the vocabulary)`);
}

export class Model {
  readonly config: GPTConfig;
  private readonly nat: NativeModel;
  private readonly tensors: Map<string, TensorInfo>;
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(config: GPTConfig, device: Device) {
    this.config = config;
    this.nat = new native.NativeModel({ ...config, device });
    this.tensors = new Map(this.nat.layout().map((t) => [t.name, t]));
  }

  /** A new model with GPT-2's initialisation, fixed by `seed` (the same numbers on every device). */
  static async create(config: GPTConfigInput, opts: { seed?: number | bigint; device?: Device } = {}): Promise<Model> {
    const m = new Model(resolveConfig(config), opts.device ?? getDefaultDevice());
    await m.nat.initWeights(opts.seed ?? 0);
    return m;
  }

  /** Where this model runs. */
  get device(): 'cpu' | 'cuda' {
    return this.nat.device;
  }

  /** How this model's matmuls multiply: 'fp32', 'bf16' (bf16 inputs, fp32 accumulation) or, on the CPU, 'bf16-emulated'. Fixed when it is made (cpuPrecision(), cudaPrecision()). */
  get precision(): 'fp32' | 'bf16' | 'bf16-emulated' {
    return this.nat.precision;
  }

  /**
   * A new model holding this one's parameters: how reward models and the critic start from the SFT
   * model. `valueHead` adds (or drops) the scalar head; a new head starts as GPT-2 initialises
   * weights, N(0, 0.02), fixed by `seed`. The optimizer state is not copied. The copy keeps what
   * this model was loaded from (checkpointSource), so saving it writes the same config.json
   * fields, generation_config.json and dtype.
   */
  async clone(opts: { valueHead?: boolean; seed?: number | bigint } = {}): Promise<Model> {
    const copy = await Model.create({ ...this.config, valueHead: opts.valueHead ?? this.config.valueHead }, { seed: opts.seed ?? 0, device: this.device });
    const src = await this.readBuffer('params');
    for (const t of copy.layout()) {
      const s = this.tensors.get(t.name);
      if (s) await copy.writeBuffer('params', src.subarray(s.offset, s.offset + s.numel), t.offset);
    }
    inheritCheckpointSource(copy, this);
    return copy;
  }

  /** A new model whose parameters are all zero, to be filled by the caller (checkpoint loading). */
  static empty(config: GPTConfigInput, opts: { device?: Device } = {}): Model {
    return new Model(resolveConfig(config), opts.device ?? getDefaultDevice());
  }

  get numParams(): number {
    return this.nat.numParams;
  }

  /** Model FLOPs per trained token at sequence length T (forward + backward, as llm.c counts them). */
  flopsPerToken(T: number = this.config.maxSeqLen): number {
    return this.nat.flopsPerToken(T);
  }

  /** Every parameter tensor: Hugging Face GPT-2 name, shape, place in the flat buffer. */
  layout(): TensorInfo[] {
    return [...this.tensors.values()];
  }

  tensorInfo(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`this model has no tensor named ${JSON.stringify(name)}`);
    return t;
  }

  /** Number of optimizer steps taken (Adam's bias correction counts from it). */
  get optimizerStep(): number {
    return this.nat.adamStep;
  }

  // Calls run in program order even when the caller does not await each one.
  private run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }

  // Like run(), but `args` runs now, at the call: the call's arguments are copied (and checked)
  // when it is made, not when its turn comes; what it throws rejects the returned promise.
  private runWith<T>(args: () => () => Promise<T>): Promise<T> {
    let fn: () => Promise<T>;
    try {
      fn = args();
    } catch (e) {
      return Promise.reject(e);
    }
    return this.run(fn);
  }

  forward(batch: Batch & { targets?: Int32Array | null }, opts: ForwardOptions = {}): Promise<ForwardResult> {
    return this.runWith(() => {
      const tokens = copyArg('tokens', batch.tokens);
      const targets = batch.targets == null ? null : copyArg('targets', batch.targets);
      const o = copyOpts(opts);
      return async () => {
        const r = await this.nat.forward(tokens, targets, batch.B, batch.T, o);
        return { ...r, logprob: r.logprob ?? new Float32Array(0) };
      };
    });
  }

  /** Accumulates the gradients of sum(dlogprob * logprob) + sum(dvalue * values) of the last forward. */
  backward(grads: { dlogprob?: Float32Array | null; dvalue?: Float32Array | null }): Promise<void> {
    return this.runWith(() => {
      const dlogprob = grads.dlogprob == null ? null : copyArg('dlogprob', grads.dlogprob);
      const dvalue = grads.dvalue == null ? null : copyArg('dvalue', grads.dvalue);
      return () => this.nat.backward(dlogprob, dvalue);
    });
  }

  /**
   * AdamW step with global-norm clipping; zeroes the gradients; returns the norm before clipping.
   * lr is required; a key outside AdamWOptions' is refused (a misspelt option is not a default).
   */
  step(opts: AdamWOptions): Promise<number> {
    return this.runWith(() => {
      const o = copyOpts(opts);
      return () => this.nat.step(o);
    });
  }

  zeroGrad(): Promise<void> {
    return this.run(() => this.nat.zeroGrad());
  }

  async generate(prompts: ArrayLike<number>[], opts: GenerateOptions): Promise<Generation[]> {
    // Every id is checked here, before Int32Array would coerce it (NaN -> 0, 2^32 + 3 -> 3).
    checkKeys('generate options', opts, GENERATE_KEYS);
    const V = this.config.vocabSize;
    const lengths = Int32Array.from(prompts, (p) => p.length);
    const flat = new Int32Array(lengths.reduce((a, b) => a + b, 0));
    let at = 0;
    prompts.forEach((p, b) => {
      for (let t = 0; t < p.length; t++) checkTokenId(p[t], V, `prompt ${b}, position ${t}`);
      flat.set(p, at);
      at += p.length;
    });
    const eosIds = opts.eos === undefined ? undefined : [opts.eos].flat();
    eosIds?.forEach((e, i) => checkTokenId(e, V, Array.isArray(opts.eos) ? `eos[${i}]` : 'eos'));
    const eos = eosIds === undefined ? undefined : Int32Array.from(eosIds);
    const r = await this.run(() =>
      this.nat.generate(flat, lengths, {
        maxNewTokens: opts.maxNewTokens,
        temperature: opts.temperature ?? 1,
        topK: opts.topK ?? 0,
        topP: opts.topP ?? 1,
        eos,
        seed: opts.seed ?? 0,
        ...(opts.firstRow ? { firstRow: opts.firstRow } : {}),
      }),
    );
    return prompts.map((_, b) => {
      const n = r.lengths[b];
      const at = b * r.maxNewTokens;
      return {
        tokens: Array.from(r.tokens.subarray(at, at + n)),
        logprobs: Array.from(r.logprobs.subarray(at, at + n)),
        finishReason: r.eos[b] ? 'eos' : 'length',
      };
    });
  }

  /**
   * For each row b and each position t in spans[b] = [start, end): whether the model's most likely
   * next token after tokens[b, <t] is tokens[b, t]. One fused pass; no logits leave the engine.
   */
  greedyMatch(batch: Batch, spans: ReadonlyArray<readonly [number, number]>): Promise<GreedyMatchResult> {
    if (spans.length !== batch.B) throw new RangeError(`greedyMatch: ${spans.length} spans for ${batch.B} rows`);
    const flat = spanArray('greedyMatch', spans);
    return this.runWith(() => {
      const tokens = copyArg('tokens', batch.tokens);
      return () => this.nat.greedyMatch(tokens, batch.B, batch.T, flat);
    });
  }

  /**
   * Reward extraction's scores in one pass of the engine: for each row's span, whether each token
   * is the model's argmax, the first divergence, and the rule (+1 before it, -1 diverging, 0
   * matching after it; values from `scores`). No logits leave the engine.
   */
  divergence(batch: Batch, spans: ReadonlyArray<readonly [number, number]>, scores: DivergenceScores = {}): Promise<DivergenceResult> {
    if (spans.length !== batch.B) throw new RangeError(`divergence: ${spans.length} spans for ${batch.B} rows`);
    const flat = spanArray('divergence', spans);
    return this.runWith(() => {
      const tokens = copyArg('tokens', batch.tokens);
      const s = copyOpts(scores);
      return () => this.nat.divergence(tokens, batch.B, batch.T, flat, s);
    });
  }

  /** A copy of one flat buffer (or a slice of it). */
  readBuffer(kind: BufferKind, offset?: number, length?: number): Promise<Float32Array> {
    return this.run(() => this.nat.readBuffer(kind, offset, length));
  }

  /** Writes `data` at `offset`, as it is when called. Non-finite values (and a negative adam_v) are refused. */
  writeBuffer(kind: BufferKind, data: Float32Array, offset?: number): Promise<void> {
    return this.runWith(() => {
      const d = copyArg('data', data);
      return () => this.nat.writeBuffer(kind, d, offset);
    });
  }

  /** A copy of one named parameter tensor. */
  readTensor(name: string, kind: BufferKind = 'params'): Promise<Float32Array> {
    const t = this.tensorInfo(name);
    return this.readBuffer(kind, t.offset, t.numel);
  }

  writeTensor(name: string, data: Float32Array, kind: BufferKind = 'params'): Promise<void> {
    const t = this.tensorInfo(name);
    if (data.length !== t.numel)
      return Promise.reject(new RangeError(`${name} has ${t.numel} elements (shape [${t.shape}]); got ${data.length}`));
    return this.writeBuffer(kind, data, t.offset);
  }

  /**
   * Parameters and, when asked, AdamW's moments and step count, read together: no other call on
   * this model runs between the reads (for checkpoints).
   */
  snapshot(opts: { optimizer?: boolean } = {}): Promise<{ params: Float32Array; adamM?: Float32Array; adamV?: Float32Array; step: number }> {
    return this.run(async () => {
      const params = await this.nat.readBuffer('params');
      if (!opts.optimizer) return { params, step: this.nat.adamStep };
      const [adamM, adamV] = await Promise.all([this.nat.readBuffer('adam_m'), this.nat.readBuffer('adam_v')]);
      return { params, adamM, adamV, step: this.nat.adamStep };
    });
  }

  /** Sets the optimizer's step count (used when resuming from a checkpoint). */
  setOptimizerStep(step: number): Promise<void> {
    return this.run(async () => {
      this.nat.adamStep = step;
    });
  }

  /** Data parallelism: the gradients summed over `group`'s ranks, times `scale` (1 / ranks: their mean). */
  allreduceGrads(group: ProcessGroup, scale = 1): Promise<void> {
    return this.run(() => this.nat.allreduceGrads(group, scale));
  }

  /** Data parallelism: `root`'s parameters (and AdamW's moments and step, with `optimizer`) on every rank of `group`. */
  broadcastParams(group: ProcessGroup, opts: { root?: number; optimizer?: boolean } = {}): Promise<void> {
    return this.run(() => this.nat.broadcastParams(group, opts.root ?? 0, opts.optimizer ?? false));
  }

  /** Frees the engine memory now instead of at garbage collection; the model is unusable after. */
  dispose(): void {
    this.nat.dispose();
  }
}
