// The CUDA path from Node, on a machine without a GPU: the addon built against the engine whose
// CUDA backend runs on the CPU emulator of the CUDA execution model (native/tests/cuda_emu; built
// here into native/build-emu when missing or stale), loaded in a child process through
// S2S_NATIVE_ADDON. PPO-T with every model on device 'cuda' must follow the run on device 'cpu':
// the same sampled responses and token scores step by step, and the same weights after the
// updates; its checkpoint, loaded on the CPU, must hold exactly what the device held. This covers what the C++ parity tests cannot: the binding's device choice, the
// engine thread, and the trainers' use of every CUDA entry point (generation, forward/backward,
// AdamW, the fused divergence kernel) together. Speed, and the GPU's own rounding, need a GPU.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const addon = path.join(root, 'native', 'build-emu', 'Release', 's2s.node');
const script = path.join(root, 'test', 'cuda-emulated', 'ppo-t-on-device.ts');

interface Run {
  device: string;
  status: { available: boolean; device?: string };
  steps: { responses: string[]; scores: number[]; loss: number; kl: number }[];
  params: number[];
  criticParams: number[];
  checkpoint: { sameWeightFiles: boolean; sameOptimizerFiles: boolean; sameParams: boolean; step: number };
  badInput: string;
}

function run(device: 'cpu' | 'cuda', precision: 'fp32' | 'bf16'): Run {
  const env: NodeJS.ProcessEnv = { ...process.env, S2S_NATIVE_ADDON: addon, S2S_CUDA_PRECISION: precision, S2S_NUM_THREADS: '1' };
  delete env.NODE_OPTIONS;
  const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', script, device], { cwd: root, env, encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Run;
}

/** `s2s args` on the emulated-CUDA addon, from the TypeScript sources (fp32 matmuls). */
function cli(args: string[], extraEnv: Record<string, string> = {}) {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_OPTIONS;
  delete env.S2S_DEVICE;
  Object.assign(env, { S2S_NATIVE_ADDON: addon, S2S_CUDA_PRECISION: 'fp32', S2S_NUM_THREADS: '1' }, extraEnv);
  const main = path.join(root, 'packages', 'cli', 'src', 'main.ts');
  const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', main, ...args], { cwd: root, env, encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw r.error;
  return r;
}

function maxRelDiff(a: number[], b: number[]): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}

beforeAll(() => {
  // incremental: a second of cmake when nothing changed, about a minute from scratch on 2 cores
  const r = spawnSync('pnpm', ['--filter', '@s2s/native', 'run', 'build:emu'], { cwd: root, encoding: 'utf8', timeout: 290_000 });
  if (r.error) throw r.error;
  expect(r.status, `the emulated-CUDA addon did not build:\n${r.stdout}\n${r.stderr}`).toBe(0);
}, 300_000);

describe("device: 'cuda' from Node, on the CUDA emulator", () => {
  let cpu: Run;
  beforeAll(() => {
    cpu = run('cpu', 'fp32');
  }, 130_000);

  it('PPO-T on the GPU backend (fp32) follows the CPU run step for step', () => {
    const gpu = run('cuda', 'fp32');
    expect(gpu.status.available).toBe(true);
    expect(gpu.status.device).toMatch(/emulator/);
    expect(gpu.device).toBe('cuda');
    expect(cpu.device).toBe('cpu');
    expect(gpu.steps).toHaveLength(3);
    for (let s = 0; s < 3; s++) {
      // the same uniform draws pick the same tokens; the divergence kernel gives the same scores
      expect(gpu.steps[s].responses).toEqual(cpu.steps[s].responses);
      expect(gpu.steps[s].scores).toEqual(cpu.steps[s].scores);
      expect(gpu.steps[s].kl).toBeCloseTo(cpu.steps[s].kl, 4);
      expect(gpu.steps[s].loss).toBeCloseTo(cpu.steps[s].loss, 4);
    }
    // the scores are not all alike, so matching them means something
    expect(new Set(cpu.steps.flatMap((s) => s.scores)).size).toBeGreaterThan(2);
    expect(maxRelDiff(gpu.params, cpu.params)).toBeLessThan(1e-4);
    expect(maxRelDiff(gpu.criticParams, cpu.criticParams)).toBeLessThan(1e-4);
    // checkpoints are the same files whichever device wrote them
    expect(gpu.checkpoint).toEqual({ sameWeightFiles: true, sameOptimizerFiles: true, sameParams: true, step: cpu.checkpoint.step });
    expect(cpu.checkpoint.step).toBeGreaterThan(0);
    expect(gpu.badInput).toBe(cpu.badInput);
    expect(cpu.badInput).toMatch(/token/);
  });

  it('the s2s command runs on the GPU backend with --device cuda or S2S_DEVICE=cuda, as on the CPU', () => {
    const args = ['train-text', '--steps', '6', '--seq-len', '24', '--layers', '2', '--channels', '32', '--samples', '2'];
    const onCpu = cli([...args, '--device', 'cpu']);
    const onGpu = cli([...args, '--device', 'cuda']);
    const byEnv = cli(args, { S2S_DEVICE: 'cuda' });
    for (const r of [onCpu, onGpu, byEnv]) expect(r.status, r.stderr).toBe(0);
    const losses = (out: string) => [...out.matchAll(/^step +\d+ +loss ([\d.]+)/gm)].map((m) => Number(m[1]));
    const samples = (out: string) => out.slice(out.indexOf('samples ('));
    // each ran where it was told (on this addon, 'auto' would have meant the emulated GPU)
    expect(onCpu.stdout).toMatch(/parameters\) on cpu for 6 steps/);
    for (const r of [onGpu, byEnv]) expect(r.stdout).toMatch(/parameters\) on cuda for 6 steps/);
    expect(losses(onCpu.stdout)).toHaveLength(6);
    for (const r of [onGpu, byEnv]) {
      losses(r.stdout).forEach((l, i) => expect(Math.abs(l - losses(onCpu.stdout)[i])).toBeLessThanOrEqual(2e-4));
      expect(samples(r.stdout)).toBe(samples(onCpu.stdout)); // the same draws pick the same characters
    }
    // and where the device is named wrong, before any work
    const bad = cli([...args, '--device', 'gpu']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--device must be one of auto, cpu, cuda, got "gpu"');
  });

  it('PPO-T in the training precision (bf16 matmuls) stays close to the CPU run', () => {
    const gpu = run('cuda', 'bf16');
    expect(gpu.steps).toHaveLength(3);
    // bf16 rounding may flip a sampled token, after which the rollouts differ; the first
    // rollout comes from the same weights, so most of its responses agree
    const same = gpu.steps[0].responses.filter((r, i) => r === cpu.steps[0].responses[i]).length;
    expect(same).toBeGreaterThanOrEqual(6);
    for (const s of gpu.steps) for (const x of [s.loss, s.kl, ...s.scores]) expect(Number.isFinite(x)).toBe(true);
    expect(maxRelDiff(gpu.params, cpu.params)).toBeLessThan(0.05);
  });
});
