// The safetensors reader and writer: reference bytes, hand-made files, an independent reader, hostile files,
// float32 -> bfloat16 / float16 rounding against known bit patterns and an independent nearest-value search.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  encodeSafetensors,
  float32ToBF16,
  float32ToF16,
  openSafetensors,
  parseSafetensors,
  readSafetensors,
  toFloat32,
  writeSafetensors,
} from '../src/index.js';

/** A safetensors file from a header (object or raw text) and data bytes; pads the header only if asked. */
function makeFile(header: unknown, data: Uint8Array = new Uint8Array(0), pad = false): Uint8Array {
  let text = typeof header === 'string' ? header : JSON.stringify(header);
  if (pad) text = text.padEnd(Math.ceil(text.length / 8) * 8, ' ');
  const h = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function f32Bytes(values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const dv = new DataView(out.buffer);
  values.forEach((v, i) => dv.setFloat32(i * 4, v, true));
  return out;
}

function u16Bytes(bits: number[]): Uint8Array {
  const out = new Uint8Array(bits.length * 2);
  const dv = new DataView(out.buffer);
  bits.forEach((b, i) => dv.setUint16(i * 2, b, true));
  return out;
}

const concat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

/** A reader written separately from the library's: DataView only, no validation beyond what it needs. */
function tinyRead(bytes: Uint8Array) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  const header = JSON.parse(headerText) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const base = 8 + n;
  const tensors: Record<string, { shape: number[]; values: number[] }> = {};
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    expect(e.dtype).toBe('F32');
    const values: number[] = [];
    for (let at = e.data_offsets[0]; at < e.data_offsets[1]; at += 4) values.push(dv.getFloat32(base + at, true));
    tensors[name] = { shape: e.shape, values };
  }
  return { n, headerText, header, tensors, metadata: (header as Record<string, unknown>).__metadata__ };
}

describe('safetensors writer', () => {
  it('writes the reference implementation’s bytes (its own test vectors)', () => {
    const data = new Float32Array([0, 1, 2, 3, 4, 5]);
    const out = encodeSafetensors({ attn0: { shape: [1, 1, 2, 3], data } });
    // safetensors/src/tensor.rs, test_serialization_forced_alignement
    expect([...out]).toEqual([
      72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34, 70, 51,
      50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95,
      111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32, 32, 32, 0, 0, 0, 0,
      0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ]);
    // test_empty
    expect([...encodeSafetensors({})]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    expect(encodeSafetensors({}, { framework: 'pt' }).subarray(8).toString()).toBe('{"__metadata__":{"framework":"pt"}}     ');
  });

  it('is read back by an independent reader: padding, order, offsets, values, metadata', () => {
    const tensors = new Map([
      ['b.weight', { shape: [2, 3], data: new Float32Array([1, -2, 3.5, 0, -0, 1e-30]) }],
      ['a', { shape: [1], data: new Float32Array([42]) }],
      ['10', { shape: [0], data: new Float32Array(0) }],
      ['2', { shape: [], data: new Float32Array([7]) }],
    ]);
    const out = encodeSafetensors(tensors, { z: '1', format: 'pt' });
    const r = tinyRead(out);
    expect(r.n % 8).toBe(0);
    expect(r.headerText).toMatch(/^\{"__metadata__":\{"format":"pt","z":"1"\},"10":/);
    expect(r.headerText.trimEnd().endsWith('}')).toBe(true);
    expect(/^ *$/.test(r.headerText.slice(r.headerText.trimEnd().length))).toBe(true);
    // sorted by name (bytewise), laid out contiguously in that order
    const order = [...r.headerText.matchAll(/"([^"]+)":\{"dtype"/g)].map((m) => m[1]);
    expect(order).toEqual(['10', '2', 'a', 'b.weight']);
    let at = 0;
    for (const name of order) {
      expect(r.header[name].data_offsets[0]).toBe(at);
      at = r.header[name].data_offsets[1];
    }
    expect(8 + r.n + at).toBe(out.length);
    expect(r.tensors['b.weight']).toEqual({ shape: [2, 3], values: [...new Float32Array([1, -2, 3.5, 0, -0, 1e-30])] });
    expect(Object.is(r.tensors['b.weight'].values[4], -0)).toBe(true);
    expect(r.tensors.a.values).toEqual([42]);
    expect(r.tensors['2']).toEqual({ shape: [], values: [7] });
    expect(r.tensors['10']).toEqual({ shape: [0], values: [] });
    expect(r.metadata).toEqual({ format: 'pt', z: '1' });
  });

  it('gives the same bytes whatever the insertion order', () => {
    const x = { shape: [2], data: new Float32Array([1, 2]) };
    const y = { shape: [1], data: new Float32Array([3]) };
    const a = encodeSafetensors({ x, y }, { p: '1', q: '2' });
    const b = encodeSafetensors(new Map([['y', y], ['x', x]]), { q: '2', p: '1' });
    expect(Buffer.compare(a, b)).toBe(0);
  });

  it('orders raw tensors of other dtypes as the reference does (widest dtype first)', () => {
    const out = encodeSafetensors({
      a8: { dtype: 'U8', shape: [3], bytes: new Uint8Array([1, 2, 3]) },
      b32: { shape: [1], data: new Float32Array([1]) },
      c64: { dtype: 'I64', shape: [1], bytes: new Uint8Array(8) },
    });
    const f = parseSafetensors(out);
    expect([...f.tensors.values()].map((t) => [t.name, t.dataOffsets])).toEqual([
      ['c64', [0, 8]],
      ['b32', [8, 12]],
      ['a8', [12, 15]],
    ]);
  });

  it('refuses tensors whose bytes do not match their shape', () => {
    expect(() => encodeSafetensors({ x: { shape: [3], data: new Float32Array(2) } })).toThrow(/"x".*8 bytes.*\[3\].*needs 12/);
    expect(() => encodeSafetensors({ x: { shape: [-1], data: new Float32Array(0) } })).toThrow(/shape/);
  });
});

describe('safetensors reader', () => {
  it('reads a hand-written file with F32, F16, BF16 and F64 tensors, unaligned and unpadded', () => {
    const f16 = u16Bytes([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00, 0x8000, 0x03ff, 0xfc00]);
    const bf16 = u16Bytes([0x3f80, 0xc000, 0x4049, 0x7f80, 0x0001]);
    const f32 = f32Bytes([1.5, -0.25, 3e38]);
    const f64 = new Uint8Array(new Float64Array([0.1, -2]).buffer);
    // offsets chosen so F32 and F64 data are not aligned in the file
    const data = concat(f16, f32, bf16, f64);
    const o1 = f16.length;
    const o2 = o1 + f32.length;
    const o3 = o2 + bf16.length;
    const header =
      `{"h":{"dtype":"F16","shape":[3,3],"data_offsets":[0,${o1}]},` +
      `"f":{"dtype":"F32","shape":[3],"data_offsets":[${o1},${o2}]},` +
      `"b":{"dtype":"BF16","shape":[5],"data_offsets":[${o2},${o3}]},` +
      `"d":{"dtype":"F64","shape":[1,2],"data_offsets":[${o3},${data.length}]},` +
      `"__metadata__":{"format":"pt"}}`;
    const file = parseSafetensors(makeFile(header, data), 'hand.safetensors');
    expect(file.metadata).toEqual({ format: 'pt' });
    expect(file.tensors.get('h')!.shape).toEqual([3, 3]);
    expect([...toFloat32(file.tensors.get('h')!)]).toEqual([1, -2, 0.5, 65504, 2 ** -24, Infinity, -0, 1023 * 2 ** -24, -Infinity]);
    expect([...toFloat32(file.tensors.get('f')!)]).toEqual([...new Float32Array([1.5, -0.25, 3e38])]);
    expect([...toFloat32(file.tensors.get('b')!)]).toEqual([1, -2, 3.140625, Infinity, new Float32Array(new Uint32Array([0x10000]).buffer)[0]]);
    expect([...toFloat32(file.tensors.get('d')!)]).toEqual([Math.fround(0.1), -2]);
    // F16 NaN stays NaN
    const nan = parseSafetensors(makeFile({ n: { dtype: 'F16', shape: [1], data_offsets: [0, 2] } }, u16Bytes([0x7e00])));
    expect(Number.isNaN(toFloat32(nan.tensors.get('n')!)[0])).toBe(true);
  });

  it('returns copies, also from a Buffer at an odd offset', () => {
    const file = encodeSafetensors({ a: { shape: [3], data: new Float32Array([1, 2, 3]) } });
    const shifted = Buffer.concat([Buffer.from([0]), file]).subarray(1); // a Buffer whose data is not 4-aligned
    for (const input of [file, shifted]) {
      const t = parseSafetensors(input).tensors.get('a')!;
      const x = toFloat32(t);
      expect([...x]).toEqual([1, 2, 3]);
      x[0] = 99;
      expect([...toFloat32(t)]).toEqual([1, 2, 3]);
    }
  });

  it('refuses to read integer tensors as floats, naming the tensor and dtype', () => {
    const file = parseSafetensors(makeFile({ ids: { dtype: 'I32', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)), 'ids.safetensors');
    expect(file.tensors.get('ids')!.dtype).toBe('I32');
    expect(() => toFloat32(file.tensors.get('ids')!, 'ids.safetensors')).toThrow(/ids\.safetensors.*"ids".*I32/);
  });

  describe('refuses corrupt or hostile files with an error naming the file', () => {
    const good = encodeSafetensors({ w: { shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) }, b: { shape: [2], data: new Float32Array([5, 6]) } });
    const bad = (bytes: Uint8Array, re: RegExp) => expect(() => parseSafetensors(bytes, 'x.safetensors')).toThrow(re);
    const t = (extra: object) => ({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8], ...extra } });

    it('truncated at any point', () => {
      const n = Number(Buffer.from(good).readBigUInt64LE(0));
      for (const cut of [0, 1, 7]) bad(good.subarray(0, cut), /x\.safetensors: .*shorter than the 8-byte/);
      for (const cut of [8, 9, 8 + Math.floor(n / 2), 8 + n - 1]) bad(good.subarray(0, cut), /x\.safetensors: header length \d+ runs past the end/);
      for (const cut of [8 + n, 8 + n + 1, good.length - 4, good.length - 1]) bad(good.subarray(0, cut), /x\.safetensors: tensor "\w": data_offsets .* run past the end of the data/);
      expect(() => parseSafetensors(good)).not.toThrow();
    });
    it('header length beyond the file or absurd', () => {
      const f = new Uint8Array(good);
      new DataView(f.buffer).setBigUint64(0, 1000n, true);
      bad(f, /header length 1000 runs past the end of the file/);
      new DataView(f.buffer).setBigUint64(0, 2n ** 63n + 5n, true);
      bad(f, /header length 9223372036854775813 is larger than the 100000000-byte limit/);
      new DataView(f.buffer).setBigUint64(0, 0n, true);
      bad(f, /does not start with "\{"/);
    });
    it('header not UTF-8, not JSON, not an object', () => {
      bad(makeFile('{"a": 1'), /header is not valid JSON/);
      bad(makeFile('[1, 2]'), /does not start with "\{"/);
      const f = makeFile('{"\u00e9":1}');
      f[10] = 0xff;
      bad(f, /not valid UTF-8/);
    });
    it('bad entries', () => {
      bad(makeFile({ w: 3 }), /tensor "w": header entry is not an object/);
      bad(makeFile({ w: { shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)), /tensor "w": dtype is missing/);
      bad(makeFile(t({ dtype: 'F17' }), new Uint8Array(8)), /tensor "w": unknown dtype "F17"/);
      bad(makeFile(t({ shape: undefined }), new Uint8Array(8)), /tensor "w": shape is missing/);
      bad(makeFile(t({ shape: [-2] }), new Uint8Array(8)), /tensor "w": shape \[-2\] has a dimension that is not a non-negative integer/);
      bad(makeFile(t({ shape: [2.5] }), new Uint8Array(8)), /tensor "w": shape .*not a non-negative integer/);
      bad(makeFile(t({ shape: ['2'] }), new Uint8Array(8)), /tensor "w": shape .*not a non-negative integer/);
      bad(makeFile(t({ data_offsets: [0] }), new Uint8Array(8)), /tensor "w": data_offsets \[0\] is not \[begin, end\]/);
      bad(makeFile(t({ data_offsets: [0, -8] }), new Uint8Array(8)), /tensor "w": data_offsets .*is not \[begin, end\]/);
      bad(makeFile(t({ data_offsets: [8, 0] }), new Uint8Array(8)), /tensor "w": data_offsets \[8, 0\] ends before it begins/);
      bad(makeFile(t({ data_offsets: [0, 16] }), new Uint8Array(8)), /tensor "w": data_offsets \[0, 16\] run past the end of the data \(8 bytes/);
      bad(makeFile(t({ shape: [3] }), new Uint8Array(8)), /tensor "w": 8 bytes of data, but shape \[3\] of F32 needs 12/);
      bad(makeFile({ ...t({}), __metadata__: { a: 1 } }, new Uint8Array(8)), /__metadata__ value for "a" is not a string/);
      bad(makeFile({ ...t({}), __metadata__: [] }, new Uint8Array(8)), /__metadata__ is not an object/);
    expect(parseSafetensors(makeFile({ ...t({}), __metadata__: null }, new Uint8Array(8))).metadata).toEqual({});
    });
    it('overlaps, gaps, trailing bytes, duplicate keys', () => {
      const two = (a: number[], b: number[], n: number) =>
        makeFile({ a: { dtype: 'F32', shape: [(a[1] - a[0]) / 4], data_offsets: a }, b: { dtype: 'F32', shape: [(b[1] - b[0]) / 4], data_offsets: b } }, new Uint8Array(n));
      bad(two([0, 8], [4, 12], 12), /tensor "b": data_offsets \[4, 12\] overlap those of "a"/);
      bad(two([0, 8], [0, 8], 8), /overlap those of "[ab]"/);
      bad(two([0, 4], [8, 12], 12), /tensor "b": data_offsets \[8, 12\] leave a gap of unused bytes \[4, 8\)/);
      bad(two([4, 8], [8, 12], 12), /tensor "a": .*gap of unused bytes \[0, 4\)/);
      bad(two([0, 4], [4, 8], 12), /4 bytes of data after the last tensor/);
      expect(() => parseSafetensors(two([0, 4], [4, 8], 8))).not.toThrow();
      bad(makeFile('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}, "w" :{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', new Uint8Array(8)), /header has the key "w" more than once/);
      bad(makeFile('{"w":{"dtype":"F32","shape":[1],"dtype":"F16","data_offsets":[0,4]}}', new Uint8Array(4)), /key "dtype" more than once/);
    });
  });

  describe('on disk', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 's2s-st-'));
    });
    afterAll(async () => {
      await fs.rm(dir, { recursive: true, force: true });
    });

    it('writes atomically and reads back; errors name the path', async () => {
      const file = path.join(dir, 'a.safetensors');
      const data = new Float32Array(1000).map((_, i) => Math.sin(i));
      await writeSafetensors(file, { 'x.y': { shape: [10, 100], data } }, { format: 'pt' });
      expect(await fs.readdir(dir)).toEqual(['a.safetensors']);
      const r = await readSafetensors(file);
      expect(r.file).toBe(file);
      expect(Buffer.compare(Buffer.from(toFloat32(r.tensors.get('x.y')!).buffer), Buffer.from(data.buffer))).toBe(0);
      const bytes = await fs.readFile(file);
      await fs.writeFile(file, bytes.subarray(0, bytes.length - 3));
      await expect(readSafetensors(file)).rejects.toThrow(`${file}: tensor "x.y": data_offsets [0, 4000] run past the end`);
    });

    it('checks the header before reading any data: a huge file with a bad header is refused at once', async () => {
      const file = path.join(dir, 'huge.safetensors');
      // 5 GiB, sparse: more than one buffer can hold, so a reader that read the data first would fail otherwise
      const header = makeFile({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 9] } });
      const fh = await fs.open(file, 'w');
      await fh.write(header, 0, header.length, 0);
      await fh.truncate(5 * 2 ** 30);
      await fh.close();
      const t0 = performance.now();
      for (const read of [readSafetensors, openSafetensors])
        await expect(read(file)).rejects.toThrow(`${file}: tensor "w": 9 bytes of data, but shape [2] of F32 needs 8`);
      expect(performance.now() - t0).toBeLessThan(5000);
      await fs.rm(file);
    });

    it('refuses a deeply nested header with a clear error, for every reader', async () => {
      const file = path.join(dir, 'deep.safetensors');
      const deep = (open: string, close: string, depth: number) =>
        makeFile(`{"__metadata__":{"a":${open.repeat(depth)}${close.repeat(depth)}},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, new Uint8Array(4));
      for (const [open, close] of [['[', ']'], ['{"k":', '}']]) {
        const bytes = deep(open, close, 100_000);
        const msg = `${file}: header nests objects and arrays more than 128 deep`;
        expect(() => parseSafetensors(bytes, file)).toThrow(msg);
        await fs.writeFile(file, bytes);
        await expect(readSafetensors(file)).rejects.toThrow(msg);
        await expect(openSafetensors(file)).rejects.toThrow(msg);
      }
      // within the limit: refused for what it is
      expect(() => parseSafetensors(deep('[', ']', 120), file)).toThrow(`${file}: __metadata__ value for "a" is not a string: [[[[`);
      // nesting inside strings does not count
      const quoted = makeFile({ __metadata__: { a: '['.repeat(1000) }, w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4));
      expect(parseSafetensors(quoted).metadata.a).toHaveLength(1000);
    });
  });
});

const f32 = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0];

/** Every finite half value, decoded by the formula (not the library's table), with its bits, ascending. */
const HALVES = (() => {
  const out: { v: number; bits: number }[] = [];
  for (let h = 0; h < 0x7c00; h++) {
    const e = h >> 10;
    const m = h & 0x3ff;
    out.push({ v: e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15), bits: h });
  }
  return out;
})();

/** The nearest half to x (ties to the even bit pattern), by binary search over all of them; overflow to infinity as IEEE rounds. */
function nearestHalf(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (Number.isNaN(x)) return 0x7e00;
  // 65520 = 65504 + half an ulp: from there on IEEE rounds to infinity
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = HALVES.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (HALVES[mid].v <= a) lo = mid;
    else hi = mid;
  }
  const [p, q] = [HALVES[lo], HALVES[hi]];
  const dp = a - p.v;
  const dq = q.v - a;
  if (a >= q.v) return sign | q.bits;
  return sign | (dp < dq ? p.bits : dq < dp ? q.bits : p.bits % 2 === 0 ? p.bits : q.bits);
}

/** The nearest bfloat16 to a float32 (ties to even), comparing the two neighbours' distances in float64. */
function nearestBF16(bits: number): number {
  const x = f32(bits);
  if (Number.isNaN(x)) return 0x7fc0 | ((bits >>> 16) & 0x8000);
  const down = bits >>> 16;
  const up = down + 1; // the next bfloat16 away from zero (0x7f80 past the largest finite: infinity)
  const a = Math.abs(x);
  const dDown = a - Math.abs(f32(down << 16));
  const dUp = Math.abs(f32((up << 16) >>> 0)) - a;
  if ((bits & 0xffff) === 0) return down;
  if ((up & 0x7fff) === 0x7f80) {
    // the neighbour above is infinity: round up only past the midpoint, which is 2^128 - 2^119 in magnitude
    const mid = 2 ** 128 - 2 ** 119;
    return a > mid || (a === mid && down % 2 === 1) ? up : down;
  }
  return dDown < dUp ? down : dUp < dDown ? up : down % 2 === 0 ? down : up;
}

/** Random float32 bit patterns over every exponent, plus the ones on and beside rounding ties. */
function sampleBits(n: number, seed: number): number[] {
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = next();
    out.push(r);
    // a tie for bfloat16 (low 16 bits 0x8000) and for half (low 13 bits 0x1000), and their neighbours
    for (const b of [(r & 0xffff0000) | 0x8000, ((r & 0xffffe000) | 0x1000) >>> 0]) out.push(b >>> 0, (b + 1) >>> 0, (b - 1) >>> 0);
  }
  return out;
}

describe('float32 -> bfloat16 / float16', () => {
  it('gives known bit patterns: exact values, ties to even, overflow, signed zero, NaN', () => {
    const bf = (xs: number[]) => [...float32ToBF16(new Float32Array(xs.map(f32)))];
    expect(bf([0x3f800000, 0x3f808000, 0x3f818000, 0x3f808001, 0x3f80ffff, 0x80000000, 0x7f7fffff, 0xff7fffff, 0x7f800000, 0x7fc00000, 0xffc00001, 0x00000001]))
      .toEqual([0x3f80, 0x3f80, 0x3f82, 0x3f81, 0x3f81, 0x8000, 0x7f80, 0xff80, 0x7f80, 0x7fc0, 0xffc0, 0x0000]);
    // 3.14159274 (0x40490fdb) -> 0x4049 (3.140625); -2 -> 0xc000
    expect([...float32ToBF16(new Float32Array([Math.PI, -2]))]).toEqual([0x4049, 0xc000]);

    const h = (xs: number[]) => [...float32ToF16(new Float32Array(xs))];
    expect(h([1, -2, 0.5, 65504, 65519, 65520, 1e6, -Infinity, 2 ** -24, 2 ** -25, 1.5 * 2 ** -25, 2 ** -14, 1023 * 2 ** -24, -0, 0]))
      .toEqual([0x3c00, 0xc000, 0x3800, 0x7bff, 0x7bff, 0x7c00, 0x7c00, 0xfc00, 0x0001, 0x0000, 0x0001, 0x0400, 0x03ff, 0x8000, 0x0000]);
    // ties to even in the normal range: 1 + 2^-11 is halfway between 1 and 1 + 2^-10
    expect(h([1 + 2 ** -11, 1 + 3 * 2 ** -11, 2049, 2051])).toEqual([0x3c00, 0x3c02, 0x6800, 0x6802]);
    // subnormal ties: 2.5 and 3.5 units of 2^-24
    expect(h([2.5 * 2 ** -24, 3.5 * 2 ** -24])).toEqual([0x0002, 0x0004]);
    expect(h([NaN])[0] & 0x7fff).toBe(0x7e00);
  });

  it('every half value survives float16 -> float32 -> float16', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const file = encodeSafetensors({ h: { dtype: 'F16', shape: [65536], bytes: new Uint8Array(all.buffer) } });
    const back = float32ToF16(toFloat32(parseSafetensors(file).tensors.get('h')!));
    for (let i = 0; i < 65536; i++) {
      const isNaN = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      if (isNaN) expect(back[i] & 0x7c00).toBe(0x7c00);
      else if (back[i] !== i) expect(back[i], `half 0x${i.toString(16)}`).toBe(i);
    }
  });

  it('rounds to nearest even as an independent search for the nearest value does', () => {
    const bits = sampleBits(4000, 12345);
    const xs = new Float32Array(new Uint32Array(bits).buffer);
    const bf = float32ToBF16(xs);
    const h = float32ToF16(xs);
    // and floats scaled into half's range, where its rounding matters most
    const inRange = xs.map((x) => (Number.isFinite(x) && x !== 0 ? x / 2 ** Math.round(Math.log2(Math.abs(x)) - Math.log2(Math.abs(x)) % 20) : x));
    const hr = float32ToF16(inRange);
    for (let i = 0; i < bits.length; i++) {
      if (bf[i] !== nearestBF16(bits[i])) expect(bf[i], `bf16 of 0x${bits[i].toString(16)}`).toBe(nearestBF16(bits[i]));
      if (!Number.isNaN(xs[i]) && h[i] !== nearestHalf(xs[i])) expect(h[i], `f16 of ${xs[i]}`).toBe(nearestHalf(xs[i]));
      if (!Number.isNaN(inRange[i]) && hr[i] !== nearestHalf(inRange[i])) expect(hr[i], `f16 of ${inRange[i]}`).toBe(nearestHalf(inRange[i]));
    }
  });

  it('serializeSafetensors writes float32 data as BF16 or F16 when asked, ordered among the 2-byte dtypes', () => {
    const data = new Float32Array([1, 1 + 2 ** -11, -3.5, 70000]);
    const out = encodeSafetensors({
      b: { dtype: 'BF16', shape: [2, 2], data },
      h: { dtype: 'F16', shape: [4], data },
      f: { shape: [4], data },
    });
    const f = parseSafetensors(out);
    expect([...f.tensors.values()].map((t) => [t.name, t.dtype, t.dataOffsets])).toEqual([
      ['f', 'F32', [0, 16]],
      ['b', 'BF16', [16, 24]],
      ['h', 'F16', [24, 32]],
    ]);
    expect([...toFloat32(f.tensors.get('b')!)]).toEqual([1, 1, -3.5, 70144]);
    expect([...toFloat32(f.tensors.get('h')!)]).toEqual([1, 1, -3.5, Infinity]);
    // a view into a larger buffer converts only its own elements
    const big = new Float32Array([9, ...data, 9]);
    expect([...float32ToBF16(big.subarray(1, 5))]).toEqual([...float32ToBF16(data)]);
    expect(() => encodeSafetensors({ x: { dtype: 'I32' as 'F32', shape: [4], data } })).toThrow(/written as F32, BF16 or F16/);
  });
});

describe('openSafetensors', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 's2s-st-open-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('reads the header alone, then tensors one at a time', async () => {
    const file = path.join(dir, 'a.safetensors');
    const w = new Float32Array(12).map((_, i) => i / 3);
    await writeSafetensors(file, { w: { shape: [3, 4], data: w }, h: { dtype: 'BF16', shape: [12], data: w } }, { format: 'pt' });
    const h = await openSafetensors(file);
    try {
      expect(h.metadata).toEqual({ format: 'pt' });
      expect([...h.tensors.keys()]).toEqual(['w', 'h']);
      expect(h.tensors.get('w')).toEqual({ name: 'w', dtype: 'F32', shape: [3, 4], dataOffsets: [0, 48] });
      expect([...toFloat32(await h.read('w'))]).toEqual([...w]);
      const bf = toFloat32(await h.read('h'));
      expect([...float32ToBF16(bf)]).toEqual([...float32ToBF16(w)]);
      await expect(h.read('nope')).rejects.toThrow(`${file}: no tensor named "nope"`);
    } finally {
      await h.close();
    }
  });

  it('refuses what readSafetensors refuses, naming the file', async () => {
    const file = path.join(dir, 'b.safetensors');
    const good = encodeSafetensors({ w: { shape: [4], data: new Float32Array(4) } });
    for (const cut of [3, 12, good.length - 1]) {
      await fs.writeFile(file, good.subarray(0, cut));
      const want = (await readSafetensors(file).catch((e: Error) => e.message)) as string;
      expect(want).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
      await expect(openSafetensors(file)).rejects.toThrow(want);
    }
    await expect(openSafetensors(path.join(dir, 'missing.safetensors'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
