// The optimizer's flags, one group made from @s2s/core's OptimizerConfig for sft, rm train and ppo:
// the same flags in every command's --help, and a value the engine would refuse refused while the
// command line is read -- before any data, model or rollout.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { COMMANDS } from '@s2s/cli';
import { OPTIMIZER_KEYS, TRAIN_DEFAULTS } from '@s2s/core';
import { PPO_DEFAULTS } from '@s2s/ppo';

import { flagName } from '../src/options.js';
import { parseOptions } from '../src/parse-options.js';
import { pickPPOConfig } from '../src/ppo-options.js';
import { checkedTrainConfig } from '../src/train-options.js';
import { s2s, snapshot } from './cli-harness.js';

const root = mkdtempSync(path.join(tmpdir(), 's2s-cli-optimizer-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const TRAINING = ['sft', 'rm train', 'ppo'];
const command = (name: string) => COMMANDS.find((c) => c.name === name)!;

/** The flags --help lists under a heading, in order. */
function flagsUnder(help: string, heading: string): string[] {
  const lines = help.split('\n');
  const start = lines.indexOf(`${heading}:`);
  if (start < 0) return [];
  const end = lines.indexOf('', start);
  return lines.slice(start + 1, end).flatMap((l) => l.match(/^ {2}(--[a-z0-9-]+)/)?.[1] ?? []);
}

describe('the optimizer option group', () => {
  it('is the same in the --help of sft, rm train and ppo: every OptimizerConfig field, and the checkpoint flags', async () => {
    const want = OPTIMIZER_KEYS.map((k) => `--${flagName(k)}`);
    for (const name of TRAINING) {
      const r = await s2s([...name.split(' '), '--help']);
      expect(r.code).toBe(0);
      expect(flagsUnder(r.out, 'optimizer'), name).toEqual(want);
      expect(flagsUnder(r.out, 'checkpoints'), name).toEqual(['--save-every', '--save-total-limit']);
    }
  });

  it('refuses --beta1 1 while parsing the command line of each, naming --beta1, and runs nothing', async () => {
    for (const name of TRAINING) {
      const cmd = command(name);
      await expect(parseOptions(cmd.options, ['--beta1', '1'], name), name).rejects.toThrow('--beta1 must be a number in [0, 1), got "1"');
      const out = path.join(root, name.replace(' ', '-'));
      // a full command line of files that do not exist: the flag is refused before any is looked for
      const args = { sft: ['--data', 'nope.jsonl'], 'rm train': ['--data', 'nope.jsonl', '--model', 'nope'], ppo: ['--policy', 'nope', '--reward', 'token', '--reward-model', 'nope', '--prompts', 'nope.jsonl'] }[name]!;
      const r = await s2s([...name.split(' '), ...args, '--out', out, '--beta1', '1']);
      expect(r.code, r.err).toBe(2);
      expect(r.err).toContain('s2s: --beta1 must be a number in [0, 1), got "1"');
      expect(snapshot(out)).toBe('(absent)');
    }
  });

  it("refuses what only the engine's 32-bit floats make wrong, and the same values in a --config file", async () => {
    const ppo = command('ppo').options;
    await expect(parseOptions(ppo, ['--eps', '1e-50'], 'ppo')).rejects.toThrow(`--eps must be a finite number > 0, got 1e-50 (0 as the engine's 32-bit float)`);
    await expect(parseOptions(ppo, ['--beta2', '0.99999999999'], 'ppo')).rejects.toThrow(`--beta2 must be a number in [0, 1), got 0.99999999999 (1 as the engine's 32-bit float)`);
    await expect(parseOptions(ppo, ['--critic-lr', '1e39'], 'ppo')).rejects.toThrow(`--critic-lr must be a finite number >= 0, got 1e+39 (Infinity as the engine's 32-bit float)`);
    await expect(parseOptions(command('sft').options, ['--lr-schedule', 'step'], 'sft')).rejects.toThrow('--lr-schedule must be one of cosine, linear, constant, got "step"');
    const config = path.join(root, 'beta2.json');
    writeFileSync(config, JSON.stringify({ beta2: 1 }));
    await expect(parseOptions(command('rm train').options, ['--config', config], 'rm train')).rejects.toThrow(`${config}: "beta2" must be a number in [0, 1), got 1`);
  });

  it('gives each command its trainer\'s defaults, and the same choices', async () => {
    const sft = await parseOptions(command('sft').options, [], 'sft');
    const ppo = await parseOptions(command('ppo').options, ['--lr-schedule', 'cosine', '--warmup-steps', '3', '--save-total-limit', '0'], 'ppo');
    for (const k of OPTIMIZER_KEYS) expect(sft.values[k], k).toBe(TRAIN_DEFAULTS[k]);
    expect(pickPPOConfig(ppo.values)).toMatchObject({ ...PPO_DEFAULTS, lrSchedule: 'cosine', warmupSteps: 3, saveTotalLimit: 0 });
    expect((await parseOptions(command('rm train').options, [], 'rm train')).values.lr).toBeUndefined();
  });

  it("checks a run's config as its trainer will, naming flags: what a resumed run's saved config may hold", () => {
    expect(() => pickPPOConfig({}, { ...PPO_DEFAULTS, beta1: 1 })).toThrow('--beta1 must be a number in [0, 1), got 1');
    expect(() => checkedTrainConfig({ ...TRAIN_DEFAULTS, eps: 0 }, TRAIN_DEFAULTS, 'sft')).toThrow('--eps must be a finite number > 0, got 0');
    // a run saved before the schedule was a field takes the default
    const { lrSchedule: _, ...old } = TRAIN_DEFAULTS;
    expect(checkedTrainConfig(old as typeof TRAIN_DEFAULTS, TRAIN_DEFAULTS, 'sft').lrSchedule).toBe('cosine');
  });
});
