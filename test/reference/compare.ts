// What the reference comparisons share (packages/core/test/model-vs-tfjs.test.ts for GPT-2,
// test/llama-vs-reference.test.ts for Llama): a seeded generator and the error metric.

/** mulberry32: uniform in (0, 1), normal (Box-Muller) and integers below n, fixed by `seed`. */
export function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  const int = (n: number) => Math.floor(uniform() * n);
  return { uniform, normal, int };
}
export type Rng = ReturnType<typeof rng>;

/** max|a - b| / max|b| (the absolute error where b is all zero); throws when the lengths differ. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relErr: lengths ${a.length} and ${b.length} differ`);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return den === 0 ? num : num / den;
}

/** The worst of named errors, and a message listing the `top` worst for `what`. */
export function worst(errs: Map<string, number>, what: string, top = 5): { err: number; msg: string } {
  const sorted = [...errs].sort((a, b) => b[1] - a[1]);
  const list = sorted.slice(0, top).map(([n, e]) => `${n}: ${e.toExponential(2)}`).join(', ');
  return { err: sorted[0][1], msg: `${what}; worst tensors: ${list}` };
}

/** What make() returns, made while S2S_CPU_PRECISION is `precision` (the engine reads it when a model is made). */
export async function withCpuPrecision<T>(precision: string, make: () => Promise<T>): Promise<T> {
  const saved = process.env.S2S_CPU_PRECISION;
  process.env.S2S_CPU_PRECISION = precision;
  try {
    return await make();
  } finally {
    if (saved === undefined) delete process.env.S2S_CPU_PRECISION;
    else process.env.S2S_CPU_PRECISION = saved;
  }
}
