// The safetensors file format: a strict reader (every field checked, errors name file and tensor)
// and a deterministic writer (the same tensors give the same bytes, laid out as the Python library does).
import { constants } from 'node:buffer';
import * as fs from 'node:fs/promises';
import { endianness } from 'node:os';
import { writeFileAtomic } from './fsutil.js';
import { jsonNestingDepth, MAX_JSON_DEPTH, tooDeep } from './json-depth.js';

/** Element sizes in bytes, in the order of the reference implementation's Dtype enum. */
const DTYPE_SIZE = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
} as const;
export type SafetensorsDType = keyof typeof DTYPE_SIZE;
const DTYPE_RANK = new Map(Object.keys(DTYPE_SIZE).map((d, i) => [d, i]));

/** Dtypes that toFloat32 converts. */
export const FLOAT_DTYPES: readonly SafetensorsDType[] = ['F32', 'F16', 'BF16', 'F64'];

/** The reference implementation's limit on the JSON header. */
export const MAX_HEADER_BYTES = 100_000_000;
/** The deepest nesting of objects and arrays a header may have (serde_json's, which the reference implementation parses with, is 128). */
export const MAX_HEADER_DEPTH = MAX_JSON_DEPTH;

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

export interface SafetensorsTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** [begin, end) in the data buffer */
  dataOffsets: [number, number];
  /** the tensor's raw little-endian bytes (a view into the file's bytes, not a copy) */
  bytes: Uint8Array;
}

export interface SafetensorsFile {
  /** the name used in error messages (the path when read from disk) */
  file: string;
  metadata: Record<string, string>;
  /** in file order */
  tensors: Map<string, SafetensorsTensor>;
}

function checkHost(): void {
  if (endianness() !== 'LE') throw new SafetensorsError('safetensors: this reader and writer need a little-endian machine');
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isIndex = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

// JSON.parse keeps the last of duplicate keys silently; this walk over the (already valid) JSON
// text finds the first key repeated inside any one object.
function duplicateKey(text: string): string | undefined {
  const stack: (Set<string> | null)[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      const top = stack[stack.length - 1];
      let k = j + 1;
      while (k < text.length && ' \t\n\r'.includes(text[k])) k++;
      if (top && text[k] === ':') {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.has(key)) return key;
        top.add(key);
      }
      i = j;
    } else if (c === 0x7b) stack.push(new Set());
    else if (c === 0x5b) stack.push(null);
    else if (c === 0x7d || c === 0x5d) stack.pop();
  }
  return undefined;
}

const fmtShape = (s: readonly number[]) => `[${s.join(', ')}]`;

/** A JSON value (of a header whose nesting has been checked) for an error message: at most `max` characters. */
function brief(v: unknown, max = 80): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > max ? `${s.slice(0, max)}...` : s;
}

/** A tensor's header entry: where its bytes are, without them (see openSafetensors). */
export type SafetensorsEntry = Omit<SafetensorsTensor, 'bytes'>;

/**
 * Checks the header (the JSON text's bytes) of a file whose data section has `dataLength` bytes:
 * every entry, and that the entries cover the data exactly.
 */
function parseHeader(
  headerBytes: Uint8Array,
  dataLength: number,
  fail: (msg: string) => never,
): { metadata: Record<string, string>; entries: Map<string, SafetensorsEntry> } {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    return fail('header is not valid UTF-8');
  }
  if (jsonNestingDepth(text, MAX_HEADER_DEPTH) > MAX_HEADER_DEPTH) return fail(`header ${tooDeep(MAX_HEADER_DEPTH)}`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(header)) return fail('header is not a JSON object');
  const dup = duplicateKey(text);
  if (dup !== undefined) fail(`header has the key ${JSON.stringify(dup)} more than once`);

  let metadata: Record<string, string> = {};
  const entries = new Map<string, SafetensorsEntry>();
  for (const [name, entry] of Object.entries(header)) {
    const where = `tensor ${JSON.stringify(name)}`;
    if (name === '__metadata__') {
      if (entry === null) continue; // the reference implementation reads null as no metadata
      if (!isObject(entry)) fail('__metadata__ is not an object of strings');
      const pairs = Object.entries(entry as Record<string, unknown>);
      for (const [k, v] of pairs)
        if (typeof v !== 'string') fail(`__metadata__ value for ${brief(k)} is not a string: ${brief(v)}`);
      metadata = Object.fromEntries(pairs) as Record<string, string>;
      continue;
    }
    if (!isObject(entry)) return fail(`${where}: header entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== 'string') return fail(`${where}: dtype is missing or not a string`);
    if (!Object.hasOwn(DTYPE_SIZE, dtype)) return fail(`${where}: unknown dtype ${brief(dtype)}`);
    if (!Array.isArray(shape)) return fail(`${where}: shape is missing or not an array`);
    if (!shape.every(isIndex)) return fail(`${where}: shape ${brief(shape, 200)} has a dimension that is not a non-negative integer`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex))
      return fail(`${where}: data_offsets ${brief(offsets, 200)} is not [begin, end] with non-negative integers`);
    const [begin, end] = offsets as [number, number];
    if (begin > end) fail(`${where}: data_offsets [${begin}, ${end}] ends before it begins`);
    if (end > dataLength)
      fail(`${where}: data_offsets [${begin}, ${end}] run past the end of the data (${dataLength} bytes; truncated or corrupt)`);
    const size = DTYPE_SIZE[dtype as SafetensorsDType];
    let expected = size;
    for (const d of shape as number[]) expected = expected * d;
    if (expected !== end - begin)
      fail(`${where}: ${end - begin} bytes of data, but shape ${fmtShape(shape as number[])} of ${dtype} needs ${expected}`);
    entries.set(name, { name, dtype: dtype as SafetensorsDType, shape: shape as number[], dataOffsets: [begin, end] });
  }

  // The data buffer must be covered exactly: no overlaps, no gaps, nothing after the last tensor.
  const byOffset = [...entries.values()].sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let at = 0;
  for (const t of byOffset) {
    const [begin, end] = t.dataOffsets;
    if (begin < at) {
      const other = byOffset.find((o) => o !== t && o.dataOffsets[0] < end && begin < o.dataOffsets[1]);
      fail(`tensor ${JSON.stringify(t.name)}: data_offsets [${begin}, ${end}] overlap those of ${JSON.stringify(other?.name)}`);
    }
    if (begin > at) fail(`tensor ${JSON.stringify(t.name)}: data_offsets [${begin}, ${end}] leave a gap of unused bytes [${at}, ${begin}) before it`);
    at = end;
  }
  if (at !== dataLength) fail(`${dataLength - at} bytes of data after the last tensor (offset ${at}); corrupt or not a safetensors file`);
  return { metadata, entries };
}

/** Checks the 8-byte length prefix and the header's first byte; returns the header length. */
function headerLength(prefix: Uint8Array, fileSize: number, fail: (msg: string) => never): number {
  if (fileSize < 8) fail(`not a safetensors file: ${fileSize} bytes, shorter than the 8-byte header length`);
  const n64 = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES))
    fail(`header length ${n64} is larger than the ${MAX_HEADER_BYTES}-byte limit (corrupt or not a safetensors file)`);
  const n = Number(n64);
  if (8 + n > fileSize) fail(`header length ${n} runs past the end of the file (${fileSize} bytes; truncated or corrupt)`);
  return n;
}

const failer =
  (file: string) =>
  (msg: string): never => {
    throw new SafetensorsError(`${file}: ${msg}`);
  };

/** Parses and checks a whole safetensors file held in memory. `file` names it in errors. */
export function parseSafetensors(input: Uint8Array, file = '<buffer>'): SafetensorsFile {
  // A plain Uint8Array view, also when given a Buffer (whose slice would not copy).
  const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  const fail = failer(file);
  const n = headerLength(bytes, bytes.byteLength, fail);
  if (n < 2 || bytes[8] !== 0x7b) fail('header does not start with "{" (corrupt or not a safetensors file)');
  const data = bytes.subarray(8 + n);
  const { metadata, entries } = parseHeader(bytes.subarray(8, 8 + n), data.byteLength, fail);
  const tensors = new Map<string, SafetensorsTensor>();
  for (const [name, e] of entries) tensors.set(name, { ...e, bytes: data.subarray(e.dataOffsets[0], e.dataOffsets[1]) });
  return { file, metadata, tensors };
}

// Node's fs refuses single reads above 2 GiB.
const MAX_READ = 1 << 30;

/** Reads the length prefix and the header of an open file, checking them and every header entry; reads no tensor data. */
async function readHeader(fh: fs.FileHandle, file: string, size: number) {
  const fail = failer(file);
  const prefix = Buffer.alloc(9);
  await fh.read(prefix, 0, Math.min(9, size), 0);
  const n = headerLength(prefix, size, fail);
  if (n < 2 || prefix[8] !== 0x7b) fail('header does not start with "{" (corrupt or not a safetensors file)');
  const head = Buffer.alloc(n);
  for (let at = 0; at < n; ) {
    const { bytesRead } = await fh.read(head, at, n - at, 8 + at);
    if (bytesRead === 0) fail('the file shrank while being read');
    at += bytesRead;
  }
  return { n, ...parseHeader(head, size - 8 - n, fail) };
}

/**
 * Reads and checks a safetensors file: the header first (a bad one is refused before any data is
 * read), then the whole file in one buffer.
 */
export async function readSafetensors(file: string): Promise<SafetensorsFile> {
  const fh = await fs.open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const { n, metadata, entries } = await readHeader(fh, file, size);
    if (size > constants.MAX_LENGTH)
      throw new SafetensorsError(`${file}: ${size} bytes is more than this Node.js can hold in one buffer (${constants.MAX_LENGTH})`);
    // allocUnsafeSlow: its own ArrayBuffer at byteOffset 0, so the data's alignment is the file's.
    const buf = Buffer.allocUnsafeSlow(size);
    for (let at = 0; at < size; ) {
      const { bytesRead } = await fh.read(buf, at, Math.min(MAX_READ, size - at), at);
      if (bytesRead === 0) throw new SafetensorsError(`${file}: the file shrank while being read`);
      at += bytesRead;
    }
    const data = new Uint8Array(buf.buffer, 8 + n, size - 8 - n);
    const tensors = new Map<string, SafetensorsTensor>();
    for (const [name, e] of entries) tensors.set(name, { ...e, bytes: data.subarray(e.dataOffsets[0], e.dataOffsets[1]) });
    return { file, metadata, tensors };
  } finally {
    await fh.close();
  }
}

/**
 * An open safetensors file whose header has been read and checked but whose data has not: for
 * files too large to hold at once (a model's shards), read tensor by tensor. Close it when done.
 */
export interface SafetensorsHandle {
  file: string;
  metadata: Record<string, string>;
  /** in header order; no bytes yet */
  tensors: Map<string, SafetensorsEntry>;
  /** one tensor's bytes, read from the file now */
  read(name: string): Promise<SafetensorsTensor>;
  close(): Promise<void>;
}

/** Opens `file` and checks its header as readSafetensors does, reading no tensor data yet. */
export async function openSafetensors(file: string): Promise<SafetensorsHandle> {
  const fh = await fs.open(file, 'r');
  try {
    const fail = failer(file);
    const size = (await fh.stat()).size;
    const { n, metadata, entries } = await readHeader(fh, file, size);
    const base = 8 + n;
    return {
      file,
      metadata,
      tensors: entries,
      async read(name: string): Promise<SafetensorsTensor> {
        const e = entries.get(name);
        if (!e) throw new SafetensorsError(`${file}: no tensor named ${JSON.stringify(name)}`);
        const [begin, end] = e.dataOffsets;
        if (end - begin > constants.MAX_LENGTH)
          throw new SafetensorsError(`${file}: tensor ${JSON.stringify(name)} has ${end - begin} bytes, more than this Node.js can hold in one buffer`);
        // Its own ArrayBuffer, so typed views of it are aligned.
        const bytes = new Uint8Array(end - begin);
        for (let at = 0; at < bytes.byteLength; ) {
          const { bytesRead } = await fh.read(bytes, at, Math.min(MAX_READ, bytes.byteLength - at), base + begin + at);
          if (bytesRead === 0) fail('the file shrank while being read');
          at += bytesRead;
        }
        return { ...e, bytes };
      },
      close: () => fh.close(),
    };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

let f16Table: Float32Array | undefined;
function halfToFloatTable(): Float32Array {
  if (f16Table) return f16Table;
  const bits = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    let mant = h & 0x3ff;
    if (exp === 0x1f) bits[h] = sign | 0x7f800000 | (mant << 13);
    else if (exp !== 0) bits[h] = sign | ((exp + 112) << 23) | (mant << 13);
    else if (mant === 0) bits[h] = sign;
    else {
      // subnormal: normalise
      let e = 113;
      while ((mant & 0x400) === 0) {
        mant <<= 1;
        e--;
      }
      bits[h] = sign | (e << 23) | ((mant & 0x3ff) << 13);
    }
  }
  return (f16Table = new Float32Array(bits.buffer));
}

/** A new Float32Array with the tensor's values (F32 exact; F16, BF16 exact; F64 rounded). */
export function toFloat32(t: SafetensorsTensor, file = '<buffer>'): Float32Array {
  checkHost();
  // A copy into fresh (so aligned) memory, then a typed view of it. Uint8Array's slice is a memcpy
  // (the Uint8Array(typedArray) constructor is several times slower; Buffer's slice copies nothing).
  const raw = new Uint8Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength).slice();
  switch (t.dtype) {
    case 'F32':
      return new Float32Array(raw.buffer, 0, raw.byteLength / 4);
    case 'F64':
      return new Float32Array(new Float64Array(raw.buffer, 0, raw.byteLength / 8));
    case 'BF16': {
      const src = new Uint16Array(raw.buffer, 0, raw.byteLength / 2);
      const out = new Uint32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = src[i] << 16;
      return new Float32Array(out.buffer);
    }
    case 'F16': {
      const src = new Uint16Array(raw.buffer, 0, raw.byteLength / 2);
      const table = halfToFloatTable();
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = table[src[i]];
      return out;
    }
    default:
      throw new SafetensorsError(
        `${file}: tensor ${JSON.stringify(t.name)} has dtype ${t.dtype}; only ${FLOAT_DTYPES.join(', ')} can be read as floats`,
      );
  }
}

/** Dtypes a TensorToWrite's float32 `data` can be written as. */
export type FloatWriteDType = 'F32' | 'BF16' | 'F16';

/**
 * A tensor to write: float32 values, stored as F32 (default) or rounded to BF16 / F16 (to nearest,
 * ties to even, as PyTorch's .to(torch.bfloat16) / .half() do), or raw little-endian bytes of any dtype.
 */
export type TensorToWrite =
  | { dtype?: FloatWriteDType; shape: readonly number[]; data: Float32Array }
  | { dtype: SafetensorsDType; shape: readonly number[]; bytes: Uint8Array };

const f32Bits = (data: Float32Array) => new Uint32Array(data.buffer, data.byteOffset, data.length);

/** bfloat16 bit patterns of float32 values: round to nearest, ties to even; NaN stays NaN (quiet). */
export function float32ToBF16(data: Float32Array): Uint16Array {
  checkHost();
  const bits = f32Bits(data);
  const out = new Uint16Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i];
    if ((x & 0x7fffffff) > 0x7f800000) out[i] = ((x >>> 16) & 0x8000) | 0x7fc0;
    // Adding 0x7fff plus the lowest kept bit rounds to nearest even; a carry into the exponent is
    // the right result too (up to infinity past bfloat16's largest finite value).
    else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** IEEE half-precision bit patterns of float32 values: round to nearest, ties to even; overflow gives ±Infinity. */
export function float32ToF16(data: Float32Array): Uint16Array {
  checkHost();
  const bits = f32Bits(data);
  const out = new Uint16Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    const mant = x & 0x7fffff;
    let h: number;
    if (exp === 0xff) h = mant ? 0x7e00 : 0x7c00;
    else {
      const e = exp - 112; // half's biased exponent
      if (e >= 0x1f) h = 0x7c00;
      else if (e >= 1) {
        // normal: keep 10 of the 23 mantissa bits; a carry out of the mantissa bumps the exponent
        h = (e << 10) | (mant >>> 13);
        const rest = mant & 0x1fff;
        if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
      } else {
        // subnormal: the value is (mant | 1 << 23) * 2^(exp - 150) = q * 2^-24 with q = that >> (126 - exp)
        const shift = 14 - e;
        if (shift > 24) h = 0;
        else {
          const m = mant | 0x800000;
          h = m >>> shift;
          const rest = m & ((1 << shift) - 1);
          const half = 1 << (shift - 1);
          if (rest > half || (rest === half && (h & 1) === 1)) h++;
        }
      }
    }
    out[i] = sign | h;
  }
  return out;
}

const utf8Compare = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/**
 * The bytes of a safetensors file, as a header chunk followed by one chunk per tensor (views of the
 * caller's arrays, not copies). Layout as the reference implementation writes it: tensors ordered by
 * dtype (widest first) then name, `__metadata__` first in the compact JSON header, the header padded
 * with spaces to a multiple of 8 bytes. Metadata keys are sorted.
 */
export function serializeSafetensors(
  tensors: Record<string, TensorToWrite> | ReadonlyMap<string, TensorToWrite>,
  metadata: Record<string, string> = {},
): Uint8Array[] {
  checkHost();
  const list: [string, TensorToWrite][] =
    tensors instanceof Map ? [...(tensors as ReadonlyMap<string, TensorToWrite>).entries()] : Object.entries(tensors as Record<string, TensorToWrite>);
  const entries = list.map(([name, t]) => {
    const dtype = t.dtype ?? 'F32';
    if (!Object.hasOwn(DTYPE_SIZE, dtype)) throw new SafetensorsError(`tensor ${JSON.stringify(name)}: unknown dtype ${JSON.stringify(dtype)}`);
    if (name === '__metadata__') throw new SafetensorsError('"__metadata__" cannot be a tensor name');
    if (!t.shape.every(isIndex)) throw new SafetensorsError(`tensor ${JSON.stringify(name)}: shape ${JSON.stringify(t.shape)} is not non-negative integers`);
    let bytes: Uint8Array;
    if ('data' in t) {
      if (!(t.data instanceof Float32Array) || (dtype !== 'F32' && dtype !== 'BF16' && dtype !== 'F16'))
        throw new SafetensorsError(`tensor ${JSON.stringify(name)}: data must be a Float32Array written as F32, BF16 or F16 (use bytes for other dtypes)`);
      if (dtype === 'F32') bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      else {
        const half = dtype === 'BF16' ? float32ToBF16(t.data) : float32ToF16(t.data);
        bytes = new Uint8Array(half.buffer);
      }
    } else bytes = t.bytes;
    const need = t.shape.reduce((a, d) => a * d, DTYPE_SIZE[dtype]);
    if (bytes.byteLength !== need)
      throw new SafetensorsError(`tensor ${JSON.stringify(name)}: ${bytes.byteLength} bytes, but shape ${fmtShape(t.shape)} of ${dtype} needs ${need}`);
    return { name, dtype, shape: [...t.shape], bytes };
  });
  entries.sort((a, b) => DTYPE_RANK.get(b.dtype)! - DTYPE_RANK.get(a.dtype)! || utf8Compare(a.name, b.name));

  // The header text is built by hand: JSON.stringify would move keys that look like array indices first.
  const pairs: string[] = [];
  const metaKeys = Object.keys(metadata).sort(utf8Compare);
  if (metaKeys.length > 0) {
    for (const k of metaKeys)
      if (typeof metadata[k] !== 'string') throw new SafetensorsError(`metadata value for ${JSON.stringify(k)} is not a string`);
    pairs.push(`"__metadata__":{${metaKeys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`);
  }
  let at = 0;
  for (const e of entries) {
    const info = { dtype: e.dtype, shape: e.shape, data_offsets: [at, at + e.bytes.byteLength] };
    pairs.push(`${JSON.stringify(e.name)}:${JSON.stringify(info)}`);
    at += e.bytes.byteLength;
  }
  const json = `{${pairs.join(',')}}`;
  const text = Buffer.from(json, 'utf8');
  const padded = Math.ceil(text.byteLength / 8) * 8;
  const head = Buffer.alloc(8 + padded, 0x20);
  head.writeBigUInt64LE(BigInt(padded), 0);
  text.copy(head, 8);
  return [head, ...entries.map((e) => e.bytes)];
}

/** serializeSafetensors as one buffer. */
export function encodeSafetensors(
  tensors: Record<string, TensorToWrite> | ReadonlyMap<string, TensorToWrite>,
  metadata: Record<string, string> = {},
): Buffer {
  return Buffer.concat(serializeSafetensors(tensors, metadata));
}

/** Writes a safetensors file atomically (temporary file, then rename). */
export async function writeSafetensors(
  file: string,
  tensors: Record<string, TensorToWrite> | ReadonlyMap<string, TensorToWrite>,
  metadata: Record<string, string> = {},
): Promise<void> {
  await writeFileAtomic(file, serializeSafetensors(tensors, metadata));
}
