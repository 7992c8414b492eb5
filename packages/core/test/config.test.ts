// Hugging Face config.json in and out: GPT-2's and the Llama family's published configs read as
// those models, ours read back to themselves with the source's other keys kept, and the variants the
// engine does not compute are refused by name.
import { describe, expect, it } from 'vitest';

import { ConfigError, fromHFConfig, resolveConfig, toHFConfig, type GPTConfig } from '@s2s/core';

/** GPT-2's values of the Llama-family fields. */
const GPT2_REST = (C: number, NH: number) => ({
  numKvHeads: NH,
  headDim: C / NH,
  ffnSize: 4 * C,
  normEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: 'none',
  ropeFactor: 8,
  ropeLowFreqFactor: 1,
  ropeHighFreqFactor: 4,
  ropeOriginalMaxPos: 8192,
  qkvBias: false,
  tieEmbeddings: true,
});

// config.json of the original gpt2 checkpoint on the Hugging Face hub
const GPT2_SMALL = {
  activation_function: 'gelu_new',
  architectures: ['GPT2LMHeadModel'],
  attn_pdrop: 0.1,
  bos_token_id: 50256,
  embd_pdrop: 0.1,
  eos_token_id: 50256,
  initializer_range: 0.02,
  layer_norm_epsilon: 1e-5,
  model_type: 'gpt2',
  n_ctx: 1024,
  n_embd: 768,
  n_head: 12,
  n_layer: 12,
  n_positions: 1024,
  resid_pdrop: 0.1,
  summary_activation: null,
  summary_first_dropout: 0.1,
  summary_proj_to_labels: true,
  summary_type: 'cls_index',
  summary_use_proj: true,
  task_specific_params: { 'text-generation': { do_sample: true, max_length: 50 } },
  vocab_size: 50257,
};

describe('config.json', () => {
  it("reads GPT-2's published config", () => {
    expect(fromHFConfig(GPT2_SMALL)).toEqual({
      arch: 'gpt2',
      vocabSize: 50257,
      maxSeqLen: 1024,
      numLayers: 12,
      numHeads: 12,
      channels: 768,
      valueHead: false,
      ...GPT2_REST(768, 12),
    });
  });

  it('round-trips ours, with and without a value head', () => {
    for (const valueHead of [false, true]) {
      const cfg = { vocabSize: 300, maxSeqLen: 64, numLayers: 3, numHeads: 4, channels: 32, valueHead };
      const hf = JSON.parse(JSON.stringify(toHFConfig(cfg)));
      expect(hf.architectures).toEqual([valueHead ? 'GPT2ForSequenceClassification' : 'GPT2LMHeadModel']);
      expect(fromHFConfig(hf)).toEqual(resolveConfig(cfg));
    }
  });

  it('refuses what the engine would compute differently, naming the field', () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ model_type: 'gemma' }, /model_type is "gemma"; supported are "gpt2", "llama", "qwen2", "mistral"/],
      [{ activation_function: 'relu' }, /activation_function "relu"/],
      [{ layer_norm_epsilon: 1e-6 }, /layer_norm_epsilon/],
      [{ n_inner: 1000 }, /n_inner must be 4 \* n_embd/],
      [{ scale_attn_weights: false }, /scale_attn_weights/],
      [{ scale_attn_by_inverse_layer_idx: true }, /scale_attn_by_inverse_layer_idx/],
      [{ n_head: 7 }, /n_embd \(768\) must be divisible by n_head \(7\)/],
      [{ vocab_size: undefined }, /vocab_size must be a positive integer, got nothing/],
    ];
    for (const [patch, msg] of bad) expect(() => fromHFConfig({ ...GPT2_SMALL, ...patch }, 'ck/config.json')).toThrow(msg);
    expect(() => fromHFConfig({ ...GPT2_SMALL, n_embd: -1 }, 'ck/config.json')).toThrow(/^ck\/config.json: n_embd/);
  });

  it('refuses booleans of another type (Python would read "false" as true) and a null layer_norm_epsilon, naming the field', () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ scale_attn_weights: 'false' }, /^ck\/config.json: scale_attn_weights must be true or false, got "false"$/],
      [{ scale_attn_weights: 0 }, /scale_attn_weights must be true or false, got 0/],
      [{ scale_attn_by_inverse_layer_idx: 'false' }, /scale_attn_by_inverse_layer_idx must be true or false, got "false"/],
      [{ tie_word_embeddings: 'yes' }, /tie_word_embeddings must be true or false, got "yes"/],
      [{ layer_norm_epsilon: null }, /layer_norm_epsilon null is not supported/],
    ];
    for (const [patch, msg] of bad) {
      expect(() => fromHFConfig({ ...GPT2_SMALL, ...patch }, 'ck/config.json')).toThrow(ConfigError);
      expect(() => fromHFConfig({ ...GPT2_SMALL, ...patch }, 'ck/config.json')).toThrow(msg);
    }
    // null is the default, as transformers reads it
    expect(fromHFConfig({ ...GPT2_SMALL, scale_attn_weights: null, scale_attn_by_inverse_layer_idx: null, tie_word_embeddings: true })).toEqual(fromHFConfig(GPT2_SMALL));
  });

  it("keeps the source config's other keys when writing back, regenerating the engine's", () => {
    const cfg = fromHFConfig(GPT2_SMALL);
    const out = toHFConfig({ ...cfg, numLayers: 2 }, { torch_dtype: 'float32' }, GPT2_SMALL);
    expect(out).toMatchObject({
      task_specific_params: GPT2_SMALL.task_specific_params,
      summary_type: 'cls_index',
      bos_token_id: 50256,
      n_layer: 2,
      attn_pdrop: 0,
      torch_dtype: 'float32',
      architectures: ['GPT2LMHeadModel'],
    });
    // a value head drops nothing but adds the label fields; the class follows
    expect(toHFConfig({ ...cfg, valueHead: true }, {}, GPT2_SMALL)).toMatchObject({ architectures: ['GPT2ForSequenceClassification'], num_labels: 1 });
  });
});

// Published config.json files (Hugging Face hub), verbatim.
const SMOLLM2_135M = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 0,
  eos_token_id: 0,
  hidden_act: 'silu',
  hidden_size: 576,
  initializer_range: 0.041666666666666664,
  intermediate_size: 1536,
  is_llama_config: true,
  max_position_embeddings: 8192,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 9,
  num_hidden_layers: 30,
  num_key_value_heads: 3,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_interleaved: false,
  rope_scaling: null,
  rope_theta: 100000,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.42.3',
  use_cache: true,
  vocab_size: 49152,
};
const QWEN25_05B = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151643,
  hidden_act: 'silu',
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 24,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.40.1',
  use_cache: true,
  use_mrope: false,
  use_sliding_window: false,
  vocab_size: 151936,
};
const TINYLLAMA = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 5632,
  max_position_embeddings: 2048,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 22,
  num_key_value_heads: 4,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  rope_theta: 10000.0,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.35.0',
  use_cache: true,
  vocab_size: 32000,
};
const LLAMA32_1B = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: 128001,
  head_dim: 64,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.45.0.dev0',
  use_cache: true,
  vocab_size: 128256,
};
const MISTRAL_7B_V03 = {
  architectures: ['MistralForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 14336,
  max_position_embeddings: 32768,
  model_type: 'mistral',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 1000000.0,
  sliding_window: null,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.42.0.dev0',
  use_cache: true,
  vocab_size: 32768,
};

const LLAMA_DEFAULTS = { arch: 'llama', valueHead: false, ropeScaling: 'none', ropeFactor: 8, ropeLowFreqFactor: 1, ropeHighFreqFactor: 4, ropeOriginalMaxPos: 8192 };

/** The keys transformers' config classes define, which a config.json we write should spell out. */
const CLASS_KEYS: Record<string, string[]> = {
  llama: ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim', 'hidden_act', 'max_position_embeddings', 'rms_norm_eps', 'rope_theta', 'rope_scaling', 'attention_bias', 'mlp_bias', 'attention_dropout', 'tie_word_embeddings', 'initializer_range', 'use_cache', 'pretraining_tp'],
  qwen2: ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'hidden_act', 'max_position_embeddings', 'rms_norm_eps', 'rope_theta', 'rope_scaling', 'use_sliding_window', 'attention_dropout', 'tie_word_embeddings', 'initializer_range', 'use_cache'],
  mistral: ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim', 'hidden_act', 'max_position_embeddings', 'rms_norm_eps', 'rope_theta', 'sliding_window', 'attention_dropout', 'tie_word_embeddings', 'initializer_range', 'use_cache'],
};

describe('config.json of the Llama family', () => {
  it('reads SmolLM2, Qwen2.5, TinyLlama, Llama 3.2 and Mistral as published', () => {
    expect(fromHFConfig(SMOLLM2_135M)).toEqual({
      ...LLAMA_DEFAULTS,
      vocabSize: 49152, maxSeqLen: 8192, numLayers: 30, numHeads: 9, numKvHeads: 3, channels: 576, headDim: 64, ffnSize: 1536,
      normEps: 1e-5, ropeTheta: 100000, qkvBias: false, tieEmbeddings: true,
    });
    expect(fromHFConfig(QWEN25_05B)).toEqual({
      ...LLAMA_DEFAULTS,
      vocabSize: 151936, maxSeqLen: 32768, numLayers: 24, numHeads: 14, numKvHeads: 2, channels: 896, headDim: 64, ffnSize: 4864,
      normEps: 1e-6, ropeTheta: 1e6, qkvBias: true, tieEmbeddings: true,
    });
    expect(fromHFConfig(TINYLLAMA)).toMatchObject({ numKvHeads: 4, headDim: 64, ffnSize: 5632, tieEmbeddings: false, qkvBias: false, ropeScaling: 'none' });
    expect(fromHFConfig(LLAMA32_1B)).toEqual({
      ...LLAMA_DEFAULTS,
      vocabSize: 128256, maxSeqLen: 131072, numLayers: 16, numHeads: 32, numKvHeads: 8, channels: 2048, headDim: 64, ffnSize: 8192,
      normEps: 1e-5, ropeTheta: 500000, ropeScaling: 'llama3', ropeFactor: 32, ropeLowFreqFactor: 1, ropeHighFreqFactor: 4, ropeOriginalMaxPos: 8192,
      qkvBias: false, tieEmbeddings: true,
    });
    expect(fromHFConfig(MISTRAL_7B_V03)).toMatchObject({ arch: 'llama', numKvHeads: 8, ropeTheta: 1e6, tieEmbeddings: false, qkvBias: false });
  });

  it("fills transformers' defaults for the keys a config.json may leave out", () => {
    const { num_key_value_heads: _k, rms_norm_eps: _e, rope_theta: _t, tie_word_embeddings: _w, hidden_act: _a, attention_bias: _b, ...bare } = TINYLLAMA;
    expect(fromHFConfig(bare)).toMatchObject({ numKvHeads: 32, normEps: 1e-6, ropeTheta: 10000, tieEmbeddings: false, qkvBias: false });
    // rope_scaling of type "default" (or "type" for "rope_type") is no scaling; transformers 5's rope_parameters is read too
    expect(fromHFConfig({ ...TINYLLAMA, rope_scaling: { type: 'default' } }).ropeScaling).toBe('none');
    expect(fromHFConfig({ ...TINYLLAMA, rope_scaling: { ...LLAMA32_1B.rope_scaling, rope_type: undefined, type: 'llama3' } }).ropeScaling).toBe('llama3');
    const { rope_theta: _r, rope_scaling: _s, ...v5 } = LLAMA32_1B;
    expect(fromHFConfig({ ...v5, rope_parameters: { ...LLAMA32_1B.rope_scaling, rope_theta: 500000 } })).toEqual(fromHFConfig(LLAMA32_1B));
    // a Llama with attention_bias has q/k/v biases (its o_proj bias must be zero: see the checkpoint tests)
    expect(fromHFConfig({ ...TINYLLAMA, attention_bias: true }).qkvBias).toBe(true);
    // head_dim may differ from hidden_size / num_attention_heads
    expect(fromHFConfig({ ...TINYLLAMA, hidden_size: 2000, head_dim: 128 })).toMatchObject({ channels: 2000, headDim: 128 });
  });

  it('reads ...ForSequenceClassification as a value head', () => {
    for (const [src, cls] of [[SMOLLM2_135M, 'LlamaForSequenceClassification'], [QWEN25_05B, 'Qwen2ForSequenceClassification'], [MISTRAL_7B_V03, 'MistralForSequenceClassification']] as const) {
      const hf = { ...src, architectures: [cls], id2label: { '0': 'LABEL_0' }, label2id: { LABEL_0: 0 } };
      const cfg = fromHFConfig(hf);
      expect(cfg.valueHead).toBe(true);
      expect(toHFConfig(cfg, {}, hf)).toMatchObject({ architectures: [cls], num_labels: 1 });
    }
  });

  it('round-trips each, writing the class and every key transformers defines, keeping the unknown keys', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [SMOLLM2_135M, 'LlamaForCausalLM'],
      [QWEN25_05B, 'Qwen2ForCausalLM'],
      [TINYLLAMA, 'LlamaForCausalLM'],
      [LLAMA32_1B, 'LlamaForCausalLM'],
      [MISTRAL_7B_V03, 'MistralForCausalLM'],
    ];
    for (const [src, cls] of cases) {
      const cfg = fromHFConfig(src);
      const out = JSON.parse(JSON.stringify(toHFConfig(cfg, { torch_dtype: 'bfloat16' }, src)));
      expect(out.architectures).toEqual([cls]);
      expect(out.model_type).toBe(src.model_type);
      for (const k of CLASS_KEYS[out.model_type]) expect(out, `${cls} ${k}`).toHaveProperty(k);
      expect(fromHFConfig(out)).toEqual(cfg);
      // every key of the source comes back, with the same value where the engine agrees
      for (const [k, v] of Object.entries(src)) {
        expect(out, `${cls} ${k}`).toHaveProperty(k);
        if (!['attention_dropout', 'sliding_window'].includes(k)) expect(out[k], `${cls} ${k}`).toEqual(v);
      }
    }
    // written without a source: a new model gets LlamaForCausalLM, or Qwen2 when it has q/k/v biases
    const fresh = { arch: 'llama', vocabSize: 100, maxSeqLen: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, channels: 32, ffnSize: 48 } as const;
    const a = toHFConfig(fresh);
    expect(a).toMatchObject({ architectures: ['LlamaForCausalLM'], model_type: 'llama', head_dim: 8, tie_word_embeddings: true, rms_norm_eps: 1e-5, rope_scaling: null, attention_bias: false, mlp_bias: false });
    expect(fromHFConfig(a)).toEqual(resolveConfig(fresh));
    const q = toHFConfig({ ...fresh, qkvBias: true, tieEmbeddings: false });
    expect(q).toMatchObject({ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', use_sliding_window: false, tie_word_embeddings: false });
    expect(fromHFConfig(q)).toEqual(resolveConfig({ ...fresh, qkvBias: true, tieEmbeddings: false }));
  });

  it('writes another class where the source one cannot express the model', () => {
    // Mistral has no RoPE scaling; Llama's attention_bias would add an o_proj bias: Qwen2 has q/k/v biases only
    const m = fromHFConfig(MISTRAL_7B_V03);
    expect(toHFConfig({ ...m, ropeScaling: 'llama3' }, {}, MISTRAL_7B_V03)).toMatchObject({ model_type: 'llama', architectures: ['LlamaForCausalLM'] });
    const biased = toHFConfig({ ...fromHFConfig(TINYLLAMA), qkvBias: true }, {}, TINYLLAMA);
    expect(biased).toMatchObject({ model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'], bos_token_id: 1, pretraining_tp: 1 });
    expect(biased).not.toHaveProperty('attention_bias');
    // a value head's label fields go when the head does
    const rm = { ...SMOLLM2_135M, architectures: ['LlamaForSequenceClassification'], id2label: { '0': 'LABEL_0' }, label2id: { LABEL_0: 0 } };
    const lm = toHFConfig({ ...fromHFConfig(rm), valueHead: false }, {}, rm);
    expect(lm.architectures).toEqual(['LlamaForCausalLM']);
    expect(lm).not.toHaveProperty('id2label');
  });

  it('refuses what the engine would compute differently, naming the file and key', () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...TINYLLAMA, hidden_act: 'gelu' }, /hidden_act "gelu" is not supported/],
      [{ ...TINYLLAMA, mlp_bias: true }, /mlp_bias true is not supported/],
      [{ ...QWEN25_05B, use_sliding_window: true }, /use_sliding_window true: sliding window attention is not supported/],
      [{ ...MISTRAL_7B_V03, sliding_window: 4096 }, /sliding_window 4096 is shorter than max_position_embeddings \(32768\): sliding window attention is not supported/],
      [(({ sliding_window: _, ...m }) => m)(MISTRAL_7B_V03), /sliding_window 4096 \(Mistral's default, as the key is missing\)/],
      [{ ...QWEN25_05B, layer_types: ['full_attention', 'sliding_attention'] }, /layer_types must all be "full_attention"/],
      [{ ...TINYLLAMA, rope_scaling: { rope_type: 'linear', factor: 2 } }, /rope_scaling of type "linear" is not supported/],
      [{ ...TINYLLAMA, rope_scaling: { type: 'yarn', factor: 2 } }, /rope_scaling of type "yarn" is not supported/],
      [{ ...TINYLLAMA, rope_scaling: 'llama3' }, /rope_scaling must be null or an object/],
      [{ ...LLAMA32_1B, rope_scaling: { ...LLAMA32_1B.rope_scaling, factor: undefined } }, /rope_scaling.factor must be a number > 0, got nothing/],
      [{ ...LLAMA32_1B, rope_scaling: { ...LLAMA32_1B.rope_scaling, original_max_position_embeddings: 8192.5 } }, /rope_scaling.original_max_position_embeddings must be a positive integer/],
      [{ ...LLAMA32_1B, rope_scaling: { ...LLAMA32_1B.rope_scaling, high_freq_factor: 1 } }, /rope_scaling.high_freq_factor \(1\) must be greater than rope_scaling.low_freq_factor \(1\)/],
      [{ ...TINYLLAMA, num_key_value_heads: 5 }, /num_attention_heads \(32\) must be a multiple of num_key_value_heads \(5\)/],
      [{ ...TINYLLAMA, hidden_size: 2000 }, /hidden_size \(2000\) must be divisible by num_attention_heads \(32\) when head_dim is not given/],
      [{ ...TINYLLAMA, head_dim: 63 }, /head_dim 63 must be even: rotary embeddings pair its halves/],
      [{ ...TINYLLAMA, hidden_size: 2016, num_attention_heads: 32, num_key_value_heads: 4 }, /hidden_size \/ num_attention_heads \(63\) must be even/],
      // booleans of another type: Python reads "true", "false" and {} as true, [] and 0 as false
      [{ ...TINYLLAMA, mlp_bias: 'true' }, /mlp_bias must be true or false, got "true"/],
      [{ ...TINYLLAMA, mlp_bias: {} }, /mlp_bias must be true or false, got \{\}/],
      [{ ...TINYLLAMA, attention_bias: 'false' }, /attention_bias must be true or false, got "false"/],
      [{ ...QWEN25_05B, use_sliding_window: 'false' }, /use_sliding_window must be true or false, got "false"/],
      [{ ...TINYLLAMA, intermediate_size: 0 }, /intermediate_size must be a positive integer, got 0/],
      [{ ...TINYLLAMA, max_position_embeddings: undefined }, /max_position_embeddings must be a positive integer, got nothing/],
      [{ ...TINYLLAMA, rms_norm_eps: 0 }, /rms_norm_eps must be a number > 0, got 0/],
      [{ ...TINYLLAMA, rope_theta: -1 }, /rope_theta must be a number > 0/],
      [{ ...TINYLLAMA, tie_word_embeddings: 'yes' }, /tie_word_embeddings must be true or false/],
      [{ ...TINYLLAMA, architectures: ['LlamaForSequenceClassification'], num_labels: 3 }, /num_labels is 3; a value head has exactly 1/],
      [{ ...TINYLLAMA, architectures: ['LlamaForSequenceClassification'], id2label: { 0: 'a', 1: 'b' } }, /id2label has 2 labels/],
    ];
    for (const [hf, msg] of bad) {
      expect(() => fromHFConfig(hf, 'ck/config.json')).toThrow(ConfigError);
      expect(() => fromHFConfig(hf, 'ck/config.json')).toThrow(msg);
      expect(() => fromHFConfig(hf, 'ck/config.json')).toThrow(/^ck\/config.json: /);
    }
  });
});

describe('resolveConfig', () => {
  const tiny = { vocabSize: 11, maxSeqLen: 8, numLayers: 1, numHeads: 2, channels: 4 };

  it("fills GPT-2's defaults, and derives headDim, numKvHeads and ffnSize", () => {
    expect(resolveConfig(tiny)).toEqual({ arch: 'gpt2', ...tiny, valueHead: false, ...GPT2_REST(4, 2) });
    expect(resolveConfig({ ...tiny, arch: 'llama', channels: 8 })).toMatchObject({ numKvHeads: 2, headDim: 4, ffnSize: 32, tieEmbeddings: true });
    // a resolved config resolves to itself
    const c: GPTConfig = resolveConfig({ ...tiny, arch: 'llama', numHeads: 4, numKvHeads: 1, channels: 6, headDim: 2, ropeScaling: 'llama3' });
    expect(resolveConfig(c)).toEqual(c);
  });

  it('refuses bad values, and Llama-only ones for GPT-2, naming the field', () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ arch: 'bert' }, /arch must be "gpt2" or "llama", got "bert"/],
      [{ numKvHeads: 1 }, /numKvHeads 1 is not available with arch "gpt2" \(GPT-2's is 2; use arch "llama"\)/],
      [{ ffnSize: 8 }, /ffnSize 8 is not available with arch "gpt2"/],
      [{ headDim: 4 }, /headDim 4 is not available with arch "gpt2"/],
      [{ normEps: 1e-6 }, /normEps 0.000001 is not available with arch "gpt2"/],
      [{ ropeTheta: 5e5 }, /ropeTheta 500000 is not available/],
      [{ ropeScaling: 'llama3' }, /ropeScaling "llama3" is not available/],
      [{ qkvBias: true }, /qkvBias true is not available/],
      [{ tieEmbeddings: false }, /tieEmbeddings false is not available/],
      [{ channels: 5 }, /channels \(5\) must be divisible by numHeads \(2\)/],
      [{ arch: 'llama', numKvHeads: 3, numHeads: 4, channels: 16 }, /numHeads \(4\) must be a multiple of numKvHeads \(3\)/],
      [{ arch: 'llama', normEps: 0 }, /normEps must be a number > 0, got 0/],
      [{ arch: 'llama', ropeScaling: 'yarn' }, /ropeScaling must be "none" or "llama3", got "yarn"/],
      [{ arch: 'llama', ropeOriginalMaxPos: 1.5 }, /ropeOriginalMaxPos must be a positive integer/],
      [{ arch: 'llama', qkvBias: 1 }, /qkvBias must be a boolean, got 1/],
      [{ arch: 'llama', headDim: 3 }, /headDim must be even/],
    ];
    for (const [patch, msg] of bad) {
      expect(() => resolveConfig({ ...tiny, ...patch } as typeof tiny, 'the model')).toThrow(msg);
      expect(() => resolveConfig({ ...tiny, ...patch } as typeof tiny, 'the model')).toThrow(/^the model: /);
    }
    // Llama needs channels divisible by heads only when headDim is derived from them
    expect(resolveConfig({ ...tiny, arch: 'llama', channels: 5, headDim: 4 }).headDim).toBe(4);
  });
});
