// Data parallelism: the ranks of a run, as torchrun starts them (WORLD_SIZE, RANK, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT in each process's environment), and what the trainers need of them:
// sums of statistics over the ranks, the gradient all-reduce, the parameter broadcast at the
// start, a check that every rank holds the same weights, and a barrier. A run in one process has
// the single-rank Distributed, whose collectives are the identity, so trainers use one code path.
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { createServer } from 'node:net';

import type { Model } from './model.js';
import { type ProcessGroup, native } from './native.js';

/** torchrun's variables, read and checked. */
export interface DistributedEnv {
  rank: number;
  worldSize: number;
  /** this rank's place among the ranks of its machine (which GPU it takes) */
  localRank: number;
  /** ranks on this machine (how many share its cores) */
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  /** how long a rank waits for the others (S2S_DIST_TIMEOUT, seconds; default 600) */
  timeoutMs: number;
  /** GLOO_SOCKET_IFNAME */
  iface?: string;
}

export const DEFAULT_DIST_TIMEOUT_S = 600;

function intVar(env: NodeJS.ProcessEnv, name: string, min: number, max: number, def?: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    if (def !== undefined) return def;
    throw new Error(`${name} is not set: a data-parallel rank needs WORLD_SIZE, RANK and MASTER_PORT (s2s launch sets them)`);
  }
  const v = Number(raw);
  if (!/^\s*\d+\s*$/.test(raw) || !Number.isSafeInteger(v) || v < min || v > max)
    throw new Error(`${name}=${JSON.stringify(raw)}: expected an integer in [${min}, ${max}]`);
  return v;
}

/**
 * The data-parallel environment of this process, or undefined when WORLD_SIZE is unset (a run in
 * one process). Every error names the variable.
 */
export function readDistributedEnv(env: NodeJS.ProcessEnv = process.env): DistributedEnv | undefined {
  if (env.WORLD_SIZE === undefined || env.WORLD_SIZE === '') return undefined;
  const worldSize = intVar(env, 'WORLD_SIZE', 1, 1 << 20);
  const rank = intVar(env, 'RANK', 0, worldSize - 1, worldSize === 1 ? 0 : undefined);
  const localWorldSize = intVar(env, 'LOCAL_WORLD_SIZE', 1, worldSize, worldSize);
  const localRank = intVar(env, 'LOCAL_RANK', 0, localWorldSize - 1, rank % localWorldSize);
  const masterPort = intVar(env, 'MASTER_PORT', 1, 65535, worldSize === 1 ? 29500 : undefined);
  const masterAddr = env.MASTER_ADDR || '127.0.0.1';
  const rawTimeout = env.S2S_DIST_TIMEOUT;
  const timeoutS = rawTimeout === undefined || rawTimeout === '' ? DEFAULT_DIST_TIMEOUT_S : Number(rawTimeout);
  if (!(timeoutS > 0 && timeoutS <= 1e6))
    throw new Error(`S2S_DIST_TIMEOUT=${JSON.stringify(rawTimeout)}: expected a number of seconds in (0, 1e6]`);
  const iface = env.GLOO_SOCKET_IFNAME || undefined;
  return { rank, worldSize, localRank, localWorldSize, masterAddr, masterPort, timeoutMs: Math.round(timeoutS * 1000), iface };
}

export class Distributed {
  /** The single-rank run: every collective is the identity. */
  static readonly single = new Distributed(undefined, { rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1 });

  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  readonly localWorldSize: number;

  private constructor(
    readonly group: ProcessGroup | undefined,
    where: { rank: number; worldSize: number; localRank: number; localWorldSize: number },
  ) {
    this.rank = where.rank;
    this.worldSize = where.worldSize;
    this.localRank = where.localRank;
    this.localWorldSize = where.localWorldSize;
  }

  /**
   * This process's rank in the run its environment describes (readDistributedEnv): joins the other
   * ranks (resolves once all have), or the single-rank run when WORLD_SIZE is unset or 1.
   */
  static async fromEnv(env: NodeJS.ProcessEnv = process.env): Promise<Distributed> {
    const e = readDistributedEnv(env);
    if (!e || e.worldSize === 1) return Distributed.single;
    const support = native.distSupport();
    if (!support.gloo) throw new Error(`WORLD_SIZE=${e.worldSize} asks for a data-parallel run, but ${support.glooReason}`);
    const group = await native.initProcessGroup({
      rank: e.rank,
      worldSize: e.worldSize,
      masterAddr: e.masterAddr,
      masterPort: e.masterPort,
      timeoutMs: e.timeoutMs,
      ...(e.iface ? { iface: e.iface } : {}),
    });
    return new Distributed(group, e);
  }

  /** Rank 0: the one that writes checkpoints and logs. */
  get isMain(): boolean {
    return this.rank === 0;
  }

  /** Element-wise sums over the ranks (in float64). */
  async sum(values: readonly number[]): Promise<number[]> {
    if (!this.group) return [...values];
    return [...(await this.group.allreduce(Float64Array.from(values)))];
  }

  /** Whether `flag` holds on any rank: how the ranks agree to stop together. */
  async any(flag: boolean): Promise<boolean> {
    if (!this.group) return flag;
    return (await this.sum([flag ? 1 : 0]))[0] > 0;
  }

  /** Every rank's `values` (all of the same length), rank 0's first. */
  async gather(values: readonly number[]): Promise<number[][]> {
    if (!this.group) return [[...values]];
    const all = await this.group.allgather(Float64Array.from(values));
    return Array.from({ length: this.worldSize }, (_, r) => [...all.subarray(r * values.length, (r + 1) * values.length)]);
  }

  async barrier(): Promise<void> {
    if (this.group) await this.group.barrier();
  }

  /** The model's gradients summed over the ranks, times `scale` (1 / worldSize for their mean). */
  async reduceGradients(model: Model, scale = 1): Promise<void> {
    if (this.group) await model.allreduceGrads(this.group, scale);
  }

  /** Rank 0's parameters (and AdamW state, with `optimizer`) on every rank. */
  async syncModel(model: Model, opts: { optimizer?: boolean } = {}): Promise<void> {
    if (this.group) await model.broadcastParams(this.group, { root: 0, optimizer: opts.optimizer });
  }

  /**
   * Checks that every rank holds the same parameters (a hash of them, compared over the ranks);
   * throws naming the ranks whose weights differ from rank 0's. Data-parallel weights can only
   * drift apart through a bug, or a rank whose engine computes differently (another processor).
   */
  async checkSameWeights(model: Model, what: string): Promise<void> {
    if (!this.group) return;
    const { params } = await model.snapshot();
    const digest = createHash('sha256').update(new Uint8Array(params.buffer, params.byteOffset, params.byteLength)).digest();
    // three 40-bit pieces of the digest: exact in float64
    const mine = [0, 5, 10].map((at) => digest.readUIntBE(at, 5));
    const all = await this.gather(mine);
    const off = all.flatMap((h, r) => (h.every((x, i) => x === all[0][i]) ? [] : [r]));
    if (off.length)
      throw new Error(
        `${what}: the weights of rank${off.length > 1 ? 's' : ''} ${off.join(', ')} differ from rank 0's: ` +
          'the ranks of a data-parallel run must stay identical (are all ranks running the same s2s build on the same kind of processor?)',
      );
  }

  /** This rank's share of `items` (a global batch): contiguous and as even as the count allows. */
  shard<T>(items: readonly T[]): T[] {
    if (this.worldSize === 1) return [...items];
    const n = items.length;
    return items.slice(Math.floor((n * this.rank) / this.worldSize), Math.floor((n * (this.rank + 1)) / this.worldSize));
  }

  /** Leaves the group (the others' next collective fails, naming this rank). */
  destroy(): void {
    this.group?.destroy();
  }
}

/** A TCP port nobody listens on at this moment (for a rendezvous on this machine: MASTER_PORT). */
export async function freeTcpPort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * The GPU a data-parallel rank should see, as CUDA_VISIBLE_DEVICES: its LOCAL_RANK-th GPU (ranks
 * share them round robin when there are fewer GPUs than ranks on the machine), or undefined when
 * nothing should change: one process, no GPU, or CUDA_VISIBLE_DEVICES already chosen (by a
 * scheduler, or the user).
 */
export function gpuForRank(env: NodeJS.ProcessEnv, gpuCount: number): string | undefined {
  const e = readDistributedEnv(env);
  if (!e || e.worldSize === 1 || gpuCount <= 0 || env.CUDA_VISIBLE_DEVICES !== undefined) return undefined;
  return String(e.localRank % gpuCount);
}

/** NVIDIA GPUs the driver lists (/proc/driver/nvidia/gpus), without initialising CUDA; 0 without a driver. */
export function nvidiaGpuCount(): number {
  try {
    return readdirSync('/proc/driver/nvidia/gpus').length;
  } catch {
    return 0;
  }
}

/**
 * Gives this rank its own GPU (gpuForRank) by setting CUDA_VISIBLE_DEVICES: call it before anything
 * touches CUDA (the first model, cudaStatus()), as `s2s` does for its data-parallel commands.
 * Returns the GPU index set, if any.
 */
export function pinGpuForRank(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const gpu = gpuForRank(env, nvidiaGpuCount());
  if (gpu !== undefined) env.CUDA_VISIBLE_DEVICES = gpu;
  return gpu;
}
