// The engine's GEMM rate on a step's shapes with its output in the cache and out of it: each shape
// once writing one result over and over (warm: the lines stay in the cache) and once cycling
// through enough results that every product writes lines the caches do not hold, as a training
// step's products do (their outputs are activations and gradients written once a step).
//   node benchmarks/profile/gemm_cold.mjs [MxNxK,...] [precision]   (default: GPT-2 124M's linear
//   layers at B=2, T=256, and the 10m config's at B=8, T=256; bf16 where the processor has it)
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const native = require('@s2s/native');
const shapes = (process.argv[2] ?? '512x2304x768,512x3072x768,512x768x3072,768x3072x512,2048x1536x384,2048x384x1536')
  .split(',')
  .map((s) => s.split('x').map(Number));
const precision = process.argv[3] ?? (native.cpuBf16().native ? 'bf16' : 'fp32');
const coldBytes = 1 << 30; // results enough to pass through any cache here
console.log(`precision ${precision}; GFLOP/s warm (one result) / cold (results cycled through 1 GiB)`);
for (const [M, N, K] of shapes) {
  const outputs = Math.max(2, Math.min(4096, Math.ceil(coldBytes / (4 * M * N))));
  const iters = Math.max(10, Math.ceil(2e10 / (2 * M * N * K)));
  const warm = await native.measureSgemm(M, N, K, iters, precision, 1);
  const cold = await native.measureSgemm(M, N, K, iters, precision, outputs);
  console.log(`${M}x${N}x${K}: warm ${warm.toFixed(0)}, cold ${cold.toFixed(0)} (${((100 * cold) / warm).toFixed(0)}%), output ${((4 * M * N) / 2 ** 20).toFixed(1)} MiB`);
}
