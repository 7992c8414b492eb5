// Checkpoints laid out as Hugging Face does them (config.json + model.safetensors, or shards with
// model.safetensors.index.json; generation_config.json; optionally optimizer.safetensors for an exact
// resume), written atomically, read back with every tensor checked.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { type Arch, ConfigError, describeSizes, fromHFConfig, hfConfigField, minParameters, toHFConfig, type GPTConfig } from './config.js';
import { interruptedWrites, writeDirAtomic, writeFileDurable, type FileData } from './fsutil.js';
import { checkGenerationTokenIds, GENERATION_CONFIG_FILE, readGenerationConfig, type GenerationConfig } from './generation-config.js';
import { jsonNestingDepth, MAX_JSON_DEPTH, tooDeep } from './json-depth.js';
import { type Device, Model, type TensorInfo } from './model.js';
import {
  FLOAT_DTYPES,
  openSafetensors,
  serializeSafetensors,
  toFloat32,
  type FloatWriteDType,
  type SafetensorsEntry,
  type SafetensorsHandle,
  type TensorToWrite,
} from './safetensors.js';

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
/** the index of a sharded checkpoint: {metadata: {total_size}, weight_map: {tensor name: shard file}} */
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
/** optimizer.safetensors names: these prefixes + the parameter's name (as in model.safetensors) */
export const EXP_AVG_PREFIX = 'exp_avg.';
export const EXP_AVG_SQ_PREFIX = 'exp_avg_sq.';
/** save_pretrained's default max_shard_size */
export const DEFAULT_MAX_SHARD_SIZE = '5GB';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** How weights are stored, as config.json's torch_dtype names it. The engine computes in float32 whatever the file holds. */
export type WeightDType = 'float32' | 'bfloat16' | 'float16';
const ST_DTYPE: Record<WeightDType, FloatWriteDType> = { float32: 'F32', bfloat16: 'BF16', float16: 'F16' };
const WEIGHT_DTYPES = Object.keys(ST_DTYPE) as WeightDType[];

/**
 * Where a loaded model came from: what saving it writes back besides its weights. loadModel
 * records one for each model it returns (checkpointSource); saveModel uses it unless told otherwise.
 */
export interface CheckpointSource {
  /** the folder it was read from */
  dir: string;
  /** config.json as read: its fields that the engine does not determine (token ids, ...) are written back */
  hfConfig: Record<string, unknown>;
  /** generation_config.json as read, when the folder had one; written back as it is */
  generationConfig?: GenerationConfig;
  /** the model's dtype: config.json's torch_dtype; else its tensors' one dtype; else float32 */
  dtype: WeightDType;
}

const sources = new WeakMap<Model, CheckpointSource>();

/** What loadModel read `model` (or the model it was cloned from) from; undefined for a model that was created or loaded otherwise. */
export function checkpointSource(model: Model): CheckpointSource | undefined {
  return sources.get(model);
}

/**
 * Gives `child` the checkpoint source of `parent` (Model.clone calls it): a reward model, critic or
 * policy cloned from a loaded SFT model is saved with that folder's config.json fields,
 * generation_config.json and dtype, as the SFT model itself would be.
 */
export function inheritCheckpointSource(child: Model, parent: Model): void {
  const s = sources.get(parent);
  if (s) sources.set(child, s);
}

export interface SaveModelOptions {
  /** also write optimizer.safetensors: AdamW's moments and step count (always float32), for an exact resume */
  optimizer?: boolean;
  /** extra config.json fields (e.g. eos_token_id); they override the generated ones */
  config?: Record<string, unknown>;
  /** more files for the checkpoint (e.g. tokenizer.json), by file name, written in the same atomic step */
  files?: Record<string, FileData>;
  /**
   * the weights' dtype, also written as config.json's torch_dtype; bfloat16 and float16 round to
   * nearest even. Default: the dtype the model came in (the source's), else float32, except that
   * with `optimizer` the tensors are stored as the engine's float32 master weights, so that a resume
   * is exact (torch_dtype still names the model's dtype, and the next save without optimizer state
   * writes that).
   */
  dtype?: WeightDType;
  /**
   * split the weights into shards of at most this many bytes (a tensor larger than that gets a
   * shard of its own), as save_pretrained does: bytes, or a size such as "5GB" (10^9) or "2GiB" (2^30).
   * Default "5GB". One shard is written as model.safetensors; more as model-0000k-of-0000n.safetensors
   * with model.safetensors.index.json.
   */
  maxShardSize?: number | string;
  /** what the model came from (default: checkpointSource(model)); null writes a config of its own only */
  source?: CheckpointSource | null;
  /** generation_config.json to write (default: the source's, if any); null writes none */
  generationConfig?: GenerationConfig | null;
}

export interface LoadModelOptions {
  /** restore optimizer.safetensors when the checkpoint has one (default true) */
  optimizer?: boolean;
  /** where the loaded model runs (default: getDefaultDevice()); the files are the same whichever device wrote them */
  device?: Device;
}

const RESERVED = new Set([CONFIG_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE, OPTIMIZER_FILE, GENERATION_CONFIG_FILE]);
const SHARD_NAME = /^model-\d+-of-\d+\.safetensors$/;
const fmtShape = (s: readonly number[]) => `[${s.join(', ')}]`;
const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** Bytes from a size as save_pretrained's max_shard_size takes it ("5GB" = 5 * 10^9, "2GiB" = 2 * 2^30), or a number of bytes. */
export function parseShardSize(size: number | string): number {
  if (typeof size === 'number') {
    if (!Number.isSafeInteger(size) || size < 1) throw new CheckpointError(`maxShardSize must be a positive number of bytes, got ${size}`);
    return size;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$/i.exec(size);
  if (!m) throw new CheckpointError(`maxShardSize ${JSON.stringify(size)} is not a size (such as "5GB", "500MB" or "2GiB")`);
  const bytes = Math.floor(Number(m[1]) * SIZE_UNITS[(m[2] ?? 'b').toLowerCase()]);
  if (bytes < 1) throw new CheckpointError(`maxShardSize ${JSON.stringify(size)} is less than a byte`);
  return bytes;
}

/**
 * Tensors into shards in order, as huggingface_hub's split_torch_state_dict_into_shards does: a
 * tensor larger than the limit gets a shard of its own; one that would take the current shard over
 * the limit starts a new one.
 */
function planShards<T extends { bytes: number }>(tensors: T[], maxBytes: number): T[][] {
  const shards: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const t of tensors) {
    if (t.bytes > maxBytes) {
      shards.push([t]);
      continue;
    }
    if (size + t.bytes > maxBytes && current.length) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += t.bytes;
  }
  if (current.length) shards.push(current);
  return shards;
}

const shardName = (k: number, n: number) => `model-${String(k + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;

/** JSON as Python's json.dumps(obj, indent=2, sort_keys=True) writes it (transformers' index files). */
function sortedJSON(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortedJSON);
  if (isObject(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortedJSON(v[k])]));
  return v;
}

/**
 * Writes `model` to the directory `dir` as a Hugging Face checkpoint (GPT2LMHeadModel,
 * LlamaForCausalLM / Qwen2ForCausalLM / MistralForCausalLM, or their ...ForSequenceClassification
 * with a value head), replacing any checkpoint there atomically. A model loaded by loadModel is
 * written back with its config.json's other fields, its generation_config.json and its dtype
 * (see SaveModelOptions.source). The saved state is the model's as of this call: reads queue behind
 * the calls made before it.
 */
export async function saveModel(model: Model, dir: string, opts: SaveModelOptions = {}): Promise<void> {
  const files = Object.entries(opts.files ?? {});
  for (const [name] of files)
    if (RESERVED.has(name) || SHARD_NAME.test(name) || name !== path.basename(name) || name === '.' || name === '..' || name === '')
      throw new CheckpointError(
        `saveModel: extra file name ${JSON.stringify(name)} is not allowed (a plain name other than ${[...RESERVED].join(', ')} and model-*-of-*.safetensors)`,
      );
  const source = opts.source === null ? undefined : (opts.source ?? sources.get(model));
  const dtype = opts.dtype ?? source?.dtype ?? 'float32';
  if (!WEIGHT_DTYPES.includes(dtype)) throw new CheckpointError(`saveModel: dtype must be one of ${WEIGHT_DTYPES.join(', ')}, got ${JSON.stringify(dtype)}`);
  const stored: WeightDType = opts.dtype ?? (opts.optimizer ? 'float32' : dtype);
  const maxShard = parseShardSize(opts.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE);
  const generationConfig = opts.generationConfig === null ? undefined : (opts.generationConfig ?? source?.generationConfig);
  // Replacing a directory removes all of it: refuse one that does not look like a checkpoint.
  const present = await fs.readdir(dir).catch(() => undefined);
  if (present && present.length > 0 && !present.includes(CONFIG_FILE))
    throw new CheckpointError(`${dir} exists and is not a checkpoint (it has files but no ${CONFIG_FILE}); refusing to replace it`);
  const layout = model.layout();
  const hfConfig = toHFConfig(model.config, { torch_dtype: dtype, ...opts.config }, source?.hfConfig);
  const { params, adamM, adamV, step } = await model.snapshot({ optimizer: opts.optimizer });

  const stDtype = ST_DTYPE[stored];
  const elemBytes = stDtype === 'F32' ? 4 : 2;
  const shards = planShards(
    layout.map((t) => ({ t, bytes: t.numel * elemBytes })),
    maxShard,
  );
  const slices = (buf: Float32Array, infos: TensorInfo[], prefix = '', dt: FloatWriteDType = 'F32') =>
    new Map<string, TensorToWrite>(infos.map((t) => [prefix + t.name, { dtype: dt, shape: t.shape, data: buf.subarray(t.offset, t.offset + t.numel) }]));
  await writeDirAtomic(dir, async (tmp) => {
    await writeFileDurable(path.join(tmp, CONFIG_FILE), JSON.stringify(hfConfig, null, 2) + '\n');
    if (shards.length <= 1) {
      await writeFileDurable(path.join(tmp, WEIGHTS_FILE), serializeSafetensors(slices(params, layout, '', stDtype), { format: 'pt' }));
    } else {
      const weightMap: Record<string, string> = {};
      let totalSize = 0;
      for (let k = 0; k < shards.length; k++) {
        const name = shardName(k, shards.length);
        const infos = shards[k].map((s) => s.t);
        // One shard's converted bytes at a time.
        await writeFileDurable(path.join(tmp, name), serializeSafetensors(slices(params, infos, '', stDtype), { format: 'pt' }));
        for (const s of shards[k]) {
          weightMap[s.t.name] = name;
          totalSize += s.bytes;
        }
      }
      const index = { metadata: { total_parameters: params.length, total_size: totalSize }, weight_map: weightMap };
      await writeFileDurable(path.join(tmp, WEIGHTS_INDEX_FILE), JSON.stringify(sortedJSON(index), null, 2) + '\n');
    }
    if (generationConfig) await writeFileDurable(path.join(tmp, GENERATION_CONFIG_FILE), JSON.stringify(generationConfig, null, 2) + '\n');
    if (opts.optimizer) {
      const moments = new Map([...slices(adamM!, layout, EXP_AVG_PREFIX), ...slices(adamV!, layout, EXP_AVG_SQ_PREFIX)]);
      await writeFileDurable(path.join(tmp, OPTIMIZER_FILE), serializeSafetensors(moments, { format: 'pt', optimizer: 'adamw', step: String(step) }));
    }
    for (const [name, data] of files) await writeFileDurable(path.join(tmp, name), data);
  });
}

async function missingCheckpoint(dir: string, file: string): Promise<CheckpointError> {
  const left = await interruptedWrites(dir);
  const hint = left.old.length
    ? `; a save was interrupted: the previous checkpoint is at ${left.old[0]}${left.tmp.length ? ` and the new one (maybe incomplete) at ${left.tmp[0]}` : ''}`
    : '';
  return new CheckpointError(`${dir} is not a checkpoint: ${file} does not exist${hint}`);
}

async function readJSONObject(file: string): Promise<Record<string, unknown>> {
  const text = await fs.readFile(file, 'utf8');
  // kept fields are written back by saveModel: a value too deep for JSON.stringify is refused here
  if (jsonNestingDepth(text) > MAX_JSON_DEPTH) throw new ConfigError(`${file}: ${tooDeep()}`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(v)) throw new ConfigError(`${file}: not a JSON object`);
  return v;
}

async function readConfigFile(dir: string): Promise<{ file: string; hf: Record<string, unknown>; config: GPTConfig }> {
  const file = path.join(dir, CONFIG_FILE);
  let hf: Record<string, unknown>;
  try {
    hf = await readJSONObject(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw await missingCheckpoint(dir, file);
    throw e;
  }
  return { file, hf, config: fromHFConfig(hf, file) };
}

/** The model config of the checkpoint in `dir` (its config.json), checked. */
export async function readCheckpointConfig(dir: string): Promise<GPTConfig> {
  return (await readConfigFile(dir)).config;
}

/** A tensor in one of a checkpoint's open files. */
interface Located {
  entry: SafetensorsEntry;
  handle: SafetensorsHandle;
}

/** A checkpoint's weights: one file or shards, headers read and checked, data not yet. */
interface Weights {
  /** names the weights in errors about the whole: model.safetensors, or the index */
  where: string;
  handles: SafetensorsHandle[];
  tensors: Map<string, Located>;
}

const exists = (file: string) => fs.access(file).then(() => true, () => false);

async function openTensorFile(dir: string, file: string, missing: () => Promise<Error>): Promise<SafetensorsHandle> {
  try {
    return await openSafetensors(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw await missing();
    throw e;
  }
}

async function closeAll(handles: SafetensorsHandle[]): Promise<void> {
  await Promise.all(handles.map((h) => h.close().catch(() => undefined)));
}

/** Opens model.safetensors, or the shards model.safetensors.index.json names, checking that the index and the shards agree. */
async function openWeights(dir: string): Promise<Weights> {
  const single = path.join(dir, WEIGHTS_FILE);
  const indexFile = path.join(dir, WEIGHTS_INDEX_FILE);
  if ((await exists(single)) || !(await exists(indexFile))) {
    const h = await openTensorFile(dir, single, async () => {
      const e = await missingCheckpoint(dir, single);
      e.message += ` (nor does ${WEIGHTS_INDEX_FILE} for a sharded one)`;
      return e;
    });
    return { where: single, handles: [h], tensors: new Map([...h.tensors].map(([n, entry]) => [n, { entry, handle: h }])) };
  }
  const index = await readJSONObject(indexFile);
  const fail = (msg: string): never => {
    throw new CheckpointError(`${indexFile}: ${msg}`);
  };
  if (index.metadata !== undefined && index.metadata !== null && !isObject(index.metadata)) fail('metadata must be an object');
  const wm = index.weight_map;
  if (!isObject(wm)) return fail('weight_map must be an object mapping each tensor name to its shard file');
  const byFile = new Map<string, string[]>();
  for (const [name, f] of Object.entries(wm)) {
    if (typeof f !== 'string' || f === '' || f !== path.basename(f) || f === '.' || f === '..')
      fail(`weight_map names ${typeof f === 'object' && f !== null ? (Array.isArray(f) ? 'an array' : 'an object') : JSON.stringify(f)} for tensor ${JSON.stringify(name)}; it must be a file name in ${dir}`);
    byFile.set(f as string, [...(byFile.get(f as string) ?? []), name]);
  }
  if (byFile.size === 0) fail('weight_map is empty');
  const handles: SafetensorsHandle[] = [];
  const tensors = new Map<string, Located>();
  try {
    // Headers only: the data is read shard by shard while loading.
    for (const [f, names] of byFile) {
      const file = path.join(dir, f);
      const h = await openTensorFile(dir, file, async () =>
        new CheckpointError(`${file} does not exist; ${indexFile} names it for ${JSON.stringify(names[0])}${names.length > 1 ? ` and ${names.length - 1} more tensors` : ''}`),
      );
      handles.push(h);
      for (const name of names)
        if (!h.tensors.has(name)) throw new CheckpointError(`${file}: has no tensor ${JSON.stringify(name)}, which ${indexFile} places in it`);
      for (const [name, entry] of h.tensors) {
        if (wm[name] !== f)
          throw new CheckpointError(
            `${file}: tensor ${JSON.stringify(name)} is ${wm[name] === undefined ? 'not in' : `placed in ${JSON.stringify(wm[name])} by`} ${indexFile}'s weight_map`,
          );
        tensors.set(name, { entry, handle: h });
      }
    }
  } catch (e) {
    await closeAll(handles);
    throw e;
  }
  return { where: indexFile, handles, tensors };
}

/** Names the architectures give their trunk ('transformer.' / 'model.'), and the buffers some checkpoints carry that are not parameters. */
const ARCH_NAMES: Record<Arch, { prefix: string; embed: string; buffer: RegExp; what: string }> = {
  // GPT-2's causal mask; the engine has its own.
  gpt2: { prefix: 'transformer.', embed: 'transformer.wte.weight', buffer: /^(transformer\.)?h\.\d+\.attn\.(masked_)?bias$/, what: 'the GPT-2' },
  // RoPE's inverse frequencies, which older transformers saved; the engine computes them from config.json.
  llama: { prefix: 'model.', embed: 'model.embed_tokens.weight', buffer: /^(model\.)?(layers\.\d+\.self_attn\.)?rotary_emb\.inv_freq$/, what: 'the Llama-family model' },
};
// Llama's attention_bias adds an o_proj bias the engine does not have: loadable only when it is zero.
const O_PROJ_BIAS = /^(model\.)?layers\.\d+\.self_attn\.o_proj\.bias$/;

/**
 * Which file tensor fills each parameter. Accepts names with or without the trunk's prefix, skips
 * non-parameter buffers, and returns apart a tied lm_head.weight (it must equal the embedding) and
 * Llama o_proj biases (they must be zero).
 */
function matchWeights(
  w: Weights,
  layout: TensorInfo[],
  arch: Arch,
): { found: Map<string, Located>; lmHead?: Located; zeroBiases: Located[] } {
  const { prefix, buffer, what } = ARCH_NAMES[arch];
  const names = new Set(layout.map((t) => t.name));
  const found = new Map<string, Located>();
  const extras: Located[] = [];
  const zeroBiases: Located[] = [];
  let lmHead: Located | undefined;
  for (const [name, t] of w.tensors) {
    const target = names.has(name) ? name : names.has(prefix + name) ? prefix + name : undefined;
    if (target === undefined) {
      if (name === 'lm_head.weight') lmHead = t;
      else if (arch === 'llama' && O_PROJ_BIAS.test(name)) zeroBiases.push(t);
      else if (!buffer.test(name)) extras.push(t);
      continue;
    }
    const prev = found.get(target);
    if (prev) throw new CheckpointError(`${t.handle.file}: tensors ${JSON.stringify(prev.entry.name)} and ${JSON.stringify(name)} are both ${JSON.stringify(target)}`);
    found.set(target, t);
  }
  if (extras.length) {
    const more = extras.slice(1).map((t) => t.entry.name);
    throw new CheckpointError(
      `${extras[0].handle.file}: unexpected tensor ${JSON.stringify(extras[0].entry.name)}${more.length ? ` (and ${more.length} more: ${more.slice(0, 5).map((n) => JSON.stringify(n)).join(', ')}${more.length > 5 ? ', ...' : ''})` : ''}; it is not a parameter of ${what} that config.json describes`,
    );
  }
  return { found, lmHead, zeroBiases };
}

function checkFloat(t: Located): void {
  if (!FLOAT_DTYPES.includes(t.entry.dtype))
    throw new CheckpointError(`${t.handle.file}: tensor ${JSON.stringify(t.entry.name)} has dtype ${t.entry.dtype}; parameters must be one of ${FLOAT_DTYPES.join(', ')}`);
}

/** Checks that every tensor of `layout` is in `found` with its shape and a float dtype. */
function checkTensors(where: string, layout: TensorInfo[], found: Map<string, Located>, prefix = '', hint = ''): void {
  const missing = layout.filter((t) => !found.has(t.name));
  if (missing.length)
    throw new CheckpointError(
      `${where}: missing tensor ${JSON.stringify(prefix + missing[0].name)}${missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''}${hint}`,
    );
  for (const info of layout) {
    const t = found.get(info.name)!;
    if (!sameShape(t.entry.shape, info.shape))
      throw new CheckpointError(`${t.handle.file}: tensor ${JSON.stringify(t.entry.name)} has shape ${fmtShape(t.entry.shape)}; config.json implies ${fmtShape(info.shape)}`);
    checkFloat(t);
  }
}

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

const readFloats = async (t: Located) => toFloat32(await t.handle.read(t.entry.name), t.handle.file);

/** Element `i` of a row-major tensor of `shape`, as coordinates. */
function coordinates(i: number, shape: readonly number[]): number[] {
  const at = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    at[d] = shape[d] > 0 ? i % shape[d] : 0;
    i = shape[d] > 0 ? Math.floor(i / shape[d]) : 0;
  }
  return at;
}

/**
 * A tensor's values, read and checked where they enter: every value finite (as float32), and with
 * `nonNegative` (AdamW's second moment) none below zero. A refusal names the file, the tensor, the
 * first offending element (flat index and coordinates) and its value, and how many there are.
 */
async function readChecked(t: Located, what: string, nonNegative = false): Promise<Float32Array> {
  const a = await readFloats(t);
  let first = -1;
  let count = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    // NaN fails both comparisons; -0 passes
    if (!(x > -Infinity && x < Infinity) || (nonNegative && x < 0)) {
      if (first < 0) first = i;
      count++;
    }
  }
  if (first < 0) return a;
  const shape = t.entry.shape;
  const x = a[first];
  const rule = nonNegative ? 'must be finite and non-negative' : 'must be finite';
  const f64 = t.entry.dtype === 'F64' && (x === Infinity || x === -Infinity) ? ' as float32' : '';
  throw new CheckpointError(
    `${t.handle.file}: tensor ${JSON.stringify(t.entry.name)} element ${first}${shape.length > 1 ? ` (${fmtShape(coordinates(first, shape))})` : ''} is ${x}${f64}${count > 1 ? ` (and ${count - 1} more such elements)` : ''}; ${what} ${rule}`,
  );
}

/** The optimizer state in `h`, checked against the model's layout. */
function matchOptimizer(h: SafetensorsHandle, layout: TensorInfo[]): { m: Map<string, Located>; v: Map<string, Located>; step: number } {
  const byName = new Map(layout.map((t) => [t.name, t]));
  const m = new Map<string, Located>();
  const v = new Map<string, Located>();
  for (const [name, entry] of h.tensors) {
    const [map, rest] = name.startsWith(EXP_AVG_SQ_PREFIX)
      ? [v, name.slice(EXP_AVG_SQ_PREFIX.length)]
      : name.startsWith(EXP_AVG_PREFIX)
        ? [m, name.slice(EXP_AVG_PREFIX.length)]
        : [undefined, ''];
    if (!map || !byName.has(rest))
      throw new CheckpointError(`${h.file}: unexpected tensor ${JSON.stringify(name)}; it is not a moment of a parameter of the model that config.json describes`);
    map.set(rest, { entry, handle: h });
  }
  checkTensors(h.file, layout, m, EXP_AVG_PREFIX);
  checkTensors(h.file, layout, v, EXP_AVG_SQ_PREFIX);
  const s = h.metadata.step;
  if (s === undefined || !/^\d+$/.test(s) || !Number.isSafeInteger(Number(s)))
    throw new CheckpointError(`${h.file}: __metadata__ "step" must be the optimizer's step count (a non-negative integer), got ${JSON.stringify(s)}`);
  return { m, v, step: Number(s) };
}

/**
 * The model's dtype: config.json's torch_dtype (transformers 4.56+: dtype), which a training
 * checkpoint keeps while its tensors hold float32 master weights; else the parameters' one dtype;
 * else float32.
 */
function weightDType(found: Map<string, Located>, hf: Record<string, unknown>): WeightDType {
  const declared = hf.torch_dtype ?? hf.dtype;
  if (WEIGHT_DTYPES.includes(declared as WeightDType)) return declared as WeightDType;
  const seen = new Set([...found.values()].map((t) => t.entry.dtype));
  const only = seen.size === 1 ? WEIGHT_DTYPES.find((k) => ST_DTYPE[k] === [...seen][0]) : undefined;
  return only ?? 'float32';
}

/** Models at least this large are checked against the weights' size before their memory is allocated. */
const LARGE_MODEL = 1 << 24;

/**
 * The empty model config.json describes, with config.json's names when the engine refuses it. A
 * large one (a config.json corrupt or meant for other weights) is refused before its memory
 * (16 bytes a parameter) is allocated when the weights hold fewer values than it would have; a
 * small one is allocated, and the tensors' checks then say which tensor is missing or mis-shaped.
 */
function createModel(config: GPTConfig, configFile: string, weights: Weights, device: Device | undefined): Model {
  let held = 0;
  for (const { entry } of weights.tensors.values()) held += entry.shape.reduce((a, d) => a * d, 1);
  const least = minParameters(config);
  if (least > held && least >= LARGE_MODEL)
    throw new CheckpointError(
      `${configFile}: describes a model of at least ${least} parameters (${describeSizes(config)}), but ${weights.where} holds ${held} values in all; config.json does not match the weights`,
    );
  try {
    return Model.empty(config, { device });
  } catch (e) {
    // the engine's range checks name its keys ("channels must be an integer in [1, 1048576]")
    const msg = (e as Error).message;
    const key = /^(\w+) /.exec(msg)?.[1];
    const field = key === undefined ? undefined : hfConfigField(config.arch, key);
    if (field !== undefined)
      throw new CheckpointError(`${configFile}: ${field} ${JSON.stringify(config[key as keyof GPTConfig])} is outside what the engine supports (${msg})`);
    if (/out of memory/.test(msg)) throw new CheckpointError(`${configFile}: the model it describes (${describeSizes(config)}) does not fit in memory (${msg})`);
    throw e;
  }
}

/**
 * Loads the checkpoint in `dir`: one saved by saveModel, or a model folder saved by transformers
 * (GPT-2, Llama, Qwen2, Mistral; causal LM or ...ForSequenceClassification; model.safetensors or
 * shards with model.safetensors.index.json; F32, F16 or BF16 weights, converted to float32).
 * Restores the optimizer state too when the checkpoint has optimizer.safetensors. Reads one tensor
 * at a time, so memory beyond the model is bounded by its largest tensor. What the folder held
 * besides the weights is recorded for saveModel (checkpointSource).
 */
export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<Model> {
  const { file: configFile, hf, config } = await readConfigFile(dir);
  const generationConfig = await readGenerationConfig(dir);
  if (generationConfig) checkGenerationTokenIds(generationConfig, config.vocabSize, path.join(dir, GENERATION_CONFIG_FILE));
  const weights = await openWeights(dir);
  const handles = [...weights.handles];
  let model: Model | undefined;
  try {
    const optFile = path.join(dir, OPTIMIZER_FILE);
    const opt = opts.optimizer === false || !(await exists(optFile)) ? undefined : await openSafetensors(optFile);
    if (opt) handles.push(opt);
    model = createModel(config, configFile, weights, opts.device);
    const layout = model.layout();
    const names = ARCH_NAMES[config.arch];
    const { found, lmHead, zeroBiases } = matchWeights(weights, layout, config.arch);
    const untiedHead = layout.some((t) => t.name === 'lm_head.weight');
    checkTensors(
      weights.where,
      layout,
      found,
      '',
      untiedHead && config.valueHead && !found.has('lm_head.weight')
        ? ` (tie_word_embeddings is false, so the engine needs lm_head.weight even with a value head)`
        : '',
    );
    const embed = found.get(names.embed)!;
    if (lmHead && !(sameShape(lmHead.entry.shape, embed.entry.shape) && FLOAT_DTYPES.includes(lmHead.entry.dtype)))
      throw new CheckpointError(
        `${lmHead.handle.file}: lm_head.weight (${lmHead.entry.dtype} ${fmtShape(lmHead.entry.shape)}) is not the token embedding ${embed.entry.name}; config.json ties the output layer to the token embedding, so an untied lm_head cannot be loaded`,
      );
    if (!lmHead && config.arch === 'gpt2' && hf.tie_word_embeddings === false)
      throw new CheckpointError(`${configFile}: tie_word_embeddings is false but ${weights.where} has no lm_head.weight; the engine ties the output layer to the token embedding`);
    for (const b of zeroBiases) checkFloat(b);
    const moments = opt ? matchOptimizer(opt, layout) : undefined;

    // Shard by shard, tensor by tensor.
    for (const h of weights.handles)
      for (const t of layout) {
        const src = found.get(t.name)!;
        if (src.handle === h) await model.writeTensor(t.name, await readChecked(src, 'weights'));
      }
    if (lmHead && !bitsEqual(await readFloats(lmHead), await model.readTensor(names.embed)))
      throw new CheckpointError(
        `${lmHead.handle.file}: lm_head.weight differs from ${embed.entry.name}; config.json ties the output layer to the token embedding (tie_word_embeddings), so an untied lm_head cannot be loaded`,
      );
    for (const b of zeroBiases)
      if ((await readFloats(b)).some((x) => x !== 0))
        throw new CheckpointError(
          `${b.handle.file}: ${b.entry.name} is not zero; the engine has no o_proj bias (Llama's attention_bias adds one; only q/k/v biases, as Qwen2 has, are supported)`,
        );
    if (moments) {
      const fresh = "; this optimizer state cannot be resumed from (use an earlier checkpoint, or load the weights alone: loadModel's optimizer: false)";
      const moment = async (t: Located, what: string, nonNegative: boolean) => {
        try {
          return await readChecked(t, what, nonNegative);
        } catch (e) {
          if (e instanceof CheckpointError) e.message += fresh;
          throw e;
        }
      };
      for (const t of layout) await model.writeTensor(t.name, await moment(moments.m.get(t.name)!, "AdamW's first moment (exp_avg)", false), 'adam_m');
      for (const t of layout) await model.writeTensor(t.name, await moment(moments.v.get(t.name)!, "AdamW's second moment (exp_avg_sq)", true), 'adam_v');
      await model.setOptimizerStep(moments.step);
    }
    sources.set(model, { dir, hfConfig: hf, generationConfig, dtype: weightDType(found, hf) });
    return model;
  } catch (e) {
    model?.dispose();
    throw e;
  } finally {
    await closeAll(handles);
  }
}
