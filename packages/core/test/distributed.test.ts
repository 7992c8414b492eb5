// The Distributed API over real processes (2 ranks over Gloo on this machine): sums, any, gather,
// shards, the parameter broadcast, the same-weights check naming a rank that drifted, and the
// environment's checks (each error names its variable).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { Distributed, freeTcpPort, gpuForRank, readDistributedEnv } from '@s2s/core';

const script = fileURLToPath(new URL('./distributed/rank.ts', import.meta.url));

function runRank(rank: number, port: number): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', script], {
    env: { ...process.env, WORLD_SIZE: '2', RANK: String(rank), LOCAL_RANK: String(rank), MASTER_PORT: String(port), S2S_DIST_TIMEOUT: '60' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => void (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => void (err += b.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, out, err })));
}

describe('Distributed over 2 processes', () => {
  it('sums, agrees, gathers, shards, broadcasts the weights and names a rank whose weights drifted', async () => {
    const port = await freeTcpPort();
    const runs = await Promise.all([runRank(0, port), runRank(1, port)]);
    const results = runs.map((r) => {
      expect(r.code, r.err).toBe(0);
      return JSON.parse(r.out.trim().split('\n').at(-1)!);
    });
    results.forEach((o, r) => {
      expect(o.rank).toBe(r);
      expect(o.worldSize).toBe(2);
      expect(o.sum).toEqual([3, 1]);
      expect(o.anyRank1).toBe(true);
      expect(o.anyNone).toBe(false);
      expect(o.gather).toEqual([[0, 1], [10, 11]]);
      expect(o.synced).toBe(true);
      expect(o.drift).toContain("after rank 1 drifted: the weights of rank 1 differ from rank 0's");
      expect(o.badGroup).toContain('group must be a ProcessGroup');
      expect(o.badArray).toContain('data must be a Float64Array');
    });
    // contiguous, as even as the count allows, covering every item once
    expect([...results[0].shard, ...results[1].shard]).toEqual([0, 1, 2, 3, 4]);
    expect(results[0].shard).toEqual([0, 1]);
  }, 60_000);
});

describe('readDistributedEnv', () => {
  it('is undefined without WORLD_SIZE, fills torchrun\'s defaults, and names a bad variable', () => {
    expect(readDistributedEnv({})).toBeUndefined();
    expect(readDistributedEnv({ WORLD_SIZE: '4', RANK: '3', MASTER_PORT: '1234' })).toEqual({
      rank: 3, worldSize: 4, localRank: 3, localWorldSize: 4, masterAddr: '127.0.0.1', masterPort: 1234, timeoutMs: 600_000, iface: undefined,
    });
    expect(readDistributedEnv({ WORLD_SIZE: '4', RANK: '3', LOCAL_WORLD_SIZE: '2', MASTER_PORT: '1', S2S_DIST_TIMEOUT: '2.5' })).toMatchObject({ localRank: 1, timeoutMs: 2500 });
    expect(() => readDistributedEnv({ WORLD_SIZE: '2', MASTER_PORT: '1' })).toThrow('RANK is not set');
    expect(() => readDistributedEnv({ WORLD_SIZE: '2', RANK: '2', MASTER_PORT: '1' })).toThrow('RANK="2": expected an integer in [0, 1]');
    expect(() => readDistributedEnv({ WORLD_SIZE: 'two' })).toThrow('WORLD_SIZE="two"');
    expect(() => readDistributedEnv({ WORLD_SIZE: '2', RANK: '0' })).toThrow('MASTER_PORT is not set');
    expect(() => readDistributedEnv({ WORLD_SIZE: '2', RANK: '0', MASTER_PORT: '70000' })).toThrow('MASTER_PORT="70000"');
    expect(() => readDistributedEnv({ WORLD_SIZE: '2', RANK: '0', MASTER_PORT: '1', S2S_DIST_TIMEOUT: '-1' })).toThrow('S2S_DIST_TIMEOUT="-1"');
  });

  it('gives each rank of a machine its own GPU, round robin when there are fewer, and keeps a chosen one', () => {
    const rank = (r: number, extra: NodeJS.ProcessEnv = {}) => ({ WORLD_SIZE: '4', RANK: String(r), LOCAL_WORLD_SIZE: '4', MASTER_PORT: '1', ...extra });
    expect([0, 1, 2, 3].map((r) => gpuForRank(rank(r), 4))).toEqual(['0', '1', '2', '3']);
    expect([0, 1, 2, 3].map((r) => gpuForRank(rank(r), 2))).toEqual(['0', '1', '0', '1']);
    expect(gpuForRank(rank(1), 0)).toBeUndefined();
    expect(gpuForRank(rank(1, { CUDA_VISIBLE_DEVICES: '5' }), 4)).toBeUndefined();
    expect(gpuForRank({}, 4)).toBeUndefined();
    // node 1 of 2 (RANK 5 with 4 ranks per node): its LOCAL_RANK decides
    expect(gpuForRank({ WORLD_SIZE: '8', RANK: '5', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '4', MASTER_PORT: '1' }, 4)).toBe('1');
  });

  it('the single-rank run: collectives are the identity', async () => {
    const d = Distributed.single;
    expect(await d.sum([1, 2])).toEqual([1, 2]);
    expect(await d.any(true)).toBe(true);
    expect(await d.gather([5])).toEqual([[5]]);
    expect(d.shard([1, 2, 3])).toEqual([1, 2, 3]);
    expect(d.isMain).toBe(true);
    expect(await Distributed.fromEnv({ WORLD_SIZE: '1' })).toBe(Distributed.single);
  });
});
