// Stopping and resuming training from the command line: an aborted run checkpoints and exits 130,
// and --resume continues it to exactly the weights of a run that was never stopped; Ctrl-C in a
// real process takes the same path.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { encodeSafetensors, parseSafetensors, type TensorToWrite } from '@s2s/core';

import { TINY, readJson, s2s } from './cli-harness.js';

const root = mkdtempSync(path.join(tmpdir(), 's2s-cli-resume-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const data = path.join(root, 'data');
const repo = fileURLToPath(new URL('../../..', import.meta.url));

beforeAll(async () => {
  const r = await s2s(['data', 'make', '--task', 'summarize', '--out', data, '--sft', '40', '--pairs', '40', '--rl-prompts', '2', '--eval-prompts', '2']);
  expect(r.code, r.err).toBe(0);
});

const sftArgs = (out: string, steps: number) => [
  'sft', '--data', path.join(data, 'sft.jsonl'), '--template', 'testbed', '--out', out, ...TINY, '--batch-size', '4', '--max-steps', String(steps), '--seed', '3',
];
const weights = (dir: string) => readFileSync(path.join(dir, 'final', 'model.safetensors'));

/** An sft run of 4 steps stopped at step 1 (exit 130): its folder and the checkpoint it left. */
async function stoppedSft(name: string): Promise<{ out: string; ckpt: string }> {
  const out = path.join(root, name);
  const stop = new AbortController();
  const r = await s2s(sftArgs(out, 4), { signal: stop.signal, onErr: (l) => void (l.startsWith('step 1/') && stop.abort()) });
  expect(r.code).toBe(130);
  return { out, ckpt: path.join(out, readdirSync(out).find((n) => n.startsWith('checkpoint-'))!) };
}

describe('stop and --resume', () => {
  it('an aborted sft run checkpoints, exits 130, and resumes to the weights of an uninterrupted run', async () => {
    const straight = path.join(root, 'straight');
    expect((await s2s(sftArgs(straight, 6))).code).toBe(0);

    const stopped = path.join(root, 'stopped');
    const stop = new AbortController();
    // abort while step 2 is being reported, as Ctrl-C would arrive mid-run
    const r = await s2s(sftArgs(stopped, 6), { signal: stop.signal, onErr: (l) => void (l.startsWith('step 2/') && stop.abort()) });
    expect(r.code).toBe(130);
    expect(r.err).toContain(`checkpoint: ${path.join(stopped, 'checkpoint-2')}`);
    expect(existsSync(path.join(stopped, 'final'))).toBe(false);
    expect(readJson(path.join(stopped, 'checkpoint-2', 'trainer_state.json')).step).toBe(2);
    expect(existsSync(path.join(stopped, 'checkpoint-2', 's2s_template.json'))).toBe(true);

    // --out and --resume alone: the data, template and model size come from the run's saved options
    const resumed = await s2s(['sft', '--out', stopped, '--resume']);
    expect(resumed.code, resumed.err).toBe(0);
    expect(resumed.out).toContain(`resuming ${path.join(stopped, 'checkpoint-2')} at step 2`);
    expect(readJson(path.join(stopped, 'final', 'trainer_state.json')).step).toBe(6);
    expect(weights(stopped).equals(weights(straight))).toBe(true);
  });

  it('a resumed run may train longer, but keeps its batch size and seed', async () => {
    const out = path.join(root, 'longer');
    const stop = new AbortController();
    await s2s(sftArgs(out, 4), { signal: stop.signal, onErr: (l) => void (l.startsWith('step 1/') && stop.abort()) });
    const bad = await s2s(['sft', '--out', out, '--resume', '--batch-size', '8']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--batch-size 8 differs from the run');
    const r = await s2s(['sft', '--resume', path.join(out, 'checkpoint-1'), '--max-steps', '5']);
    expect(r.code, r.err).toBe(0);
    expect(readJson(path.join(out, 'final', 'trainer_state.json')).step).toBe(5);
  });

  for (const kind of ['scalar', 'seq2seq'] as const)
    it(`rm train${kind === 'seq2seq' ? ' --seq2seq' : ''} resumes to the weights of an uninterrupted run, and knows its kind from the checkpoint`, async () => {
      const sft = path.join(root, 'straight', 'final');
      const args = (out: string) => [
        'rm', 'train', ...(kind === 'seq2seq' ? ['--seq2seq', '--eval-rewrites', '1'] : []), '--data', path.join(data, 'pairs.jsonl'), '--model', sft, '--out', out, '--max-steps', '3', '--batch-size', '4',
      ];
      const straight = path.join(root, `${kind}-rm-straight`);
      expect((await s2s(args(straight))).code).toBe(0);
      const out = path.join(root, `${kind}-rm`);
      const stop = new AbortController();
      const r = await s2s(args(out), { signal: stop.signal, onErr: (l) => void (l.startsWith('step 1/') && stop.abort()) });
      expect(r.code).toBe(130);
      const resumed = await s2s(['rm', 'train', '--out', out, '--resume']);
      expect(resumed.code, resumed.err).toBe(0);
      expect(resumed.out).toContain(kind === 'seq2seq' ? 'rm train --seq2seq' : 'rm train');
      expect(readJson(path.join(out, 'final', 's2s_reward_model.json')).kind).toBe(kind);
      expect(weights(out).equals(weights(straight))).toBe(true);
    });

  it('sft --resume refuses optimizer state with a NaN or a negative second moment, naming file, tensor and element, and trains nothing', async () => {
    const { out, ckpt } = await stoppedSft('bad-moments');
    const file = path.join(ckpt, 'optimizer.safetensors');
    const good = readFileSync(file);
    const st = parseSafetensors(good, file);
    for (const [name, value, shown] of [
      ['exp_avg_sq.transformer.h.0.mlp.c_fc.weight', -2, '([0, 33]) is -2'],
      ['exp_avg.transformer.wpe.weight', NaN, '([1, 1]) is NaN'],
    ] as const) {
      const tensors = new Map<string, TensorToWrite>();
      for (const [k, t] of st.tensors) {
        const bytes = t.bytes.slice();
        if (k === name) new Float32Array(bytes.buffer)[33] = value;
        tensors.set(k, { dtype: t.dtype, shape: t.shape, bytes });
      }
      writeFileSync(file, encodeSafetensors(tensors, st.metadata));
      const resumed = await s2s(['sft', '--out', out, '--resume']);
      expect(resumed.code).not.toBe(0);
      expect(resumed.err).toContain(`${file}: tensor "${name}" element 33 ${shown}`);
      expect(existsSync(path.join(out, 'final'))).toBe(false);
    }
    writeFileSync(file, good);
    expect((await s2s(['sft', '--out', out, '--resume'])).code).toBe(0);
  });

  it('--resume refuses a checkpoint without optimizer state, or with a trainer_state.json whose step is not a count, and trains nothing', async () => {
    const { out, ckpt } = await stoppedSft('no-moments');
    const optimizer = path.join(ckpt, 'optimizer.safetensors');
    const moments = readFileSync(optimizer);
    rmSync(optimizer);
    const missing = await s2s(['sft', '--out', out, '--resume']);
    expect(missing.code).not.toBe(0);
    expect(missing.err).toContain(`${ckpt} has no optimizer.safetensors: resuming from it would restart the optimizer`);
    writeFileSync(optimizer, moments);
    const stateFile = path.join(ckpt, 'trainer_state.json');
    const state = readFileSync(stateFile, 'utf8');
    writeFileSync(stateFile, JSON.stringify({ ...JSON.parse(state), step: 1.5 }));
    const bad = await s2s(['sft', '--out', out, '--resume']);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toContain(`${stateFile}: "step" must be a non-negative integer, got 1.5`);
    expect(existsSync(path.join(out, 'final'))).toBe(false);
    writeFileSync(stateFile, state);
    expect((await s2s(['sft', '--out', out, '--resume'])).code).toBe(0);
  });

  it('Ctrl-C in a real process: SIGINT stops the run with a checkpoint and exit status 130', async () => {
    const out = path.join(root, 'sigint');
    const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', 'packages/cli/src/main.ts', ...sftArgs(out, 100_000)], {
      cwd: repo,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (b: Buffer) => void (stdout += b.toString()));
    const code = await new Promise<number | null>((resolve) => {
      child.stderr.on('data', (b: Buffer) => {
        const first = !stderr.includes('step 1/');
        stderr += b.toString();
        if (first && stderr.includes('step 1/')) child.kill('SIGINT');
      });
      child.on('exit', (c) => resolve(c));
    });
    expect(code, stdout + stderr).toBe(130);
    expect(stderr).toContain('stopping after this step and writing a checkpoint');
    const ckpt = readdirSync(out).find((n) => n.startsWith('checkpoint-'));
    expect(ckpt).toBeDefined();
    expect(stderr).toContain(`checkpoint: ${path.join(out, ckpt!)}`);
    expect(existsSync(path.join(out, 'final'))).toBe(false);

    // continue it for two more steps
    const step = Number(ckpt!.slice('checkpoint-'.length));
    const r = await s2s(['sft', '--out', out, '--resume', '--max-steps', String(step + 2)]);
    expect(r.code, r.err).toBe(0);
    expect(readJson(path.join(out, 'final', 'trainer_state.json')).step).toBe(step + 2);
  });
});
