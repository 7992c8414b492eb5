// The model's size and shape, its defaults, and the mapping to and from Hugging Face's config.json
// (GPT-2, and the Llama family: Llama, Qwen2, Mistral).

export type Arch = 'gpt2' | 'llama';
export type RopeScaling = 'none' | 'llama3';

export interface GPTConfig {
  /** 'gpt2', or 'llama' for the Llama family (Llama, SmolLM2, TinyLlama, Qwen2, Mistral) */
  arch: Arch;
  /** V: number of token ids */
  vocabSize: number;
  /** context length (GPT-2's n_positions, Llama's max_position_embeddings) */
  maxSeqLen: number;
  numLayers: number;
  /** query heads */
  numHeads: number;
  /** model width (GPT-2's n_embd, Llama's hidden_size) */
  channels: number;
  /** a scalar head on the final hidden state (...ForSequenceClassification's `score`) */
  valueHead: boolean;
  /** key/value heads: grouped-query attention when fewer than numHeads (default numHeads) */
  numKvHeads: number;
  /** channels per head (default channels / numHeads) */
  headDim: number;
  /** the MLP's hidden width (default 4 * channels; Llama's intermediate_size) */
  ffnSize: number;
  /** LayerNorm / RMSNorm epsilon (default 1e-5) */
  normEps: number;
  /** RoPE base (default 10000) */
  ropeTheta: number;
  /** RoPE frequency scaling (default 'none'); the four rope* fields below apply only to 'llama3' */
  ropeScaling: RopeScaling;
  ropeFactor: number;
  ropeLowFreqFactor: number;
  ropeHighFreqFactor: number;
  ropeOriginalMaxPos: number;
  /** biases on the query, key and value projections (Qwen2) */
  qkvBias: boolean;
  /** the LM head is the token embedding (GPT-2 always) */
  tieEmbeddings: boolean;
}

export type ModelConfig = GPTConfig;

/** What resolveConfig needs: the five sizes; every other key has a default. */
export type GPTConfigInput = Pick<GPTConfig, 'vocabSize' | 'maxSeqLen' | 'numLayers' | 'numHeads' | 'channels'> &
  Partial<Omit<GPTConfig, 'vocabSize' | 'maxSeqLen' | 'numLayers' | 'numHeads' | 'channels'>>;
export type ModelConfigInput = GPTConfigInput;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** The defaults of the fields that do not depend on others. */
const DEFAULTS = {
  normEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: 'none' as RopeScaling,
  ropeFactor: 8,
  ropeLowFreqFactor: 1,
  ropeHighFreqFactor: 4,
  ropeOriginalMaxPos: 8192,
  qkvBias: false,
  tieEmbeddings: true,
};

/** Checks a config and fills defaults; every error names the field. */
export function resolveConfig(c: GPTConfigInput, source = 'model config'): GPTConfig {
  const fail = (msg: string): never => {
    throw new ConfigError(`${source}: ${msg}`);
  };
  const int = (field: keyof GPTConfig, value: unknown): number => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) fail(`${field} must be a positive integer, got ${JSON.stringify(value)}`);
    return value as number;
  };
  const pos = (field: keyof GPTConfig, value: unknown): number => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) fail(`${field} must be a number > 0, got ${JSON.stringify(value)}`);
    return value as number;
  };
  const bool = (field: keyof GPTConfig, value: unknown): boolean => {
    if (typeof value !== 'boolean') fail(`${field} must be a boolean, got ${JSON.stringify(value)}`);
    return value as boolean;
  };
  const oneOf = <T extends string>(field: keyof GPTConfig, value: unknown, choices: readonly T[]): T => {
    if (!choices.includes(value as T)) fail(`${field} must be ${choices.map((x) => JSON.stringify(x)).join(' or ')}, got ${JSON.stringify(value)}`);
    return value as T;
  };
  const arch = oneOf('arch', c.arch ?? 'gpt2', ['gpt2', 'llama'] as const);
  const numHeads = int('numHeads', c.numHeads);
  const channels = int('channels', c.channels);
  const sizes = {
    vocabSize: int('vocabSize', c.vocabSize),
    maxSeqLen: int('maxSeqLen', c.maxSeqLen),
    numLayers: int('numLayers', c.numLayers),
  };
  if ((arch === 'gpt2' || c.headDim === undefined) && channels % numHeads !== 0)
    fail(`channels (${channels}) must be divisible by numHeads (${numHeads})`);
  const cfg: GPTConfig = {
    arch,
    ...sizes,
    numHeads,
    channels,
    valueHead: bool('valueHead', c.valueHead ?? false),
    numKvHeads: int('numKvHeads', c.numKvHeads ?? numHeads),
    headDim: int('headDim', c.headDim ?? channels / numHeads),
    ffnSize: int('ffnSize', c.ffnSize ?? 4 * channels),
    normEps: pos('normEps', c.normEps ?? DEFAULTS.normEps),
    ropeTheta: pos('ropeTheta', c.ropeTheta ?? DEFAULTS.ropeTheta),
    ropeScaling: oneOf('ropeScaling', c.ropeScaling ?? DEFAULTS.ropeScaling, ['none', 'llama3'] as const),
    ropeFactor: pos('ropeFactor', c.ropeFactor ?? DEFAULTS.ropeFactor),
    ropeLowFreqFactor: pos('ropeLowFreqFactor', c.ropeLowFreqFactor ?? DEFAULTS.ropeLowFreqFactor),
    ropeHighFreqFactor: pos('ropeHighFreqFactor', c.ropeHighFreqFactor ?? DEFAULTS.ropeHighFreqFactor),
    ropeOriginalMaxPos: int('ropeOriginalMaxPos', c.ropeOriginalMaxPos ?? DEFAULTS.ropeOriginalMaxPos),
    qkvBias: bool('qkvBias', c.qkvBias ?? DEFAULTS.qkvBias),
    tieEmbeddings: bool('tieEmbeddings', c.tieEmbeddings ?? DEFAULTS.tieEmbeddings),
  };
  if (arch === 'llama' && cfg.headDim % 2 !== 0) fail(`headDim must be even (rotary embeddings pair its halves), got ${cfg.headDim}`);
  if (cfg.numHeads % cfg.numKvHeads !== 0) fail(`numHeads (${cfg.numHeads}) must be a multiple of numKvHeads (${cfg.numKvHeads})`);
  if (cfg.ropeScaling === 'llama3' && cfg.ropeHighFreqFactor <= cfg.ropeLowFreqFactor)
    fail(`ropeHighFreqFactor (${cfg.ropeHighFreqFactor}) must be greater than ropeLowFreqFactor (${cfg.ropeLowFreqFactor})`);
  if (arch === 'gpt2') {
    // GPT-2 has one value for each of these: the one it resolves to.
    const gpt2: Partial<GPTConfig> = { ...DEFAULTS, numKvHeads: numHeads, headDim: channels / numHeads, ffnSize: 4 * channels };
    for (const [k, v] of Object.entries(gpt2) as [keyof GPTConfig, unknown][])
      if (cfg[k] !== v)
        fail(`${k} ${JSON.stringify(cfg[k])} is not available with arch "gpt2" (GPT-2's is ${JSON.stringify(v)}; use arch "llama")`);
  }
  return cfg;
}

/** The fields of a Llama-family config.json that the engine's config determines; saving regenerates them. */
const LLAMA_OWNED = [
  'architectures',
  'model_type',
  'vocab_size',
  'hidden_size',
  'intermediate_size',
  'num_hidden_layers',
  'num_attention_heads',
  'num_key_value_heads',
  'head_dim',
  'max_position_embeddings',
  'rms_norm_eps',
  'rope_theta',
  'rope_scaling',
  'hidden_act',
  'attention_bias',
  'mlp_bias',
  'tie_word_embeddings',
  'attention_dropout',
  'use_sliding_window',
  'layer_types',
];
const GPT2_OWNED = [
  'architectures',
  'model_type',
  'vocab_size',
  'n_positions',
  'n_ctx',
  'n_embd',
  'n_layer',
  'n_head',
  'n_inner',
  'activation_function',
  'layer_norm_epsilon',
  'resid_pdrop',
  'embd_pdrop',
  'attn_pdrop',
  'summary_first_dropout',
  'scale_attn_weights',
  'scale_attn_by_inverse_layer_idx',
  'tie_word_embeddings',
];
const HEAD_KEYS = ['num_labels', 'id2label', 'label2id'];

/** The Llama-family model_types; each is read as arch 'llama'. */
export const LLAMA_MODEL_TYPES = ['llama', 'qwen2', 'mistral'] as const;
type LlamaModelType = (typeof LLAMA_MODEL_TYPES)[number];
const CLASS_PREFIX: Record<LlamaModelType, string> = { llama: 'Llama', qwen2: 'Qwen2', mistral: 'Mistral' };

/**
 * Which transformers class family writes `cfg`: the source's when it can express the model
 * (Qwen2 always has q/k/v biases; Mistral has neither those nor RoPE scaling), else Qwen2 for q/k/v
 * biases (Llama's attention_bias would add an o_proj bias too), else Llama.
 */
function llamaModelType(cfg: GPTConfig, source: unknown): LlamaModelType {
  if (cfg.qkvBias) return 'qwen2';
  if (source === 'mistral' && cfg.ropeScaling === 'none') return 'mistral';
  return 'llama';
}

function headFields(cfg: GPTConfig): Record<string, unknown> {
  return cfg.valueHead ? { num_labels: 1, id2label: { '0': 'LABEL_0' }, label2id: { LABEL_0: 0 } } : {};
}

/** The fields of `source` (an original config.json) that saving keeps: all but those the engine determines. */
function keptFields(source: Record<string, unknown> | undefined, owned: string[], valueHead: boolean): Record<string, unknown> {
  if (!source) return {};
  const drop = new Set([...owned, ...(valueHead ? [] : HEAD_KEYS), 'torch_dtype', 'dtype', 'rope_parameters']);
  return Object.fromEntries(Object.entries(source).filter(([k]) => !drop.has(k)));
}

/**
 * Hugging Face config.json for this model, loadable by transformers: GPT2LMHeadModel, or
 * LlamaForCausalLM / Qwen2ForCausalLM / MistralForCausalLM for arch 'llama' (...ForSequenceClassification
 * with a value head). `source` is the config.json the model was read from, if any: its model_type
 * picks the Llama-family class where that class can express the model, and its other fields (token
 * ids, quantities transformers keeps but the engine does not use) are kept; the fields the engine
 * determines are regenerated. `extra` fields override everything.
 */
export function toHFConfig(config: GPTConfigInput, extra: Record<string, unknown> = {}, source?: Record<string, unknown>): Record<string, unknown> {
  const cfg = resolveConfig(config);
  if (cfg.arch === 'llama') return toHFLlama(cfg, extra, source);
  const generated = {
    architectures: [cfg.valueHead ? 'GPT2ForSequenceClassification' : 'GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: cfg.vocabSize,
    n_positions: cfg.maxSeqLen,
    n_ctx: cfg.maxSeqLen,
    n_embd: cfg.channels,
    n_layer: cfg.numLayers,
    n_head: cfg.numHeads,
    n_inner: null,
    activation_function: 'gelu_new',
    layer_norm_epsilon: 1e-5,
    // The engine has no dropout; saying so keeps transformers from adding it.
    resid_pdrop: 0.0,
    embd_pdrop: 0.0,
    attn_pdrop: 0.0,
    summary_first_dropout: 0.0,
    scale_attn_weights: true,
    tie_word_embeddings: true,
    ...headFields(cfg),
  };
  const kept = keptFields(source && (source.model_type ?? 'gpt2') === 'gpt2' ? source : undefined, GPT2_OWNED, cfg.valueHead);
  return { ...generated, initializer_range: 0.02, ...kept, ...generated, ...extra };
}

function toHFLlama(cfg: GPTConfig, extra: Record<string, unknown>, source?: Record<string, unknown>): Record<string, unknown> {
  const modelType = llamaModelType(cfg, source?.model_type);
  const cls = CLASS_PREFIX[modelType] + (cfg.valueHead ? 'ForSequenceClassification' : 'ForCausalLM');
  // Fields transformers has defaults for that the engine does not use; a source's own values win.
  const defaults = { initializer_range: 0.02, use_cache: true, ...(modelType === 'llama' ? { pretraining_tp: 1 } : {}) };
  const ropeScaling =
    cfg.ropeScaling === 'llama3'
      ? {
          rope_type: 'llama3',
          factor: cfg.ropeFactor,
          low_freq_factor: cfg.ropeLowFreqFactor,
          high_freq_factor: cfg.ropeHighFreqFactor,
          original_max_position_embeddings: cfg.ropeOriginalMaxPos,
        }
      : null;
  const generated: Record<string, unknown> = {
    architectures: [cls],
    model_type: modelType,
    vocab_size: cfg.vocabSize,
    hidden_size: cfg.channels,
    intermediate_size: cfg.ffnSize,
    num_hidden_layers: cfg.numLayers,
    num_attention_heads: cfg.numHeads,
    num_key_value_heads: cfg.numKvHeads,
    head_dim: cfg.headDim,
    max_position_embeddings: cfg.maxSeqLen,
    rms_norm_eps: cfg.normEps,
    rope_theta: cfg.ropeTheta,
    rope_scaling: ropeScaling,
    hidden_act: 'silu',
    // The engine has no dropout; saying so keeps transformers from adding it.
    attention_dropout: 0.0,
    tie_word_embeddings: cfg.tieEmbeddings,
    ...(modelType === 'llama' ? { attention_bias: false, mlp_bias: false } : {}),
    // The engine attends to the whole context in every layer.
    ...(modelType === 'qwen2' ? { use_sliding_window: false } : {}),
    ...(modelType === 'mistral' ? { sliding_window: null } : {}),
    ...headFields(cfg),
  };
  if (source && Array.isArray(source.layer_types)) generated.layer_types = Array.from({ length: cfg.numLayers }, () => 'full_attention');
  // transformers 5 writes RoPE as rope_parameters; a source that has it gets it back, consistent.
  if (source && isObject(source.rope_parameters))
    generated.rope_parameters = { ...(ropeScaling ?? { rope_type: 'default' }), rope_theta: cfg.ropeTheta };
  const kept = keptFields(source && LLAMA_MODEL_TYPES.includes(source.model_type as LlamaModelType) ? source : undefined, LLAMA_OWNED, cfg.valueHead);
  return { ...generated, ...defaults, ...kept, ...generated, ...extra };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** config.json's names of the config's keys, per architecture (the engine's errors use the keys). */
const HF_FIELDS: Record<Arch, Partial<Record<keyof GPTConfig, string>>> = {
  gpt2: { vocabSize: 'vocab_size', maxSeqLen: 'n_positions', numLayers: 'n_layer', numHeads: 'n_head', channels: 'n_embd' },
  llama: {
    vocabSize: 'vocab_size',
    maxSeqLen: 'max_position_embeddings',
    numLayers: 'num_hidden_layers',
    numHeads: 'num_attention_heads',
    numKvHeads: 'num_key_value_heads',
    channels: 'hidden_size',
    headDim: 'head_dim',
    ffnSize: 'intermediate_size',
    normEps: 'rms_norm_eps',
    ropeTheta: 'rope_theta',
    ropeFactor: 'rope_scaling.factor',
    ropeLowFreqFactor: 'rope_scaling.low_freq_factor',
    ropeHighFreqFactor: 'rope_scaling.high_freq_factor',
    ropeOriginalMaxPos: 'rope_scaling.original_max_position_embeddings',
  },
};

/** The config.json field that sets `key` of an `arch` model, or undefined where none sets it alone. */
export function hfConfigField(arch: Arch, key: string): string | undefined {
  return HF_FIELDS[arch][key as keyof GPTConfig];
}

/**
 * A lower bound on the number of parameters of `cfg` (the embedding once, and the large matrices
 * of each layer): a checkpoint whose tensors hold fewer values cannot be this model, which can
 * then be refused before memory for it is allocated.
 */
export function minParameters(cfg: GPTConfig): number {
  const { vocabSize: V, channels: C, numLayers: L } = cfg;
  if (cfg.arch === 'gpt2') return V * C + cfg.maxSeqLen * C + L * 12 * C * C;
  return V * C + L * (C * cfg.headDim * 2 * (cfg.numHeads + cfg.numKvHeads) + 3 * C * cfg.ffnSize);
}

/** The size fields of config.json with their values, for a message about the model's size. */
export function describeSizes(cfg: GPTConfig): string {
  const keys: (keyof GPTConfig)[] =
    cfg.arch === 'gpt2' ? ['vocabSize', 'maxSeqLen', 'channels', 'numLayers'] : ['vocabSize', 'channels', 'ffnSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim'];
  return keys.map((k) => `${hfConfigField(cfg.arch, k)} ${cfg[k]}`).join(', ');
}

/** Reads a Hugging Face config.json object (GPT-2 or the Llama family); `file` names it in errors. */
export function fromHFConfig(hf: Record<string, unknown>, file = 'config.json'): GPTConfig {
  const mt = hf.model_type;
  if (mt === undefined || mt === 'gpt2') return fromHFGPT2(hf, file);
  if (LLAMA_MODEL_TYPES.includes(mt as LlamaModelType)) return fromHFLlama(hf, mt as LlamaModelType, file);
  throw new ConfigError(
    `${file}: model_type is ${JSON.stringify(mt)}; supported are ${['gpt2', ...LLAMA_MODEL_TYPES].map((t) => JSON.stringify(t)).join(', ')}`,
  );
}

/** Whether the architectures name a ...ForSequenceClassification, which must have exactly one label. */
function readValueHead(hf: Record<string, unknown>, file: string): boolean {
  const archs = Array.isArray(hf.architectures) ? (hf.architectures as unknown[]) : [];
  const valueHead = archs.some((a) => typeof a === 'string' && a.endsWith('ForSequenceClassification'));
  if (!valueHead) return false;
  if (hf.num_labels !== undefined && hf.num_labels !== 1)
    throw new ConfigError(`${file}: num_labels is ${JSON.stringify(hf.num_labels)}; a value head has exactly 1`);
  if (isObject(hf.id2label) && Object.keys(hf.id2label).length !== 1)
    throw new ConfigError(`${file}: id2label has ${Object.keys(hf.id2label).length} labels; a value head has exactly 1`);
  return true;
}

// The size fields are checked here so that errors name them as config.json spells them.
function size(file: string, field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1)
    throw new ConfigError(`${file}: ${field} must be a positive integer, got ${value === undefined ? 'nothing (it is missing)' : JSON.stringify(value)}`);
  return value;
}

function positive(file: string, field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)
    throw new ConfigError(`${file}: ${field} must be a number > 0, got ${value === undefined ? 'nothing (it is missing)' : JSON.stringify(value)}`);
  return value;
}

/** A boolean field, or its default when missing or null; any other value is refused (Python would read "false" as true). */
function flag(hf: Record<string, unknown>, file: string, field: string, def: boolean): boolean {
  const v = hf[field];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'boolean') throw new ConfigError(`${file}: ${field} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function fromHFGPT2(hf: Record<string, unknown>, file: string): GPTConfig {
  const act = hf.activation_function ?? 'gelu_new';
  if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh')
    throw new ConfigError(`${file}: activation_function ${JSON.stringify(act)} is not supported (the engine implements GPT-2's tanh GELU, "gelu_new")`);
  if (hf.n_inner !== undefined && hf.n_inner !== null && hf.n_inner !== 4 * (hf.n_embd as number))
    throw new ConfigError(`${file}: n_inner must be 4 * n_embd (or null)`);
  // null is no default here: transformers would hand it to LayerNorm
  const eps = hf.layer_norm_epsilon === undefined ? 1e-5 : hf.layer_norm_epsilon;
  if (eps !== 1e-5) throw new ConfigError(`${file}: layer_norm_epsilon ${JSON.stringify(eps)} is not supported (the engine uses 1e-5)`);
  // Variants of GPT-2's attention that change its numbers; the engine computes the original.
  if (!flag(hf, file, 'scale_attn_weights', true))
    throw new ConfigError(`${file}: scale_attn_weights false is not supported (the engine scales attention by 1/sqrt(head size))`);
  if (flag(hf, file, 'scale_attn_by_inverse_layer_idx', false))
    throw new ConfigError(`${file}: scale_attn_by_inverse_layer_idx true is not supported`);
  // read here for its type; whether the weights have an untied lm_head is loadModel's to check
  flag(hf, file, 'tie_word_embeddings', true);
  const valueHead = readValueHead(hf, file);
  const cfg = {
    vocabSize: size(file, 'vocab_size', hf.vocab_size),
    maxSeqLen: size(file, hf.n_positions === undefined && hf.n_ctx !== undefined ? 'n_ctx' : 'n_positions', hf.n_positions ?? hf.n_ctx),
    numLayers: size(file, 'n_layer', hf.n_layer),
    numHeads: size(file, 'n_head', hf.n_head),
    channels: size(file, 'n_embd', hf.n_embd),
    valueHead,
  };
  if (cfg.channels % cfg.numHeads !== 0)
    throw new ConfigError(`${file}: n_embd (${cfg.channels}) must be divisible by n_head (${cfg.numHeads})`);
  return resolveConfig(cfg, file);
}

/** RoPE's fields: rope_theta and rope_scaling, or transformers 5's rope_parameters. */
function readRope(hf: Record<string, unknown>, file: string): Pick<GPTConfig, 'ropeTheta' | 'ropeScaling'> & Partial<GPTConfig> {
  const params = hf.rope_parameters;
  let key = 'rope_scaling';
  let rs: unknown = hf.rope_scaling;
  let theta: unknown = hf.rope_theta;
  let thetaKey = 'rope_theta';
  if (params !== undefined && params !== null) {
    if (!isObject(params)) throw new ConfigError(`${file}: rope_parameters must be an object, got ${JSON.stringify(params)}`);
    key = 'rope_parameters';
    rs = params;
    if (params.rope_theta !== undefined) [theta, thetaKey] = [params.rope_theta, 'rope_parameters.rope_theta'];
  }
  const ropeTheta = theta === undefined || theta === null ? 10000 : positive(file, thetaKey, theta);
  if (rs === undefined || rs === null) return { ropeTheta, ropeScaling: 'none' };
  if (!isObject(rs)) throw new ConfigError(`${file}: ${key} must be null or an object, got ${JSON.stringify(rs)}`);
  const type = rs.rope_type ?? rs.type ?? 'default';
  if (type === 'default') return { ropeTheta, ropeScaling: 'none' };
  if (type !== 'llama3')
    throw new ConfigError(`${file}: ${key} of type ${JSON.stringify(type)} is not supported (the engine implements "default" and "llama3")`);
  const rope = {
    ropeTheta,
    ropeScaling: 'llama3' as const,
    ropeFactor: positive(file, `${key}.factor`, rs.factor),
    ropeLowFreqFactor: positive(file, `${key}.low_freq_factor`, rs.low_freq_factor),
    ropeHighFreqFactor: positive(file, `${key}.high_freq_factor`, rs.high_freq_factor),
    ropeOriginalMaxPos: size(file, `${key}.original_max_position_embeddings`, rs.original_max_position_embeddings),
  };
  // resolveConfig checks this too, in its own names; here the message names config.json's
  if (rope.ropeHighFreqFactor <= rope.ropeLowFreqFactor)
    throw new ConfigError(`${file}: ${key}.high_freq_factor (${rope.ropeHighFreqFactor}) must be greater than ${key}.low_freq_factor (${rope.ropeLowFreqFactor})`);
  return rope;
}

function fromHFLlama(hf: Record<string, unknown>, type: LlamaModelType, file: string): GPTConfig {
  const fail = (msg: string): never => {
    throw new ConfigError(`${file}: ${msg}`);
  };
  const act = hf.hidden_act ?? 'silu';
  if (act !== 'silu') fail(`hidden_act ${JSON.stringify(act)} is not supported (the engine implements SwiGLU with "silu")`);
  const boolOr = (field: string, def: boolean): boolean => flag(hf, file, field, def);
  if (boolOr('mlp_bias', false)) fail('mlp_bias true is not supported (the engine has no MLP biases)');
  const maxSeqLen = size(file, 'max_position_embeddings', hf.max_position_embeddings);
  // Attention over a window shorter than the context changes the numbers; the engine attends to all of it.
  if (type === 'qwen2' && boolOr('use_sliding_window', false))
    fail('use_sliding_window true: sliding window attention is not supported (the engine attends to the whole context)');
  if (type === 'mistral') {
    // MistralConfig's default window is 4096.
    const w = hf.sliding_window === undefined ? 4096 : hf.sliding_window;
    if (w !== null && !(typeof w === 'number' && w >= maxSeqLen))
      fail(
        `sliding_window ${JSON.stringify(w)}${hf.sliding_window === undefined ? ' (Mistral\'s default, as the key is missing)' : ''} is shorter than max_position_embeddings (${maxSeqLen}): sliding window attention is not supported`,
      );
  }
  if (hf.layer_types !== undefined && hf.layer_types !== null) {
    if (!Array.isArray(hf.layer_types) || hf.layer_types.some((t) => t !== 'full_attention'))
      fail('layer_types must all be "full_attention": sliding window attention is not supported');
  }
  const channels = size(file, 'hidden_size', hf.hidden_size);
  const numHeads = size(file, 'num_attention_heads', hf.num_attention_heads);
  const numKvHeads = hf.num_key_value_heads == null ? numHeads : size(file, 'num_key_value_heads', hf.num_key_value_heads);
  if (numHeads % numKvHeads !== 0) fail(`num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`);
  let headDim: number;
  if (hf.head_dim == null) {
    if (channels % numHeads !== 0) fail(`hidden_size (${channels}) must be divisible by num_attention_heads (${numHeads}) when head_dim is not given`);
    headDim = channels / numHeads;
  } else headDim = size(file, 'head_dim', hf.head_dim);
  if (headDim % 2 !== 0)
    fail(`${hf.head_dim == null ? `hidden_size / num_attention_heads (${headDim})` : `head_dim ${headDim}`} must be even: rotary embeddings pair its halves`);
  const rmsEps = hf.rms_norm_eps === undefined ? 1e-6 : positive(file, 'rms_norm_eps', hf.rms_norm_eps); // the classes' default
  const cfg: GPTConfigInput = {
    arch: 'llama',
    vocabSize: size(file, 'vocab_size', hf.vocab_size),
    maxSeqLen,
    numLayers: size(file, 'num_hidden_layers', hf.num_hidden_layers),
    numHeads,
    numKvHeads,
    channels,
    headDim,
    ffnSize: size(file, 'intermediate_size', hf.intermediate_size),
    normEps: rmsEps,
    ...readRope(hf, file),
    // Qwen2 always has q/k/v biases; Llama's attention_bias adds them (and an o_proj bias, which must be zero).
    qkvBias: type === 'qwen2' ? true : type === 'llama' ? boolOr('attention_bias', false) : false,
    tieEmbeddings: boolOr('tie_word_embeddings', false), // False in LlamaConfig, Qwen2Config and MistralConfig
    valueHead: readValueHead(hf, file),
  };
  return resolveConfig(cfg, file);
}
