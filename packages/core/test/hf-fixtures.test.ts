// scripts/make-hf-model.ts: the random-weight Hugging Face model folders of the Llama family
// (SmolLM2, Qwen2.5, TinyLlama, Llama 3.2) at tiny sizes: the files, config.json and tensors
// against the Hub's layout, the tokenizer each folder carries, the sharded form, the command line,
// and loading a folder into the engine.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHFModel, splitIntoShards, type HFFamily, type MakeHFModelResult } from '../../../scripts/make-hf-model.js';
import { assertTokenizerFitsModel, loadModel, readSafetensors, toFloat32, Tokenizer, type SafetensorsFile } from '../src/index.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPT = path.join(REPO, 'scripts/make-hf-model.ts');

// Tiny sizes: 2 layers, width 64, 4 heads of 16 (2 key/value heads), MLP 96, 64 positions.
const TINY = { layers: 2, width: 64, heads: 4, kvHeads: 2, ffn: 96, maxPos: 64 };

let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 's2s-hf-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const readJSON = async (dir: string, file: string) => JSON.parse(await fs.readFile(path.join(dir, file), 'utf8')) as Record<string, unknown>;

/** Every tensor of the folder's weight files, by name, with the file it is in. */
async function readWeights(dir: string, files: string[]): Promise<Map<string, { file: string; st: SafetensorsFile; name: string }>> {
  const out = new Map<string, { file: string; st: SafetensorsFile; name: string }>();
  for (const file of files) {
    const st = await readSafetensors(path.join(dir, file));
    expect(st.metadata).toEqual({ format: 'pt' });
    for (const name of st.tensors.keys()) {
      expect(out.has(name), `${name} in two files`).toBe(false);
      out.set(name, { file, st, name });
    }
  }
  return out;
}

/** The tensors the Hub's folder of the family has, in transformers' names, with shapes (written out here, not taken from the script). */
function expectedTensors(o: { V: number; C: number; L: number; NH: number; KVH: number; hd: number; F: number; bias: boolean; lmHead: boolean; score: boolean }): Map<string, number[]> {
  const m = new Map<string, number[]>([['model.embed_tokens.weight', [o.V, o.C]]]);
  for (let l = 0; l < o.L; l++) {
    const p = `model.layers.${l}.`;
    m.set(`${p}input_layernorm.weight`, [o.C]);
    m.set(`${p}self_attn.q_proj.weight`, [o.NH * o.hd, o.C]);
    m.set(`${p}self_attn.k_proj.weight`, [o.KVH * o.hd, o.C]);
    m.set(`${p}self_attn.v_proj.weight`, [o.KVH * o.hd, o.C]);
    if (o.bias) {
      m.set(`${p}self_attn.q_proj.bias`, [o.NH * o.hd]);
      m.set(`${p}self_attn.k_proj.bias`, [o.KVH * o.hd]);
      m.set(`${p}self_attn.v_proj.bias`, [o.KVH * o.hd]);
    }
    m.set(`${p}self_attn.o_proj.weight`, [o.C, o.NH * o.hd]);
    m.set(`${p}post_attention_layernorm.weight`, [o.C]);
    m.set(`${p}mlp.gate_proj.weight`, [o.F, o.C]);
    m.set(`${p}mlp.up_proj.weight`, [o.F, o.C]);
    m.set(`${p}mlp.down_proj.weight`, [o.C, o.F]);
  }
  m.set('model.norm.weight', [o.C]);
  if (o.lmHead) m.set('lm_head.weight', [o.V, o.C]);
  if (o.score) m.set('score.weight', [1, o.C]);
  return m;
}

const sameBits = (a: Float32Array, b: Float32Array) =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

const std = (x: Float32Array) => {
  let s = 0;
  let s2 = 0;
  for (const v of x) {
    s += v;
    s2 += v * v;
  }
  const mean = s / x.length;
  return Math.sqrt(s2 / x.length - mean * mean);
};

interface FamilyExpect {
  family: HFFamily;
  arch: string;
  modelType: string;
  /** embedding rows and tokenizer ids at default vocab */
  vocab: number;
  tokVocab: number;
  tied: boolean;
  bias: boolean;
  initRange: number;
  files: string[];
  /** config.json keys and values of the Hub's folder that the size flags leave alone */
  config: Record<string, unknown>;
  generation: Record<string, unknown>;
  tok: { bos: number | undefined; eos: number | undefined; pad: number | undefined };
}

const COMMON_FILES = ['README.md', 'config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];

const FAMILIES: FamilyExpect[] = [
  {
    family: 'smollm2',
    arch: 'LlamaForCausalLM',
    modelType: 'llama',
    // GPT-2's tokenizer stands in for SmolLM2's 49152-id one
    vocab: 50257,
    tokVocab: 50257,
    tied: true,
    bias: false,
    initRange: 0.041666666666666664,
    files: [...COMMON_FILES, 'special_tokens_map.json'],
    config: { rope_theta: 100000, rms_norm_eps: 1e-5, bos_token_id: 50256, eos_token_id: 50256, hidden_act: 'silu', attention_bias: false, rope_scaling: null, is_llama_config: true },
    generation: { bos_token_id: 50256, eos_token_id: 50256 },
    tok: { bos: 50256, eos: 50256, pad: undefined },
  },
  {
    family: 'qwen2.5',
    arch: 'Qwen2ForCausalLM',
    modelType: 'qwen2',
    vocab: 151936,
    tokVocab: 151665,
    tied: true,
    bias: true,
    initRange: 0.02,
    files: COMMON_FILES,
    config: { rope_theta: 1000000, rms_norm_eps: 1e-6, bos_token_id: 151643, eos_token_id: 151645, use_sliding_window: false, max_window_layers: 2, sliding_window: 64 },
    generation: { bos_token_id: 151643, pad_token_id: 151643, eos_token_id: [151645, 151643], do_sample: true, temperature: 0.7, top_p: 0.8, top_k: 20, repetition_penalty: 1.1 },
    tok: { bos: undefined, eos: 151645, pad: 151643 },
  },
  {
    family: 'tinyllama',
    arch: 'LlamaForCausalLM',
    modelType: 'llama',
    vocab: 32000,
    tokVocab: 32000,
    tied: false,
    bias: false,
    initRange: 0.02,
    files: [...COMMON_FILES, 'special_tokens_map.json'],
    config: { rope_theta: 10000, rms_norm_eps: 1e-5, bos_token_id: 1, eos_token_id: 2, attention_bias: false, rope_scaling: null, pretraining_tp: 1 },
    generation: { bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, max_length: 2048 },
    tok: { bos: 1, eos: 2, pad: 2 },
  },
  {
    family: 'llama3.2',
    arch: 'LlamaForCausalLM',
    modelType: 'llama',
    vocab: 128256,
    tokVocab: 128256,
    tied: true,
    bias: false,
    initRange: 0.02,
    files: [...COMMON_FILES, 'special_tokens_map.json'],
    config: {
      rope_theta: 500000,
      rms_norm_eps: 1e-5,
      bos_token_id: 128000,
      eos_token_id: [128001, 128008, 128009],
      head_dim: 16,
      rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
      mlp_bias: false,
    },
    generation: { bos_token_id: 128000, eos_token_id: [128001, 128008, 128009], do_sample: true, temperature: 0.6, top_p: 0.9 },
    tok: { bos: 128000, eos: 128009, pad: undefined },
  },
];

describe.each(FAMILIES)('$family folder', (f) => {
  let r: MakeHFModelResult;
  let dir: string;
  beforeAll(async () => {
    dir = path.join(root, f.family);
    r = await makeHFModel({ family: f.family, out: dir, ...TINY, seed: 5 });
  });

  it('has the Hub folder\'s files', async () => {
    expect((await fs.readdir(dir)).sort()).toEqual([...f.files].sort());
    expect(r.files).toEqual([...f.files].sort());
    expect(r.weightFiles).toEqual(['model.safetensors']);
  });

  it('has config.json and generation_config.json as the Hub\'s, at the requested size', async () => {
    const c = await readJSON(dir, 'config.json');
    expect(c).toMatchObject({
      architectures: [f.arch],
      model_type: f.modelType,
      hidden_size: 64,
      intermediate_size: 96,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 64,
      vocab_size: f.vocab,
      tie_word_embeddings: f.tied,
      initializer_range: f.initRange,
      torch_dtype: 'bfloat16',
      ...f.config,
    });
    expect(Object.keys(c)).toEqual(Object.keys(c).sort()); // transformers sorts the keys
    expect(await readJSON(dir, 'generation_config.json')).toMatchObject(f.generation);
  });

  it('has the tensors of the Hub\'s state dict, in bf16, initialised as transformers does', async () => {
    const want = expectedTensors({ V: f.vocab, C: 64, L: 2, NH: 4, KVH: 2, hd: 16, F: 96, bias: f.bias, lmHead: !f.tied, score: false });
    const got = await readWeights(dir, ['model.safetensors']);
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [name, shape] of want) {
      const t = got.get(name)!.st.tensors.get(name)!;
      expect(t.shape, name).toEqual(shape);
      expect(t.dtype, name).toBe('BF16');
      const x = toFloat32(t);
      if (name.endsWith('norm.weight')) expect(x.every((v) => v === 1), name).toBe(true);
      else if (name.endsWith('.bias')) {
        // small random biases where transformers zeroes them (documented in the folder's README)
        expect(x.some((v) => v !== 0), name).toBe(true);
        expect(Math.max(...x.map(Math.abs)), name).toBeLessThan(0.2);
      } else if (x.length >= 4096) expect(std(x) / f.initRange, name).toBeCloseTo(1, 1);
    }
    // the layer weights differ from each other (each tensor has its own random stream)
    const a = toFloat32(got.get('model.layers.0.mlp.up_proj.weight')!.st.tensors.get('model.layers.0.mlp.up_proj.weight')!);
    const b = toFloat32(got.get('model.layers.1.mlp.up_proj.weight')!.st.tensors.get('model.layers.1.mlp.up_proj.weight')!);
    expect(a).not.toEqual(b);
    expect(r.numParams).toBe([...want.values()].reduce((s, sh) => s + sh.reduce((p, d) => p * d, 1), 0));
    expect(r.totalSize).toBe(r.numParams * 2);
  });

  it('carries its tokenizer: Tokenizer.load reads it, its ids fit the embedding, config.json\'s special ids are the tokenizer\'s', async () => {
    const tok = await Tokenizer.load(dir);
    expect(tok.vocabSize).toBe(f.tokVocab);
    expect([tok.bosId, tok.eosId, tok.padId]).toEqual([f.tok.bos, f.tok.eos, f.tok.pad]);
    assertTokenizerFitsModel(tok, { vocabSize: f.vocab });
    const c = await readJSON(dir, 'config.json');
    const eos = [c.eos_token_id].flat();
    expect(eos).toContain(tok.eosId);
    if (tok.bosId !== undefined) expect(c.bos_token_id).toBe(tok.bosId);
    for (const id of eos as number[]) expect(tok.idToToken(id)).toBeDefined();
    const s = 'Hello world, héllo 👋';
    expect(tok.decode(tok.encode(s))).toBe(s);
    expect(await fs.readFile(path.join(dir, 'README.md'), 'utf8')).toMatch(/random weights/);
  });
});

describe('family specifics', () => {
  it('tinyllama: TinyLlama-Chat\'s zephyr chat_template and pad </s>; the README names the Mistral stand-in', async () => {
    const dir = path.join(root, 'tinyllama');
    const cfg = await readJSON(dir, 'tokenizer_config.json');
    expect(cfg).toMatchObject({ tokenizer_class: 'LlamaTokenizer', bos_token: '<s>', eos_token: '</s>', pad_token: '</s>', unk_token: '<unk>', add_bos_token: true, add_eos_token: false });
    expect(cfg.chat_template).toBe(
      "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}",
    );
    expect(await fs.readFile(path.join(dir, 'README.md'), 'utf8')).toMatch(/Mistral-7B/);
  });

  it('llama3.2: eos_token <|eot_id|> (128009) in tokenizer_config.json and special_tokens_map.json', async () => {
    const dir = path.join(root, 'llama3.2');
    expect((await readJSON(dir, 'tokenizer_config.json')).eos_token).toBe('<|eot_id|>');
    expect(await readJSON(dir, 'special_tokens_map.json')).toMatchObject({ bos_token: { content: '<|begin_of_text|>' }, eos_token: { content: '<|eot_id|>' } });
  });

  it('qwen2.5: the package\'s tokenizer files verbatim, chat_template included', async () => {
    const dir = path.join(root, 'qwen2.5');
    const cfg = await readJSON(dir, 'tokenizer_config.json');
    expect(cfg.chat_template).toMatch(/<\|im_start\|>system\\nYou are Qwen, created by Alibaba Cloud/);
    expect(cfg.bos_token).toBeNull();
  });

  it('smollm2: GPT-2\'s byte-level BPE stands in for SmolLM2\'s tokenizer, and the README says so', async () => {
    const dir = path.join(root, 'smollm2');
    const tok = await Tokenizer.load(dir);
    expect(tok.encode('Hello world!')).toEqual([15496, 995, 0]); // GPT-2's published ids
    expect(await fs.readFile(path.join(dir, 'README.md'), 'utf8')).toMatch(/stand-in.*GPT-2/s);
  });
});

describe('sharded weights', () => {
  it('splits as transformers does and writes model.safetensors.index.json; the values do not depend on the sharding', async () => {
    const dir = path.join(root, 'tinyllama-sharded');
    // the embedding and lm_head (32000 x 64 x 2 bytes = 4 MB each) are over 1 MB: shards of their own;
    // the layers and the final norm (120 KB) share the third
    const r = await makeHFModel({ family: 'tinyllama', out: dir, ...TINY, seed: 5, shardSize: 1_000_000 });
    const n = r.weightFiles.length;
    expect(n).toBe(3);
    expect(r.weightFiles).toEqual(['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
    const files = (await fs.readdir(dir)).sort();
    expect(files).toEqual([...FAMILIES[2].files.filter((x) => x !== 'model.safetensors'), ...r.weightFiles, 'model.safetensors.index.json'].sort());
    const index = await readJSON(dir, 'model.safetensors.index.json');
    const got = await readWeights(dir, r.weightFiles);
    const weightMap = index.weight_map as Record<string, string>;
    expect(Object.keys(weightMap).sort()).toEqual([...got.keys()].sort());
    let bytes = 0;
    for (const [name, { file, st }] of got) {
      expect(weightMap[name], name).toBe(file);
      bytes += st.tensors.get(name)!.bytes.byteLength;
    }
    expect(index.metadata).toEqual({ total_parameters: r.numParams, total_size: bytes });
    expect(bytes).toBe(r.totalSize);
    expect(got.get('model.embed_tokens.weight')!.file).toBe(r.weightFiles[0]);
    // lm_head, over the limit, gets its shard when it comes, before the open shard of layers closes
    expect(got.get('lm_head.weight')!.file).toBe(r.weightFiles[1]);
    expect(got.get('model.layers.1.mlp.down_proj.weight')!.file).toBe(r.weightFiles[2]);
    expect(got.get('model.norm.weight')!.file).toBe(r.weightFiles[2]);
    // the same seed unsharded: the same bytes for every tensor
    const one = await makeHFModel({ family: 'tinyllama', out: path.join(root, 'tinyllama-unsharded'), ...TINY, seed: 5 });
    const single = await readWeights(one.dir, one.weightFiles);
    for (const [name, { st }] of got) expect(Buffer.from(st.tensors.get(name)!.bytes).equals(Buffer.from(single.get(name)!.st.tensors.get(name)!.bytes)), name).toBe(true);
    expect((await Tokenizer.load(dir)).eosId).toBe(2);
  });

  it('splitIntoShards follows huggingface_hub: a tensor over the limit alone, where it comes; otherwise a new shard when the next would overflow', () => {
    const t = (name: string, bytes: number) => ({ name, bytes });
    // a(3) b(3) make 6; c would make 9 > 7: [a, b] closes; d(20) > 7 gets its own shard at once,
    // before the open [c] closes; e joins c
    expect(splitIntoShards([t('a', 3), t('b', 3), t('c', 3), t('d', 20), t('e', 1)], 7)).toEqual([['a', 'b'], ['d'], ['c', 'e']]);
    expect(splitIntoShards([t('a', 5)], 5)).toEqual([['a']]);
    expect(splitIntoShards([t('a', 2), t('b', 2), t('c', 2)], 100)).toEqual([['a', 'b', 'c']]);
  });
});

describe('options', () => {
  it('--value-head: ...ForSequenceClassification with score.weight [1, C], no LM head, num_labels 1, pad_token_id where the tokenizer has a pad', async () => {
    const dir = path.join(root, 'tinyllama-rm');
    const r = await makeHFModel({ family: 'tinyllama', out: dir, ...TINY, valueHead: true });
    const c = await readJSON(dir, 'config.json');
    expect(c).toMatchObject({ architectures: ['LlamaForSequenceClassification'], num_labels: 1, id2label: { '0': 'LABEL_0' }, label2id: { LABEL_0: 0 }, pad_token_id: 2 });
    const got = await readWeights(dir, r.weightFiles);
    expect(got.get('score.weight')!.st.tensors.get('score.weight')!.shape).toEqual([1, 64]);
    expect(got.has('lm_head.weight')).toBe(false);
    const q = await makeHFModel({ family: 'qwen2.5', out: path.join(root, 'qwen-rm'), ...TINY, valueHead: true, vocab: 151680 });
    expect(q.config).toMatchObject({ architectures: ['Qwen2ForSequenceClassification'], vocab_size: 151680, pad_token_id: 151643 });
  });

  it('fp16 / fp32, and the same seed gives the same weights', async () => {
    const a = await makeHFModel({ family: 'smollm2', out: path.join(root, 'smol-fp32'), ...TINY, layers: 1, dtype: 'fp32', seed: 9 });
    const b = await makeHFModel({ family: 'smollm2', out: path.join(root, 'smol-fp16'), ...TINY, layers: 1, dtype: 'fp16', seed: 9 });
    expect(a.config.torch_dtype).toBe('float32');
    expect(b.config.torch_dtype).toBe('float16');
    const wa = (await readSafetensors(path.join(a.dir, 'model.safetensors'))).tensors.get('model.layers.0.self_attn.q_proj.weight')!;
    const wb = (await readSafetensors(path.join(b.dir, 'model.safetensors'))).tensors.get('model.layers.0.self_attn.q_proj.weight')!;
    expect([wa.dtype, wb.dtype]).toEqual(['F32', 'F16']);
    const fa = toFloat32(wa);
    const fb = toFloat32(wb);
    // fp16 is fp32 rounded to 11 significant bits (the values are far from fp16's subnormals)
    let worst = 0;
    for (let i = 0; i < fa.length; i++) worst = Math.max(worst, Math.abs(fa[i] - fb[i]) / Math.abs(fa[i]));
    expect(worst).toBeLessThanOrEqual(2 ** -11);
  });

  it('refuses an embedding smaller than the tokenizer, naming both sizes, and bad sizes', async () => {
    await expect(makeHFModel({ family: 'qwen2.5', out: path.join(root, 'bad'), ...TINY, vocab: 151000 })).rejects.toThrow(/vocab 151000 is smaller than the qwen2.5 tokenizer's 151665 ids/);
    await expect(makeHFModel({ family: 'llama3.2', out: path.join(root, 'bad'), ...TINY, heads: 3 })).rejects.toThrow(/width 64 is not a multiple of heads 3/);
    await expect(makeHFModel({ family: 'llama3.2', out: path.join(root, 'bad'), ...TINY, kvHeads: 3 })).rejects.toThrow(/heads 4 is not a multiple of kvHeads 3/);
    await expect(fs.stat(path.join(root, 'bad'))).rejects.toThrow(/ENOENT/);
  });

  it('runs from the command line', async () => {
    const out = path.join(root, 'cli-smollm2');
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', SCRIPT, '--family', 'smollm2', '--out', out, '--layers', '1', '--width', '32', '--heads', '2', '--kv-heads', '1', '--ffn', '48', '--max-pos', '32', '--seed', '3', '--value-head'],
      { cwd: REPO },
    );
    expect(stdout).toMatch(/smollm2 \(LlamaForSequenceClassification\), 1 layers, hidden 32/);
    expect((await fs.readdir(out)).sort()).toContain('model.safetensors');
    const bad = await promisify(execFile)(process.execPath, ['--conditions=source', '--import', 'tsx', SCRIPT, '--family', 'gpt5', '--out', out], { cwd: REPO }).catch((e) => e);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--family must be one of smollm2, qwen2.5, tinyllama, llama3.2/);
  });
});

describe('loading into the engine', () => {
  // Every family at tiny size, one sharded: loadModel reads config.json and the weights; the engine's
  // parameters are the file's values (bf16 -> float32 is exact), and a forward pass runs.
  it.each([
    ['smollm2', {}],
    ['qwen2.5', {}],
    ['tinyllama', { shardSize: 1_000_000 }],
    ['llama3.2', {}],
  ] as const)('%s', async (family, extra) => {
    const dir = path.join(root, `load-${family}`);
    const r = await makeHFModel({ family, out: dir, ...TINY, seed: 21, ...extra });
    const m = await loadModel(dir);
    try {
      expect(m.config).toMatchObject({ arch: 'llama', vocabSize: r.config.vocab_size, numLayers: 2, numHeads: 4, numKvHeads: 2, channels: 64, ffnSize: 96, maxSeqLen: 64 });
      const files = await readWeights(dir, r.weightFiles);
      const { params } = await m.snapshot();
      for (const t of m.layout()) {
        const f = files.get(t.name) ?? files.get(`model.${t.name}`);
        expect(f, t.name).toBeDefined();
        const want = toFloat32(f!.st.tensors.get(f!.name)!);
        // bytes compared: toEqual walks millions of elements one by one
        expect(sameBits(params.subarray(t.offset, t.offset + t.numel), want), t.name).toBe(true);
      }
      const T = 8;
      const tokens = Int32Array.from({ length: T }, (_, i) => (i * 7919) % r.tokenizerVocab);
      const targets = Int32Array.from({ length: T }, (_, i) => (i < T - 1 ? tokens[i + 1] : -1));
      const { logprob } = await m.forward({ tokens, targets, B: 1, T });
      expect(logprob.every((v) => Number.isFinite(v) && v <= 0)).toBe(true);
    } finally {
      m.dispose();
    }
  });
});
