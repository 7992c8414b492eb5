// The command-line plumbing on its own: option parsing and precedence, --help built from each
// command's schema, and the progress bar on a terminal and in a log.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterAll, describe, expect, it, vi } from 'vitest';

import { COMMANDS } from '@s2s/cli';
import type { TrainerEvent } from '@s2s/core';

import { flagName } from '../src/options.js';
import { parseOptions } from '../src/parse-options.js';
import { Progress, formatDuration } from '../src/progress.js';
import { s2s } from './cli-harness.js';

const root = mkdtempSync(path.join(tmpdir(), 's2s-cli-options-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const sft = COMMANDS.find((c) => c.name === 'sft')!;

describe('options', () => {
  it('every command documents every option in its --help', async () => {
    for (const cmd of COMMANDS) {
      const r = await s2s([...cmd.name.split(' '), '--help']);
      expect(r.code).toBe(0);
      for (const key of Object.keys(cmd.options)) expect(r.out, `${cmd.name} --${flagName(key)}`).toContain(`--${flagName(key)}`);
      expect(r.out).toContain('--config FILE');
    }
    const top = await s2s(['--help']);
    for (const cmd of COMMANDS) expect(top.out).toContain(cmd.name);
    expect((await s2s([])).code).toBe(2);
  });

  it('takes flags over the config file over the defaults, and --resume with or without a folder', async () => {
    const config = path.join(root, 'c.json');
    writeFileSync(config, JSON.stringify({ lr: 0.5, 'max-steps': 7, resume: true }));
    const p = await parseOptions(sft.options, ['--config', config, '--lr', '0.25'], 'sft');
    expect(p.values).toMatchObject({ lr: 0.25, maxSteps: 7, resume: '', batchSize: 16 });
    expect(p.explicit).toEqual({ lr: 0.25, maxSteps: 7, resume: '' });
    expect((await parseOptions(sft.options, ['--resume', '--max-steps', '3'], 'sft')).values).toMatchObject({ resume: '', maxSteps: 3 });
    expect((await parseOptions(sft.options, ['--resume', 'runs/x/checkpoint-5'], 'sft')).values.resume).toBe('runs/x/checkpoint-5');
    expect((await parseOptions(sft.options, ['--max-steps', '3', '--resume'], 'sft')).values.resume).toBe('');
  });
});

const step = (s: number, total: number): TrainerEvent => ({
  type: 'step',
  step: s,
  totalSteps: total,
  epoch: 0,
  loss: 1 / s,
  lr: 1e-3,
  gradNorm: 1,
  throughput: 1000,
  elapsedMs: 10 * s,
  etaMs: 10 * (total - s),
});

describe('the progress bar', () => {
  it('in a log: one plain line about every 5%, with step/total, percent, loss, rate and ETA', () => {
    const lines: string[] = [];
    const spy = vi.spyOn(console, 'error').mockImplementation((m: string) => void lines.push(m));
    try {
      const p = new Progress({ unit: 'tok', tty: false });
      for (let s = 1; s <= 1000; s++) p.onEvent(step(s, 1000));
      p.onEvent({ type: 'eval', step: 1000, metrics: { evalLoss: 0.5 } });
    } finally {
      spy.mockRestore();
    }
    expect(lines.length).toBe(22); // step 1, every 5%, and the eval line
    expect(lines[0]).toMatch(/^step 1\/1000 +0% +loss 1\.0000 +1000 tok\/s +eta 0:10/);
    expect(lines[20]).toMatch(/^step 1000\/1000 100%/);
    expect(lines[21]).toBe('eval at step 1000: evalLoss 0.5000');
  });

  it('on a terminal: one line redrawn in place, messages printed above it', () => {
    let text = '';
    const p = new Progress({ unit: 'pairs', tty: true, stream: { write: (s: string) => void (text += s), columns: 100 } });
    p.onEvent(step(1, 4));
    p.onEvent({ type: 'checkpoint', step: 1, dir: 'out/checkpoint-1' });
    p.onEvent(step(4, 4));
    p.done();
    expect(text.startsWith('\r[')).toBe(true);
    expect(text).toContain('\r\x1b[Kcheckpoint saved to out/checkpoint-1\n[');
    expect(text).toMatch(/\r\[#+\] 4\/4 100% +loss 0\.2500 +1000 pairs\/s +eta 0:00\x1b\[K\n$/);
    expect(text.split('\n')).toHaveLength(3);
  });

  it('writes durations as tqdm does', () => {
    expect(formatDuration(75_000)).toBe('1:15');
    expect(formatDuration(3_725_000)).toBe('1:02:05');
    expect(formatDuration(Number.NaN)).toBe('?');
  });
});
