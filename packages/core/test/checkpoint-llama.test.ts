// Llama-family checkpoints: transformers' tensor names and shapes, bit-exact round trips (tied and
// untied, q/k/v biases, value head), folders as transformers writes them (buffers to skip, a tied
// lm_head, Llama's o_proj bias), and a Qwen2 model folder in bfloat16 shards carried through a save.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkpointSource,
  encodeSafetensors,
  float32ToBF16,
  loadModel,
  Model,
  saveModel,
  toHFConfig,
  type GPTConfigInput,
  type TensorToWrite,
} from '../src/index.js';

const V = 64;
const C = 32;
const NH = 4;
const KVH = 2;
const HD = 8;
const F = 48;
const L = 2;
const LCFG: GPTConfigInput = { arch: 'llama', vocabSize: V, maxSeqLen: 16, numLayers: L, numHeads: NH, numKvHeads: KVH, channels: C, ffnSize: F, ropeTheta: 500000 };
const B = 2;
const T = 8;

let root: string;
let n = 0;
const fresh = () => path.join(root, `ck${n++}`);
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 's2s-llama-ckpt-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

function batch(seed: number) {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s % V);
  return { tokens: Int32Array.from({ length: B * T }, next), targets: Int32Array.from({ length: B * T }, next), B, T };
}

async function trainStep(m: Model, seed: number) {
  await m.forward(batch(seed), { values: m.config.valueHead });
  await m.backward({ dlogprob: new Float32Array(B * T).fill(-1 / (B * T)), dvalue: m.config.valueHead ? new Float32Array(B * T).fill(0.1) : null });
  await m.step({ lr: 1e-2, weightDecay: 0.1 });
}

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
async function expectSameBuffers(a: Model, b: Model, kinds: ('params' | 'adam_m' | 'adam_v')[]) {
  for (const k of kinds) expect(Buffer.compare(bytes(await a.readBuffer(k)), bytes(await b.readBuffer(k))), k).toBe(0);
}
async function headerOf(file: string): Promise<Record<string, { dtype: string; shape: number[] }>> {
  const st = await fs.readFile(file);
  return JSON.parse(st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString());
}
const readJSON = async (file: string) => JSON.parse(await fs.readFile(file, 'utf8'));

/** transformers' LlamaForCausalLM / Qwen2ForCausalLM / ...ForSequenceClassification state dict, written out by hand. */
function transformersNames(o: { qkvBias?: boolean; tie?: boolean; valueHead?: boolean }): Record<string, number[]> {
  const out: Record<string, number[]> = { 'model.embed_tokens.weight': [V, C] };
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    out[p + 'input_layernorm.weight'] = [C];
    out[p + 'self_attn.q_proj.weight'] = [NH * HD, C];
    out[p + 'self_attn.k_proj.weight'] = [KVH * HD, C];
    out[p + 'self_attn.v_proj.weight'] = [KVH * HD, C];
    if (o.qkvBias) {
      out[p + 'self_attn.q_proj.bias'] = [NH * HD];
      out[p + 'self_attn.k_proj.bias'] = [KVH * HD];
      out[p + 'self_attn.v_proj.bias'] = [KVH * HD];
    }
    out[p + 'self_attn.o_proj.weight'] = [C, NH * HD];
    out[p + 'post_attention_layernorm.weight'] = [C];
    out[p + 'mlp.gate_proj.weight'] = [F, C];
    out[p + 'mlp.up_proj.weight'] = [F, C];
    out[p + 'mlp.down_proj.weight'] = [C, F];
  }
  out['model.norm.weight'] = [C];
  if (o.tie === false) out['lm_head.weight'] = [V, C];
  if (o.valueHead) out['score.weight'] = [1, C];
  return out;
}

async function tensorsOf(m: Model): Promise<Map<string, TensorToWrite>> {
  const params = await m.readBuffer('params');
  return new Map(m.layout().map((t) => [t.name, { shape: t.shape, data: params.slice(t.offset, t.offset + t.numel) }]));
}

async function handFolder(tensors: Map<string, TensorToWrite>, config: Record<string, unknown>, extra: Record<string, string> = {}) {
  const dir = fresh();
  await fs.mkdir(dir);
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(config));
  await fs.writeFile(path.join(dir, 'model.safetensors'), encodeSafetensors(tensors, { format: 'pt' }));
  for (const [name, text] of Object.entries(extra)) await fs.writeFile(path.join(dir, name), text);
  return dir;
}

describe('Llama-family checkpoints', () => {
  const variants: Array<[string, GPTConfigInput, { qkvBias?: boolean; tie?: boolean; valueHead?: boolean }, string]> = [
    ['tied (SmolLM2, Llama 3.2)', LCFG, {}, 'LlamaForCausalLM'],
    ['untied (TinyLlama)', { ...LCFG, tieEmbeddings: false }, { tie: false }, 'LlamaForCausalLM'],
    ['q/k/v biases (Qwen2)', { ...LCFG, qkvBias: true }, { qkvBias: true }, 'Qwen2ForCausalLM'],
    ['llama3 RoPE scaling, value head', { ...LCFG, ropeScaling: 'llama3', ropeFactor: 32, ropeOriginalMaxPos: 8, valueHead: true }, { valueHead: true }, 'LlamaForSequenceClassification'],
  ];
  for (const [label, cfg, names, cls] of variants) {
    it(`round-trips bit-exact with transformers' names and shapes: ${label}`, async () => {
      const m = await Model.create(cfg, { seed: 3 });
      await trainStep(m, 1);
      const dir = fresh();
      await saveModel(m, dir, { optimizer: true });
      const hf = await readJSON(path.join(dir, 'config.json'));
      expect(hf.architectures).toEqual([cls]);
      expect(hf).toMatchObject({ hidden_size: C, num_key_value_heads: KVH, head_dim: HD, intermediate_size: F, rope_theta: 500000, torch_dtype: 'float32' });
      const header = await headerOf(path.join(dir, 'model.safetensors'));
      const { __metadata__: meta, ...tensors } = header;
      expect(meta).toEqual({ format: 'pt' });
      expect(Object.fromEntries(Object.entries(tensors).map(([k, v]) => [k, v.shape]))).toEqual(transformersNames(names));

      const r = await loadModel(dir);
      expect(r.config).toEqual(m.config);
      await expectSameBuffers(m, r, ['params', 'adam_m', 'adam_v']);
      const fa = await m.forward(batch(9), { values: m.config.valueHead });
      const fb = await r.forward(batch(9), { values: m.config.valueHead });
      expect(Buffer.compare(bytes(fa.logprob), bytes(fb.logprob))).toBe(0);
      if (m.config.valueHead) expect(Buffer.compare(bytes(fa.values!), bytes(fb.values!))).toBe(0);
      await trainStep(m, 2);
      await trainStep(r, 2);
      await expectSameBuffers(m, r, ['params', 'adam_m', 'adam_v']);
      for (const x of [m, r]) x.dispose();
    });
  }

  it('loads a folder as transformers writes it: RoPE buffers skipped, a tied lm_head, names without "model."', async () => {
    const m = await Model.create(LCFG, { seed: 4 });
    const t = await tensorsOf(m);
    const hf = toHFConfig(LCFG);
    const folder = new Map<string, TensorToWrite>();
    for (const [name, x] of t) folder.set(name.replace(/^model\./, ''), x);
    for (let l = 0; l < L; l++) folder.set(`layers.${l}.self_attn.rotary_emb.inv_freq`, { shape: [HD / 2], data: new Float32Array(HD / 2).fill(1) });
    folder.set('lm_head.weight', t.get('model.embed_tokens.weight')!);
    const r = await loadModel(await handFolder(folder, hf));
    await expectSameBuffers(m, r, ['params']);

    const differs = new Map(t);
    const emb = (t.get('model.embed_tokens.weight') as { data: Float32Array }).data.slice();
    emb[3] += 1;
    differs.set('lm_head.weight', { shape: [V, C], data: emb });
    await expect(loadModel(await handFolder(differs, hf))).rejects.toThrow(/lm_head.weight differs from model.embed_tokens.weight; config.json ties the output layer/);
    // untied: lm_head is a parameter, and must be there
    const untied = { ...LCFG, tieEmbeddings: false };
    const u = await Model.create(untied, { seed: 5 });
    const ut = await tensorsOf(u);
    ut.delete('lm_head.weight');
    const uDir = await handFolder(ut, toHFConfig(untied));
    await expect(loadModel(uDir)).rejects.toThrow(`${path.join(uDir, 'model.safetensors')}: missing tensor "lm_head.weight"`);
    const extra = await tensorsOf(m);
    extra.set('model.layers.0.mlp.gate_proj.bias', { shape: [F], data: new Float32Array(F) });
    await expect(loadModel(await handFolder(extra, hf))).rejects.toThrow(/unexpected tensor "model.layers.0.mlp.gate_proj.bias"; it is not a parameter of the Llama-family model that config.json describes/);
    for (const x of [m, r, u]) x.dispose();
  });

  it("a Llama with attention_bias: q/k/v biases, and an o_proj bias that must be zero", async () => {
    const cfg = { ...LCFG, qkvBias: true };
    const m = await Model.create(cfg, { seed: 6 });
    const t = await tensorsOf(m);
    for (let l = 0; l < L; l++) t.set(`model.layers.${l}.self_attn.o_proj.bias`, { shape: [C], data: new Float32Array(C) });
    const hf = { ...toHFConfig(LCFG), attention_bias: true };
    const r = await loadModel(await handFolder(t, hf));
    expect(r.config.qkvBias).toBe(true);
    await expectSameBuffers(m, r, ['params']);
    const bias = new Float32Array(C);
    bias[1] = 0.5;
    t.set('model.layers.1.self_attn.o_proj.bias', { shape: [C], data: bias });
    await expect(loadModel(await handFolder(t, hf))).rejects.toThrow(/model.layers.1.self_attn.o_proj.bias is not zero; the engine has no o_proj bias/);
    for (const x of [m, r]) x.dispose();
  });

  it('a value head with untied embeddings still needs lm_head.weight, and says so', async () => {
    const cfg = { ...LCFG, tieEmbeddings: false, valueHead: true };
    const m = await Model.create(cfg, { seed: 7 });
    const t = await tensorsOf(m);
    t.delete('lm_head.weight');
    await expect(loadModel(await handFolder(t, toHFConfig(cfg)))).rejects.toThrow(/missing tensor "lm_head.weight" \(tie_word_embeddings is false, so the engine needs lm_head.weight even with a value head\)/);
    m.dispose();
  });

  it('a Qwen2 folder in bfloat16 shards is read, and written back as it came: class, keys, dtype, generation config', async () => {
    const cfg = { ...LCFG, qkvBias: true, tieEmbeddings: true, normEps: 1e-6 };
    const m = await Model.create(cfg, { seed: 8 });
    const t = await tensorsOf(m);
    // bfloat16 values, in two shards as transformers names them
    const bf = new Map([...t].map(([k, v]) => [k, { dtype: 'BF16' as const, shape: v.shape, data: (v as { data: Float32Array }).data }]));
    const names = [...bf.keys()];
    const half = Math.ceil(names.length / 2);
    const shards = [names.slice(0, half), names.slice(half)];
    const dir = fresh();
    await fs.mkdir(dir);
    const hf = {
      ...toHFConfig(cfg),
      architectures: ['Qwen2ForCausalLM'],
      model_type: 'qwen2',
      bos_token_id: 60,
      eos_token_id: 61,
      max_window_layers: 21,
      sliding_window: 4096,
      use_sliding_window: false,
      use_mrope: false,
      torch_dtype: 'bfloat16',
      transformers_version: '4.43.1',
    };
    await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(hf));
    const gen = { bos_token_id: 60, eos_token_id: [61, 62], do_sample: true, repetition_penalty: 1.1 };
    await fs.writeFile(path.join(dir, 'generation_config.json'), JSON.stringify(gen));
    const weightMap: Record<string, string> = {};
    for (let k = 0; k < 2; k++) {
      const file = `model-0000${k + 1}-of-00002.safetensors`;
      await fs.writeFile(path.join(dir, file), encodeSafetensors(new Map(shards[k].map((name) => [name, bf.get(name)!])), { format: 'pt' }));
      for (const name of shards[k]) weightMap[name] = file;
    }
    await fs.writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: m.numParams * 2 }, weight_map: weightMap }));

    const r = await loadModel(dir);
    expect(r.config).toEqual(m.config);
    const params = await m.readBuffer('params');
    const want = new Float32Array(Uint32Array.from(float32ToBF16(params), (h) => h << 16).buffer);
    expect(Buffer.compare(bytes(await r.readBuffer('params')), bytes(want))).toBe(0);
    expect(checkpointSource(r)).toMatchObject({ dtype: 'bfloat16', generationConfig: gen });

    const out = fresh();
    await saveModel(r, out);
    const back = await readJSON(path.join(out, 'config.json'));
    expect(back).toMatchObject({ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', bos_token_id: 60, eos_token_id: 61, max_window_layers: 21, use_mrope: false, use_sliding_window: false, torch_dtype: 'bfloat16', rms_norm_eps: 1e-6 });
    expect(await readJSON(path.join(out, 'generation_config.json'))).toEqual(gen);
    // the bfloat16 bytes are the ones it came with
    const one = await headerOf(path.join(out, 'model.safetensors'));
    for (const name of names) expect(one[name].dtype).toBe('BF16');
    expect(Buffer.compare(await fs.readFile(path.join(out, 'model.safetensors')), encodeSafetensors(bf, { format: 'pt' }))).toBe(0);
    // and reads back to the same model
    const again = await loadModel(out);
    await expectSameBuffers(r, again, ['params']);
    for (const x of [m, r, again]) x.dispose();
  });
});
