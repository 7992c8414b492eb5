// GPT-2 written independently in tfjs: the numeric reference for the native engine's tests and the baseline of its benchmarks.
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import path from 'node:path';

export interface RefConfig {
  vocabSize: number;
  maxSeqLen: number;
  numLayers: number;
  numHeads: number;
  channels: number;
  valueHead?: boolean;
}

export interface RefBatch {
  tokens: Int32Array;
  /** -1 marks a position without a target */
  targets: Int32Array;
  B: number;
  T: number;
}

export interface RefForwardOptions {
  values?: boolean;
  entropy?: boolean;
  temperature?: number;
}

export interface RefForwardResult {
  logprob: Float32Array;
  values?: Float32Array;
  entropy?: Float32Array;
}

export interface AdamOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
}

export interface AdamWOptions extends AdamOptions {
  weightDecay?: number;
  maxGradNorm?: number;
}

const LN_EPS = 1e-5;
// Large enough that exp underflows to exactly 0, small enough that scores stay finite.
const MASKED = -1e9;

/** Hugging Face GPT-2 parameter names and shapes, in the engine's layout order. */
export function parameterShapes(cfg: RefConfig): [string, number[]][] {
  const { vocabSize: V, maxSeqLen: maxT, channels: C } = cfg;
  const out: [string, number[]][] = [
    ['transformer.wte.weight', [V, C]],
    ['transformer.wpe.weight', [maxT, C]],
  ];
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `transformer.h.${l}.`;
    out.push(
      [`${p}ln_1.weight`, [C]],
      [`${p}ln_1.bias`, [C]],
      [`${p}attn.c_attn.weight`, [C, 3 * C]],
      [`${p}attn.c_attn.bias`, [3 * C]],
      [`${p}attn.c_proj.weight`, [C, C]],
      [`${p}attn.c_proj.bias`, [C]],
      [`${p}ln_2.weight`, [C]],
      [`${p}ln_2.bias`, [C]],
      [`${p}mlp.c_fc.weight`, [C, 4 * C]],
      [`${p}mlp.c_fc.bias`, [4 * C]],
      [`${p}mlp.c_proj.weight`, [4 * C, C]],
      [`${p}mlp.c_proj.bias`, [C]],
    );
  }
  out.push(['transformer.ln_f.weight', [C]], ['transformer.ln_f.bias', [C]]);
  if (cfg.valueHead) out.push(['score.weight', [1, C]]);
  return out;
}

export function countParams(cfg: RefConfig): number {
  return parameterShapes(cfg).reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0);
}

/**
 * Selects a tfjs backend. In Node the wasm backend runs single-threaded SIMD (tfjs does not
 * enable its threaded build under Node) and must be told where its .wasm files are on disk.
 */
export async function useBackend(name: 'cpu' | 'wasm'): Promise<void> {
  if (name === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    const require = createRequire(import.meta.url);
    const dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
    wasm.setWasmPaths(dir + path.sep);
  }
  if (!(await tf.setBackend(name))) throw new Error(`tfjs backend ${name} failed to initialise`);
  await tf.ready();
}

/**
 * Row lookup whose gradient is a scatter-add: tf.gather's own gradient needs UnsortedSegmentSum,
 * which the wasm backend lacks, while ScatterNd (which sums duplicate rows) exists everywhere.
 */
const lookup = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [table, ids, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  // Saved, not closed over: the tape would otherwise dispose ids before the backward pass.
  save([ids]);
  return {
    value: tf.gather(table, ids),
    gradFunc: (dy: tf.Tensor, [saved]: tf.Tensor[]) => [
      tf.scatterND(saved.reshape([-1, 1]), dy, table.shape),
      tf.zerosLike(saved),
    ],
  };
});

function embed(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  return lookup(table, ids) as tf.Tensor2D;
}

/**
 * x @ w for 2-D x and w. Autodiff of tf.matMul computes the gradients with transposeA/transposeB,
 * which the wasm backend runs outside XNNPACK at a tenth of the speed (about 1-2 GFLOP/s, single
 * thread); transposing explicitly keeps all three products on the fast path.
 */
const linear = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, w, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([x, w]);
  return {
    value: tf.matMul(x, w),
    gradFunc: (dy: tf.Tensor, [sx, sw]: tf.Tensor[]) => [
      tf.matMul(dy as tf.Tensor2D, sw.transpose() as tf.Tensor2D),
      tf.matMul(sx.transpose() as tf.Tensor2D, dy as tf.Tensor2D),
    ],
  };
}) as (x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D;

/** tf.tidy for results that are plain numbers and arrays rather than tensors. */
function tidy<T>(fn: () => T): T {
  let out!: T;
  tf.tidy(() => {
    out = fn();
  });
  return out;
}

function layerNorm(x: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor): tf.Tensor2D {
  const { mean, variance } = tf.moments(x, -1, true);
  return x.sub(mean).mul(tf.rsqrt(variance.add(LN_EPS))).mul(w).add(b);
}

function gelu(x: tf.Tensor): tf.Tensor {
  const inner = x.add(x.mul(x.square()).mul(0.044715)).mul(Math.sqrt(2 / Math.PI));
  return x.mul(0.5).mul(tf.tanh(inner).add(1));
}

function countTargets(targets: Int32Array): number {
  return targets.reduce((n, t) => n + (t >= 0 ? 1 : 0), 0);
}

function sliceRows(x: Int32Array, T: number, r0: number, rows: number): Int32Array {
  return x.subarray(r0 * T, (r0 + rows) * T);
}

function causalMask(T: number): tf.Tensor2D {
  const m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = MASKED;
  return tf.tensor2d(m, [T, T]);
}

/** xorshift-seeded normal samples, so the benchmark's weights do not depend on the backend. */
function normals(n: number, std: number, seed: number): Float32Array {
  let s = (seed * 2654435761 + 1) >>> 0 || 1;
  const uniform = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform()));
    const a = 2 * Math.PI * uniform();
    out[i] = r * Math.cos(a) * std;
    if (i + 1 < n) out[i + 1] = r * Math.sin(a) * std;
  }
  return out;
}

export class TfGPT {
  readonly cfg: RefConfig;
  readonly vars = new Map<string, tf.Variable>();
  private adam: tf.Optimizer | null = null;
  private adamKey = '';
  private static instances = 0;

  /** source gives each parameter's values; one is alive at a time, which keeps peak memory at the model's own. */
  private constructor(cfg: RefConfig, source: (name: string, shape: number[]) => Float32Array | undefined) {
    this.cfg = cfg;
    // tfjs variable names are process-wide, so each instance gets its own prefix.
    const prefix = `tfgpt${TfGPT.instances++}/`;
    for (const [name, shape] of parameterShapes(cfg)) {
      const data = source(name, shape);
      if (!data) throw new Error(`missing parameter ${name}`);
      const n = shape.reduce((a, b) => a * b, 1);
      if (data.length !== n) throw new Error(`${name}: expected ${n} values (shape [${shape}]), got ${data.length}`);
      this.vars.set(name, tidy(() => tf.variable(tf.tensor(data, shape), true, prefix + name)));
    }
  }

  /** A model holding copies of the given parameters (Hugging Face names, engine shapes). */
  static fromParams(cfg: RefConfig, params: Map<string, Float32Array>): TfGPT {
    return new TfGPT(cfg, (name) => params.get(name));
  }

  /** GPT-2's initialisation (as the engine does it, though not the same random numbers). */
  static init(cfg: RefConfig, seed = 0): TfGPT {
    const projStd = 0.02 / Math.sqrt(2 * cfg.numLayers);
    let i = 0;
    return new TfGPT(cfg, (name, shape) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const stream = seed * 1000 + i++;
      if (shape.length >= 2) return normals(n, name.endsWith('c_proj.weight') ? projStd : 0.02, stream);
      return new Float32Array(n).fill(/\.ln_\w+\.weight$/.test(name) ? 1 : 0);
    });
  }

  get numParams(): number {
    return countParams(this.cfg);
  }

  /** Copies of every parameter, by name. */
  params(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const [name, v] of this.vars) out.set(name, v.dataSync() as Float32Array);
    return out;
  }

  private v(name: string): tf.Tensor2D {
    return this.vars.get(name)! as tf.Variable as unknown as tf.Tensor2D;
  }

  /** Final LayerNorm output [B*T, C]; call inside tf.tidy. */
  private hidden(tokens: tf.Tensor1D, B: number, T: number): tf.Tensor2D {
    const C = this.cfg.channels;
    const pos = this.v('transformer.wpe.weight').slice([0, 0], [T, C]);
    let x = embed(this.v('transformer.wte.weight'), tokens).reshape([B, T, C]).add(pos).reshape([B * T, C]) as tf.Tensor2D;
    const mask = causalMask(T);
    // A scope per block frees its temporaries as it ends (autodiff keeps its own references to
    // what the backward pass needs); without it a 10M-parameter step overflows wasm's 4 GiB heap.
    for (let l = 0; l < this.cfg.numLayers; l++) x = tf.tidy(() => this.block(l, x, mask, B, T));
    return layerNorm(x, this.v('transformer.ln_f.weight'), this.v('transformer.ln_f.bias'));
  }

  private block(l: number, x: tf.Tensor2D, mask: tf.Tensor2D, B: number, T: number): tf.Tensor2D {
    const { channels: C, numHeads: NH } = this.cfg;
    const hs = C / NH;
    const p = (s: string) => this.v(`transformer.h.${l}.${s}`);
    const heads = (t: tf.Tensor) => t.reshape([B, T, NH, hs]).transpose([0, 2, 1, 3]);
    const h1 = layerNorm(x, p('ln_1.weight'), p('ln_1.bias'));
    const qkv = linear(h1, p('attn.c_attn.weight')).add(p('attn.c_attn.bias'));
    const [q, k, v] = tf.split(qkv, 3, 1).map(heads);
    // Scaling q rather than the [T, T] scores keeps one fewer score-sized tensor alive.
    const att = tf.softmax(tf.matMul(q.mul(1 / Math.sqrt(hs)), k, false, true).add(mask), -1);
    const y = tf.matMul(att, v).transpose([0, 2, 1, 3]).reshape([B * T, C]) as tf.Tensor2D;
    const x2 = x.add(linear(y, p('attn.c_proj.weight')).add(p('attn.c_proj.bias'))) as tf.Tensor2D;
    const h2 = layerNorm(x2, p('ln_2.weight'), p('ln_2.bias'));
    const f = gelu(linear(h2, p('mlp.c_fc.weight')).add(p('mlp.c_fc.bias'))) as tf.Tensor2D;
    return x2.add(linear(f, p('mlp.c_proj.weight')).add(p('mlp.c_proj.bias')));
  }

  /** Per-position tensors [B*T] of one forward; call inside tf.tidy. */
  private heads(batch: RefBatch, opts: RefForwardOptions) {
    const { B, T } = batch;
    const invTemp = 1 / (opts.temperature ?? 1);
    const lnf = this.hidden(tf.tensor1d(batch.tokens, 'int32'), B, T);
    const wte = this.v('transformer.wte.weight');
    const logits = linear(lnf, wte.transpose()).mul(invTemp);
    const lse = tf.logSumExp(logits, 1);
    const valid = Float32Array.from(batch.targets, (t) => (t >= 0 ? 1 : 0));
    const targets = tf.tensor1d(Int32Array.from(batch.targets, (t) => Math.max(t, 0)), 'int32');
    // The target's logit from its embedding row: no [N, V] one-hot in the graph.
    const picked = lnf.mul(embed(wte, targets)).sum(1).mul(invTemp);
    const logprob = picked.sub(lse).mul(tf.tensor1d(valid));
    const values = opts.values ? lnf.matMul(this.v('score.weight'), false, true).reshape([B * T]) : undefined;
    const entropy = opts.entropy ? lse.sub(tf.softmax(logits).mul(logits).sum(1)) : undefined;
    return { logprob, values, entropy };
  }

  forward(batch: RefBatch, opts: RefForwardOptions = {}): RefForwardResult {
    return tidy(() => {
      const r = this.heads(batch, opts);
      return {
        logprob: r.logprob.dataSync() as Float32Array,
        values: r.values?.dataSync() as Float32Array | undefined,
        entropy: r.entropy?.dataSync() as Float32Array | undefined,
      };
    });
  }

  /** Negative log-likelihood summed over the positions that have a target, divided by count. */
  private nll(batch: RefBatch, count = countTargets(batch.targets)): tf.Scalar {
    return this.heads(batch, {}).logprob.sum().neg().div(Math.max(count, 1)) as tf.Scalar;
  }

  /**
   * sum(dlogprob * logprob) + sum(dvalue * values) and its gradient for every parameter, which is
   * what the engine's backward(dlogprob, dvalue) accumulates.
   */
  lossAndGrads(
    batch: RefBatch,
    dlogprob: Float32Array,
    dvalue?: Float32Array,
    temperature = 1,
  ): { loss: number; grads: Map<string, Float32Array> } {
    return tidy(() => {
      const f = () => {
        const r = this.heads(batch, { values: dvalue !== undefined, temperature });
        let loss = r.logprob.mul(tf.tensor1d(dlogprob)).sum();
        if (dvalue) loss = loss.add(r.values!.mul(tf.tensor1d(dvalue)).sum());
        return loss as tf.Scalar;
      };
      const { value, grads } = tf.variableGrads(f, [...this.vars.values()]);
      const out = new Map<string, Float32Array>();
      for (const [name, v] of this.vars) out.set(name, grads[v.name].dataSync() as Float32Array);
      return { loss: value.dataSync()[0], grads: out };
    });
  }

  /**
   * One training step on the mean NLL with tf.train.adam; returns the loss before the update.
   * tfjs Adam's eps defaults to the backend's epsilon (1e-7), not torch's 1e-8, so it is explicit.
   *
   * rowsPerMicroBatch < B computes the same gradient in slices of rows, accumulated before the one
   * update: tfjs autodiff keeps the gradient of every intermediate until its backward pass ends,
   * so a whole 10M-parameter batch of 2048 tokens does not fit wasm's 4 GiB heap.
   */
  trainStep(batch: RefBatch, opts: AdamOptions, rowsPerMicroBatch = batch.B): number {
    const b1 = opts.beta1 ?? 0.9, b2 = opts.beta2 ?? 0.999, eps = opts.eps ?? 1e-8;
    const key = `${opts.lr}/${b1}/${b2}/${eps}`;
    if (!this.adam || this.adamKey !== key) {
      this.adam?.dispose();
      this.adam = tf.train.adam(opts.lr, b1, b2, eps);
      this.adamKey = key;
    }
    const adam = this.adam;
    const vars = [...this.vars.values()];
    if (rowsPerMicroBatch >= batch.B) return tidy(() => adam.minimize(() => this.nll(batch), true, vars)!.dataSync()[0]);

    const count = countTargets(batch.targets);
    const sum: tf.NamedTensorMap = {};
    let loss = 0;
    for (let r0 = 0; r0 < batch.B; r0 += rowsPerMicroBatch) {
      const rows = Math.min(rowsPerMicroBatch, batch.B - r0);
      const slice = { tokens: sliceRows(batch.tokens, batch.T, r0, rows), targets: sliceRows(batch.targets, batch.T, r0, rows), B: rows, T: batch.T };
      tidy(() => {
        const { value, grads } = tf.variableGrads(() => this.nll(slice, count), vars);
        loss += value.dataSync()[0];
        for (const [name, g] of Object.entries(grads)) {
          const prev = sum[name];
          sum[name] = tf.keep(prev ? prev.add(g) : g);
          prev?.dispose();
        }
      });
    }
    adam.applyGradients(sum);
    tf.dispose(Object.values(sum));
    return loss;
  }

  /** One step of a caller-owned optimizer (RefAdamW) on the mean NLL; returns the loss before it. */
  trainStepAdamW(batch: RefBatch, opt: RefAdamW): number {
    return tidy(() => {
      const { value, grads } = tf.variableGrads(() => this.nll(batch), [...this.vars.values()]);
      opt.apply(this, grads);
      return value.dataSync()[0];
    });
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    this.vars.clear();
    this.adam?.dispose();
    this.adam = null;
  }
}

/**
 * AdamW with torch's semantics, in tfjs ops: global-norm clipping (coefficient
 * maxNorm / (norm + 1e-6) when the norm exceeds maxNorm), then p -= lr * wd * p on tensors of
 * rank >= 2 only, then Adam with bias correction.
 */
export class RefAdamW {
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  step = 0;
  /** The gradient norm of the last apply(), before clipping. */
  lastNorm = 0;

  constructor(readonly opts: AdamWOptions) {}

  /** Updates model's parameters from grads (keyed by tfjs variable name, as tf.variableGrads gives them); returns the norm before clipping. */
  apply(model: TfGPT, grads: tf.NamedTensorMap): number {
    const { lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0, maxGradNorm = 0 } = this.opts;
    this.step++;
    const bc1 = 1 - beta1 ** this.step;
    const bc2 = 1 - beta2 ** this.step;
    return tidy(() => {
      const vars = [...model.vars.entries()];
      // tf.variableGrads leaves out parameters the loss does not use (the value head under an
      // LM loss); the engine treats those as zero gradients, which still decay and move moments.
      const grad = (p: tf.Variable) => grads[p.name] ?? tf.zerosLike(p);
      const norm = Math.sqrt(vars.reduce((acc, [, p]) => acc + grad(p).square().sum().dataSync()[0], 0));
      this.lastNorm = norm;
      const scale = maxGradNorm > 0 && norm > maxGradNorm ? maxGradNorm / (norm + 1e-6) : 1;
      for (const [name, p] of vars) {
        const g = grad(p).mul(scale);
        if (!this.m.has(name)) {
          this.m.set(name, tf.variable(tf.zerosLike(p), false));
          this.v.set(name, tf.variable(tf.zerosLike(p), false));
        }
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        m.assign(m.mul(beta1).add(g.mul(1 - beta1)));
        v.assign(v.mul(beta2).add(g.square().mul(1 - beta2)));
        const decayed = p.rank >= 2 && weightDecay > 0 ? p.mul(1 - lr * weightDecay) : p;
        const update = m.div(bc1).div(v.div(bc2).sqrt().add(eps)).mul(lr);
        p.assign(decayed.sub(update));
      }
      return norm;
    });
  }

  /** apply() with gradients given as arrays by Hugging Face name (another implementation's, say). */
  applyArrays(model: TfGPT, grads: Map<string, Float32Array>): number {
    return tidy(() => {
      const named: tf.NamedTensorMap = {};
      for (const [name, p] of model.vars) {
        const g = grads.get(name);
        if (g) named[p.name] = tf.tensor(g, p.shape);
      }
      return this.apply(model, named);
    });
  }

  /** Copies of Adam's first and second moments of one parameter (by its Hugging Face name). */
  moments(name: string): { m: Float32Array; v: Float32Array } | undefined {
    const m = this.m.get(name), v = this.v.get(name);
    return m && v ? { m: m.dataSync() as Float32Array, v: v.dataSync() as Float32Array } : undefined;
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}
