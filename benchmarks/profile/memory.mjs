// Resident memory of one training step of the engine, phase by phase (after the model is made,
// after the forward, the backward and the optimizer step, and after a second forward), in GB from
// /proc/self/statm; S2S_NATIVE_ADDON picks the build, as for step.mjs.
//   node benchmarks/profile/memory.mjs [V,L,NH,C,B,T[,KVH,F]]   (default: SmolLM2-135M's shape at B=1, T=4096)
import { createRequire } from 'node:module';
import fs from 'node:fs';

const require = createRequire(import.meta.url);
const native = require('@s2s/native');
const [V, L, NH, C, B, T, KVH, F] = (process.argv[2] ?? '49152,30,9,576,1,4096,3,1536').split(',').map(Number);
const llama = KVH !== undefined ? { arch: 'llama', numKvHeads: KVH, ffnSize: F, tieEmbeddings: true, ropeTheta: 100000 } : {};
const resident = () => ((Number(fs.readFileSync('/proc/self/statm', 'utf8').split(' ')[1]) * 4096) / 1e9).toFixed(2);
const m = new native.NativeModel({ vocabSize: V, maxSeqLen: T, numLayers: L, numHeads: NH, channels: C, device: 'cpu', ...llama });
await m.initWeights(1);
console.log(`made      ${resident()} GB`);
const N = B * T;
const tokens = Int32Array.from({ length: N }, (_, i) => (i * 7919) % V);
await m.forward(tokens, tokens, B, T);
console.log(`forward   ${resident()} GB`);
await m.backward(new Float32Array(N).fill(-1 / N));
console.log(`backward  ${resident()} GB`);
await m.step({ lr: 1e-4 });
console.log(`step      ${resident()} GB`);
await m.forward(tokens, tokens, B, T);
console.log(`forward 2 ${resident()} GB`);
