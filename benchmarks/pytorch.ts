// PyTorch on the CPU as a peer of the engine in `pnpm bench`: finds a Python that can import torch,
// and runs benchmarks/pytorch_models.py (GPT-2 and Llama written from their published definitions)
// as one child process per job, parsing the JSON it prints.
//
// Interpreter: $S2S_BENCH_PYTHON when set (and nothing else), otherwise /usr/bin/python3 (Debian's,
// where apt's python3-torch lives), then `python3` on PATH. Install: scripts/setup.sh --for-bench.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchConfig, GenerateResult, Job, TrainResult } from './train-step.js';

export const PYTORCH_BACKENDS = ['pytorch', 'pytorch-bf16', 'pytorch-1t'] as const;
export type PytorchBackend = (typeof PYTORCH_BACKENDS)[number];
export const isPytorch = (backend: string): backend is PytorchBackend => (PYTORCH_BACKENDS as readonly string[]).includes(backend);

/** What --probe reports: the torch build and what it runs on. */
export interface PytorchInfo {
  python: string;
  pythonVersion: string;
  torch: string;
  /** BLAS_INFO of torch's build ("generic": the system libblas.so.3, whatever update-alternatives points at) */
  buildBlasInfo: string | null;
  blas: { libraries: string[]; openblas?: { config: string; core: string; threads: number }; warning?: string };
  mkldnn: boolean;
  mkl: boolean;
  /** oneDNN's ISA and the kernel of a bf16 matmul under autocast, from ONEDNN_VERBOSE */
  onednn: { isa: string | null; bf16MatmulKernel: string | null } | null;
  /** ATen's own vectorized kernels (AVX2 / AVX512) */
  cpuCapability: string | null;
  defaultThreads: number;
  /** peak RSS of the probe (Python with torch imported, no model): part of every PyTorch row's peak RSS */
  importRssMB: number;
  sdpa: boolean;
  env: Record<string, string | null>;
  /** torch.__config__.show() */
  config: string;
}

export type PytorchProbe = { ok: true; info: PytorchInfo; ompWaitPolicy: string } | { ok: false; why: string };

const here = path.dirname(fileURLToPath(import.meta.url));
const script = path.join(here, 'pytorch_models.py');
const repoRoot = path.resolve(here, '..');
const MARK = 'S2S_RESULT ';

/**
 * libgomp's threads spin between parallel regions, and torch's OpenBLAS brings its own pthreads:
 * on a machine with as many cores as threads the two pools take turns spinning on each other's
 * cores (a 2-thread fp32 step measured 2-5x slower, with ±30-150% between samples). Passive
 * waiting keeps them apart; a user's own OMP_WAIT_POLICY is kept.
 */
const ompWaitPolicy = () => process.env.OMP_WAIT_POLICY ?? 'passive';

function candidates(): string[] {
  const chosen = process.env.S2S_BENCH_PYTHON;
  if (chosen) return [chosen];
  return ['/usr/bin/python3', 'python3'];
}

interface ChildOutput {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  spawnError?: Error;
  timedOut: boolean;
}

function runPython(python: string, args: string[], env: NodeJS.ProcessEnv, timeoutSeconds: number): Promise<ChildOutput> {
  return new Promise((resolve) => {
    const child = spawn(python, [script, ...args], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: ChildOutput = { code: null, signal: null, stdout: '', stderr: '', timedOut: false };
    child.stdout.on('data', (d) => (out.stdout += d));
    child.stderr.on('data', (d) => (out.stderr += d));
    const timer = setTimeout(() => {
      out.timedOut = true;
      child.kill('SIGKILL');
    }, timeoutSeconds * 1000);
    child.on('error', (e) => {
      out.spawnError = e;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      out.code = code;
      out.signal = signal;
      resolve(out);
    });
  });
}

function parseResult<T>(out: ChildOutput): T | undefined {
  const line = out.stdout
    .split('\n')
    .reverse()
    .find((l) => l.startsWith(MARK));
  return line ? (JSON.parse(line.slice(MARK.length)) as T) : undefined;
}

let probed: Promise<PytorchProbe> | undefined;

/** The first candidate interpreter that imports torch, with what its torch runs on (cached). */
export function findPytorch(): Promise<PytorchProbe> {
  probed ??= (async () => {
    const tried: string[] = [];
    for (const python of candidates()) {
      const out = await runPython(python, ['--probe'], { ...process.env, OMP_WAIT_POLICY: ompWaitPolicy() }, 180);
      const info = out.code === 0 ? parseResult<PytorchInfo>(out) : undefined;
      if (info) return { ok: true as const, info, ompWaitPolicy: ompWaitPolicy() };
      let why: string;
      if (out.spawnError) why = (out.spawnError as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : out.spawnError.message;
      else if (/No module named '?torch/.test(out.stderr)) why = 'cannot import torch';
      else if (out.timedOut) why = 'timed out';
      else why = (out.stderr.trim().split('\n').pop() ?? '') || `exited with code ${out.code}`;
      tried.push(`${python}: ${why}`);
    }
    const source = process.env.S2S_BENCH_PYTHON ? ' (S2S_BENCH_PYTHON)' : '';
    return { ok: false as const, why: `no Python that can import torch${source}: ${tried.join('; ')}` };
  })();
  return probed;
}

interface PyTrain extends Omit<TrainResult, 'backend'> {
  backend: PytorchBackend;
  blasThreads: number | null;
}
interface PyGenerate extends Omit<GenerateResult, 'backend'> {
  backend: PytorchBackend;
  blasThreads: number | null;
}

/**
 * Runs one train or generate job in a fresh Python process. `pytorch` and `pytorch-bf16` run on
 * job.threads threads (the engine's count), `pytorch-1t` on one; torch's intra-op threads and
 * OpenBLAS's both get that count.
 */
export async function runPytorch(job: Job, cfg: BenchConfig, timeoutSeconds: number): Promise<TrainResult | GenerateResult> {
  const probe = await findPytorch();
  if (!probe.ok) throw new Error(`PyTorch is missing: ${probe.why}`);
  const threads = job.backend === 'pytorch-1t' ? 1 : (job.threads ?? 1);
  // The resolved config: Python reads every field (head counts, widths, RoPE) from it, no defaults of its own.
  const { resolveConfig } = await import('@s2s/core');
  const payload = { ...job, threads, model: resolveConfig(cfg.model), B: cfg.B, T: cfg.T };
  const env = {
    ...process.env,
    OMP_WAIT_POLICY: probe.ompWaitPolicy,
    OMP_NUM_THREADS: String(threads),
    OPENBLAS_NUM_THREADS: String(threads),
  };
  const out = await runPython(probe.info.python, ['--job', JSON.stringify(payload)], env, timeoutSeconds);
  const result = out.code === 0 ? parseResult<PyTrain | PyGenerate>(out) : undefined;
  if (!result) {
    const why = out.timedOut ? `timed out after ${timeoutSeconds} s` : out.signal ? `killed by ${out.signal}` : `exited with code ${out.code}`;
    const tail = (out.stderr + out.stdout).trim().split('\n').slice(-15).join('\n');
    throw new Error(`${why}${tail ? `\n${tail}` : ''}`);
  }
  const notes = 'notes' in result && Array.isArray(result.notes) ? result.notes : [];
  if (result.blasThreads !== null && result.blasThreads !== result.threads) notes.push(`OpenBLAS on ${result.blasThreads} threads`);
  return { ...result, notes } as TrainResult | GenerateResult;
}

/** How closely PyTorch's model (GPT-2 or Llama) reproduces the engine's, from the engine's own weights. */
export interface PytorchParity {
  config: string;
  /** max |log p(target)| difference over the batch, engine weights in both */
  logprobMaxAbsDiff: number;
  lossEngine: number;
  lossTorch: number;
  gradNormEngine: number;
  gradNormTorch: number;
  /** after one step (AdamW, weight decay 0.1, clipping at 1.0) from the same weights and batch */
  paramMaxAbsDiff: number;
  /** parameters whose update differs by more than 1% of lr (Adam's first step moves each by about lr, whatever its gradient's size) */
  paramsOffByOver1PctLr: number;
  lr: number;
  numParams: number;
}

/**
 * Runs the engine's forward, backward and AdamW step on `cfg` (seed 1, the benchmark's batch), then
 * the same in PyTorch from the engine's weights, and compares: the evidence that both backends do
 * the same work.
 */
export async function checkPytorchParity(cfg: BenchConfig): Promise<PytorchParity> {
  const probe = await findPytorch();
  if (!probe.ok) throw new Error(`PyTorch is missing: ${probe.why}`);
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const os = await import('node:os');
  const { Model, resolveConfig } = await import('@s2s/core');
  const { makeBatch } = await import('./train-step.js');
  const lr = 1e-3;
  // fp32, as the check says: the engine's default (auto) is bf16 where the processor has it
  const saved = process.env.S2S_CPU_PRECISION;
  process.env.S2S_CPU_PRECISION = 'fp32';
  let model: Awaited<ReturnType<typeof Model.create>>;
  try {
    model = await Model.create({ ...cfg.model }, { seed: 1 });
  } finally {
    if (saved === undefined) delete process.env.S2S_CPU_PRECISION;
    else process.env.S2S_CPU_PRECISION = saved;
  }
  if (model.precision !== 'fp32') throw new Error(`the engine ran the parity check in ${model.precision}, not fp32`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 's2s-pytorch-parity-'));
  try {
    const batch = makeBatch(cfg);
    const n = cfg.B * cfg.T;
    const { logprob } = await model.forward(batch);
    const params0 = (await model.snapshot()).params;
    await model.backward({ dlogprob: new Float32Array(n).fill(-1 / n) });
    const gradNorm = await model.step({ lr, weightDecay: 0.1, maxGradNorm: 1 });
    const params1 = (await model.snapshot()).params;
    const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    writeFileSync(path.join(dir, 'params0.f32'), bytes(params0));
    writeFileSync(path.join(dir, 'params1.f32'), bytes(params1));
    writeFileSync(path.join(dir, 'logprob.f32'), bytes(logprob));
    const meta = {
      config: cfg.name,
      model: resolveConfig(cfg.model),
      B: cfg.B,
      T: cfg.T,
      tokens: Array.from(batch.tokens),
      targets: Array.from(batch.targets),
      layout: model.layout().map((t) => ({ name: t.name, shape: t.shape, offset: t.offset, numel: t.numel })),
      lr,
      weightDecay: 0.1,
      maxGradNorm: 1,
      gradNorm,
    };
    writeFileSync(path.join(dir, 'meta.json'), JSON.stringify(meta));
    const out = await runPython(probe.info.python, ['--parity', dir], { ...process.env, OMP_WAIT_POLICY: probe.ompWaitPolicy }, 300);
    const result = out.code === 0 ? parseResult<PytorchParity>(out) : undefined;
    if (!result) throw new Error(`parity check failed (exit ${out.code}): ${(out.stderr + out.stdout).trim().split('\n').slice(-5).join(' | ')}`);
    return result;
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}
