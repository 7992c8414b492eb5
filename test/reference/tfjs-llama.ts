// The Llama family (Llama 2/3.x, SmolLM2, TinyLlama, Qwen2/2.5) written independently in tfjs from
// Hugging Face's modeling_llama.py / modeling_qwen2.py and modeling_rope_utils.py: the numeric
// reference for the native engine's llama architecture. Float32 throughout, tfjs CPU backend (call
// useBackend('cpu') from ./tfjs-gpt.js, or tf.setBackend('cpu'), first).
//
// What it computes, in Hugging Face's terms:
//   h = embed_tokens[tokens]
//   per layer: h += o_proj(attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))), n = input_layernorm(h)
//              h += down_proj(silu(gate_proj(n)) * up_proj(n)),                n = post_attention_layernorm(h)
//   h = norm(h); logits = h @ lm_head^T (embed_tokens^T when tied); values = h @ score^T
// with LlamaRMSNorm (w * x * rsqrt(mean(x^2) + eps)), RoPE on positions 0..T-1 by rotate_half (the
// half-split pairing: dimension i rotates with i + hd/2), repeat_kv for grouped-query attention
// (query head h reads key/value head floor(h / (NH / KVH))), causal softmax(q k^T / sqrt(hd)) v, and
// for Qwen2 biases on q/k/v (not on o_proj).
import * as tf from '@tensorflow/tfjs';

export interface LlamaRefConfig {
  vocabSize: number;
  maxSeqLen: number;
  numLayers: number;
  /** query heads (num_attention_heads) */
  numHeads: number;
  /** key/value heads (num_key_value_heads); default numHeads */
  numKvHeads?: number;
  /** head_dim; default channels / numHeads */
  headDim?: number;
  /** hidden_size */
  channels: number;
  /** intermediate_size */
  ffnSize: number;
  /** rms_norm_eps; default 1e-5 */
  normEps?: number;
  /** rope_theta; default 10000 */
  ropeTheta?: number;
  /** rope_scaling.rope_type; default 'none' */
  ropeScaling?: 'none' | 'llama3';
  /** llama3: factor (default 8) */
  ropeFactor?: number;
  /** llama3: low_freq_factor (default 1) */
  ropeLowFreqFactor?: number;
  /** llama3: high_freq_factor (default 4) */
  ropeHighFreqFactor?: number;
  /** llama3: original_max_position_embeddings (default 8192) */
  ropeOriginalMaxPos?: number;
  /** bias on q_proj, k_proj, v_proj (Qwen2); default false */
  qkvBias?: boolean;
  /** tie_word_embeddings: lm_head is embed_tokens; default true */
  tieEmbeddings?: boolean;
  /** score.weight [1, C] on the final normed hidden state (LlamaForSequenceClassification); default false */
  valueHead?: boolean;
}

export type ResolvedLlamaRefConfig = Required<LlamaRefConfig>;

export interface LlamaRefBatch {
  tokens: Int32Array;
  /** -1 marks a position without a target */
  targets: Int32Array;
  B: number;
  T: number;
}

export interface LlamaRefForwardOptions {
  values?: boolean;
  entropy?: boolean;
  /** log-probs and entropy of softmax(logits / temperature); default 1 */
  temperature?: number;
}

export interface LlamaRefForwardResult {
  /** [B*T] log p(target) under softmax(logits / temperature); 0 where the target is -1 */
  logprob: Float32Array;
  /** [B*T] hidden @ score^T */
  values?: Float32Array;
  /** [B*T] entropy of softmax(logits / temperature) */
  entropy?: Float32Array;
}

export interface LlamaRefGeneration {
  /** the new tokens, maxNewTokens of them */
  tokens: number[];
  /** log-prob of each new token under softmax(logits) (temperature 1) */
  logprobs: number[];
  /** top-1 minus top-2 logit at each step: how close the argmax was to a tie */
  margins: number[];
}

// Large enough that exp underflows to exactly 0, small enough that scores stay finite (HF adds
// finfo.min; both give masked positions probability exactly 0).
const MASKED = -1e9;

export function resolveLlamaConfig(c: LlamaRefConfig): ResolvedLlamaRefConfig {
  const r: ResolvedLlamaRefConfig = {
    vocabSize: c.vocabSize,
    maxSeqLen: c.maxSeqLen,
    numLayers: c.numLayers,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads ?? c.numHeads,
    headDim: c.headDim ?? c.channels / c.numHeads,
    channels: c.channels,
    ffnSize: c.ffnSize,
    normEps: c.normEps ?? 1e-5,
    ropeTheta: c.ropeTheta ?? 10000,
    ropeScaling: c.ropeScaling ?? 'none',
    ropeFactor: c.ropeFactor ?? 8,
    ropeLowFreqFactor: c.ropeLowFreqFactor ?? 1,
    ropeHighFreqFactor: c.ropeHighFreqFactor ?? 4,
    ropeOriginalMaxPos: c.ropeOriginalMaxPos ?? 8192,
    qkvBias: c.qkvBias ?? false,
    tieEmbeddings: c.tieEmbeddings ?? true,
    valueHead: c.valueHead ?? false,
  };
  if (!Number.isInteger(r.headDim) || r.headDim % 2 !== 0) throw new Error(`headDim must be an even integer, got ${r.headDim}`);
  if (r.numHeads % r.numKvHeads !== 0) throw new Error(`numHeads (${r.numHeads}) must be a multiple of numKvHeads (${r.numKvHeads})`);
  return r;
}

/** Hugging Face Llama parameter names and shapes ([out, in] for Linear weights), in model order. */
export function llamaParameterShapes(c: LlamaRefConfig): [string, number[]][] {
  const cfg = resolveLlamaConfig(c);
  const { vocabSize: V, channels: C, numHeads: NH, numKvHeads: KVH, headDim: hd, ffnSize: F } = cfg;
  const out: [string, number[]][] = [['model.embed_tokens.weight', [V, C]]];
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}.`;
    out.push([`${p}input_layernorm.weight`, [C]], [`${p}self_attn.q_proj.weight`, [NH * hd, C]]);
    if (cfg.qkvBias) out.push([`${p}self_attn.q_proj.bias`, [NH * hd]]);
    out.push([`${p}self_attn.k_proj.weight`, [KVH * hd, C]]);
    if (cfg.qkvBias) out.push([`${p}self_attn.k_proj.bias`, [KVH * hd]]);
    out.push([`${p}self_attn.v_proj.weight`, [KVH * hd, C]]);
    if (cfg.qkvBias) out.push([`${p}self_attn.v_proj.bias`, [KVH * hd]]);
    out.push(
      [`${p}self_attn.o_proj.weight`, [C, NH * hd]],
      [`${p}post_attention_layernorm.weight`, [C]],
      [`${p}mlp.gate_proj.weight`, [F, C]],
      [`${p}mlp.up_proj.weight`, [F, C]],
      [`${p}mlp.down_proj.weight`, [C, F]],
    );
  }
  out.push(['model.norm.weight', [C]]);
  if (!cfg.tieEmbeddings) out.push(['lm_head.weight', [V, C]]);
  if (cfg.valueHead) out.push(['score.weight', [1, C]]);
  return out;
}

/**
 * RoPE inverse frequencies [hd/2], in float64: _compute_default_rope_parameters
 * (1 / theta^(arange(0, hd, 2) / hd)) and, for 'llama3', _compute_llama3_parameters.
 * (Hugging Face does this in float32; the difference is an ulp of each frequency.)
 */
export function ropeInvFreq(c: LlamaRefConfig): Float64Array {
  const cfg = resolveLlamaConfig(c);
  const dim = cfg.headDim;
  const invFreq = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) invFreq[i] = 1 / cfg.ropeTheta ** ((2 * i) / dim);
  if (cfg.ropeScaling === 'none') return invFreq;
  if (cfg.ropeScaling !== 'llama3') throw new Error(`unknown ropeScaling ${cfg.ropeScaling}`);
  const factor = cfg.ropeFactor;
  const lowFreqFactor = cfg.ropeLowFreqFactor;
  const highFreqFactor = cfg.ropeHighFreqFactor;
  const oldContextLen = cfg.ropeOriginalMaxPos;
  const lowFreqWavelen = oldContextLen / lowFreqFactor;
  const highFreqWavelen = oldContextLen / highFreqFactor;
  const out = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const wavelen = (2 * Math.PI) / invFreq[i];
    // wavelen < high_freq_wavelen: do nothing; wavelen > low_freq_wavelen: divide by factor
    let f = wavelen > lowFreqWavelen ? invFreq[i] / factor : invFreq[i];
    // otherwise: interpolate between the two, using a smooth factor
    const smooth = (oldContextLen / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    const smoothed = (1 - smooth) * (f / factor) + smooth * f;
    const isMedium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
    if (isMedium) f = smoothed;
    out[i] = f;
  }
  return out;
}

/** cos and sin [T, hd] for positions 0..T-1: emb = cat(freqs, freqs), freqs[t, i] = t * inv_freq[i]. */
export function ropeTables(c: LlamaRefConfig, T: number): { cos: Float32Array; sin: Float32Array } {
  const cfg = resolveLlamaConfig(c);
  const hd = cfg.headDim;
  const inv = ropeInvFreq(cfg);
  const cos = new Float32Array(T * hd), sin = new Float32Array(T * hd);
  for (let t = 0; t < T; t++)
    for (let j = 0; j < hd; j++) {
      const a = t * inv[j % (hd / 2)];
      cos[t * hd + j] = Math.cos(a);
      sin[t * hd + j] = Math.sin(a);
    }
  return { cos, sin };
}

/** LlamaRMSNorm: w * x * rsqrt(mean(x^2, -1) + eps). */
export function rmsNorm(x: tf.Tensor, w: tf.Tensor, eps: number): tf.Tensor {
  return x.mul(tf.rsqrt(x.square().mean(-1, true).add(eps))).mul(w);
}

/** rotate_half: cat(-x2, x1) of the last axis's halves. */
export function rotateHalf(x: tf.Tensor): tf.Tensor {
  const [x1, x2] = tf.split(x, 2, -1);
  return tf.concat([x2.neg(), x1], -1);
}

/** apply_rotary_pos_emb for one tensor [..., T, hd] with cos/sin [T, hd]: x * cos + rotate_half(x) * sin. */
export function applyRotary(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  return x.mul(cos).add(rotateHalf(x).mul(sin));
}

/** repeat_kv: [B, KVH, T, hd] -> [B, KVH * nRep, T, hd], head h reading kv head floor(h / nRep). */
export function repeatKv(x: tf.Tensor, nRep: number): tf.Tensor {
  if (nRep === 1) return x;
  const kvh = x.shape[1]!;
  const idx = tf.tensor1d(Int32Array.from({ length: kvh * nRep }, (_, h) => Math.floor(h / nRep)), 'int32');
  return tf.gather(x, idx, 1);
}

/** x @ W^T for a torch Linear weight W [out, in]. */
function linear(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor): tf.Tensor2D {
  const y = tf.matMul(x, w, false, true);
  return (b ? y.add(b) : y) as tf.Tensor2D;
}

function silu(x: tf.Tensor): tf.Tensor {
  return x.mul(tf.sigmoid(x));
}

function causalMask(T: number): tf.Tensor2D {
  const m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = MASKED;
  return tf.tensor2d(m, [T, T]);
}

/** tf.tidy for results that are plain numbers and arrays rather than tensors. */
function tidy<T>(fn: () => T): T {
  let out!: T;
  tf.tidy(() => {
    out = fn();
  });
  return out;
}

export class TfLlama {
  readonly cfg: ResolvedLlamaRefConfig;
  readonly vars = new Map<string, tf.Variable>();
  private static instances = 0;

  private constructor(cfg: LlamaRefConfig, params: Map<string, Float32Array>) {
    this.cfg = resolveLlamaConfig(cfg);
    // tfjs variable names are process-wide, so each instance gets its own prefix.
    const prefix = `tfllama${TfLlama.instances++}/`;
    for (const [name, shape] of llamaParameterShapes(this.cfg)) {
      const data = params.get(name);
      if (!data) throw new Error(`missing parameter ${name}`);
      const n = shape.reduce((a, b) => a * b, 1);
      if (data.length !== n) throw new Error(`${name}: expected ${n} values (shape [${shape}]), got ${data.length}`);
      this.vars.set(name, tidy(() => tf.variable(tf.tensor(data, shape), true, prefix + name)));
    }
    const extra = [...params.keys()].filter((k) => !this.vars.has(k));
    if (extra.length) throw new Error(`parameters this config does not have: ${extra.join(', ')}`);
  }

  /** A model holding copies of the given parameters (Hugging Face names and shapes). */
  static fromParams(cfg: LlamaRefConfig, params: Map<string, Float32Array>): TfLlama {
    return new TfLlama(cfg, params);
  }

  /** Copies of every parameter, by name. */
  params(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const [name, v] of this.vars) out.set(name, v.dataSync() as Float32Array);
    return out;
  }

  private v(name: string): tf.Tensor2D {
    const t = this.vars.get(name);
    if (!t) throw new Error(`no parameter ${name}`);
    return t as unknown as tf.Tensor2D;
  }

  /**
   * Hidden states [B*T, C]: index 0 the embeddings, l the output of layer l-1, and the last one
   * after the final norm (Hugging Face's output_hidden_states, whose last entry is normed).
   * Call inside tf.tidy.
   */
  hiddenStates(tokens: Int32Array, B: number, T: number): tf.Tensor2D[] {
    const cfg = this.cfg;
    const C = cfg.channels;
    if (tokens.length !== B * T) throw new Error(`tokens: expected ${B * T}, got ${tokens.length}`);
    for (const t of tokens) if (t < 0 || t >= cfg.vocabSize) throw new Error(`token ${t} out of range`);
    const ids = tf.tensor1d(tokens, 'int32');
    let x = tf.gather(this.v('model.embed_tokens.weight'), ids) as tf.Tensor2D;
    const { cos, sin } = ropeTables(cfg, T);
    const cosT = tf.tensor2d(cos, [T, cfg.headDim]), sinT = tf.tensor2d(sin, [T, cfg.headDim]);
    const mask = causalMask(T);
    const states = [x];
    for (let l = 0; l < cfg.numLayers; l++) {
      x = this.layer(l, x, cosT, sinT, mask, B, T);
      states.push(x);
    }
    states.push(rmsNorm(x, this.v('model.norm.weight'), cfg.normEps).reshape([B * T, C]) as tf.Tensor2D);
    return states;
  }

  private layer(l: number, x: tf.Tensor2D, cos: tf.Tensor, sin: tf.Tensor, mask: tf.Tensor, B: number, T: number): tf.Tensor2D {
    const { numHeads: NH, numKvHeads: KVH, headDim: hd, normEps: eps, qkvBias } = this.cfg;
    const p = (s: string) => this.v(`model.layers.${l}.${s}`);
    // [B*T, H*hd] -> [B, H, T, hd], as .view(B, T, H, hd).transpose(1, 2)
    const heads = (t: tf.Tensor, H: number) => t.reshape([B, T, H, hd]).transpose([0, 2, 1, 3]);

    const n1 = rmsNorm(x, p('input_layernorm.weight'), eps) as tf.Tensor2D;
    const q = heads(linear(n1, p('self_attn.q_proj.weight'), qkvBias ? p('self_attn.q_proj.bias') : undefined), NH);
    const k = heads(linear(n1, p('self_attn.k_proj.weight'), qkvBias ? p('self_attn.k_proj.bias') : undefined), KVH);
    const v = heads(linear(n1, p('self_attn.v_proj.weight'), qkvBias ? p('self_attn.v_proj.bias') : undefined), KVH);
    const qr = applyRotary(q, cos, sin);
    const kr = repeatKv(applyRotary(k, cos, sin), NH / KVH);
    const vr = repeatKv(v, NH / KVH);
    const scores = tf.matMul(qr, kr, false, true).mul(1 / Math.sqrt(hd)).add(mask);
    const att = tf.softmax(scores, -1);
    const y = tf.matMul(att, vr).transpose([0, 2, 1, 3]).reshape([B * T, NH * hd]) as tf.Tensor2D;
    const x2 = x.add(linear(y, p('self_attn.o_proj.weight'))) as tf.Tensor2D;

    const n2 = rmsNorm(x2, p('post_attention_layernorm.weight'), eps) as tf.Tensor2D;
    const gate = linear(n2, p('mlp.gate_proj.weight'));
    const up = linear(n2, p('mlp.up_proj.weight'));
    return x2.add(linear(silu(gate).mul(up) as tf.Tensor2D, p('mlp.down_proj.weight'))) as tf.Tensor2D;
  }

  /** Logits [B*T, V] from the final normed hidden state. Call inside tf.tidy. */
  private logitsOf(h: tf.Tensor2D): tf.Tensor2D {
    return linear(h, this.v(this.cfg.tieEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight'));
  }

  /** Logits [B*T, V] (temperature 1), as a copy. */
  logits(tokens: Int32Array, B: number, T: number): Float32Array {
    return tidy(() => {
      const hs = this.hiddenStates(tokens, B, T);
      return this.logitsOf(hs[hs.length - 1]).dataSync() as Float32Array;
    });
  }

  /** Per-position tensors [B*T] of one forward; call inside tf.tidy. */
  private heads(batch: LlamaRefBatch, opts: LlamaRefForwardOptions) {
    const { B, T } = batch;
    const V = this.cfg.vocabSize;
    const temperature = opts.temperature ?? 1;
    const hs = this.hiddenStates(batch.tokens, B, T);
    const h = hs[hs.length - 1];
    const logits = this.logitsOf(h).div(temperature) as tf.Tensor2D;
    const logp = tf.logSoftmax(logits, -1);
    const valid = tf.tensor1d(Uint8Array.from(batch.targets, (t) => (t >= 0 ? 1 : 0)), 'bool');
    const targets = tf.tensor1d(Int32Array.from(batch.targets, (t) => Math.max(t, 0)), 'int32');
    const picked = logp.mul(tf.oneHot(targets, V)).sum(1);
    // where, not a multiply by 0: a position without a target reads +0 (as the engine's), not -0
    const logprob = tf.where(valid, picked, tf.zerosLike(picked));
    const values = opts.values ? linear(h, this.v('score.weight')).reshape([B * T]) : undefined;
    const entropy = opts.entropy ? tf.exp(logp).mul(logp).sum(1).neg() : undefined;
    return { logprob, values, entropy };
  }

  forward(batch: LlamaRefBatch, opts: LlamaRefForwardOptions = {}): LlamaRefForwardResult {
    if (opts.values && !this.cfg.valueHead) throw new Error('values asked of a model without a value head');
    return tidy(() => {
      const r = this.heads(batch, opts);
      return {
        logprob: r.logprob.dataSync() as Float32Array,
        values: r.values?.dataSync() as Float32Array | undefined,
        entropy: r.entropy?.dataSync() as Float32Array | undefined,
      };
    });
  }

  /**
   * loss = sum(dlogprob * logprob) + sum(dvalue * values) (either term optional) and its gradient
   * with respect to every parameter, by name: what the engine's backward({dlogprob, dvalue})
   * accumulates. A parameter the loss does not reach gets zeros.
   */
  lossAndGrads(
    batch: LlamaRefBatch,
    grads: { dlogprob?: Float32Array; dvalue?: Float32Array },
    temperature = 1,
  ): { loss: number; grads: Map<string, Float32Array> } {
    const { dlogprob, dvalue } = grads;
    if (!dlogprob && !dvalue) throw new Error('lossAndGrads needs dlogprob or dvalue');
    return tidy(() => {
      const f = () => {
        const r = this.heads(batch, { values: dvalue !== undefined, temperature });
        let loss = tf.scalar(0);
        if (dlogprob) loss = loss.add(r.logprob.mul(tf.tensor1d(dlogprob)).sum());
        if (dvalue) loss = loss.add(r.values!.mul(tf.tensor1d(dvalue)).sum());
        return loss as tf.Scalar;
      };
      const { value, grads: g } = tf.variableGrads(f, [...this.vars.values()]);
      const out = new Map<string, Float32Array>();
      for (const [name, v] of this.vars)
        out.set(name, g[v.name] ? (g[v.name].dataSync() as Float32Array) : new Float32Array(v.size));
      return { loss: value.dataSync()[0], grads: out };
    });
  }

  /**
   * Greedy decoding by full recomputation: for each prompt alone, run the whole sequence, take the
   * argmax (the lowest id among equal maxima, as torch.argmax) of the last position's logits,
   * append it, repeat maxNewTokens times.
   */
  generateGreedy(prompts: ArrayLike<number>[], maxNewTokens: number): LlamaRefGeneration[] {
    return prompts.map((prompt) => {
      const seq = Array.from(prompt);
      if (seq.length + maxNewTokens - 1 > this.cfg.maxSeqLen)
        throw new Error(`prompt of ${seq.length} + ${maxNewTokens} new tokens exceeds maxSeqLen ${this.cfg.maxSeqLen}`);
      const out: LlamaRefGeneration = { tokens: [], logprobs: [], margins: [] };
      for (let s = 0; s < maxNewTokens; s++) {
        const T = seq.length, V = this.cfg.vocabSize;
        const logits = this.logits(Int32Array.from(seq), 1, T).subarray((T - 1) * V, T * V);
        let best = 0;
        for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
        let second = -Infinity, max = -Infinity;
        for (let i = 0; i < V; i++) {
          if (i !== best) second = Math.max(second, logits[i]);
          max = Math.max(max, logits[i]);
        }
        let sum = 0;
        for (let i = 0; i < V; i++) sum += Math.exp(logits[i] - max);
        out.tokens.push(best);
        out.logprobs.push(logits[best] - max - Math.log(sum));
        out.margins.push(logits[best] - second);
        seq.push(best);
      }
      return out;
    });
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    this.vars.clear();
  }
}
