// Seeded model folders (config.json + model.safetensors or shards, GPT-2 and Llama layouts, F32,
// BF16 or F16; optimizer.safetensors as saveModel writes it) and their mutations: the tensors
// files' (safetensors.ts), the index's, the optimizer's step, config.json's and generation_config.json's.
import {
  EXP_AVG_PREFIX,
  EXP_AVG_SQ_PREFIX,
  encodeSafetensors,
  toHFConfig,
  type GPTConfigInput,
  type Random,
  type TensorInfo,
  type TensorToWrite,
} from '@s2s/core';

import { build, entries, mutateSafetensors, parse, readValue, relayout, type ValueRule } from './safetensors.js';
import type { Expect, FuzzCase } from './types.js';

/** The engine's tensor layout of a config (the parent asks the engine once per config). */
export type LayoutOf = (config: GPTConfigInput) => TensorInfo[];

type Dtype = 'F32' | 'BF16' | 'F16';
const TORCH: Record<Dtype, string> = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' };

export function randomConfig(rng: Random, arch: 'gpt2' | 'llama'): GPTConfigInput {
  const vocabSize = 16 + rng.int(80);
  const maxSeqLen = rng.pick([8, 16, 32]);
  const numLayers = 1 + rng.int(2);
  if (arch === 'gpt2') {
    const numHeads = rng.pick([1, 2, 4]);
    return { vocabSize, maxSeqLen, numLayers, numHeads, channels: numHeads * rng.pick([4, 8]), valueHead: rng.chance(0.2) };
  }
  const numKvHeads = rng.pick([1, 2]);
  const numHeads = numKvHeads * rng.pick([1, 2]);
  const headDim = rng.pick([4, 8]);
  return {
    arch: 'llama',
    vocabSize,
    maxSeqLen,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    channels: rng.chance(0.7) ? numHeads * headDim : 8 + 4 * rng.int(4),
    ffnSize: 8 + 4 * rng.int(8),
    ropeTheta: rng.pick([10000, 500000]),
    normEps: rng.pick([1e-5, 1e-6]),
    tieEmbeddings: rng.chance(0.5),
    qkvBias: rng.chance(0.3),
    valueHead: rng.chance(0.2),
    ...(rng.chance(0.2) ? { ropeScaling: 'llama3' as const, ropeFactor: 8, ropeLowFreqFactor: 1, ropeHighFreqFactor: 4, ropeOriginalMaxPos: 8 } : {}),
  };
}

/** Normal(0, std) by Box-Muller. */
function normal(rng: Random, std: number): number {
  return std * Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
}

function values(rng: Random, t: TensorInfo, kind: 'weight' | 'm' | 'v'): Float32Array {
  const a = new Float32Array(t.numel);
  const norm = /(ln|norm)[^.]*\.weight$/.test(t.name);
  for (let i = 0; i < a.length; i++)
    a[i] = kind === 'v' ? Math.abs(normal(rng, 1e-4)) : kind === 'm' ? normal(rng, 1e-3) : norm ? 1 + normal(rng, 0.05) : normal(rng, 0.05);
  return a;
}

export interface ModelFolder {
  config: GPTConfigInput;
  hf: Record<string, unknown>;
  files: Record<string, Uint8Array | string>;
  /** the file holding each tensor */
  fileOf: Map<string, string>;
  layout: TensorInfo[];
}

/** A valid checkpoint: config.json, the weights (one file or two shards with the index), optimizer state when asked. */
export function modelFolder(rng: Random, layoutOf: LayoutOf, arch: 'gpt2' | 'llama', opts: { optimizer?: boolean; shards?: boolean } = {}): ModelFolder {
  const config = randomConfig(rng, arch);
  const layout = layoutOf(config);
  // saveModel with optimizer state stores float32 master weights
  const dtype: Dtype = opts.optimizer ? 'F32' : rng.pick(['F32', 'F32', 'BF16', 'F16']);
  const hf = toHFConfig(config, { torch_dtype: TORCH[dtype] });
  const tensors = new Map<string, TensorToWrite>(layout.map((t) => [t.name, { dtype, shape: t.shape, data: values(rng, t, 'weight') }]));
  const files: Record<string, Uint8Array | string> = { 'config.json': JSON.stringify(hf, null, 2) + '\n' };
  const fileOf = new Map<string, string>();
  if (opts.shards && layout.length > 1) {
    const cut = 1 + rng.int(layout.length - 1);
    const parts = [layout.slice(0, cut), layout.slice(cut)];
    const weightMap: Record<string, string> = {};
    parts.forEach((part, k) => {
      const name = `model-0000${k + 1}-of-00002.safetensors`;
      files[name] = encodeSafetensors(new Map(part.map((t) => [t.name, tensors.get(t.name)!])), { format: 'pt' });
      for (const t of part) {
        weightMap[t.name] = name;
        fileOf.set(t.name, name);
      }
    });
    files['model.safetensors.index.json'] = JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }, null, 2) + '\n';
  } else {
    files['model.safetensors'] = encodeSafetensors(tensors, { format: 'pt' });
    for (const t of layout) fileOf.set(t.name, 'model.safetensors');
  }
  if (opts.optimizer) {
    const moments = new Map<string, TensorToWrite>();
    for (const t of layout) moments.set(EXP_AVG_PREFIX + t.name, { shape: t.shape, data: values(rng, t, 'm') });
    for (const t of layout) moments.set(EXP_AVG_SQ_PREFIX + t.name, { shape: t.shape, data: values(rng, t, 'v') });
    files['optimizer.safetensors'] = encodeSafetensors(moments, { format: 'pt', optimizer: 'adamw', step: String(1 + rng.int(100)) });
  }
  return { config, hf, files, fileOf, layout };
}

interface Mutated {
  mutation: string;
  expect: Expect;
  mustName: string[][];
  note: string;
  extreme?: boolean;
}

/** Applies a safetensors mutation to `file` of the folder. */
function mutateTensorsFile(rng: Random, f: ModelFolder, file: string, rule: (t: string) => ValueRule): Mutated {
  const m = mutateSafetensors(rng, f.files[file] as Uint8Array, rule);
  if (m.bytes === null) delete f.files[file];
  else f.files[file] = m.bytes;
  return { mutation: `${file.startsWith('model-') ? 'shard' : file}:${m.mutation}`, expect: m.expect, mustName: [[file], ...(m.targets.length ? [m.targets] : [])], note: `${file}: ${m.note}`, extreme: m.extreme };
}

/** Mutations of a checkpoint's own rules: a tied lm_head, Llama's o_proj bias, GPT-2's mask buffer, a shard index. */
function mutateCheckpoint(rng: Random, f: ModelFolder): Mutated | undefined {
  const weights = f.files['model.safetensors'] as Uint8Array | undefined;
  const index = f.files['model.safetensors.index.json'] as string | undefined;
  const cfg = f.config;
  const options: string[] = [];
  if (weights) options.push('extra-buffer');
  if (weights && cfg.arch === 'llama') options.push('o-proj-bias');
  if (weights && (cfg.arch !== 'llama' || cfg.tieEmbeddings)) options.push('tied-lm-head');
  if (index) options.push('index', 'index', 'index');
  if (options.length === 0) return undefined;
  const what = rng.pick(options);
  if (what === 'index') {
    const idx = JSON.parse(index!) as { weight_map: Record<string, unknown>; metadata?: unknown };
    const names = Object.keys(idx.weight_map);
    const t = rng.pick(names);
    const shard = idx.weight_map[t] as string;
    const other = Object.values(idx.weight_map).find((v) => v !== shard) as string;
    const op = rng.pick(['missing-shard', 'wrong-shard', 'traversal', 'drop-entry', 'extra-entry', 'not-string', 'not-object', 'empty', 'metadata', 'broken-json']);
    let expect: Expect = 'must-refuse';
    let targets: string[] = [t];
    const idxFile = 'model.safetensors.index.json';
    let blame = [idxFile];
    switch (op) {
      case 'missing-shard':
        delete f.files[shard];
        blame = [shard];
        targets = [];
        break;
      case 'wrong-shard':
        idx.weight_map[t] = other;
        blame = [idxFile, shard, other];
        break;
      case 'traversal':
        idx.weight_map[t] = rng.pick([`../${shard}`, `/etc/${shard}`, '.', '..', '', `sub/${shard}`]);
        break;
      case 'drop-entry':
        delete idx.weight_map[t];
        blame = [idxFile, shard];
        break;
      case 'extra-entry':
        idx.weight_map['transformer.extra.weight'] = shard;
        targets = ['transformer.extra.weight'];
        blame = [idxFile, shard];
        break;
      case 'not-string':
        idx.weight_map[t] = rng.pick([5, null, [shard], { file: shard }, true]);
        break;
      case 'not-object':
        (idx as Record<string, unknown>).weight_map = rng.pick([[], 'x', 5, null]);
        targets = ['weight_map'];
        break;
      case 'empty':
        idx.weight_map = {};
        targets = ['weight_map'];
        break;
      case 'metadata': {
        const v = rng.pick([{ total_size: 'x' }, null, [], 'x', { extra: { deep: 1 } }]);
        idx.metadata = v;
        expect = v === null || (typeof v === 'object' && !Array.isArray(v)) ? 'may-accept' : 'must-refuse';
        targets = ['metadata'];
        break;
      }
      case 'broken-json':
        f.files[idxFile] = index!.slice(0, rng.int(index!.length - 2));
        return { mutation: `index:${op}`, expect, mustName: [[idxFile]], note: 'index truncated' };
    }
    f.files[idxFile] = JSON.stringify(idx);
    return { mutation: `index:${op}`, expect, mustName: [blame, ...(targets.length ? [targets] : [])], note: `index ${op} (${t} in ${shard})` };
  }
  const p = parse(weights!);
  const names = entries(p)
    .sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0])
    .map(([n]) => n);
  const floats = (a: Float32Array) => new Uint8Array(a.buffer);
  let extra: Record<string, { dtype: string; shape: number[]; bytes: Uint8Array }>;
  let expect: Expect;
  let target: string;
  let note: string;
  if (what === 'extra-buffer') {
    // buffers transformers saves that are not parameters: skipped, whatever their values
    target = cfg.arch === 'llama' ? 'model.layers.0.self_attn.rotary_emb.inv_freq' : 'transformer.h.0.attn.bias';
    extra = { [target]: { dtype: 'F32', shape: [4], bytes: floats(Float32Array.of(1, 0, NaN, 2)) } };
    expect = 'may-accept';
    note = `buffer ${target} added`;
  } else if (what === 'o-proj-bias') {
    target = 'model.layers.0.self_attn.o_proj.bias';
    const C = cfg.channels;
    const b = new Float32Array(C);
    const nonzero = rng.chance(0.6);
    if (nonzero) b[rng.int(C)] = rng.pick([1e-3, -1, NaN]);
    extra = { [target]: { dtype: 'F32', shape: [C], bytes: floats(b) } };
    expect = nonzero ? 'must-refuse' : 'may-accept';
    note = `${target} added, ${nonzero ? 'not zero' : 'zero'}`;
  } else {
    target = 'lm_head.weight';
    const embed = cfg.arch === 'llama' ? 'model.embed_tokens.weight' : 'transformer.wte.weight';
    const e = p.header[embed] as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const bytes = Uint8Array.from(p.data.subarray(e.data_offsets[0], e.data_offsets[1]));
    const same = rng.chance(0.4);
    if (!same) {
      const i = rng.int(bytes.byteLength);
      bytes[i] ^= 1 + rng.int(255);
    }
    extra = { [target]: { dtype: e.dtype, shape: rng.chance(0.8) ? e.shape : [...e.shape].reverse(), bytes } };
    const sameShape = JSON.stringify(extra[target].shape) === JSON.stringify(e.shape);
    expect = same && sameShape ? 'may-accept' : 'must-refuse';
    note = `${target} added, ${same ? 'equal to' : 'different from'} ${embed}${sameShape ? '' : ', transposed'}`;
  }
  f.files['model.safetensors'] = relayout(p, names, extra);
  return { mutation: what, expect, mustName: [['model.safetensors'], [target]], note };
}

export function checkpointCase(rng: Random, layoutOf: LayoutOf, index: number, arch: 'gpt2' | 'llama'): FuzzCase {
  const f = modelFolder(rng, layoutOf, arch, { shards: rng.chance(0.2) });
  let m: Mutated;
  const r = rng.next();
  if (r < 0.07) m = { mutation: 'none', expect: 'must-accept', mustName: [], note: 'the valid folder' };
  else if (r < 0.22) m = mutateCheckpoint(rng, f) ?? { mutation: 'none', expect: 'must-accept', mustName: [], note: 'the valid folder' };
  else {
    const tensorFiles = Object.keys(f.files).filter((k) => k.endsWith('.safetensors'));
    m = mutateTensorsFile(rng, f, rng.pick(tensorFiles), () => 'finite');
  }
  return {
    index,
    kind: `checkpoint-${arch}`,
    ...m,
    files: f.files,
    load: { op: 'model', dir: '.', optimizer: false, train: false, save: false },
  };
}

export function optimizerCase(rng: Random, layoutOf: LayoutOf, index: number): FuzzCase {
  const f = modelFolder(rng, layoutOf, rng.pick(['gpt2', 'llama']), { optimizer: true });
  const file = 'optimizer.safetensors';
  const rule = (t: string): ValueRule => (t.startsWith(EXP_AVG_SQ_PREFIX) ? 'finite-non-negative' : 'finite');
  let m: Mutated;
  const r = rng.next();
  if (r < 0.08) m = { mutation: 'none', expect: 'must-accept', mustName: [], note: 'the valid folder' };
  else if (r < 0.25) {
    // the step count in the metadata
    const p = parse(f.files[file] as Uint8Array);
    const meta = { ...(p.header.__metadata__ as Record<string, string>) };
    const v = rng.pick(['-1', '1.5', 'abc', '', '1e3', '99999999999999999999', ' 5', '0x10', '+3', null, '0', '12']);
    if (v === null) delete meta.step;
    else meta.step = v;
    p.header.__metadata__ = meta;
    f.files[file] = build(p.header, p.data);
    const ok = v === '0' || v === '12';
    m = { mutation: 'step', expect: ok ? 'may-accept' : 'must-refuse', mustName: [[file], ['step']], note: `__metadata__ step ${JSON.stringify(v)}` };
  } else if (r < 0.45) {
    // a negative or non-finite moment, the mutation the issue names
    const p = parse(f.files[file] as Uint8Array);
    const list = entries(p);
    const [n, e] = rng.pick(list);
    const bytes = Uint8Array.from(f.files[file] as Uint8Array);
    const base = bytes.byteLength - p.data.byteLength + e.data_offsets[0];
    const i = rng.int((e.data_offsets[1] - e.data_offsets[0]) / 4);
    const x = rng.pick([NaN, Infinity, -Infinity, -1e-8, -1, -0, 1e-30]);
    new DataView(bytes.buffer).setFloat32(base + 4 * i, x, true);
    const v = readValue(bytes.subarray(base), 'F32', i);
    const refuse = !Number.isFinite(v) || (rule(n) === 'finite-non-negative' && v < 0);
    f.files[file] = bytes;
    m = { mutation: 'moment-value', expect: refuse ? 'must-refuse' : 'may-accept', mustName: [[file], [n]], note: `${n} element ${i} = ${Object.is(v, -0) ? '-0' : v}` };
  } else {
    m = mutateTensorsFile(rng, f, rng.chance(0.85) ? file : 'model.safetensors', rule);
    // optimizer state is optional: without the file loadModel reads the weights alone
    if (m.mutation === `${file}:missing-file`) m.expect = 'may-accept';
  }
  return { index, kind: 'optimizer', ...m, files: f.files, load: { op: 'model', dir: '.', optimizer: true, train: true, save: false } };
}

/** config.json's fields by what they hold, per architecture. */
const FIELDS = {
  gpt2: {
    sizes: ['vocab_size', 'n_positions', 'n_layer', 'n_head', 'n_embd'],
    floats: ['layer_norm_epsilon'],
    bools: ['tie_word_embeddings', 'scale_attn_weights', 'scale_attn_by_inverse_layer_idx'],
    strings: ['model_type', 'activation_function'],
  },
  llama: {
    sizes: ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'max_position_embeddings', 'num_key_value_heads', 'head_dim'],
    floats: ['rms_norm_eps', 'rope_theta'],
    bools: ['tie_word_embeddings', 'attention_bias', 'mlp_bias'],
    strings: ['model_type', 'hidden_act'],
  },
};

/** A shape refusal names the tensor a size field shapes instead of the field: a parameter's name ends so. */
const SHAPED = ['.weight', '.bias'];

export function configCase(rng: Random, layoutOf: LayoutOf, index: number): FuzzCase {
  const arch = rng.pick(['gpt2', 'llama'] as const);
  const f = modelFolder(rng, layoutOf, arch);
  const hf: Record<string, unknown> = { ...f.hf };
  const fields = FIELDS[arch];
  const file = 'config.json';
  let expect: Expect = 'must-refuse';
  let mustName: string[][] = [[file]];
  let note: string;
  let mutation: string;
  // a raw JSON literal (NaN, 1e999) where the marker string is
  const RAW = '@@raw@@';
  let raw: string | undefined;
  let text: string | undefined;
  const op = rng.pick(['none', 'size', 'size', 'size', 'float', 'bool', 'string', 'unknown-key', 'architectures', 'rope', 'kv-heads', 'broken', 'not-object', 'generation', 'generation']);
  mutation = op;
  switch (op) {
    case 'none':
      expect = 'must-accept';
      note = 'the valid folder';
      break;
    case 'size': {
      const k = rng.pick(fields.sizes);
      const old = hf[k] as number;
      const how = rng.pick(['type', 'type', 'missing', 'other', 'huge']);
      mutation = `size-${how}`;
      mustName = [[file], [k]];
      if (how === 'missing') {
        delete hf[k];
        // GPT-2's n_positions falls back to n_ctx; a Llama's kv heads and head_dim have defaults
        if (k === 'n_positions' || k === 'num_key_value_heads' || k === 'head_dim') {
          expect = 'may-accept';
          // the default may not be the weights' shape: then a tensor is named
          mustName = [[file, 'safetensors'], [k, ...SHAPED]];
        }
        note = `${k} removed`;
      } else if (how === 'type') {
        const v = rng.pick(['"32"', 'true', 'null', '[32]', '{}', '32.5', '0', '-32', '-0.5', 'NaN', 'Infinity', '1e999', '-1e999', '"NaN"']);
        hf[k] = RAW;
        raw = v;
        if (v === 'null' && (k === 'n_positions' || k === 'num_key_value_heads' || k === 'head_dim')) expect = 'may-accept';
        // NaN and Infinity are not JSON (Python writes them): the parser's refusal names the file, not the field
        if (v === 'NaN' || v === 'Infinity') mustName = [[file]];
        note = `${k} ${old} -> ${v}`;
      } else if (how === 'other') {
        const v = rng.pick([old + 1, old - 1, old * 2, 1]);
        hf[k] = v;
        expect = v === old ? 'must-accept' : 'may-accept';
        // a shape refusal names the tensors' file (model.safetensors, a shard, the index) and config.json
        mustName = [[file, 'safetensors']];
        note = `${k} ${old} -> ${v}`;
      } else {
        const v = rng.pick([2 ** 31 - 1, 2 ** 31, 2 ** 40, 2 ** 53 - 1, 1e15, 100_000, 1 << 22]);
        hf[k] = v;
        mustName = [[file], [k, ...SHAPED]];
        note = `${k} ${old} -> ${v}`;
      }
      break;
    }
    case 'float': {
      const k = rng.pick(fields.floats);
      const v = rng.pick(['-1', '0', '"1e-5"', 'null', 'true', '1e999', '[1e-5]', '1e-300', '-0']);
      hf[k] = RAW;
      raw = v;
      mustName = [[file], [k]];
      // a null rope_theta means the default; a tiny epsilon is a value
      if ((v === 'null' && k === 'rope_theta') || (v === '1e-300' && k !== 'layer_norm_epsilon')) expect = 'may-accept';
      note = `${k} -> ${v}`;
      break;
    }
    case 'bool': {
      const k = rng.pick(fields.bools);
      const v = rng.pick(['"true"', '"false"', '1', '0', '"yes"', '[]', '{}', 'null']);
      hf[k] = RAW;
      raw = v;
      mustName = [[file], [k]];
      // null: the field's default, as transformers has it; Qwen2 has no attention_bias (its q/k/v biases always are)
      if (v === 'null' || (k === 'attention_bias' && hf.model_type !== 'llama')) expect = 'may-accept';
      note = `${k} -> ${v}`;
      break;
    }
    case 'string': {
      const k = rng.pick(fields.strings);
      const v = rng.pick(['"gpt3"', '"GPT2"', '"LLAMA"', '5', 'null', '"relu"', '""', '["llama"]']);
      hf[k] = RAW;
      raw = v;
      mustName = [[file], [k]];
      // a null activation is the default one; no model_type reads as GPT-2 (whose fields a Llama config lacks)
      if (v === 'null' && k !== 'model_type') expect = 'may-accept';
      if (v === 'null' && k === 'model_type') mustName = [[file]];
      note = `${k} -> ${v}`;
      break;
    }
    case 'unknown-key': {
      const k = rng.pick(['foo', 'transformers_version', 'quantization_config', 'deep', '__proto__', 'constructor', 'use_cache']);
      const depth = rng.pick([2, 10, 100, 10_000, 1_000_000]);
      const v = rng.pick(['1', '"x"', 'null', '{"a": [1, 2]}', 'DEEP']);
      // defined, not assigned: "__proto__" as a key, as JSON.parse makes it
      Object.defineProperty(hf, k, { value: RAW, enumerable: true, writable: true, configurable: true });
      raw = v === 'DEEP' ? '['.repeat(depth) + ']'.repeat(depth) : v;
      // a deep value can be kept and written back: refused past serde_json's depth (what transformers' tokenizers read with), or accepted and saved again
      expect = 'may-accept';
      note = `unknown key ${k} = ${v === 'DEEP' ? `[nested ${depth} deep]` : v}`;
      break;
    }
    case 'architectures': {
      const v = rng.pick([['GPT2ForSequenceClassification'], ['LlamaForSequenceClassification'], ['LlamaForCausalLM'], [5], 'x', [], null]);
      hf.architectures = v;
      expect = 'may-accept';
      mustName = [[file, 'model.safetensors', 'safetensors']];
      note = `architectures -> ${JSON.stringify(v)}`;
      break;
    }
    case 'rope': {
      if (arch !== 'llama') return configCase(rng, layoutOf, index);
      const v = rng.pick([
        { rope_type: 'llama3', factor: -1, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8 },
        { rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 1, original_max_position_embeddings: 8 },
        { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 },
        { rope_type: 'llama3', factor: '8', low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8 },
        { type: 'linear', factor: 2 },
        { rope_type: 'yarn', factor: 2 },
        'llama3',
        [1],
        { rope_type: 'default' },
        null,
      ]);
      hf.rope_scaling = v;
      const ok = v === null || (typeof v === 'object' && !Array.isArray(v) && v.rope_type === 'default');
      expect = ok ? 'may-accept' : 'must-refuse';
      const named =
        typeof v === 'object' && v !== null && !Array.isArray(v)
          ? Object.entries(v).find(([key, x]) => key !== 'rope_type' && key !== 'type' && (typeof x !== 'number' || x < 0))?.[0]
          : undefined;
      mustName = [[file], ['rope_scaling', ...(named ? [named] : []), 'linear', 'yarn', 'high_freq_factor', 'original_max_position_embeddings']];
      note = `rope_scaling -> ${JSON.stringify(v)}`;
      break;
    }
    case 'kv-heads': {
      if (arch !== 'llama') return configCase(rng, layoutOf, index);
      const nh = hf.num_attention_heads as number;
      hf.num_key_value_heads = rng.pick([nh + 1, 3 * nh, nh * 2]);
      mustName = [[file], ['num_key_value_heads', 'num_attention_heads']];
      note = `num_key_value_heads -> ${hf.num_key_value_heads} (num_attention_heads ${nh})`;
      break;
    }
    case 'broken': {
      const good = JSON.stringify(hf, null, 2) + '\n';
      const how = rng.pick(['truncate', 'byte-flip', 'bom', 'trailing-comma', 'comment', 'empty', 'invalid-utf8']);
      mutation = `broken-${how}`;
      if (how === 'truncate') text = good.slice(0, rng.int(good.length - 2));
      else if (how === 'byte-flip') {
        const b = Buffer.from(good);
        b[rng.int(b.length)] ^= 1 << rng.int(8);
        expect = 'may-accept';
        f.files[file] = b;
      } else if (how === 'bom') {
        text = '\uFEFF' + good;
        expect = 'may-accept';
      } else if (how === 'trailing-comma') text = good.replace(/\n\}\n$/, ',\n}\n');
      else if (how === 'comment') text = '// a config\n' + good;
      else if (how === 'empty') text = '';
      else {
        const b = Buffer.from(good);
        const at = good.indexOf('"', 4) + 1;
        f.files[file] = Buffer.concat([b.subarray(0, at), Buffer.from([0xff, 0xfe]), b.subarray(at)]);
        text = undefined;
        expect = 'may-accept'; // read as text, the bytes become U+FFFD inside a key
      }
      note = `config.json ${how}`;
      break;
    }
    case 'not-object':
      text = rng.pick(['[]', '5', '"gpt2"', 'null', '[{"model_type": "gpt2"}]']);
      note = `config.json -> ${text}`;
      break;
    case 'generation': {
      const k = rng.pick(['eos_token_id', 'bos_token_id', 'pad_token_id']);
      const V = f.config.vocabSize;
      const v = rng.pick([-1, '2', 1.5, [1, 'x'], null, V + 3, 2 ** 40, V - 1, [0, V - 1], [0, V], 'DEEP']);
      const gen: Record<string, unknown> = { bos_token_id: 0, eos_token_id: 1, do_sample: true, temperature: 0.7 };
      gen[k] = v;
      let genText = JSON.stringify(gen, null, 2);
      if (v === 'DEEP') genText = genText.replace('"DEEP"', '1').replace('"do_sample": true', `"do_sample": true, "deep": ${'['.repeat(100_000)}${']'.repeat(100_000)}`);
      f.files['generation_config.json'] = genText;
      const inVocab = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x < V;
      const ok = v === null || v === 'DEEP' || inVocab(v) || (k === 'eos_token_id' && Array.isArray(v) && v.every(inVocab));
      expect = ok ? 'may-accept' : 'must-refuse';
      mustName = [['generation_config.json'], ...(v === 'DEEP' ? [] : [[k]])];
      note = `generation_config.json ${k} -> ${v === 'DEEP' ? `1, with a value nested 100000 deep` : JSON.stringify(v)}`;
      mutation = 'generation';
      break;
    }
    default:
      throw new Error(op);
  }
  if (!(op === 'broken' && f.files[file] instanceof Uint8Array)) {
    let out = text ?? JSON.stringify(hf, null, 2) + '\n';
    if (raw !== undefined) out = out.replace(JSON.stringify(RAW), raw);
    f.files[file] = out;
  }
  return { index, kind: 'config', mutation, expect, mustName, note, files: f.files, load: { op: 'model', dir: '.', optimizer: false, train: false, save: true } };
}
