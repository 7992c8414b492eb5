// The model's size and shape, its defaults, and the mapping to and from Hugging Face's
// GPT-2 config.json.

export interface GPTConfig {
  /** V: number of token ids */
  vocabSize: number;
  /** context length (GPT-2's n_positions) */
  maxSeqLen: number;
  numLayers: number;
  numHeads: number;
  /** model width (GPT-2's n_embd) */
  channels: number;
  /** a scalar head on the final hidden state (GPT2ForSequenceClassification's `score`) */
  valueHead: boolean;
}

export type GPTConfigInput = Omit<GPTConfig, 'valueHead'> & { valueHead?: boolean };

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Checks a config and fills defaults; every error names the field. */
export function resolveConfig(c: GPTConfigInput, source = 'model config'): GPTConfig {
  const int = (field: keyof GPTConfigInput, value: unknown): number => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1)
      throw new ConfigError(`${source}: ${field} must be a positive integer, got ${JSON.stringify(value)}`);
    return value;
  };
  const cfg: GPTConfig = {
    vocabSize: int('vocabSize', c.vocabSize),
    maxSeqLen: int('maxSeqLen', c.maxSeqLen),
    numLayers: int('numLayers', c.numLayers),
    numHeads: int('numHeads', c.numHeads),
    channels: int('channels', c.channels),
    valueHead: c.valueHead ?? false,
  };
  if (typeof cfg.valueHead !== 'boolean')
    throw new ConfigError(`${source}: valueHead must be a boolean, got ${JSON.stringify(c.valueHead)}`);
  if (cfg.channels % cfg.numHeads !== 0)
    throw new ConfigError(`${source}: channels (${cfg.channels}) must be divisible by numHeads (${cfg.numHeads})`);
  return cfg;
}

/** Hugging Face GPT-2 config.json for this model (loadable by transformers' GPT2LMHeadModel, or
 * GPT2ForSequenceClassification when it has a value head). */
export function toHFConfig(cfg: GPTConfig, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
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
    initializer_range: 0.02,
    // The engine has no dropout; saying so keeps transformers from adding it.
    resid_pdrop: 0.0,
    embd_pdrop: 0.0,
    attn_pdrop: 0.0,
    summary_first_dropout: 0.0,
    scale_attn_weights: true,
    tie_word_embeddings: true,
    ...(cfg.valueHead ? { num_labels: 1, id2label: { '0': 'LABEL_0' }, label2id: { LABEL_0: 0 } } : {}),
    ...extra,
  };
}

/** Reads a Hugging Face GPT-2 config.json object; `file` names it in errors. */
export function fromHFConfig(hf: Record<string, unknown>, file = 'config.json'): GPTConfig {
  if (hf.model_type !== undefined && hf.model_type !== 'gpt2')
    throw new ConfigError(`${file}: model_type is ${JSON.stringify(hf.model_type)}; only "gpt2" models are supported`);
  const act = hf.activation_function ?? 'gelu_new';
  if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh')
    throw new ConfigError(`${file}: activation_function ${JSON.stringify(act)} is not supported (the engine implements GPT-2's tanh GELU, "gelu_new")`);
  if (hf.n_inner !== undefined && hf.n_inner !== null && hf.n_inner !== 4 * (hf.n_embd as number))
    throw new ConfigError(`${file}: n_inner must be 4 * n_embd (or null)`);
  const eps = hf.layer_norm_epsilon ?? 1e-5;
  if (eps !== 1e-5) throw new ConfigError(`${file}: layer_norm_epsilon ${JSON.stringify(eps)} is not supported (the engine uses 1e-5)`);
  // Variants of GPT-2's attention that change its numbers; the engine computes the original.
  if (hf.scale_attn_weights === false)
    throw new ConfigError(`${file}: scale_attn_weights false is not supported (the engine scales attention by 1/sqrt(head size))`);
  if (hf.scale_attn_by_inverse_layer_idx === true)
    throw new ConfigError(`${file}: scale_attn_by_inverse_layer_idx true is not supported`);
  const archs = Array.isArray(hf.architectures) ? (hf.architectures as unknown[]) : [];
  const valueHead = archs.includes('GPT2ForSequenceClassification');
  if (valueHead && hf.num_labels !== undefined && hf.num_labels !== 1)
    throw new ConfigError(`${file}: num_labels is ${JSON.stringify(hf.num_labels)}; a value head has exactly 1`);
  // The size fields are checked here so that errors name them as config.json spells them.
  const size = (field: string, value: unknown): number => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1)
      throw new ConfigError(`${file}: ${field} must be a positive integer, got ${value === undefined ? 'nothing (it is missing)' : JSON.stringify(value)}`);
    return value;
  };
  const cfg = {
    vocabSize: size('vocab_size', hf.vocab_size),
    maxSeqLen: size(hf.n_positions === undefined && hf.n_ctx !== undefined ? 'n_ctx' : 'n_positions', hf.n_positions ?? hf.n_ctx),
    numLayers: size('n_layer', hf.n_layer),
    numHeads: size('n_head', hf.n_head),
    channels: size('n_embd', hf.n_embd),
    valueHead,
  };
  if (cfg.channels % cfg.numHeads !== 0)
    throw new ConfigError(`${file}: n_embd (${cfg.channels}) must be divisible by n_head (${cfg.numHeads})`);
  return resolveConfig(cfg, file);
}
