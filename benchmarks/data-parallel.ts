// Data parallelism on this machine: one training step of a GPT-2-shaped model in one process over
// the global batch, against the same step on 2 ranks over Gloo (each rank half the batch, one
// core), with the gradient all-reduce timed on its own (its share of the rank's step), and the
// all-reduce's bandwidth on the whole gradient buffer against this machine's memory copy.
//
//   pnpm bench:dp [--config 10m,124m] [--steps 6]
//
// The ranks run a fixed number of steps after two warm-up steps (every rank must run the same
// collectives, so Benchmark.js's adaptive loop, which picks its count per process, cannot drive
// them); times are means over those steps. Results go to bench-results/data-parallel.json.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { type BenchConfig, configByName, makeBatch } from './train-step.js';

const here = path.dirname(fileURLToPath(import.meta.url));

interface RankResult {
  rank: number;
  stepMs: number;
  allreduceMs: number;
  /** the whole gradient buffer all-reduced alone (no step around it) */
  bufferAllreduceMs: number;
  gradBytes: number;
  loss: number;
}

interface SingleResult {
  stepMs: number;
  loss: number;
  threads: number;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** What one process (a rank, or the single-process baseline) measures. */
async function measure(cfgName: string, steps: number): Promise<RankResult | SingleResult> {
  const { Distributed, Model, getNumThreads } = await import('@s2s/core');
  process.env.S2S_CPU_PRECISION = 'fp32';
  const cfg = configByName(cfgName);
  const dist = await Distributed.fromEnv();
  const model = await Model.create({ ...cfg.model }, { seed: 1 });
  const full = makeBatch(cfg);
  // this rank's rows of the global batch
  const rows = dist.shard(Array.from({ length: cfg.B }, (_, i) => i));
  const B = rows.length;
  const tokens = full.tokens.slice(rows[0] * cfg.T, (rows[0] + B) * cfg.T);
  const targets = full.targets.slice(rows[0] * cfg.T, (rows[0] + B) * cfg.T);
  const n = cfg.B * cfg.T;
  const dlogprob = new Float32Array(B * cfg.T).fill(-1 / n);
  let loss = 0;
  const stepTimes: number[] = [];
  const reduceTimes: number[] = [];
  for (let s = 0; s < steps + 2; s++) {
    const t0 = performance.now();
    const { logprob } = await model.forward({ tokens, targets, B, T: cfg.T });
    loss = -logprob.reduce((a, b) => a + b, 0) / n;
    await model.backward({ dlogprob });
    const t1 = performance.now();
    await dist.reduceGradients(model);
    const t2 = performance.now();
    await model.step({ lr: 1e-4, weightDecay: 0.1, maxGradNorm: 1 });
    const t3 = performance.now();
    if (s >= 2) {
      stepTimes.push(t3 - t0);
      reduceTimes.push(t2 - t1);
    }
  }
  [loss] = await dist.sum([loss]);
  if (dist.worldSize === 1) {
    model.dispose();
    return { stepMs: mean(stepTimes), loss, threads: getNumThreads() };
  }
  // the buffer alone, back to back
  const alone: number[] = [];
  for (let i = 0; i < steps + 1; i++) {
    await dist.barrier();
    const t0 = performance.now();
    await dist.reduceGradients(model);
    if (i > 0) alone.push(performance.now() - t0);
  }
  const result: RankResult = {
    rank: dist.rank,
    stepMs: mean(stepTimes),
    allreduceMs: mean(reduceTimes),
    bufferAllreduceMs: mean(alone),
    gradBytes: model.numParams * 4,
    loss,
  };
  dist.destroy();
  model.dispose();
  return result;
}

/** Single-thread memory copy bandwidth: bytes copied per second (each byte is read once and written once). */
function copyBandwidth(): number {
  const n = 64 << 20; // 256 MB of floats
  const src = new Float32Array(n).fill(1);
  const dst = new Float32Array(n);
  dst.set(src);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    dst.set(src);
    times.push(performance.now() - t0);
  }
  return (n * 4) / (Math.min(...times) / 1000);
}

function run(env: NodeJS.ProcessEnv, args: string[]): Promise<unknown> {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', fileURLToPath(import.meta.url), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => void (out += b.toString()));
  return new Promise((resolve, reject) =>
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1)!)) : reject(new Error(`a measuring process exited with ${code}`)))),
  );
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string, def: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : def;
  };
  const steps = Number(opt('steps', '6'));
  if (args.includes('--measure')) {
    console.log(JSON.stringify(await measure(opt('config', '10m'), steps)));
    return;
  }
  const { freeTcpPort } = await import('@s2s/core');
  const cores = os.availableParallelism();
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  const copy = copyBandwidth();
  console.log(`# data parallel on ${cpu} (${cores} cores); single-thread copy bandwidth ${(copy / 1e9).toFixed(1)} GB/s`);
  const rows: Record<string, unknown>[] = [];
  for (const name of opt('config', '10m,124m').split(',')) {
    const cfg: BenchConfig = configByName(name);
    const single = (await run({ WORLD_SIZE: '', OMP_NUM_THREADS: String(cores), S2S_NUM_THREADS: String(cores) }, ['--measure', '--config', name, '--steps', String(steps)])) as SingleResult;
    const port = String(await freeTcpPort());
    const ranks = (await Promise.all(
      [0, 1].map((r) =>
        run({ WORLD_SIZE: '2', RANK: String(r), MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, OMP_NUM_THREADS: String(Math.max(1, cores / 2)), S2S_NUM_THREADS: String(Math.max(1, cores / 2)) }, ['--measure', '--config', name, '--steps', String(steps)]),
      ),
    )) as RankResult[];
    const r0 = ranks[0];
    const dpStep = Math.max(...ranks.map((r) => r.stepMs));
    const algbw = r0.gradBytes / (r0.bufferAllreduceMs / 1000);
    const row = {
      config: name,
      globalBatch: `${cfg.B}x${cfg.T}`,
      gradMB: r0.gradBytes / 1e6,
      singleStepMs: single.stepMs,
      singleThreads: single.threads,
      dpStepMs: dpStep,
      allreduceInStepMs: mean(ranks.map((r) => r.allreduceMs)),
      allreduceShare: mean(ranks.map((r) => r.allreduceMs / r.stepMs)),
      bufferAllreduceMs: r0.bufferAllreduceMs,
      algbwGBs: algbw / 1e9,
      // a ring all-reduce moves 2(n-1)/n of the buffer through each rank's link
      busbwGBs: (algbw * 2 * (2 - 1)) / 2 / 1e9,
      copyGBs: copy / 1e9,
      lossSingle: single.loss,
      lossRanks: r0.loss,
    };
    rows.push(row);
    console.log(
      `${name}: one process (${single.threads} threads) ${single.stepMs.toFixed(0)} ms/step; 2 ranks x ${Math.max(1, cores / 2)} thread(s) ${dpStep.toFixed(0)} ms/step, ` +
        `of which all-reduce ${row.allreduceInStepMs.toFixed(0)} ms (${(100 * row.allreduceShare).toFixed(1)}%); ` +
        `${row.gradMB.toFixed(1)} MB of gradients all-reduced alone in ${r0.bufferAllreduceMs.toFixed(1)} ms: ${row.algbwGBs.toFixed(2)} GB/s ` +
        `(${((100 * algbw) / copy).toFixed(1)}% of the copy bandwidth); loss ${single.loss.toFixed(5)} vs ${r0.loss.toFixed(5)}`,
    );
  }
  const dir = path.join(here, '..', 'bench-results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'data-parallel.json'), JSON.stringify({ cpu, cores, copyGBs: copy / 1e9, steps, rows }, null, 2) + '\n');
}

await main();
