// Child process of test/engine-calls.test.ts: eight models each with engine calls pending, and a
// file read made after them. The read must not wait for the engine: it needs a libuv pool thread,
// and no pending engine call may hold one. Prints the order in which things settled, as JSON.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const { NativeModel } = require(path.join(__dirname, '..', '..', 'native', 'index.cjs'));
const config = { vocabSize: 512, maxSeqLen: 64, numLayers: 4, numHeads: 4, channels: 256 };
const B = 8, T = 64;
const tokens = new Int32Array(B * T).map((_, i) => (i * 13) % 512);

(async () => {
  const models = Array.from({ length: 8 }, (_, i) => {
    const m = new NativeModel(config);
    m.initWeights(i + 1);
    return m;
  });
  const order = [];
  const calls = models.map((m, i) => m.forward(tokens, tokens, B, T).then(() => order.push(`engine ${i}`)));
  const read = fs.promises.readFile(__filename).then(() => order.push('read'));
  await Promise.all([...calls, read]);
  console.log(JSON.stringify({ order }));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
