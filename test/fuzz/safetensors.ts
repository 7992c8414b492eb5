// Safetensors files taken apart and put back together by hand (the library's writer refuses what
// these make on purpose), and the seeded mutations of one: byte flips, truncation, header edits
// (dtype, shape, offsets, lengths, nesting, keys), non-finite and negative values.
import { float32ToBF16, float32ToF16, type Random } from '@s2s/core';

import type { Expect } from './types.js';

export interface Entry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

export interface Parsed {
  /** the header as parsed: tensor entries and maybe __metadata__, in file order */
  header: Record<string, unknown>;
  data: Uint8Array;
}

const SIZE: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, U8: 1, I8: 1, U16: 2, U32: 4, U64: 8, BOOL: 1 };

export function parse(bytes: Uint8Array): Parsed {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(b.readBigUInt64LE(0));
  return { header: JSON.parse(b.subarray(8, 8 + n).toString('utf8')), data: bytes.subarray(8 + n) };
}

/** A file from header text (padded with spaces to 8 bytes unless `pad` is false) and data. */
export function buildText(json: string, data: Uint8Array, pad = true): Uint8Array {
  const text = Buffer.from(json, 'utf8');
  const len = pad ? Math.ceil(text.byteLength / 8) * 8 : text.byteLength;
  const head = Buffer.alloc(8 + len, 0x20);
  head.writeBigUInt64LE(BigInt(len), 0);
  text.copy(head, 8);
  return Buffer.concat([head, data]);
}

export const build = (header: Record<string, unknown>, data: Uint8Array) => buildText(JSON.stringify(header), data);

/** The tensor entries of a header, in file order. */
export function entries(p: Parsed): [string, Entry][] {
  return Object.entries(p.header).filter(([k]) => k !== '__metadata__') as [string, Entry][];
}

/** The float value at `i` of a tensor's bytes. */
export function readValue(bytes: Uint8Array, dtype: string, i: number): number {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32':
      return v.getFloat32(4 * i, true);
    case 'F64':
      return Math.fround(v.getFloat64(8 * i, true)); // the loader reads float32
    case 'BF16':
      return new Float32Array(new Uint32Array([v.getUint16(2 * i, true) << 16]).buffer)[0];
    case 'F16': {
      const h = v.getUint16(2 * i, true);
      const e = (h >> 10) & 0x1f;
      const m = h & 0x3ff;
      const s = h & 0x8000 ? -1 : 1;
      if (e === 0x1f) return m ? NaN : s * Infinity;
      return s * (e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
    }
  }
  throw new Error(`readValue: ${dtype}`);
}

/** Writes `x` at element `i` in the dtype's encoding (non-finite values kept non-finite). */
export function writeValue(bytes: Uint8Array, dtype: string, i: number, x: number): void {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const f = new Float32Array([x]);
  switch (dtype) {
    case 'F32':
      return v.setFloat32(4 * i, x, true);
    case 'F64':
      return v.setFloat64(8 * i, x, true);
    case 'BF16':
      return v.setUint16(2 * i, float32ToBF16(f)[0], true);
    case 'F16':
      return v.setUint16(2 * i, float32ToF16(f)[0], true);
  }
  throw new Error(`writeValue: ${dtype}`);
}

export interface StMutation {
  mutation: string;
  expect: Expect;
  /** the new file; null deletes it */
  bytes: Uint8Array | null;
  /** names a refusal must mention one of (the tensor, or the ones next to it); empty: the file alone */
  targets: string[];
  note: string;
  /** finite values so large that a model's results may overflow: the results are not judged */
  extreme?: boolean;
}

/** What the loader demands of a tensor's values. */
export type ValueRule = 'finite' | 'finite-non-negative';

const isFloat = (d: string) => d === 'F32' || d === 'F16' || d === 'BF16' || d === 'F64';
const bad = (v: number, rule: ValueRule) => !Number.isFinite(v) || (rule === 'finite-non-negative' && v < 0);

/** JSON nested `depth` deep, without recursion. */
export function deepJSON(depth: number): string {
  return '['.repeat(depth) + ']'.repeat(depth);
}

/**
 * One seeded mutation of a valid safetensors file, with the outcome it must have. `rule` says what
 * the loader demands of each tensor's values (a second moment must not be negative).
 */
export function mutateSafetensors(rng: Random, bytes: Uint8Array, rule: (tensor: string) => ValueRule): StMutation {
  const p = parse(bytes);
  const list = entries(p);
  const floats = list.filter(([, e]) => isFloat(e.dtype) && e.data_offsets[1] > e.data_offsets[0]);
  const headerLen = bytes.byteLength - p.data.byteLength - 8;
  const pick = <T>(xs: readonly T[]) => rng.pick(xs);
  const copy = () => Uint8Array.from(bytes);
  const withHeader = (h: Record<string, unknown>) => build(h, p.data);
  const clone = () => JSON.parse(JSON.stringify(p.header)) as Record<string, unknown>;
  const mk = (mutation: string, expect: Expect, out: Uint8Array | null, targets: string[], note: string, extreme = false): StMutation => ({
    mutation,
    expect,
    bytes: out,
    targets,
    note,
    extreme,
  });
  // a finite value this large can overflow a model's activations
  const extreme = (v: number) => Math.abs(v) > 1e3;
  const [tName, t] = pick(list);
  const byOffset = [...list].sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);

  const kinds = [
    'non-finite',
    'non-finite',
    'negative',
    'large-finite',
    'data-byte-flip',
    'data-byte-flip',
    'header-byte-flip',
    'prefix-byte-flip',
    'truncate',
    'append',
    'dtype-unknown',
    'dtype-int',
    'dtype-size',
    'shape-dim',
    'shape-bad',
    'shape-rank',
    'offsets-shift',
    'offsets-bad',
    'offsets-overlap',
    'header-length',
    'deep-nesting',
    'metadata',
    'duplicate-key',
    'entry-broken',
    'drop-tensor',
    'rename-tensor',
    'extra-tensor',
    'header-utf8',
    'header-not-object',
    'reorder',
    'not-safetensors',
    'missing-file',
    'f64-overflow',
  ] as const;
  const kind = pick(kinds);
  switch (kind) {
    case 'non-finite': {
      const [n, e] = pick(floats);
      const count = e.data_offsets[1] - e.data_offsets[0];
      const i = rng.int(count / SIZE[e.dtype]);
      const x = pick([NaN, Infinity, -Infinity]);
      const out = copy();
      writeValue(out.subarray(8 + headerLen + e.data_offsets[0]), e.dtype, i, x);
      return mk(kind, 'must-refuse', out, [n], `${n} element ${i} set to ${x}`);
    }
    case 'negative':
    case 'large-finite': {
      const [n, e] = pick(floats);
      const i = rng.int((e.data_offsets[1] - e.data_offsets[0]) / SIZE[e.dtype]);
      const max = e.dtype === 'F16' ? 6e4 : 1e30;
      const x = kind === 'negative' ? -pick([1e-30, 1e-3, 1, max]) : pick([max, -max, 1e4, -1e4]);
      const out = copy();
      writeValue(out.subarray(8 + headerLen + e.data_offsets[0]), e.dtype, i, x);
      const v = readValue(out.subarray(8 + headerLen + e.data_offsets[0]), e.dtype, i);
      return mk(kind, bad(v, rule(n)) ? 'must-refuse' : 'may-accept', out, [n], `${n} element ${i} set to ${v}`, extreme(v));
    }
    case 'data-byte-flip': {
      if (p.data.byteLength === 0) break;
      const out = copy();
      const off = rng.int(p.data.byteLength);
      out[8 + headerLen + off] ^= 1 + rng.int(255);
      const hit = list.find(([, e]) => e.data_offsets[0] <= off && off < e.data_offsets[1])!;
      const [n, e] = hit;
      if (!isFloat(e.dtype)) return mk(kind, 'may-accept', out, [], `data byte ${off} flipped (tensor ${n}, ${e.dtype})`);
      const i = Math.floor((off - e.data_offsets[0]) / SIZE[e.dtype]);
      const v = readValue(out.subarray(8 + headerLen + e.data_offsets[0]), e.dtype, i);
      return mk(kind, bad(v, rule(n)) ? 'must-refuse' : 'may-accept', out, [n], `data byte ${off} flipped: ${n} element ${i} is now ${v}`, extreme(v));
    }
    case 'header-byte-flip': {
      const out = copy();
      const off = 8 + rng.int(headerLen);
      out[off] ^= 1 << rng.int(8);
      return mk(kind, 'may-accept', out, [], `header byte ${off} flipped`);
    }
    case 'prefix-byte-flip': {
      const out = copy();
      const off = rng.int(8);
      out[off] ^= 1 << rng.int(8);
      return mk(kind, 'must-refuse', out, [], `header length byte ${off} flipped`);
    }
    case 'truncate': {
      const n = rng.chance(0.3) ? rng.int(Math.min(64, bytes.byteLength)) : rng.int(bytes.byteLength);
      return mk(kind, 'must-refuse', bytes.slice(0, n), [], `truncated to ${n} of ${bytes.byteLength} bytes`);
    }
    case 'append': {
      const k = 1 + rng.int(64);
      return mk(kind, 'must-refuse', Buffer.concat([bytes, Uint8Array.from({ length: k }, () => rng.int(256))]), [], `${k} bytes appended`);
    }
    case 'dtype-unknown': {
      const h = clone();
      const d = pick(['F17', 'float32', 'f32', '', 5, null, ['F32'], 'F8_E4M4']);
      (h[tName] as Entry).dtype = d as string;
      return mk(kind, 'must-refuse', withHeader(h), [tName], `${tName} dtype ${JSON.stringify(d)}`);
    }
    case 'dtype-int': {
      const h = clone();
      const size = SIZE[t.dtype];
      const d = pick(Object.keys(SIZE).filter((k) => SIZE[k] === size && !isFloat(k)));
      (h[tName] as Entry).dtype = d;
      return mk(kind, 'must-refuse', withHeader(h), [tName], `${tName} dtype ${t.dtype} -> ${d}`);
    }
    case 'dtype-size': {
      const h = clone();
      const d = pick(Object.keys(SIZE).filter((k) => SIZE[k] !== SIZE[t.dtype]));
      (h[tName] as Entry).dtype = d;
      const numel = t.shape.reduce((a, b) => a * b, 1);
      // an empty tensor has 0 bytes whatever its dtype
      return mk(kind, numel === 0 ? 'may-accept' : 'must-refuse', withHeader(h), [tName], `${tName} dtype ${t.dtype} -> ${d}`);
    }
    case 'shape-dim': {
      const h = clone();
      const shape = [...t.shape];
      if (shape.length === 0) break;
      const d = rng.int(shape.length);
      const old = shape[d];
      shape[d] = pick([old + 1, old - 1, old * 2, 0, old + 1000]);
      if (shape[d] === old || shape[d] < 0) break;
      (h[tName] as Entry).shape = shape;
      return mk(kind, 'must-refuse', withHeader(h), [tName], `${tName} shape ${JSON.stringify(t.shape)} -> ${JSON.stringify(shape)}`);
    }
    case 'shape-bad': {
      const shape: unknown[] = [...t.shape];
      const v = pick([-1, 1.5, '4', null, 2 ** 53, -0.0001, true, [2]]);
      shape[rng.int(Math.max(1, shape.length))] = v;
      const h = clone();
      (h[tName] as Entry).shape = shape as number[];
      if (rng.chance(0.2)) (h[tName] as Record<string, unknown>).shape = pick(['[4]', 4, null, {}]);
      return mk(kind, 'must-refuse', withHeader(h), [tName], `${tName} shape ${JSON.stringify((h[tName] as Entry).shape)}`);
    }
    case 'shape-rank': {
      const h = clone();
      const numel = t.shape.reduce((a, b) => a * b, 1);
      const shape = pick([[...t.shape, 1], [1, ...t.shape], [numel], t.shape.length === 2 ? [t.shape[1], t.shape[0]] : [numel, 1]]);
      if (JSON.stringify(shape) === JSON.stringify(t.shape)) break;
      (h[tName] as Entry).shape = shape;
      return mk(kind, 'must-refuse', withHeader(h), [tName], `${tName} shape ${JSON.stringify(t.shape)} -> ${JSON.stringify(shape)}`);
    }
    case 'offsets-shift': {
      const h = clone();
      const k = pick([1, 2, 4, -1, -4, 8, -8]) * (rng.chance(0.5) ? 1 : SIZE[t.dtype] ?? 1);
      const [b, e] = t.data_offsets;
      (h[tName] as Entry).data_offsets = [b + k, e + k];
      return mk(kind, 'must-refuse', withHeader(h), [tName], `${tName} data_offsets [${b}, ${e}] -> [${b + k}, ${e + k}]`);
    }
    case 'offsets-bad': {
      const h = clone();
      const [b, e] = t.data_offsets;
      const v = pick([[-1, e], [b + 0.5, e], [String(b), e], [b], [b, e, e], [e, b], null, [b, 2 ** 64], {}]);
      if (JSON.stringify(v) === JSON.stringify([e, b]) && b === e) break;
      (h[tName] as Record<string, unknown>).data_offsets = v;
      return mk(kind, 'must-refuse', withHeader(h), [tName], `${tName} data_offsets [${b}, ${e}] -> ${JSON.stringify(v)}`);
    }
    case 'offsets-overlap': {
      const others = list.filter(([n, e]) => n !== tName && e.data_offsets[1] - e.data_offsets[0] > 0);
      if (others.length === 0) break;
      const [oName, o] = pick(others);
      const h = clone();
      (h[tName] as Entry).data_offsets = [...o.data_offsets];
      // what a refusal names: either tensor, or the one a gap left behind now starts at
      const after = byOffset.find(([, e]) => e.data_offsets[0] === t.data_offsets[1])?.[0];
      return mk(kind, 'must-refuse', withHeader(h), [tName, oName, ...(after ? [after] : [])], `${tName} given the data_offsets of ${oName}`);
    }
    case 'header-length': {
      const out = copy();
      const v = pick([2n ** 64n - 1n, 2n ** 53n, 100_000_001n, BigInt(bytes.byteLength), BigInt(headerLen + 1 + rng.int(16)), BigInt(Math.max(0, headerLen - 1 - rng.int(16))), 0n, 1n]);
      Buffer.from(out.buffer, out.byteOffset).writeBigUInt64LE(v, 0);
      return mk(kind, 'must-refuse', out, [], `header length ${headerLen} -> ${v}`);
    }
    case 'deep-nesting': {
      const depth = pick([129, 200, 5000, 100_000, 1_000_000]);
      const where = pick(['__metadata__', 'entry', 'top'] as const);
      const h = clone();
      if (where === '__metadata__') h.__metadata__ = { ...((h.__metadata__ as object) ?? {}), deep: '@@deep@@' };
      else if (where === 'entry') (h[tName] as Record<string, unknown>).deep = '@@deep@@';
      else h.deep = '@@deep@@';
      const text = JSON.stringify(h).replace('"@@deep@@"', deepJSON(depth));
      return mk(kind, 'must-refuse', buildText(text, p.data), [], `an array nested ${depth} deep in the header (${where === 'entry' ? tName : where})`);
    }
    case 'metadata': {
      const h = clone();
      const v = pick([null, [], 'x', 5, { step: 5 }, { note: 'hello' }, { deep: { a: 'b' } }, { format: 'pt', extra: 'yes' }]);
      h.__metadata__ = v;
      const fine = v === null || (typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string'));
      // a null __metadata__ is read as none, as the reference implementation does; the optimizer's step is then missing
      const keyed = fine && list.some(([n]) => n.startsWith('exp_avg')) && !(v && typeof v === 'object' && 'step' in v);
      return mk(kind, fine && !keyed ? 'may-accept' : 'must-refuse', withHeader(h), keyed ? ['step'] : ['__metadata__'], `__metadata__ -> ${JSON.stringify(v)}`);
    }
    case 'duplicate-key': {
      const json = JSON.stringify(p.header);
      const entryText = `${JSON.stringify(tName)}:${JSON.stringify(t)}`;
      const twice = json.replace(entryText, `${entryText},${entryText}`);
      return mk(kind, 'must-refuse', buildText(twice, p.data), [tName], `${tName} twice in the header`);
    }
    case 'entry-broken': {
      const h = clone();
      const which = pick(['dtype', 'shape', 'data_offsets', 'whole']);
      if (which === 'whole') h[tName] = pick([[], 'F32', 5, null, true]);
      else delete (h[tName] as Record<string, unknown>)[which];
      return mk(kind, 'must-refuse', withHeader(h), [tName], `${tName}: ${which === 'whole' ? `entry -> ${JSON.stringify(h[tName])}` : `${which} removed`}`);
    }
    case 'drop-tensor': {
      // removed with its bytes, the rest laid out again: a consistent file without it
      const keep = byOffset.filter(([n]) => n !== tName);
      return mk(kind, 'must-refuse', relayout(p, keep.map(([n]) => n)), [tName], `${tName} removed`);
    }
    case 'rename-tensor': {
      const h: Record<string, unknown> = {};
      const to = pick([`${tName}x`, `${tName}.weight`, tName.toUpperCase(), `other.${tName}`, tName.replace(/\d+/, (d) => String(Number(d) + 1000)), '']);
      if (to === tName || Object.hasOwn(p.header, to)) break;
      for (const [k, v] of Object.entries(p.header)) h[k === tName ? to : k] = v;
      return mk(kind, 'must-refuse', withHeader(h), [JSON.stringify(to), tName], `${tName} renamed ${JSON.stringify(to)}`);
    }
    case 'extra-tensor': {
      const name = pick(['extra.weight', 'transformer.extra', 'model.layers.999.mlp.up_proj.weight', 'exp_avg.nothing', 'lm_head.bias']);
      const n = 1 + rng.int(8);
      const shape = [n];
      const all = [...byOffset.map(([k]) => k)];
      const out = relayout(p, all, { [name]: { dtype: 'F32', shape, bytes: new Uint8Array(4 * n) } });
      return mk(kind, 'must-refuse', out, [name], `extra tensor ${name} ${JSON.stringify(shape)}`);
    }
    case 'header-utf8': {
      const out = copy();
      // a byte inside the tensor's name (after its opening quote)
      const text = Buffer.from(out.buffer, out.byteOffset + 8, headerLen).toString('latin1');
      const i = text.indexOf(JSON.stringify(tName));
      if (i < 0) break;
      out[8 + i + 1 + rng.int(Math.max(1, tName.length))] = pick([0xff, 0xc0, 0x80, 0xed, 0xf8]);
      return mk(kind, 'must-refuse', out, [], `a byte of ${tName}'s name in the header made invalid UTF-8`);
    }
    case 'header-not-object': {
      const v = pick(['[]', '5', '"F32"', 'null', '', ' {}', '{} {}', '{"a":1', 'NaN']);
      return mk(kind, 'must-refuse', buildText(v, p.data, rng.chance(0.5)), [], `header -> ${JSON.stringify(v)}`);
    }
    case 'reorder': {
      const keys = rng.shuffle(Object.keys(p.header));
      const h: Record<string, unknown> = {};
      for (const k of keys) h[k] = p.header[k];
      return mk(kind, 'may-accept', buildText(JSON.stringify(h), p.data, rng.chance(0.5)), [], 'header keys reordered');
    }
    case 'not-safetensors': {
      const v = pick([Buffer.from('{"model": "gpt2"}\n'), Buffer.alloc(0), Buffer.from('PK\x03\x04'), Uint8Array.from({ length: 1 + rng.int(200) }, () => rng.int(256))]);
      return mk(kind, 'must-refuse', v, [], `replaced by ${v.byteLength} other bytes`);
    }
    case 'missing-file':
      return mk(kind, 'must-refuse', null, [], 'file removed');
    case 'f64-overflow': {
      if (floats.length === 0) break;
      const [n, e] = pick(floats);
      const count = (e.data_offsets[1] - e.data_offsets[0]) / SIZE[e.dtype];
      const vals = new Float64Array(count);
      const src = p.data.subarray(e.data_offsets[0], e.data_offsets[1]);
      for (let i = 0; i < count; i++) vals[i] = readValue(src, e.dtype, i);
      const i = rng.int(count);
      vals[i] = pick([1e300, -1e300, 3.5e38]);
      const out = relayout(p, byOffset.map(([k]) => k).filter((k) => k !== n), { [n]: { dtype: 'F64', shape: e.shape, bytes: new Uint8Array(vals.buffer) } });
      return mk(kind, 'must-refuse', out, [n], `${n} stored as F64 with element ${i} = ${vals[i]} (infinite as float32)`);
    }
  }
  // the mutation did not apply to this file: flip a header byte instead
  const out = copy();
  out[8 + rng.int(headerLen)] ^= 0x20;
  return mk('header-byte-flip', 'may-accept', out, [], `(${kind} did not apply) header byte flipped`);
}

/** The file with `names` (in this order) laid out again, and `extra` tensors appended. */
export function relayout(p: Parsed, names: string[], extra: Record<string, { dtype: string; shape: number[]; bytes: Uint8Array }> = {}): Uint8Array {
  const h: Record<string, unknown> = {};
  if (p.header.__metadata__ !== undefined) h.__metadata__ = p.header.__metadata__;
  const chunks: Uint8Array[] = [];
  let at = 0;
  const put = (name: string, dtype: string, shape: number[], bytes: Uint8Array) => {
    h[name] = { dtype, shape, data_offsets: [at, at + bytes.byteLength] };
    chunks.push(bytes);
    at += bytes.byteLength;
  };
  for (const n of names) {
    const e = p.header[n] as Entry;
    put(n, e.dtype, e.shape, p.data.subarray(e.data_offsets[0], e.data_offsets[1]));
  }
  for (const [n, e] of Object.entries(extra)) put(n, e.dtype, e.shape, e.bytes);
  return build(h, Buffer.concat(chunks));
}
