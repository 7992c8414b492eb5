// One training step of the engine, repeated, with the phases marked on stdout (for
// matmul_share.py) and the median step at the end; S2S_NATIVE_ADDON picks the build, so two builds
// can be compared by alternating runs.
//   node benchmarks/profile/step.mjs [V,L,NH,C,B,T[,KVH,F]] [steps]   (default: the 10m config, 6 steps)
// GPT-2 shaped, or Llama shaped (tied embeddings, as the bench's smollm2-135m) when KVH and F
// (key/value heads, FFN size) follow: SmolLM2-135M's shape is 49152,30,9,576,2,256,3,1536.
// With S2S_PROFILE_OPS=1, the op table printed at exit covers the steps after the 2 warm-ups only.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const native = require('@s2s/native');
const [V, L, NH, C, B, T, KVH, F] = (process.argv[2] ?? '4096,6,6,384,8,256').split(',').map(Number);
const steps = Number(process.argv[3] ?? 6);
const llama = KVH !== undefined ? { arch: 'llama', numKvHeads: KVH, ffnSize: F, tieEmbeddings: true, ropeTheta: 100000 } : {};
const m = new native.NativeModel({ vocabSize: V, maxSeqLen: T, numLayers: L, numHeads: NH, channels: C, device: 'cpu', ...llama });
await m.initWeights(1);
const N = B * T;
const tokens = Int32Array.from({ length: N }, (_, i) => (i * 7919) % V);
const targets = Int32Array.from({ length: N }, (_, i) => (i * 104729 + 1) % V);
const dlogprob = new Float32Array(N).fill(-1 / N);
const times = [];
for (let s = 0; s < steps; s++) {
  if (s === 2) native.opProfileReset();
  console.log(`MARK step ${s}`);
  let t = performance.now();
  const t0 = t;
  await m.forward(tokens, targets, B, T);
  console.log(`MARK forward ${performance.now() - t}`);
  t = performance.now();
  await m.backward(dlogprob);
  console.log(`MARK backward ${performance.now() - t}`);
  t = performance.now();
  await m.step({ lr: 1e-4, weightDecay: 0.1, maxGradNorm: 1 });
  console.log(`MARK step_opt ${performance.now() - t}`);
  if (s >= 2) times.push(performance.now() - t0);
}
console.log(`MARK flops ${m.flopsPerToken(T) * N}`);
times.sort((a, b) => a - b);
console.log(`median step ${times[Math.floor(times.length / 2)]?.toFixed(1)} ms over ${times.length} steps after 2 warm-ups`);
