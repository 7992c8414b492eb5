// Checkpoints: bit-exact round trips (weights, optimizer, resume), GPT-2 naming, refusals, atomic replacement,
// bfloat16/float16 weights, shards as save_pretrained writes them, and what travels with a loaded model.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  checkpointSource,
  encodeSafetensors,
  float32ToBF16,
  float32ToF16,
  loadModel,
  Model,
  parseSafetensors,
  parseShardSize,
  readCheckpointConfig,
  saveModel,
  toFloat32,
  toHFConfig,
  type GPTConfigInput,
  type TensorToWrite,
} from '../src/index.js';

const CFG: GPTConfigInput = { vocabSize: 97, maxSeqLen: 32, numLayers: 2, numHeads: 2, channels: 16 };
const B = 2;
const T = 8;

let root: string;
let n = 0;
const fresh = () => path.join(root, `ck${n++}`);

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 's2s-ckpt-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

function batch(seed: number) {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s % 97);
  const tokens = Int32Array.from({ length: B * T }, next);
  const targets = Int32Array.from({ length: B * T }, next);
  return { tokens, targets, B, T };
}

async function trainStep(m: Model, seed: number) {
  await m.forward(batch(seed), { values: m.config.valueHead });
  await m.backward({
    dlogprob: new Float32Array(B * T).fill(-1 / (B * T)),
    dvalue: m.config.valueHead ? new Float32Array(B * T).fill(0.1) : null,
  });
  await m.step({ lr: 1e-2, weightDecay: 0.1 });
}

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
async function expectSameBuffers(a: Model, b: Model, kinds: ('params' | 'adam_m' | 'adam_v')[]) {
  for (const k of kinds) expect(Buffer.compare(bytes(await a.readBuffer(k)), bytes(await b.readBuffer(k))), k).toBe(0);
}

/** Every file of a checkpoint, by name. */
async function snapshot(dir: string): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {};
  for (const f of (await fs.readdir(dir)).sort()) out[f] = await fs.readFile(path.join(dir, f));
  return out;
}

/** A checkpoint written by hand: config.json + model.safetensors from the given tensors. */
async function handCheckpoint(tensors: Map<string, TensorToWrite>, config: Record<string, unknown> = toHFConfig({ ...CFG, valueHead: false })) {
  const dir = fresh();
  await fs.mkdir(dir);
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(config));
  await fs.writeFile(path.join(dir, 'model.safetensors'), encodeSafetensors(tensors, { format: 'pt' }));
  return dir;
}

/** The model's tensors under their own names, as TensorToWrite. */
async function tensorsOf(m: Model): Promise<Map<string, TensorToWrite>> {
  const params = await m.readBuffer('params');
  return new Map(m.layout().map((t) => [t.name, { shape: t.shape, data: params.slice(t.offset, t.offset + t.numel) }]));
}

let base: Model;
beforeAll(async () => {
  base = await Model.create(CFG, { seed: 7 });
});

describe('saveModel / loadModel round trip', () => {
  for (const valueHead of [false, true]) {
    it(`is bit-exact for weights, optimizer state and what follows (valueHead: ${valueHead})`, async () => {
      const m = await Model.create({ ...CFG, valueHead }, { seed: 3 });
      await trainStep(m, 1);
      await trainStep(m, 2);
      expect((await m.readBuffer('adam_v')).some((x) => x > 0)).toBe(true);
      const dir = fresh();
      await saveModel(m, dir, { optimizer: true });
      expect((await fs.readdir(dir)).sort()).toEqual(['config.json', 'model.safetensors', 'optimizer.safetensors']);

      const r = await loadModel(dir);
      expect(r.config).toEqual(m.config);
      expect(r.optimizerStep).toBe(2);
      await expectSameBuffers(m, r, ['params', 'adam_m', 'adam_v']);
      const fa = await m.forward(batch(9), { values: valueHead });
      const fb = await r.forward(batch(9), { values: valueHead });
      expect(Buffer.compare(bytes(fa.logprob), bytes(fb.logprob))).toBe(0);
      if (valueHead) expect(Buffer.compare(bytes(fa.values!), bytes(fb.values!))).toBe(0);
      // exact resume: one more step on each gives the same weights
      await trainStep(m, 3);
      await trainStep(r, 3);
      await expectSameBuffers(m, r, ['params', 'adam_m', 'adam_v']);
      expect(r.optimizerStep).toBe(3);

      // without optimizer state: weights only, fresh optimizer
      const dir2 = fresh();
      await saveModel(m, dir2);
      expect((await fs.readdir(dir2)).sort()).toEqual(['config.json', 'model.safetensors']);
      const w = await loadModel(dir2);
      await expectSameBuffers(m, w, ['params']);
      expect(w.optimizerStep).toBe(0);
      // optimizer: false skips the file even when present
      expect((await loadModel(dir, { optimizer: false })).optimizerStep).toBe(0);
      for (const x of [m, r, w]) x.dispose();
    });
  }

  it('writes a Hugging Face config.json and tensor names', async () => {
    const m = await Model.create({ ...CFG, valueHead: true }, { seed: 1 });
    const dir = fresh();
    await saveModel(m, dir, { config: { eos_token_id: 96 }, files: { 'tokenizer.json': '{"x":1}' } });
    const cfg = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8'));
    expect(cfg).toMatchObject({
      architectures: ['GPT2ForSequenceClassification'],
      model_type: 'gpt2',
      vocab_size: 97,
      n_positions: 32,
      n_embd: 16,
      n_layer: 2,
      n_head: 2,
      num_labels: 1,
      eos_token_id: 96,
      torch_dtype: 'float32',
    });
    expect(await fs.readFile(path.join(dir, 'tokenizer.json'), 'utf8')).toBe('{"x":1}');
    expect(await readCheckpointConfig(dir)).toEqual(m.config);
    const st = await fs.readFile(path.join(dir, 'model.safetensors'));
    const header = JSON.parse(st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString());
    expect(header.__metadata__).toEqual({ format: 'pt' });
    expect(header['transformer.h.1.attn.c_attn.weight'].shape).toEqual([16, 48]);
    expect(header['score.weight'].shape).toEqual([1, 16]);
    expect(Object.keys(header)).toHaveLength(m.layout().length + 1);
    m.dispose();
  });

  it('gives identical bytes when the same model is saved twice', async () => {
    const m = await Model.create(CFG, { seed: 5 });
    await trainStep(m, 4);
    const a = fresh();
    const b = fresh();
    await saveModel(m, a, { optimizer: true });
    await saveModel(m, b, { optimizer: true });
    const sa = await snapshot(a);
    const sb = await snapshot(b);
    expect(Object.keys(sa)).toEqual(Object.keys(sb));
    for (const f of Object.keys(sa)) expect(Buffer.compare(sa[f], sb[f]), f).toBe(0);
    m.dispose();
  });
});

describe('GPT-2 checkpoints from transformers', () => {
  it('loads names without "transformer.", skips attn.bias buffers, accepts a tied lm_head', async () => {
    const own = await tensorsOf(base);
    const gpt2 = new Map<string, TensorToWrite>();
    for (const [name, t] of own) gpt2.set(name.replace(/^transformer\./, ''), t);
    for (let l = 0; l < CFG.numLayers; l++) {
      gpt2.set(`h.${l}.attn.bias`, { shape: [1, 1, 32, 32], data: new Float32Array(32 * 32).fill(1) });
      gpt2.set(`h.${l}.attn.masked_bias`, { shape: [], data: new Float32Array([-1e4]) });
    }
    gpt2.set('lm_head.weight', own.get('transformer.wte.weight')!);
    // the original gpt2 config.json: n_ctx, no torch_dtype, extra task fields
    const { n_positions: _, ...hf } = toHFConfig({ ...CFG, valueHead: false }, { task_specific_params: { 'text-generation': { do_sample: true } } });
    const dir = await handCheckpoint(gpt2, hf);
    const m = await loadModel(dir);
    await expectSameBuffers(base, m, ['params']);
    m.dispose();
  });

  it('loads BF16 and F16 weights, converted exactly', async () => {
    const own = await tensorsOf(base);
    const half = new Map<string, TensorToWrite>();
    const expected = new Float32Array(base.numParams);
    for (const info of base.layout()) {
      const src = (own.get(info.name) as { data: Float32Array }).data;
      const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
      const u16 = new Uint16Array(src.length);
      const back = new Uint32Array(src.length);
      if (info.name.includes('ln_')) {
        // F16 for LayerNorm tensors: values 1 + k/1024 are exact in half
        for (let i = 0; i < src.length; i++) {
          u16[i] = 0x3c00 + (i % 1024);
          back[i] = new Uint32Array(new Float32Array([1 + (i % 1024) / 1024]).buffer)[0];
        }
        half.set(info.name, { dtype: 'F16', shape: info.shape, bytes: new Uint8Array(u16.buffer) });
      } else {
        for (let i = 0; i < src.length; i++) {
          u16[i] = bits[i] >>> 16;
          back[i] = u16[i] << 16;
        }
        half.set(info.name, { dtype: 'BF16', shape: info.shape, bytes: new Uint8Array(u16.buffer) });
      }
      expected.set(new Float32Array(back.buffer), info.offset);
    }
    const m = await loadModel(await handCheckpoint(half));
    expect(Buffer.compare(bytes(await m.readBuffer('params')), bytes(expected))).toBe(0);
    m.dispose();
  });
});

describe('refusals', () => {
  const load = async (tensors: Map<string, TensorToWrite>, re: RegExp | string, config?: Record<string, unknown>) => {
    const dir = await handCheckpoint(tensors, config);
    await expect(loadModel(dir)).rejects.toThrow(re);
    return dir;
  };
  const file = (dir: string) => path.join(dir, 'model.safetensors').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  it('a missing tensor, naming file and tensor', async () => {
    const t = await tensorsOf(base);
    t.delete('transformer.h.1.mlp.c_fc.bias');
    const dir = await handCheckpoint(t);
    await expect(loadModel(dir)).rejects.toThrow(new RegExp(`^${file(dir)}: missing tensor "transformer.h.1.mlp.c_fc.bias"$`));
  });

  it('a shape mismatch, giving both shapes', async () => {
    const t = await tensorsOf(base);
    t.set('transformer.h.0.attn.c_attn.weight', { shape: [48, 16], data: new Float32Array(768) });
    await load(t, /model\.safetensors: tensor "transformer.h.0.attn.c_attn.weight" has shape \[48, 16\]; config.json implies \[16, 48\]/);
  });

  it('an extra tensor, naming it', async () => {
    const t = await tensorsOf(base);
    t.set('transformer.h.2.ln_1.weight', { shape: [16], data: new Float32Array(16) });
    await load(t, /model\.safetensors: unexpected tensor "transformer.h.2.ln_1.weight"/);
    const v = await tensorsOf(base);
    v.set('score.weight', { shape: [1, 16], data: new Float32Array(16) });
    await load(v, /unexpected tensor "score.weight"/);
  });

  it('a tensor given twice (with and without prefix)', async () => {
    const t = await tensorsOf(base);
    t.set('wpe.weight', t.get('transformer.wpe.weight')!);
    await load(t, /tensors "transformer.wpe.weight" and "wpe.weight" are both "transformer.wpe.weight"/);
  });

  it('an untied lm_head.weight', async () => {
    const t = await tensorsOf(base);
    const wte = (t.get('transformer.wte.weight') as { data: Float32Array }).data.slice();
    wte[5] += 1;
    t.set('lm_head.weight', { shape: [97, 16], data: wte });
    await load(t, /lm_head.weight differs from transformer.wte.weight; .*untied lm_head cannot be loaded/);
    const u = await tensorsOf(base);
    await load(u, /tie_word_embeddings is false/, { ...toHFConfig({ ...CFG, valueHead: false }), tie_word_embeddings: false });
  });

  it('a non-float parameter', async () => {
    const t = await tensorsOf(base);
    t.set('transformer.ln_f.bias', { dtype: 'I32', shape: [16], bytes: new Uint8Array(64) });
    await load(t, /tensor "transformer.ln_f.bias" has dtype I32/);
  });

  it('a corrupt model.safetensors, naming it', async () => {
    const dir = fresh();
    await saveModel(base, dir);
    const f = path.join(dir, 'model.safetensors');
    const b = await fs.readFile(f);
    for (const cut of [4, 100, b.length - 1]) {
      await fs.writeFile(f, b.subarray(0, cut));
      await expect(loadModel(dir)).rejects.toThrow(new RegExp(`^${file(dir)}: `));
    }
  });

  it('a bad config.json, naming the file and field', async () => {
    const t = await tensorsOf(base);
    const hf = toHFConfig({ ...CFG, valueHead: false });
    const dir = await handCheckpoint(t);
    const cfgFile = path.join(dir, 'config.json');
    await fs.writeFile(cfgFile, '{"n_embd": 16,');
    await expect(loadModel(dir)).rejects.toThrow(`${cfgFile}: not valid JSON`);
    await fs.writeFile(cfgFile, '[1]');
    await expect(loadModel(dir)).rejects.toThrow(`${cfgFile}: not a JSON object`);
    const { n_embd: _, ...noEmbd } = hf;
    await fs.writeFile(cfgFile, JSON.stringify(noEmbd));
    await expect(loadModel(dir)).rejects.toThrow(`${cfgFile}: n_embd must be a positive integer, got nothing (it is missing)`);
    await fs.writeFile(cfgFile, JSON.stringify({ ...hf, n_embd: 15 }));
    await expect(loadModel(dir)).rejects.toThrow(`${cfgFile}: n_embd (15) must be divisible by n_head (2)`);
    await fs.writeFile(cfgFile, JSON.stringify({ ...hf, vocab_size: '97' }));
    await expect(loadModel(dir)).rejects.toThrow(`${cfgFile}: vocab_size must be a positive integer, got "97"`);
  });

  it('a config.json whose sizes the weights cannot fill, before allocating the model, with config.json\'s names', async () => {
    const t = await tensorsOf(base);
    const hf = toHFConfig({ ...CFG, valueHead: false });
    const dir = await handCheckpoint(t, { ...hf, vocab_size: 2 ** 31 - 1 });
    const cfgFile = path.join(dir, 'config.json');
    // 2^31 - 1 rows of 16 would take 2 GiB for the weights alone; refused from the headers
    await expect(loadModel(dir)).rejects.toThrow(
      new RegExp(`^${escape(cfgFile)}: describes a model of at least \\d+ parameters \\(vocab_size 2147483647, n_positions 32, n_embd 16, n_layer 2\\), but ${file(dir)} holds \\d+ values in all; config.json does not match the weights$`),
    );
    // small enough to allocate: the tensor checks then say which tensor is off
    await fs.writeFile(cfgFile, JSON.stringify({ ...hf, vocab_size: 98 }));
    await expect(loadModel(dir)).rejects.toThrow(/tensor "transformer.wte.weight" has shape \[97, 16\]; config.json implies \[98, 16\]/);
    // the engine's own limits, in config.json's names
    await fs.writeFile(cfgFile, JSON.stringify({ ...hf, n_layer: 5000 }));
    await expect(loadModel(dir)).rejects.toThrow(new RegExp(`^${escape(cfgFile)}: n_layer 5000 is outside what the engine supports \\(numLayers must be `));
  });

  it("generation_config.json token ids outside the model's vocabulary, and JSON too deep to write back", async () => {
    const dir = fresh();
    await saveModel(base, dir, { generationConfig: { eos_token_id: [96, 97] } });
    await expect(loadModel(dir)).rejects.toThrow(
      `${path.join(dir, 'generation_config.json')}: eos_token_id [96,97] names token id 97, outside the model's vocabulary of 97 ids (config.json's vocab_size)`,
    );
    await fs.writeFile(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: 96 }));
    (await loadModel(dir)).dispose();
    const cfgFile = path.join(dir, 'config.json');
    const hf = JSON.parse(await fs.readFile(cfgFile, 'utf8'));
    await fs.writeFile(cfgFile, JSON.stringify(hf).replace(/}$/, `,"notes":${'['.repeat(100_000)}${']'.repeat(100_000)}}`));
    await expect(loadModel(dir)).rejects.toThrow(`${cfgFile}: nests objects and arrays more than 128 deep (corrupt or hostile)`);
  });

  it('a broken optimizer.safetensors', async () => {
    const dir = fresh();
    await saveModel(base, dir, { optimizer: true });
    const f = path.join(dir, 'optimizer.safetensors');
    const params = await tensorsOf(base);
    const moments = (drop: string | null, meta: Record<string, string>) => {
      const out = new Map<string, TensorToWrite>();
      for (const [name, t] of params)
        for (const p of ['exp_avg.', 'exp_avg_sq.'])
          if (p + name !== drop) out.set(p + name, p === 'exp_avg_sq.' ? { ...t, data: (t as { data: Float32Array }).data.map(Math.abs) } : t);
      return encodeSafetensors(out, meta);
    };
    await fs.writeFile(f, moments('exp_avg_sq.transformer.wpe.weight', { step: '3' }));
    await expect(loadModel(dir)).rejects.toThrow(/optimizer\.safetensors: missing tensor "exp_avg_sq.transformer.wpe.weight"/);
    await fs.writeFile(f, moments(null, {}));
    await expect(loadModel(dir)).rejects.toThrow(/optimizer\.safetensors: __metadata__ "step" must be/);
    await fs.writeFile(f, moments(null, { step: '3' }));
    expect((await loadModel(dir)).optimizerStep).toBe(3);
  });

  it('non-finite weights (F32 or BF16), naming the file, tensor, element and value', async () => {
    for (const [value, shown] of [[NaN, 'NaN'], [Infinity, 'Infinity'], [-Infinity, '-Infinity']] as const) {
      const t = await tensorsOf(base);
      (t.get('transformer.h.1.attn.c_attn.weight') as { data: Float32Array }).data[50] = value;
      const dir = await handCheckpoint(t);
      await expect(loadModel(dir)).rejects.toThrow(
        `${path.join(dir, 'model.safetensors')}: tensor "transformer.h.1.attn.c_attn.weight" element 50 ([1, 2]) is ${shown}; weights must be finite`,
      );
    }
    const t = await tensorsOf(base);
    for (const [name, x] of t) t.set(name, { ...x, dtype: 'BF16' } as TensorToWrite);
    const bias = (t.get('transformer.ln_f.bias') as { data: Float32Array }).data;
    bias[3] = NaN;
    bias[9] = Infinity;
    const dir = await handCheckpoint(t);
    await expect(loadModel(dir)).rejects.toThrow(`tensor "transformer.ln_f.bias" element 3 is NaN (and 1 more such elements); weights must be finite`);
  });

  it('optimizer state with a NaN or infinite moment, or a negative second moment, naming the file, tensor, element and value', async () => {
    const m = await Model.create(CFG, { seed: 7 });
    await trainStep(m, 1);
    const dir = fresh();
    await saveModel(m, dir, { optimizer: true });
    const f = path.join(dir, 'optimizer.safetensors');
    const good = await fs.readFile(f);
    const st = parseSafetensors(good, f);
    const withValue = (name: string, i: number, value: number) => {
      const out = new Map<string, TensorToWrite>();
      for (const [k, t] of st.tensors) {
        const bytes = t.bytes.slice();
        if (k === name) new Float32Array(bytes.buffer)[i] = value;
        out.set(k, { dtype: t.dtype, shape: t.shape, bytes });
      }
      return encodeSafetensors(out, st.metadata);
    };
    const first = "AdamW's first moment (exp_avg) must be finite;";
    const second = "AdamW's second moment (exp_avg_sq) must be finite and non-negative;";
    for (const [name, i, value, where, rule] of [
      ['exp_avg.transformer.wpe.weight', 5, NaN, 'element 5 ([0, 5]) is NaN', first],
      ['exp_avg.transformer.h.0.mlp.c_fc.bias', 7, -Infinity, 'element 7 is -Infinity', first],
      ['exp_avg_sq.transformer.wpe.weight', 20, -0.5, 'element 20 ([1, 4]) is -0.5', second],
      ['exp_avg_sq.transformer.h.1.ln_2.weight', 0, NaN, 'element 0 is NaN', second],
      ['exp_avg_sq.transformer.wte.weight', 100, Infinity, 'element 100 ([6, 4]) is Infinity', second],
    ] as const) {
      await fs.writeFile(f, withValue(name, i, value));
      await expect(loadModel(dir), name).rejects.toThrow(`${f}: tensor "${name}" ${where}; ${rule}`);
      // the weights alone still load
      (await loadModel(dir, { optimizer: false })).dispose();
    }
    // a second moment of -0 is zero
    await fs.writeFile(f, withValue('exp_avg_sq.transformer.wpe.weight', 3, -0));
    const back = await loadModel(dir);
    expect(back.optimizerStep).toBe(1);
    back.dispose();
    m.dispose();
  });

  it('a directory that is not a checkpoint', async () => {
    const dir = fresh();
    await expect(loadModel(dir)).rejects.toThrow(`${dir} is not a checkpoint: ${path.join(dir, 'config.json')} does not exist`);
    await expect(saveModel(base, fresh(), { files: { 'config.json': 'x' } })).rejects.toThrow(/extra file name "config.json" is not allowed/);
    await expect(saveModel(base, fresh(), { files: { '../x': 'x' } })).rejects.toThrow(/extra file name/);
  });
});

describe('atomic saves', () => {
  const leftovers = async () => (await fs.readdir(root)).filter((f) => f.startsWith('.'));

  it('replaces an existing checkpoint, leaving nothing else behind', async () => {
    const a = await Model.create(CFG, { seed: 11 });
    const b = await Model.create(CFG, { seed: 12 });
    const dir = fresh();
    await saveModel(a, dir, { optimizer: true, files: { 'notes.txt': 'old' } });
    await saveModel(b, dir);
    expect((await fs.readdir(dir)).sort()).toEqual(['config.json', 'model.safetensors']);
    const r = await loadModel(dir);
    await expectSameBuffers(b, r, ['params']);
    expect(await leftovers()).toEqual([]);
    for (const x of [a, b, r]) x.dispose();
  });

  it('a save that fails midway keeps the previous checkpoint and removes its temporary directory', async () => {
    const dir = fresh();
    await saveModel(base, dir, { optimizer: true });
    const before = await snapshot(dir);
    const m = await Model.create(CFG, { seed: 13 });
    // The weights come back short: config.json is written, model.safetensors then fails.
    const short = () => new Float32Array(10);
    const spy = vi.spyOn(m, 'snapshot').mockImplementation(async () => ({ params: short(), adamM: short(), adamV: short(), step: 0 }));
    await expect(saveModel(m, dir, { optimizer: true })).rejects.toThrow(/bytes, but shape/);
    spy.mockRestore();
    // An extra file whose data cannot be written fails last of all.
    await expect(saveModel(m, dir, { files: { 'bad.bin': 42 as unknown as string } })).rejects.toThrow();
    const after = await snapshot(dir);
    expect(Object.keys(after)).toEqual(Object.keys(before));
    for (const f of Object.keys(before)) expect(Buffer.compare(before[f], after[f]), f).toBe(0);
    expect(await leftovers()).toEqual([]);
    m.dispose();
  });

  it('a save where the temporary directory cannot be made fails cleanly', async () => {
    const blocker = path.join(root, 'plain-file');
    await fs.writeFile(blocker, 'x');
    await expect(saveModel(base, path.join(blocker, 'ck'))).rejects.toThrow(/ENOTDIR|EEXIST/);
    await expect(saveModel(base, blocker)).rejects.toThrow(/exists and is not a directory/);
    expect(await fs.readFile(blocker, 'utf8')).toBe('x');
    expect(await leftovers()).toEqual([]);
    await fs.rm(blocker);
  });

  it('refuses to replace a directory that is not a checkpoint, or a symbolic link', async () => {
    const dir = fresh();
    await fs.mkdir(dir);
    await fs.writeFile(path.join(dir, 'precious.txt'), 'x');
    await expect(saveModel(base, dir)).rejects.toThrow(`${dir} exists and is not a checkpoint`);
    expect(await fs.readdir(dir)).toEqual(['precious.txt']);
    const empty = fresh();
    await fs.mkdir(empty);
    await saveModel(base, empty);
    const link = fresh();
    await fs.symlink(empty, link);
    await expect(saveModel(base, link)).rejects.toThrow(/is a symbolic link/);
    expect(await leftovers()).toEqual([]);
  });

  it('after a crash between the two renames, loadModel says where the checkpoints are', async () => {
    const dir = fresh();
    await saveModel(base, dir);
    const aside = path.join(root, `.${path.basename(dir)}.old-1-deadbeef`);
    await fs.rename(dir, aside);
    await expect(loadModel(dir)).rejects.toThrow(`the previous checkpoint is at ${aside}`);
    await fs.rm(aside, { recursive: true });
  });
});

/** The header of a safetensors file on disk. */
async function headerOf(file: string): Promise<Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } & Record<string, string>>> {
  const st = await fs.readFile(file);
  return JSON.parse(st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString());
}
const readJSON = async (file: string) => JSON.parse(await fs.readFile(file, 'utf8'));
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('bfloat16 and float16 weights', () => {
  // What the file should hold, read back as float32: bfloat16 widened by a shift, half through its decoder.
  const halfToF32 = (h: Uint16Array) => toFloat32(parseSafetensors(encodeSafetensors({ h: { dtype: 'F16', shape: [h.length], bytes: new Uint8Array(h.buffer) } })).tensors.get('h')!);
  for (const [dtype, st, round] of [
    ['bfloat16', 'BF16', (x: Float32Array) => new Float32Array(Uint32Array.from(float32ToBF16(x), (h) => h << 16).buffer)],
    ['float16', 'F16', (x: Float32Array) => halfToF32(float32ToF16(x))],
  ] as const) {
    it(`saves ${dtype}, rounded to nearest even, loads it back, and keeps it on the next save`, async () => {
      const m = await Model.create(CFG, { seed: 21 });
      await trainStep(m, 5);
      const dir = fresh();
      await saveModel(m, dir, { dtype, optimizer: true });
      expect((await readJSON(path.join(dir, 'config.json'))).torch_dtype).toBe(dtype);
      const header = await headerOf(path.join(dir, 'model.safetensors'));
      for (const t of m.layout()) expect(header[t.name].dtype, t.name).toBe(st);
      // the optimizer's moments stay float32
      for (const [k, v] of Object.entries(await headerOf(path.join(dir, 'optimizer.safetensors')))) if (k !== '__metadata__') expect(v.dtype).toBe('F32');

      const r = await loadModel(dir);
      const params = await m.readBuffer('params');
      const want = round(params);
      expect(Buffer.compare(bytes(want), bytes(params))).not.toBe(0); // the rounding is visible
      expect(Buffer.compare(bytes(await r.readBuffer('params')), bytes(want))).toBe(0);
      await expectSameBuffers(m, r, ['adam_m', 'adam_v']);
      expect(checkpointSource(r)).toMatchObject({ dir, dtype });

      // saved again without a dtype: the one it came in, the same bytes
      const again = fresh();
      await saveModel(r, again);
      expect((await readJSON(path.join(again, 'config.json'))).torch_dtype).toBe(dtype);
      expect(Buffer.compare(await fs.readFile(path.join(dir, 'model.safetensors')), await fs.readFile(path.join(again, 'model.safetensors')))).toBe(0);
      // and float32 when asked
      const f32 = fresh();
      await saveModel(r, f32, { dtype: 'float32' });
      expect((await headerOf(path.join(f32, 'model.safetensors')))['transformer.wte.weight'].dtype).toBe('F32');
      for (const x of [m, r]) x.dispose();
    });
  }

  it('records the dtype a model came in: torch_dtype, else its tensors', async () => {
    const t = await tensorsOf(base);
    expect(checkpointSource(await loadModel(await handCheckpoint(t)))!.dtype).toBe('float32');
    const bf = new Map([...t].map(([k, v]) => [k, { ...v, dtype: 'BF16' as const }]));
    expect(checkpointSource(await loadModel(await handCheckpoint(bf)))!.dtype).toBe('bfloat16');
    expect(checkpointSource(await loadModel(await handCheckpoint(bf, { ...toHFConfig(CFG), torch_dtype: 'float16' })))!.dtype).toBe('float16');
    expect(checkpointSource(await loadModel(await handCheckpoint(t, { ...toHFConfig(CFG), dtype: 'bfloat16' })))!.dtype).toBe('bfloat16');
    const mixed = new Map(t);
    mixed.set('transformer.ln_f.weight', { ...t.get('transformer.ln_f.weight')!, dtype: 'BF16' } as TensorToWrite);
    expect(checkpointSource(await loadModel(await handCheckpoint(mixed)))!.dtype).toBe('float32');
    await expect(saveModel(base, fresh(), { dtype: 'int8' as 'float32' })).rejects.toThrow(/dtype must be one of float32, bfloat16, float16, got "int8"/);
  });

  it('a training checkpoint (with optimizer state) of a bfloat16 model stores float32 for an exact resume, and names bfloat16', async () => {
    const bf = new Map([...(await tensorsOf(base))].map(([k, v]) => [k, { ...v, dtype: 'BF16' as const }]));
    const m = await loadModel(await handCheckpoint(bf));
    await trainStep(m, 7);
    const ck = fresh();
    await saveModel(m, ck, { optimizer: true });
    expect((await readJSON(path.join(ck, 'config.json'))).torch_dtype).toBe('bfloat16');
    expect((await headerOf(path.join(ck, 'model.safetensors')))['transformer.wte.weight'].dtype).toBe('F32');
    const r = await loadModel(ck);
    await expectSameBuffers(m, r, ['params', 'adam_m', 'adam_v']);
    // the final model, saved without optimizer state, is bfloat16 again
    const fin = fresh();
    await saveModel(r, fin);
    expect((await headerOf(path.join(fin, 'model.safetensors')))['transformer.wte.weight'].dtype).toBe('BF16');
    for (const x of [m, r]) x.dispose();
  });
});

describe('sharded checkpoints', () => {
  /** The shards save_pretrained would make: in order, a new one when the next tensor would go over; a larger tensor alone. */
  function expectedShards(layout: { name: string; numel: number }[], max: number, elem: number): string[][] {
    const out: string[][] = [];
    let cur: string[] = [];
    let size = 0;
    for (const t of layout) {
      const b = t.numel * elem;
      if (b > max) {
        out.push([t.name]);
        continue;
      }
      if (size + b > max && cur.length) {
        out.push(cur);
        cur = [];
        size = 0;
      }
      cur.push(t.name);
      size += b;
    }
    if (cur.length) out.push(cur);
    return out;
  }

  it('splits as save_pretrained does, with the index transformers writes, and reads back bit-exact', async () => {
    const dir = fresh();
    await saveModel(base, dir, { maxShardSize: 3000, optimizer: true });
    const plan = expectedShards(base.layout(), 3000, 4);
    expect(plan.length).toBeGreaterThan(2);
    const names = plan.map((_, k) => `model-${String(k + 1).padStart(5, '0')}-of-${String(plan.length).padStart(5, '0')}.safetensors`);
    expect((await fs.readdir(dir)).sort()).toEqual(['config.json', ...names, 'model.safetensors.index.json', 'optimizer.safetensors'].sort());
    const indexText = await fs.readFile(path.join(dir, 'model.safetensors.index.json'), 'utf8');
    const index = JSON.parse(indexText);
    expect(index.metadata).toEqual({ total_parameters: base.numParams, total_size: base.numParams * 4 });
    const wm: Record<string, string> = Object.fromEntries(plan.flatMap((ts, k) => ts.map((t) => [t, names[k]])));
    expect(index.weight_map).toEqual(wm);
    // json.dumps(indent=2, sort_keys=True)
    expect(Object.keys(index.weight_map)).toEqual(Object.keys(wm).sort());
    expect(indexText).toBe(JSON.stringify({ metadata: index.metadata, weight_map: Object.fromEntries(Object.keys(wm).sort().map((k) => [k, wm[k]])) }, null, 2) + '\n');
    for (let k = 0; k < plan.length; k++) {
      const h = await headerOf(path.join(dir, names[k]));
      expect(h.__metadata__).toEqual({ format: 'pt' });
      expect(Object.keys(h).filter((x) => x !== '__metadata__').sort()).toEqual([...plan[k]].sort());
    }
    const r = await loadModel(dir);
    await expectSameBuffers(base, r, ['params']);
    expect(r.optimizerStep).toBe(0);
    // the same sizes as strings; bfloat16 halves them
    const dir2 = fresh();
    await saveModel(base, dir2, { maxShardSize: '3KB', optimizer: true });
    const s1 = await snapshot(dir);
    const s2 = await snapshot(dir2);
    for (const f of Object.keys(s1)) expect(Buffer.compare(s1[f], s2[f]), f).toBe(0);
    const dir3 = fresh();
    await saveModel(base, dir3, { maxShardSize: 3000, dtype: 'bfloat16' });
    expect((await readJSON(path.join(dir3, 'model.safetensors.index.json'))).metadata.total_size).toBe(base.numParams * 2);
    expect(Object.keys((await readJSON(path.join(dir3, 'model.safetensors.index.json'))).weight_map)).toHaveLength(base.layout().length);
    // one shard is model.safetensors, without an index
    const one = fresh();
    await saveModel(base, one, { maxShardSize: base.numParams * 4 });
    expect((await fs.readdir(one)).sort()).toEqual(['config.json', 'model.safetensors']);
    r.dispose();
  });

  it('parses sizes as save_pretrained does', () => {
    expect(parseShardSize('5GB')).toBe(5e9);
    expect(parseShardSize('500MB')).toBe(5e8);
    expect(parseShardSize('2GiB')).toBe(2 * 2 ** 30);
    expect(parseShardSize('10kb')).toBe(10000);
    expect(parseShardSize(123)).toBe(123);
    expect(() => parseShardSize('lots')).toThrow(/maxShardSize "lots" is not a size/);
    expect(() => parseShardSize(0)).toThrow(/maxShardSize must be a positive number of bytes/);
  });

  describe('refuses a broken sharded folder, naming the file and tensor', () => {
    const sharded = async () => {
      const dir = fresh();
      await saveModel(base, dir, { maxShardSize: 3000 });
      const index = path.join(dir, 'model.safetensors.index.json');
      return { dir, index, json: await readJSON(index) };
    };

    it('a missing shard', async () => {
      const { dir, index, json } = await sharded();
      const [name, shard] = Object.entries(json.weight_map as Record<string, string>).find(([, f]) => f.startsWith('model-00002'))!;
      await fs.rm(path.join(dir, shard));
      await expect(loadModel(dir)).rejects.toThrow(new RegExp(`^${escape(path.join(dir, shard))} does not exist; ${escape(index)} names it for "${escape(name)}"`));
    });

    it('an index naming a tensor its shard lacks, or a shard holding one the index does not name', async () => {
      const { dir, index, json } = await sharded();
      const shard1 = path.join(dir, json.weight_map['transformer.wte.weight']);
      await fs.writeFile(index, JSON.stringify({ ...json, weight_map: { ...json.weight_map, 'transformer.extra': path.basename(shard1) } }));
      await expect(loadModel(dir)).rejects.toThrow(`${shard1}: has no tensor "transformer.extra", which ${index} places in it`);
      const { ['transformer.wpe.weight']: wpeShard, ...rest } = json.weight_map;
      await fs.writeFile(index, JSON.stringify({ ...json, weight_map: rest }));
      await expect(loadModel(dir)).rejects.toThrow(`${path.join(dir, wpeShard)}: tensor "transformer.wpe.weight" is not in ${index}'s weight_map`);
    });

    it('a malformed index', async () => {
      const { dir, index, json } = await sharded();
      const cases: Array<[string, string]> = [
        ['{"weight_map": {', `${index}: not valid JSON`],
        ['[]', `${index}: not a JSON object`],
        [JSON.stringify({ metadata: json.metadata }), `${index}: weight_map must be an object mapping each tensor name to its shard file`],
        [JSON.stringify({ ...json, metadata: 3 }), `${index}: metadata must be an object`],
        [JSON.stringify({ weight_map: {} }), `${index}: weight_map is empty`],
        [JSON.stringify({ weight_map: { ...json.weight_map, 'transformer.wte.weight': '../x.safetensors' } }), `${index}: weight_map names "../x.safetensors" for tensor "transformer.wte.weight"`],
        [JSON.stringify({ weight_map: { ...json.weight_map, 'transformer.wte.weight': 7 } }), `${index}: weight_map names 7 for tensor "transformer.wte.weight"`],
        // nested 100,000 deep: a clear refusal, not a stack overflow (refused past serde_json's 128 before it is parsed)
        [`{"weight_map": {"transformer.wte.weight": ${'['.repeat(100_000)}${']'.repeat(100_000)}}}`, `${index}: nests objects and arrays more than 128 deep`],
        [`{"weight_map": {"transformer.wte.weight": ${'['.repeat(100)}${']'.repeat(100)}}}`, `${index}: weight_map names an array for tensor "transformer.wte.weight"`],
      ];
      for (const [text, msg] of cases) {
        await fs.writeFile(index, text);
        await expect(loadModel(dir)).rejects.toThrow(msg);
      }
    });

    it('a shard with a wrong shape, a non-float dtype, or corrupt bytes', async () => {
      const { dir, json } = await sharded();
      const shard = path.join(dir, json.weight_map['transformer.h.0.attn.c_attn.weight']);
      const st = parseSafetensors(await fs.readFile(shard));
      const tensors = (patch: Record<string, TensorToWrite>) =>
        encodeSafetensors(new Map([...[...st.tensors.values()].map((t) => [t.name, { dtype: t.dtype, shape: t.shape, bytes: t.bytes }] as [string, TensorToWrite]), ...Object.entries(patch)]), { format: 'pt' });
      await fs.writeFile(shard, tensors({ 'transformer.h.0.attn.c_attn.weight': { shape: [48, 16], data: new Float32Array(768) } }));
      await expect(loadModel(dir)).rejects.toThrow(`${shard}: tensor "transformer.h.0.attn.c_attn.weight" has shape [48, 16]; config.json implies [16, 48]`);
      await fs.writeFile(shard, tensors({ 'transformer.h.0.attn.c_attn.weight': { dtype: 'I32', shape: [16, 48], bytes: new Uint8Array(3072) } }));
      await expect(loadModel(dir)).rejects.toThrow(`${shard}: tensor "transformer.h.0.attn.c_attn.weight" has dtype I32`);
      const good = tensors({});
      await fs.writeFile(shard, good.subarray(0, good.length - 2));
      await expect(loadModel(dir)).rejects.toThrow(new RegExp(`^${escape(shard)}: tensor ".*": data_offsets .* run past the end`));
    });

    it('a folder with neither model.safetensors nor an index', async () => {
      const dir = fresh();
      await fs.mkdir(dir);
      await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(toHFConfig(CFG)));
      await expect(loadModel(dir)).rejects.toThrow(`${dir} is not a checkpoint: ${path.join(dir, 'model.safetensors')} does not exist (nor does model.safetensors.index.json for a sharded one)`);
    });

    it("saveModel's extra files cannot take the weights' names", async () => {
      for (const name of ['model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'generation_config.json'])
        await expect(saveModel(base, fresh(), { files: { [name]: 'x' } })).rejects.toThrow(`extra file name ${JSON.stringify(name)} is not allowed`);
    });
  });
});

describe('what travels with a loaded model', () => {
  it("config.json's other keys and generation_config.json are written back; the engine's keys are regenerated", async () => {
    const hf = { ...toHFConfig(CFG, { task_specific_params: { 'text-generation': { do_sample: true } }, bos_token_id: 5, eos_token_id: 6 }), n_layer: 2, attn_pdrop: 0.1 };
    const dir = await handCheckpoint(await tensorsOf(base), hf);
    const gen = { bos_token_id: 5, eos_token_id: [6, 7], do_sample: true, top_p: 0.9, transformers_version: '4.45.0' };
    await fs.writeFile(path.join(dir, 'generation_config.json'), JSON.stringify(gen));
    const m = await loadModel(dir);
    expect(checkpointSource(m)).toEqual({ dir, hfConfig: hf, generationConfig: gen, dtype: 'float32' });

    const out = fresh();
    await saveModel(m, out, { config: { eos_token_id: 8 } });
    const cfg = await readJSON(path.join(out, 'config.json'));
    expect(cfg).toMatchObject({ task_specific_params: { 'text-generation': { do_sample: true } }, bos_token_id: 5, eos_token_id: 8, attn_pdrop: 0, torch_dtype: 'float32' });
    expect(await readJSON(path.join(out, 'generation_config.json'))).toEqual(gen);
    // told otherwise: another generation config, none, or no source at all
    const other = fresh();
    await saveModel(m, other, { generationConfig: { eos_token_id: 3 } });
    expect(await readJSON(path.join(other, 'generation_config.json'))).toEqual({ eos_token_id: 3 });
    const none = fresh();
    await saveModel(m, none, { generationConfig: null });
    expect((await fs.readdir(none)).sort()).toEqual(['config.json', 'model.safetensors']);
    const bare = fresh();
    await saveModel(m, bare, { source: null });
    expect(await readJSON(path.join(bare, 'config.json'))).toEqual(toHFConfig(CFG, { torch_dtype: 'float32' }));
    expect(await fs.readdir(bare)).not.toContain('generation_config.json');
    // a clone keeps its parent's source (a reward model or critic started from a loaded folder
    // saves as that folder's family); a new model has none
    const rm = await m.clone({ valueHead: true });
    expect(checkpointSource(rm)).toEqual(checkpointSource(m));
    const made = await Model.create(CFG);
    expect(checkpointSource(made)).toBeUndefined();
    made.dispose();
    const rmDir = fresh();
    await saveModel(rm, rmDir);
    expect(await readJSON(path.join(rmDir, 'config.json'))).toMatchObject({ architectures: ['GPT2ForSequenceClassification'], num_labels: 1, bos_token_id: 5 });
    expect(await readJSON(path.join(rmDir, 'generation_config.json'))).toEqual(gen);
    // and it loads as what it is
    const back = await loadModel(rmDir);
    expect(back.config.valueHead).toBe(true);
    for (const x of [m, rm, back]) x.dispose();
  });
});
