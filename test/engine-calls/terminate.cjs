// Child process of test/engine-calls.test.ts: worker threads that shut down while their engine
// calls are queued, running or being delivered, then the engine used again from the main thread.
// Prints one JSON line; the parent checks the exit code and that line.
'use strict';
const { Worker } = require('node:worker_threads');
const path = require('node:path');

const addon = path.join(__dirname, '..', '..', 'native', 'index.cjs');
const mode = process.argv[2]; // 'terminate' | 'exit'
const config = { vocabSize: 512, maxSeqLen: 64, numLayers: 2, numHeads: 4, channels: 128 };

const workerSource = `
  const { parentPort, workerData } = require('node:worker_threads');
  const { NativeModel } = require(workerData.addon);
  const m = new NativeModel(workerData.config);
  m.initWeights(1);
  const B = 8, T = 64;
  const tokens = new Int32Array(B * T).map((_, i) => (i * 7) % 512);
  // Several calls of each kind: some will be running, some queued, some settling when the end comes.
  for (let i = 0; i < 3; i++) {
    m.forward(tokens, tokens, B, T, { entropy: true }).catch(() => {});
    m.generate(new Int32Array([1, 2, 3]), new Int32Array([3]), { maxNewTokens: 40, seed: i }).catch(() => {});
    m.readBuffer('params').catch(() => {});
  }
  parentPort.postMessage('started');
  if (workerData.mode === 'exit') setTimeout(() => process.exit(3), workerData.delay);
  // Alive until ended from outside, however fast its calls finish: its exit code then says how it ended.
  else setInterval(() => {}, 1000);
`;

async function once(delay) {
  const w = new Worker(workerSource, { eval: true, workerData: { addon, config, mode, delay } });
  const exited = new Promise((resolve) => w.on('exit', resolve));
  w.on('error', (e) => {
    console.error('worker error', e);
  });
  await new Promise((resolve) => w.once('message', resolve));
  if (mode === 'terminate') {
    await new Promise((r) => setTimeout(r, delay));
    await w.terminate();
  }
  return exited;
}

(async () => {
  const codes = [];
  // 0 ms: calls still queued; later: the engine mid-call, or a result on its way back.
  for (const delay of [0, 1, 3, 10, 30, 60, 0, 5, 20, 100]) codes.push(await once(delay));
  // The engine thread and this environment are fine afterwards.
  const { NativeModel } = require(addon);
  const m = new NativeModel(config);
  m.initWeights(2);
  const r = await m.forward(new Int32Array([1, 2, 3, 4]), new Int32Array([2, 3, 4, 5]), 1, 4);
  const g = await m.generate(new Int32Array([1, 2]), new Int32Array([2]), { maxNewTokens: 4, seed: 1 });
  const finite = Array.from(r.logprob).every(Number.isFinite);
  console.log(JSON.stringify({ mode, codes, finite, generated: g.tokens.length }));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
