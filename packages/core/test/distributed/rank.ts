// One rank of the Distributed API test (packages/core/test/distributed.test.ts): joins the group its
// environment describes, runs the collectives, and prints what it got as one JSON line.
import { Distributed, Model } from '@s2s/core';

const dist = await Distributed.fromEnv();
const out: Record<string, unknown> = { rank: dist.rank, worldSize: dist.worldSize, localRank: dist.localRank };
out.sum = await dist.sum([dist.rank + 1, 0.5]);
out.anyRank1 = await dist.any(dist.rank === 1);
out.anyNone = await dist.any(false);
out.gather = await dist.gather([dist.rank * 10, dist.rank * 10 + 1]);
out.shard = dist.shard([0, 1, 2, 3, 4]);
const tiny = { vocabSize: 31, maxSeqLen: 16, numLayers: 1, numHeads: 2, channels: 16 };
// every rank starts elsewhere; the broadcast makes them rank 0's model
const model = await Model.create(tiny, { seed: 100 + dist.rank });
await model.broadcastParams(dist.group!, { root: 0 });
await dist.checkSameWeights(model, 'after the broadcast');
out.synced = true;
// rank 1 changes one weight: the check names it
if (dist.rank === 1) await model.writeBuffer('params', new Float32Array([0.123]), 7);
try {
  await dist.checkSameWeights(model, 'after rank 1 drifted');
  out.drift = 'not detected';
} catch (e) {
  out.drift = (e as Error).message;
}
try {
  await model.allreduceGrads({} as never);
} catch (e) {
  out.badGroup = (e as Error).message;
}
try {
  await dist.group!.allgather(new Float32Array(2) as never);
} catch (e) {
  out.badArray = (e as Error).message;
}
await dist.barrier();
console.log(JSON.stringify(out));
dist.destroy();
model.dispose();
