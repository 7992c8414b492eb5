// One training step (forward, backward, optimizer) of a GPT-2 or Llama-shaped model in the native
// engine, tfjs-wasm, tfjs-cpu (GPT-2 only) and PyTorch on the CPU (pytorch.ts), and KV-cache
// generation in the engine and PyTorch; each measurement runs in its own child process (see run.ts).
import type { GPTConfigInput } from '@s2s/core';
import Benchmark from 'benchmark';
import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PYTORCH_BACKENDS, isPytorch, runPytorch, type PytorchBackend } from './pytorch.js';

// native: the engine in fp32; native-bf16: its bf16 matmuls (where the processor has them);
// native-1t: fp32 on one thread.
export type Backend = 'native' | 'native-bf16' | 'native-1t' | 'wasm' | 'cpu' | PytorchBackend;
export const BACKENDS: Backend[] = ['native', 'native-bf16', 'native-1t', ...PYTORCH_BACKENDS, 'wasm', 'cpu'];
/** The backends that also have generation rows. */
export type GenerateBackend = 'native' | 'native-bf16' | 'native-1t' | PytorchBackend;
export const GENERATE_BACKENDS: GenerateBackend[] = ['native', 'native-bf16', 'native-1t', ...PYTORCH_BACKENDS];

/** The engine's CPU precision for a native backend (set before its model is made). */
function useEnginePrecision(backend: string): void {
  process.env.S2S_CPU_PRECISION = backend === 'native-bf16' ? 'bf16' : 'fp32';
}

export interface BenchConfig {
  name: string;
  /** the engine's model config (arch 'gpt2' when absent) */
  model: GPTConfigInput;
  B: number;
  T: number;
  /**
   * Rows per tfjs gradient pass (same step, gradients accumulated over B / this many passes):
   * tfjs autodiff holds every intermediate's gradient until the pass ends, and wasm's heap is
   * 4 GiB. About 2.5 MB per token at the 10m shape.
   */
  tfjsRowsPerPass: number;
}

export const CONFIGS: BenchConfig[] = [
  { name: 'small', model: { vocabSize: 512, maxSeqLen: 128, numLayers: 4, numHeads: 4, channels: 128 }, B: 8, T: 128, tfjsRowsPerPass: 8 },
  { name: '10m', model: { vocabSize: 4096, maxSeqLen: 256, numLayers: 6, numHeads: 6, channels: 384 }, B: 8, T: 256, tfjsRowsPerPass: 2 },
  // GPT-2 124M's shape (its 1024 context trimmed to the 256 used here, which only shrinks wpe).
  { name: '124m', model: { vocabSize: 50257, maxSeqLen: 256, numLayers: 12, numHeads: 12, channels: 768 }, B: 2, T: 256, tfjsRowsPerPass: 1 },
  // A small Llama (GQA 4 over 2, SwiGLU, tied) for quick runs and the PyTorch parity check of arch 'llama'.
  { name: 'llama-small', model: llama({ vocabSize: 512, maxSeqLen: 128, numLayers: 4, numHeads: 4, numKvHeads: 2, headDim: 32, channels: 128, ffnSize: 352 }), B: 8, T: 128, tfjsRowsPerPass: 8 },
  // SmolLM2-135M's shape (HuggingFaceTB/SmolLM2-135M config.json: 30 layers, hidden 576, 9 heads over
  // 3 KV heads, intermediate 1536, vocab 49152, tied, rope_theta 1e5, rms eps 1e-5); its 8192
  // context trimmed to the 256 used here, which changes no parameter (RoPE has none) and only
  // bounds the engine's position tables. B=2, T=256 as 124m.
  {
    name: 'smollm2-135m',
    model: llama({ vocabSize: 49152, maxSeqLen: 256, numLayers: 30, numHeads: 9, numKvHeads: 3, headDim: 64, channels: 576, ffnSize: 1536, ropeTheta: 100000 }),
    B: 2,
    T: 256,
    tfjsRowsPerPass: 1,
  },
  // The same model at a 1024-token context, one sequence a step: where attention's T x T squares
  // (memory, and their share of the step) start to matter.
  {
    name: 'smollm2-135m-1k',
    model: llama({ vocabSize: 49152, maxSeqLen: 1024, numLayers: 30, numHeads: 9, numKvHeads: 3, headDim: 64, channels: 576, ffnSize: 1536, ropeTheta: 100000 }),
    B: 1,
    T: 1024,
    tfjsRowsPerPass: 1,
  },
];

/** A Llama config with every field the benchmark's peers read spelled out (SmolLM2's defaults). */
function llama(c: GPTConfigInput): GPTConfigInput {
  return { arch: 'llama', normEps: 1e-5, ropeTheta: 10000, ropeScaling: 'none', qkvBias: false, tieEmbeddings: true, valueHead: false, ...c };
}

export const isLlama = (cfg: BenchConfig) => cfg.model.arch === 'llama';

/** Why `backend` has no row for `cfg` (undefined: it has one). */
export function unsupported(cfg: BenchConfig, backend: Backend, bf16: { native: boolean; reason: string }): string | undefined {
  if ((backend === 'wasm' || backend === 'cpu') && isLlama(cfg)) return 'not run: tfjs has no Llama training baseline here (test/reference/tfjs-gpt.ts is GPT-2 only)';
  if (backend === 'native-bf16' && !bf16.native) return `not run: no native bf16 matmul on this processor (${bf16.reason})`;
  return undefined;
}

export function configByName(name: string): BenchConfig {
  const c = CONFIGS.find((x) => x.name === name);
  if (!c) throw new Error(`unknown config ${JSON.stringify(name)} (known: ${CONFIGS.map((x) => x.name).join(', ')})`);
  return c;
}

/** Benchmark.js effort: samples are whole steps, so slow steps get few of them. */
export interface Effort {
  minSamples: number;
  maxTime: number;
}

/**
 * threads: what `pytorch` and `pytorch-bf16` run on (the engine's thread count); expectedParams:
 * the engine's parameter count, which PyTorch's model must equal. Both used by PyTorch jobs only.
 */
export type Job =
  | { kind: 'train'; config: string; backend: Backend; effort: Effort; threads?: number; expectedParams?: number }
  | {
      kind: 'generate';
      config: string;
      backend: GenerateBackend;
      batches: number[];
      promptLen: number;
      newTokens: number;
      effort: Effort;
      threads?: number;
      expectedParams?: number;
    };

export interface Timing {
  /** seconds per call, Benchmark.js's mean */
  mean: number;
  /** relative margin of error, percent */
  rme: number;
  samples: number;
}

export interface TrainResult {
  kind: 'train';
  config: string;
  backend: Backend;
  params: number;
  tokensPerStep: number;
  step: Timing;
  firstStepSeconds: number;
  lossFirst: number;
  lossLast: number;
  maxRssMB: number;
  threads: number;
  notes: string[];
}

export interface GenerateResult {
  kind: 'generate';
  config: string;
  backend: GenerateBackend;
  params: number;
  promptLen: number;
  newTokens: number;
  runs: { batch: number; timing: Timing; tokensPerSec: number }[];
  maxRssMB: number;
  threads: number;
  notes?: string[];
}

function runBenchmark(name: string, fn: () => Promise<unknown> | unknown, effort: Effort): Promise<Timing> {
  return new Promise((resolve, reject) => {
    let failure: unknown;
    const bench = new Benchmark(name, {
      defer: true,
      initCount: 1,
      minSamples: effort.minSamples,
      maxTime: effort.maxTime,
      fn: (deferred: Benchmark.Deferred) => {
        Promise.resolve()
          .then(fn)
          .then(
            () => deferred.resolve(),
            (e) => {
              failure = e;
              bench.abort();
              deferred.resolve();
            },
          );
      },
      onComplete: () => {
        if (failure !== undefined || bench.aborted) reject(failure ?? new Error(`${name} aborted`));
        else resolve({ mean: bench.stats.mean, rme: bench.stats.rme, samples: bench.stats.sample.length });
      },
      onError: () => reject(failure ?? bench.error),
    });
    bench.run({ async: true });
  });
}

/** A fixed random batch: the same tokens for every backend (pytorch_models.py has the same generator). */
export function makeBatch(cfg: BenchConfig) {
  let s = 12345;
  const next = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % cfg.model.vocabSize;
  const n = cfg.B * cfg.T;
  const ids = Int32Array.from({ length: n + 1 }, next);
  return { tokens: ids.slice(0, n), targets: ids.slice(1, n + 1), B: cfg.B, T: cfg.T };
}

const maxRssMB = () => process.resourceUsage().maxRSS / 1024;

async function trainNative(job: Extract<Job, { kind: 'train' }>, cfg: BenchConfig): Promise<TrainResult> {
  const { Model, setNumThreads, getNumThreads } = await import('@s2s/core');
  if (job.backend === 'native-1t') setNumThreads(1);
  useEnginePrecision(job.backend);
  const model = await Model.create({ ...cfg.model }, { seed: 1 });
  const batch = makeBatch(cfg);
  const n = cfg.B * cfg.T;
  const dlogprob = new Float32Array(n).fill(-1 / n);
  let loss = 0;
  // What a user's training loop runs: AdamW with decay and clipping (their cost is one pass over the parameters).
  const step = async () => {
    const { logprob } = await model.forward(batch);
    loss = -logprob.reduce((a, b) => a + b, 0) / n;
    await model.backward({ dlogprob });
    await model.step({ lr: 1e-4, weightDecay: 0.1, maxGradNorm: 1 });
  };
  const t0 = performance.now();
  await step();
  const firstStepSeconds = (performance.now() - t0) / 1000;
  const lossFirst = loss;
  const timing = await runBenchmark(`${cfg.name}/${job.backend}`, step, job.effort);
  const result: TrainResult = {
    kind: 'train',
    config: cfg.name,
    backend: job.backend,
    params: model.numParams,
    tokensPerStep: n,
    step: timing,
    firstStepSeconds,
    lossFirst,
    lossLast: loss,
    maxRssMB: maxRssMB(),
    threads: getNumThreads(),
    notes: [],
  };
  model.dispose();
  return result;
}

async function trainTfjs(job: Extract<Job, { kind: 'train' }>, cfg: BenchConfig): Promise<TrainResult> {
  const why = unsupported(cfg, job.backend, { native: true, reason: '' });
  if (why) throw new Error(`${cfg.name}/${job.backend}: ${why}`);
  const tf = await import('@tensorflow/tfjs');
  const { TfGPT, useBackend } = await import('../test/reference/tfjs-gpt.js');
  await useBackend(job.backend as 'wasm' | 'cpu');
  const notes: string[] = [];
  if (cfg.tfjsRowsPerPass < cfg.B) notes.push(`gradient in ${Math.ceil(cfg.B / cfg.tfjsRowsPerPass)} passes of ${cfg.tfjsRowsPerPass} row(s)`);
  let threads = 1;
  if (job.backend === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    threads = wasm.getThreadsCount();
    notes.push(`wasm ${(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) ? 'SIMD' : 'without SIMD'}, ${threads} thread${threads === 1 ? '' : 's'}`);
  }
  const model = TfGPT.init(cfg.model, 1);
  const batch = makeBatch(cfg);
  const adam = { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
  let loss = 0;
  const step = () => {
    loss = model.trainStep(batch, adam, cfg.tfjsRowsPerPass);
  };
  const t0 = performance.now();
  try {
    step();
  } catch (e) {
    // Emscripten reports a failed allocation as a bare abort; say what it was.
    const heap = (tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } }).wasm?.HEAPU8.length;
    if (heap !== undefined && String(e).includes('Aborted'))
      throw new Error(`tfjs-wasm ran out of memory (heap at ${(heap / 2 ** 30).toFixed(2)} GiB; wasm32 allows 4 GiB)`);
    throw e;
  }
  const firstStepSeconds = (performance.now() - t0) / 1000;
  const lossFirst = loss;
  const tensorsBefore = tf.memory().numTensors;
  const timing = await runBenchmark(`${cfg.name}/${job.backend}`, step, job.effort);
  const leaked = tf.memory().numTensors - tensorsBefore;
  if (leaked !== 0) notes.push(`${leaked} tensors leaked over the run`);
  const result: TrainResult = {
    kind: 'train',
    config: cfg.name,
    backend: job.backend,
    params: model.numParams,
    tokensPerStep: cfg.B * cfg.T,
    step: timing,
    firstStepSeconds,
    lossFirst,
    lossLast: loss,
    maxRssMB: maxRssMB(),
    threads,
    notes,
  };
  model.dispose();
  return result;
}

async function generate(job: Extract<Job, { kind: 'generate' }>, cfg: BenchConfig): Promise<GenerateResult> {
  const { Model, getNumThreads, setNumThreads } = await import('@s2s/core');
  if (job.backend === 'native-1t') setNumThreads(1);
  useEnginePrecision(job.backend);
  const model = await Model.create({ ...cfg.model }, { seed: 1 });
  const runs: GenerateResult['runs'] = [];
  for (const B of job.batches) {
    const ids = makeBatch({ ...cfg, B, T: job.promptLen }).tokens;
    const prompts = Array.from({ length: B }, (_, b) => ids.subarray(b * job.promptLen, (b + 1) * job.promptLen));
    // Temperature 1 with no EOS: every row generates exactly newTokens tokens.
    const gen = () => model.generate(prompts, { maxNewTokens: job.newTokens, temperature: 1, seed: 7 });
    await gen();
    const timing = await runBenchmark(`${cfg.name}/generate/B=${B}`, gen, job.effort);
    runs.push({ batch: B, timing, tokensPerSec: (B * job.newTokens) / timing.mean });
  }
  const result: GenerateResult = {
    kind: 'generate',
    config: cfg.name,
    backend: job.backend,
    params: model.numParams,
    promptLen: job.promptLen,
    newTokens: job.newTokens,
    runs,
    maxRssMB: maxRssMB(),
    threads: getNumThreads(),
  };
  model.dispose();
  return result;
}

async function runJob(job: Job): Promise<TrainResult | GenerateResult> {
  const cfg = configByName(job.config);
  if (isPytorch(job.backend)) throw new Error(`${job.backend} runs in Python (runInChild), not in a Node worker`);
  if (job.kind === 'generate') return generate(job, cfg);
  return job.backend.startsWith('native') ? trainNative(job, cfg) : trainTfjs(job, cfg);
}

const here = fileURLToPath(import.meta.url);
const repoRoot = path.resolve(path.dirname(here), '..');

/**
 * Runs one job in a fresh Node process, so that its peak RSS is its own and no backend's
 * threads or heap linger into the next measurement. Rejects with the child's output on failure.
 */
export function runInChild(job: Job, timeoutSeconds: number): Promise<TrainResult | GenerateResult> {
  // PyTorch's jobs run in a Python child instead (same one-process-per-job rule).
  if (isPytorch(job.backend)) return runPytorch(job, configByName(job.config), timeoutSeconds);
  return new Promise((resolve, reject) => {
    const child = fork(here, ['--worker', JSON.stringify(job)], {
      cwd: repoRoot,
      execArgv: ['--conditions=source', '--import', 'tsx'],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    let output = '';
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    let result: TrainResult | GenerateResult | undefined;
    let error: string | undefined;
    child.on('message', (m: { result?: TrainResult | GenerateResult; error?: string }) => {
      result = m.result;
      error = m.error;
    });
    const timer = setTimeout(() => {
      error = `timed out after ${timeoutSeconds} s`;
      child.kill('SIGKILL');
    }, timeoutSeconds * 1000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (result) return resolve(result);
      const why = error ?? (signal ? `killed by ${signal}` : `exited with code ${code}`);
      const tail = output.trim().split('\n').slice(-15).join('\n');
      reject(new Error(`${why}${tail ? `\n${tail}` : ''}`));
    });
  });
}

if (process.argv[2] === '--worker') {
  const job = JSON.parse(process.argv[3]) as Job;
  runJob(job).then(
    (result) => process.send!({ result }, () => process.exit(0)),
    (e: unknown) => {
      const message =
        e instanceof Error ? [e.message, ...(e.stack ?? '').split('\n').filter((l) => l.trimStart().startsWith('at '))].join('\n') : typeof e === 'object' ? JSON.stringify(e) : String(e);
      process.send!({ error: message }, () => process.exit(1));
    },
  );
}
