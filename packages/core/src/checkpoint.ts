// Checkpoints laid out as Hugging Face does them (config.json + model.safetensors, optionally
// optimizer.safetensors for an exact resume), written atomically, read back with every tensor checked.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { ConfigError, fromHFConfig, toHFConfig, type GPTConfig } from './config.js';
import { interruptedWrites, writeDirAtomic, writeFileDurable, type FileData } from './fsutil.js';
import { type Device, Model, type TensorInfo } from './model.js';
import { FLOAT_DTYPES, readSafetensors, serializeSafetensors, toFloat32, type SafetensorsFile, type SafetensorsTensor, type TensorToWrite } from './safetensors.js';

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
/** optimizer.safetensors names: these prefixes + the parameter's name (as in model.safetensors) */
export const EXP_AVG_PREFIX = 'exp_avg.';
export const EXP_AVG_SQ_PREFIX = 'exp_avg_sq.';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export interface SaveModelOptions {
  /** also write optimizer.safetensors: AdamW's moments and step count, for an exact resume */
  optimizer?: boolean;
  /** extra config.json fields (e.g. eos_token_id); they override the generated ones */
  config?: Record<string, unknown>;
  /** more files for the checkpoint (e.g. tokenizer.json), by file name, written in the same atomic step */
  files?: Record<string, FileData>;
}

export interface LoadModelOptions {
  /** restore optimizer.safetensors when the checkpoint has one (default true) */
  optimizer?: boolean;
  /** where the loaded model runs (default: getDefaultDevice()); the files are the same whichever device wrote them */
  device?: Device;
}

const RESERVED = new Set([CONFIG_FILE, WEIGHTS_FILE, OPTIMIZER_FILE]);
const fmtShape = (s: readonly number[]) => `[${s.join(', ')}]`;
const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Writes `model` to the directory `dir` as a Hugging Face GPT-2 checkpoint (GPT2LMHeadModel, or
 * GPT2ForSequenceClassification with a value head), replacing any checkpoint there atomically.
 * The saved state is the model's as of this call: reads queue behind the calls made before it.
 */
export async function saveModel(model: Model, dir: string, opts: SaveModelOptions = {}): Promise<void> {
  const files = Object.entries(opts.files ?? {});
  for (const [name] of files)
    if (RESERVED.has(name) || name !== path.basename(name) || name === '.' || name === '..' || name === '')
      throw new CheckpointError(`saveModel: extra file name ${JSON.stringify(name)} is not allowed (a plain name other than ${[...RESERVED].join(', ')})`);
  // Replacing a directory removes all of it: refuse one that does not look like a checkpoint.
  const present = await fs.readdir(dir).catch(() => undefined);
  if (present && present.length > 0 && !present.includes(CONFIG_FILE))
    throw new CheckpointError(`${dir} exists and is not a checkpoint (it has files but no ${CONFIG_FILE}); refusing to replace it`);
  const layout = model.layout();
  const hfConfig = toHFConfig(model.config, { torch_dtype: 'float32', ...opts.config });
  const { params, adamM, adamV, step } = await model.snapshot({ optimizer: opts.optimizer });

  const slices = (buf: Float32Array, prefix = '') =>
    new Map<string, TensorToWrite>(layout.map((t) => [prefix + t.name, { shape: t.shape, data: buf.subarray(t.offset, t.offset + t.numel) }]));
  await writeDirAtomic(dir, async (tmp) => {
    await writeFileDurable(path.join(tmp, CONFIG_FILE), JSON.stringify(hfConfig, null, 2) + '\n');
    await writeFileDurable(path.join(tmp, WEIGHTS_FILE), serializeSafetensors(slices(params), { format: 'pt' }));
    if (opts.optimizer) {
      const moments = new Map([...slices(adamM!, EXP_AVG_PREFIX), ...slices(adamV!, EXP_AVG_SQ_PREFIX)]);
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

async function readConfigFile(dir: string): Promise<{ file: string; hf: Record<string, unknown>; config: GPTConfig }> {
  const file = path.join(dir, CONFIG_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw await missingCheckpoint(dir, file);
    throw e;
  }
  let hf: unknown;
  try {
    hf = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof hf !== 'object' || hf === null || Array.isArray(hf)) throw new ConfigError(`${file}: not a JSON object`);
  const obj = hf as Record<string, unknown>;
  return { file, hf: obj, config: fromHFConfig(obj, file) };
}

/** The model config of the checkpoint in `dir` (its config.json), checked. */
export async function readCheckpointConfig(dir: string): Promise<GPTConfig> {
  return (await readConfigFile(dir)).config;
}

async function readTensorFile(dir: string, name: string, optional: true): Promise<SafetensorsFile | undefined>;
async function readTensorFile(dir: string, name: string, optional?: false): Promise<SafetensorsFile>;
async function readTensorFile(dir: string, name: string, optional = false): Promise<SafetensorsFile | undefined> {
  const file = path.join(dir, name);
  try {
    return await readSafetensors(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    if (optional) return undefined;
    throw await missingCheckpoint(dir, file);
  }
}

// Non-parameter buffers some GPT-2 checkpoints carry (the causal mask); the engine has its own.
const MASK_BUFFER = /^(transformer\.)?h\.\d+\.attn\.(masked_)?bias$/;

/**
 * Which file tensor fills each parameter. Accepts names with or without "transformer.", skips the
 * attention-mask buffers, and returns lm_head.weight apart (it must equal wte).
 */
function matchWeights(st: SafetensorsFile, layout: TensorInfo[]): { found: Map<string, SafetensorsTensor>; lmHead?: SafetensorsTensor } {
  const names = new Set(layout.map((t) => t.name));
  const found = new Map<string, SafetensorsTensor>();
  const extras: string[] = [];
  let lmHead: SafetensorsTensor | undefined;
  for (const [name, t] of st.tensors) {
    const target = names.has(name) ? name : names.has('transformer.' + name) ? 'transformer.' + name : undefined;
    if (target === undefined) {
      if (name === 'lm_head.weight') lmHead = t;
      else if (!MASK_BUFFER.test(name)) extras.push(name);
      continue;
    }
    const prev = found.get(target);
    if (prev) throw new CheckpointError(`${st.file}: tensors ${JSON.stringify(prev.name)} and ${JSON.stringify(name)} are both ${JSON.stringify(target)}`);
    found.set(target, t);
  }
  if (extras.length)
    throw new CheckpointError(
      `${st.file}: unexpected tensor ${JSON.stringify(extras[0])}${extras.length > 1 ? ` (and ${extras.length - 1} more: ${extras.slice(1, 6).map((n) => JSON.stringify(n)).join(', ')}${extras.length > 6 ? ', ...' : ''})` : ''}; it is not a parameter of the GPT-2 that config.json describes`,
    );
  return { found, lmHead };
}

/** Checks that every tensor of `layout` is in `found` with its shape and a float dtype. */
function checkTensors(st: SafetensorsFile, layout: TensorInfo[], found: Map<string, SafetensorsTensor>, prefix = ''): void {
  const missing = layout.filter((t) => !found.has(t.name));
  if (missing.length)
    throw new CheckpointError(
      `${st.file}: missing tensor ${JSON.stringify(prefix + missing[0].name)}${missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''}`,
    );
  for (const info of layout) {
    const t = found.get(info.name)!;
    if (!sameShape(t.shape, info.shape))
      throw new CheckpointError(`${st.file}: tensor ${JSON.stringify(t.name)} has shape ${fmtShape(t.shape)}; config.json implies ${fmtShape(info.shape)}`);
    if (!FLOAT_DTYPES.includes(t.dtype))
      throw new CheckpointError(`${st.file}: tensor ${JSON.stringify(t.name)} has dtype ${t.dtype}; parameters must be one of ${FLOAT_DTYPES.join(', ')}`);
  }
}

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** The optimizer state in `st`, checked against the model's layout. */
function matchOptimizer(st: SafetensorsFile, layout: TensorInfo[]): { m: Map<string, SafetensorsTensor>; v: Map<string, SafetensorsTensor>; step: number } {
  const byName = new Map(layout.map((t) => [t.name, t]));
  const m = new Map<string, SafetensorsTensor>();
  const v = new Map<string, SafetensorsTensor>();
  for (const [name, t] of st.tensors) {
    const [map, rest] = name.startsWith(EXP_AVG_SQ_PREFIX)
      ? [v, name.slice(EXP_AVG_SQ_PREFIX.length)]
      : name.startsWith(EXP_AVG_PREFIX)
        ? [m, name.slice(EXP_AVG_PREFIX.length)]
        : [undefined, ''];
    if (!map || !byName.has(rest))
      throw new CheckpointError(`${st.file}: unexpected tensor ${JSON.stringify(name)}; it is not a moment of a parameter of the GPT-2 that config.json describes`);
    map.set(rest, t);
  }
  checkTensors(st, layout, m, EXP_AVG_PREFIX);
  checkTensors(st, layout, v, EXP_AVG_SQ_PREFIX);
  const s = st.metadata.step;
  if (s === undefined || !/^\d+$/.test(s) || !Number.isSafeInteger(Number(s)))
    throw new CheckpointError(`${st.file}: __metadata__ "step" must be the optimizer's step count (a non-negative integer), got ${JSON.stringify(s)}`);
  return { m, v, step: Number(s) };
}

/**
 * Loads the checkpoint in `dir`: one saved by saveModel, or a GPT-2 saved by transformers
 * (GPT2LMHeadModel / GPT2ForSequenceClassification, model.safetensors; F32, F16 or BF16 weights).
 * Restores the optimizer state too when the checkpoint has optimizer.safetensors.
 */
export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<Model> {
  const { file: configFile, hf, config } = await readConfigFile(dir);
  const st = await readTensorFile(dir, WEIGHTS_FILE);
  const opt = opts.optimizer === false ? undefined : await readTensorFile(dir, OPTIMIZER_FILE, true);
  const model = Model.empty(config, { device: opts.device });
  try {
    const layout = model.layout();
    const { found, lmHead } = matchWeights(st, layout);
    checkTensors(st, layout, found);
    const wte = 'transformer.wte.weight';
    if (lmHead) {
      const same = sameShape(lmHead.shape, found.get(wte)!.shape) && FLOAT_DTYPES.includes(lmHead.dtype) && bitsEqual(toFloat32(lmHead, st.file), toFloat32(found.get(wte)!, st.file));
      if (!same)
        throw new CheckpointError(`${st.file}: lm_head.weight differs from ${found.get(wte)!.name}; the engine ties the output layer to the token embedding, so an untied lm_head cannot be loaded`);
    } else if (hf.tie_word_embeddings === false) {
      throw new CheckpointError(`${configFile}: tie_word_embeddings is false but ${st.file} has no lm_head.weight; the engine ties the output layer to the token embedding`);
    }
    const moments = opt ? matchOptimizer(opt, layout) : undefined;

    for (const t of layout) await model.writeTensor(t.name, toFloat32(found.get(t.name)!, st.file));
    if (moments) {
      for (const t of layout) await model.writeTensor(t.name, toFloat32(moments.m.get(t.name)!, opt!.file), 'adam_m');
      for (const t of layout) await model.writeTensor(t.name, toFloat32(moments.v.get(t.name)!, opt!.file), 'adam_v');
      await model.setOptimizerStep(moments.step);
    }
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  }
}
