// Data-parallel training from the command line: `s2s launch` with 2 ranks over Gloo on this
// machine against one process over the combined batch (sft, both reward models), a resumed 2-rank
// run against an uninterrupted one, a rank that dies (the other stops, naming it), and the
// refusals: a resume on another world size, a command that does not run data parallel.
//
// The 1-rank reference sums each gradient over all 2B rows in one pass; the ranks sum B rows each
// and then add the two halves, so results agree to float32 rounding, not bit for bit. AdamW's
// eps is raised to 1e-3 in these runs: with the default 1e-8 an element whose gradient is at
// rounding level moves by +-lr depending on its sign, which would hide a real difference under a
// tolerance of lr; with eps 1e-3 the update is continuous in the gradient and the stated
// tolerance (1e-5 absolute on weights after 3 steps) measures the sum order alone.
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { freeTcpPort, parseSafetensors } from '@s2s/core';

import { TINY, readJson, s2s } from './cli-harness.js';

const root = mkdtempSync(path.join(tmpdir(), 's2s-cli-dp-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const data = path.join(root, 'data');
const repo = fileURLToPath(new URL('../../..', import.meta.url));

/** Every tensor of a model folder's weights, as float32 values. */
function tensors(dir: string): Map<string, Float32Array> {
  const file = path.join(dir, 'model.safetensors');
  const st = parseSafetensors(readFileSync(file), file);
  return new Map([...st.tensors].map(([k, t]) => [k, new Float32Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 4)]));
}

/** The largest absolute difference between two folders' weights (same tensor names required). */
function maxDiff(a: string, b: string): number {
  const ta = tensors(a);
  const tb = tensors(b);
  expect([...tb.keys()].sort()).toEqual([...ta.keys()].sort());
  let worst = 0;
  for (const [k, x] of ta) {
    const y = tb.get(k)!;
    expect(y.length).toBe(x.length);
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
  }
  return worst;
}

const launch = (nproc: number, cmd: string[]) => s2s(['launch', '--nproc-per-node', String(nproc), '--master-port', '0', '--', 's2s', ...cmd]);

const sftArgs = (out: string, batch: number, steps = 3, more: string[] = []) => [
  'sft', '--data', path.join(data, 'sft.jsonl'), '--template', 'testbed', '--out', out, ...TINY,
  '--max-steps', String(steps), '--batch-size', String(batch), '--eval-split', '0.1', '--lr', '3e-3', '--eps', '1e-3', ...more,
];

beforeAll(async () => {
  const r = await s2s(['data', 'make', '--task', 'summarize', '--out', data, '--sft', '60', '--pairs', '60', '--rl-prompts', '8', '--eval-prompts', '4', '--seed', '3']);
  expect(r.code, r.err).toBe(0);
}, 60_000);

describe('s2s launch: 2 ranks equal one process over the combined batch', () => {
  it('sft: the same weights (float32 rounding), training and eval losses; rank 0 alone reports and writes', async () => {
    const one = path.join(root, 'sft-1');
    const two = path.join(root, 'sft-2');
    const r1 = await s2s(sftArgs(one, 8));
    expect(r1.code, r1.err).toBe(0);
    const r2 = await launch(2, sftArgs(two, 4));
    expect(r2.code, r2.err).toBe(0);
    expect(r2.err).toContain('s2s launch: all 2 ranks finished');
    expect(maxDiff(path.join(one, 'final'), path.join(two, 'final'))).toBeLessThan(1e-5);
    const s1 = readJson(path.join(one, 'final', 'trainer_state.json'));
    const s2 = readJson(path.join(two, 'final', 'trainer_state.json'));
    expect(s2.worldSize).toBe(2);
    expect(s2.config.batchSize).toBe(4);
    expect(s2.sampler.batchSize).toBe(8); // the global batch
    expect(s2.history.map((h: { loss: number }) => h.loss)).toEqual(s1.history.map((h: { loss: number }) => expect.closeTo(h.loss, 5)));
    const evalOf = (s: { history: Array<{ eval?: { evalLoss: number } }> }) => s.history.at(-1)!.eval!.evalLoss;
    expect(evalOf(s2)).toBeCloseTo(evalOf(s1), 5);
  }, 120_000);

  it('rm train, scalar and seq2seq: the same weights as one process', async () => {
    const sft = path.join(root, 'sft-1', 'final');
    for (const kind of [[], ['--seq2seq', '--eval-rewrites', '2']]) {
      const args = (out: string, batch: number) => [
        'rm', 'train', ...kind, '--data', path.join(data, 'pairs.jsonl'), '--model', sft, '--out', out,
        '--max-steps', '3', '--batch-size', String(batch), '--eval-split', '0.1', '--lr', '3e-3', '--eps', '1e-3',
      ];
      const name = kind.length ? 's2s-rm' : 'rm';
      const r1 = await s2s(args(path.join(root, `${name}-1`), 8));
      expect(r1.code, r1.err).toBe(0);
      const r2 = await launch(2, args(path.join(root, `${name}-2`), 4));
      expect(r2.code, r2.err).toBe(0);
      expect(maxDiff(path.join(root, `${name}-1`, 'final'), path.join(root, `${name}-2`, 'final'))).toBeLessThan(1e-5);
      const e1 = readJson(path.join(root, `${name}-1`, 'eval_results.json'));
      const e2 = readJson(path.join(root, `${name}-2`, 'eval_results.json'));
      expect(e2.evalLoss).toBeCloseTo(e1.evalLoss, 5);
      if (!kind.length) expect(e2.accuracy).toBe(e1.accuracy);
    }
  }, 240_000);
});

describe('s2s launch: PPO on 2 ranks equals one process over the combined batch', () => {
  it('the same rollouts (each row samples its stream of the global batch), metrics, policy and critic', async () => {
    const args = (out: string, batch: number) => [
      'ppo', '--reward', 'token', '--policy', path.join(root, 'sft-1', 'final'), '--reward-model', path.join(root, 's2s-rm-1', 'final'),
      '--prompts', path.join(data, 'rl_prompts.jsonl'), '--out', out, '--steps', '3', '--batch-size', String(batch), '--mini-batch-size', String(batch),
      '--ppo-epochs', '1', '--temperature', '1', '--max-new-tokens', '12', '--eps', '1e-3',
      // per-sequence averaging: each rank's normaliser needs the responses of every rank
      '--loss-averaging', 'sequence',
    ];
    const one = path.join(root, 'ppo-1');
    const two = path.join(root, 'ppo-2');
    const r1 = await s2s(args(one, 8));
    expect(r1.code, r1.err).toBe(0);
    const r2 = await launch(2, args(two, 4));
    expect(r2.code, r2.err).toBe(0);
    const log = (dir: string) => readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const [l1, l2] = [log(one), log(two)];
    expect(l2).toHaveLength(3);
    l1.forEach((m: Record<string, number>, i: number) => {
      // the rollout's own numbers: identical samples, so identical up to summation order
      for (const k of ['objective/scores', 'objective/kl', 'objective/entropy', 'response_length/mean', 'response_length/std', 'val/num_eos_tokens', 'episode', 'kl_coef'])
        expect(l2[i][k], `${k} at step ${i + 1}`).toBeCloseTo(m[k], 6);
      expect(l2[i]['loss/value_avg']).toBeCloseTo(m['loss/value_avg'], 5);
    });
    expect(maxDiff(path.join(one, 'final'), path.join(two, 'final'))).toBeLessThan(1e-5);
    expect(maxDiff(path.join(one, 'final-critic'), path.join(two, 'final-critic'))).toBeLessThan(1e-5);
    const state = readJson(path.join(two, 'final', 'trainer_state.json'));
    expect(state.worldSize).toBe(2);
    expect(state.config.lossAveraging).toBe('sequence');
  }, 180_000);
});

describe('resuming a data-parallel run', () => {
  it('a 2-rank run resumed from its step-2 checkpoint ends with the uninterrupted run\'s weights, bit for bit', async () => {
    const whole = path.join(root, 'dp-whole');
    const r = await launch(2, sftArgs(whole, 4, 4, ['--save-every', '2', '--save-total-limit', '0']));
    expect(r.code, r.err).toBe(0);
    const again = path.join(root, 'dp-again');
    cpSync(path.join(whole, 'checkpoint-2'), path.join(again, 'checkpoint-2'), { recursive: true });
    cpSync(path.join(whole, 'sft_config.json'), path.join(again, 'sft_config.json'));
    const resumed = await launch(2, ['sft', '--resume', path.join(again, 'checkpoint-2')]);
    expect(resumed.code, resumed.err).toBe(0);
    expect(Buffer.compare(readFileSync(path.join(again, 'final', 'model.safetensors')), readFileSync(path.join(whole, 'final', 'model.safetensors')))).toBe(0);

    // one process cannot continue it exactly: said, not done
    const single = await s2s(['sft', '--resume', path.join(again, 'checkpoint-2')]);
    expect(single.code).toBe(1);
    expect(single.err).toContain('was trained on 2 data-parallel ranks and this one has 1');
  }, 180_000);
});

describe('failures', () => {
  /**
   * Two ranks of a long sft run started as a scheduler would (no launcher); once rank 0 reports its
   * first step, `fault` is done to rank 1. Resolves with rank 0's exit status and stderr.
   */
  async function faultRank1(name: string, timeoutS: number, fault: (rank1: ChildProcess) => void): Promise<{ code: number | null; err: string }> {
    const port = await freeTcpPort();
    const out = path.join(root, name);
    const start = (rank: number) =>
      spawn(process.execPath, ['--conditions=source', '--import', 'tsx', 'packages/cli/src/main.ts', ...sftArgs(out, 4, 100_000)], {
        cwd: repo,
        env: { ...process.env, WORLD_SIZE: '2', RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), S2S_DIST_TIMEOUT: String(timeoutS) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    const rank0 = start(0);
    const rank1 = start(1);
    let err = '';
    try {
      const code = await new Promise<number | null>((resolve) => {
        rank0.stderr.on('data', (b: Buffer) => {
          const first = !err.includes('step 1/');
          err += b.toString();
          if (first && err.includes('step 1/')) setTimeout(() => fault(rank1), 300);
        });
        rank0.on('exit', (c) => resolve(c));
      });
      return { code, err };
    } finally {
      rank1.kill('SIGKILL');
    }
  }

  it('a rank killed mid-run stops the other, which names it (ranks started as a scheduler would, without the launcher)', async () => {
    let killedAt = 0;
    const r = await faultRank1('killed', 60, (rank1) => {
      rank1.kill('SIGKILL');
      killedAt = Date.now();
    });
    expect(r.code, r.err).toBe(1);
    expect(r.err).toMatch(/s2s \[rank 0\]: .*failed on rank 0 of 2: rank 1 exited/);
    expect(Date.now() - killedAt).toBeLessThan(30_000); // at once, not at the 60 s timeout
  }, 90_000);

  it('a rank that hangs (stopped with SIGSTOP) stops the other at S2S_DIST_TIMEOUT, which says so', async () => {
    let stoppedAt = 0;
    const r = await faultRank1('hung', 3, (rank1) => {
      rank1.kill('SIGSTOP');
      stoppedAt = Date.now();
    });
    expect(r.code, r.err).toBe(1);
    expect(r.err).toContain('failed on rank 0 of 2: a peer did not take part within the timeout of 3 s');
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(2_500);
  }, 90_000);

  it('the launcher names a rank that died and stops the others', async () => {
    const out = path.join(root, 'launch-killed');
    const port = await freeTcpPort();
    const child = spawn(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', 'packages/cli/src/main.ts', 'launch', '--nproc-per-node', '2', '--master-port', String(port), '--grace', '1', '--', 's2s', ...sftArgs(out, 4, 100_000)],
      { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let err = '';
    const code = await new Promise<number | null>((resolve) => {
      child.stderr.on('data', (b: Buffer) => {
        const first = !err.includes('step 1/');
        err += b.toString();
        if (first && err.includes('step 1/')) {
          // rank 1: the launcher's second child
          const ps = spawn('ps', ['-o', 'pid=', '--ppid', String(child.pid)]);
          let pids = '';
          ps.stdout.on('data', (d: Buffer) => void (pids += d.toString()));
          ps.on('exit', () => process.kill(Number(pids.trim().split(/\s+/)[1]), 'SIGKILL'));
        }
      });
      child.on('exit', (c) => resolve(c));
    });
    expect(err).toContain('s2s launch: rank 1 was killed by SIGKILL; stopping the other ranks');
    expect(code).toBe(137);
  }, 90_000);

  it('refuses a command that does not run data parallel, and a bad launch', async () => {
    const saved = { ...process.env };
    try {
      Object.assign(process.env, { WORLD_SIZE: '2', RANK: '1', MASTER_PORT: '1' });
      const r = await s2s(['generate', '--model', 'x', '--prompts', 'y', '--out', 'z']);
      expect(r.code).toBe(2);
      expect(r.err).toContain('s2s generate does not run data parallel, and this process is rank 1 of WORLD_SIZE=2');
      Object.assign(process.env, { RANK: 'one' });
      const bad = await s2s(sftArgs(path.join(root, 'bad-env'), 4));
      expect(bad.code).toBe(1);
      expect(bad.err).toContain('RANK="one": expected an integer in [0, 1]');
    } finally {
      for (const k of ['WORLD_SIZE', 'RANK', 'MASTER_PORT']) delete process.env[k];
      Object.assign(process.env, saved);
    }
    const noCmd = await s2s(['launch', '--nproc-per-node', '2']);
    expect(noCmd.code).toBe(2);
    expect(noCmd.err).toContain('the command to run goes after `--`');
    const badNode = await s2s(['launch', '--nproc-per-node', '2', '--nnodes', '2', '--node-rank', '2', '--', 's2s', 'sft']);
    expect(badNode.code).toBe(2);
    expect(badNode.err).toContain('--node-rank 2 is not below --nnodes 2');
  }, 30_000);
});
