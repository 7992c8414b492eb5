// The optimizer config every trainer shares: each field's check, which agrees with the engine's own
// (a value refused here is refused by model.step(), and one accepted here is accepted there), the
// schedule's three decays, and saveTotalLimit's rotation of checkpoints as Hugging Face keeps them.
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import {
  Model,
  OPTIMIZER_DEFAULTS,
  OPTIMIZER_KEYS,
  type OptimizerConfig,
  Random,
  type SupervisedExample,
  SupervisedTrainer,
  TRAIN_DEFAULTS,
  adamWOptions,
  learningRate,
  resolveOptimizerConfig,
  rotateCheckpoints,
  scheduleOf,
} from '@s2s/core';

const root = await mkdtemp(path.join(tmpdir(), 's2s-optimizer-'));
afterAll(() => rm(root, { recursive: true, force: true }));

/** Each field's refused values and the message that names it. */
const BAD: Array<[keyof OptimizerConfig, unknown, string]> = [
  ['lr', -1e-3, 'lr must be a finite number >= 0, got -0.001'],
  ['lr', Number.POSITIVE_INFINITY, 'lr must be a finite number >= 0, got Infinity'],
  ['lr', Number.NaN, 'lr must be a finite number >= 0, got NaN'],
  ['lr', '1e-3', 'lr must be a finite number >= 0, got "1e-3"'],
  ['lr', 1e39, "lr must be a finite number >= 0, got 1e+39 (Infinity as the engine's 32-bit float)"],
  ['beta1', 1, 'beta1 must be a number in [0, 1), got 1'],
  ['beta1', -0.1, 'beta1 must be a number in [0, 1), got -0.1'],
  ['beta1', 0.99999999999, "beta1 must be a number in [0, 1), got 0.99999999999 (1 as the engine's 32-bit float)"],
  ['beta2', 1, 'beta2 must be a number in [0, 1), got 1'],
  ['beta2', 1.5, 'beta2 must be a number in [0, 1), got 1.5'],
  ['eps', 0, 'eps must be a finite number > 0, got 0'],
  ['eps', -1e-8, 'eps must be a finite number > 0, got -1e-8'],
  ['eps', 1e-50, "eps must be a finite number > 0, got 1e-50 (0 as the engine's 32-bit float)"],
  ['weightDecay', -0.01, 'weightDecay must be a finite number >= 0, got -0.01'],
  ['weightDecay', Number.NaN, 'weightDecay must be a finite number >= 0, got NaN'],
  ['maxGradNorm', -1, 'maxGradNorm must be a finite number >= 0, got -1'],
  ['maxGradNorm', 1e39, "maxGradNorm must be a finite number >= 0, got 1e+39 (Infinity as the engine's 32-bit float)"],
  ['warmupSteps', -1, 'warmupSteps must be a non-negative integer, got -1'],
  ['warmupSteps', 2.5, 'warmupSteps must be a non-negative integer, got 2.5'],
  ['warmupRatio', 1, 'warmupRatio must be a number in [0, 1), got 1'],
  ['warmupRatio', -0.1, 'warmupRatio must be a number in [0, 1), got -0.1'],
  ['minLrRatio', 1.1, 'minLrRatio must be a number in [0, 1], got 1.1'],
  ['minLrRatio', -0.5, 'minLrRatio must be a number in [0, 1], got -0.5'],
  ['lrSchedule', 'exponential', `lrSchedule must be one of 'cosine', 'linear', 'constant', got "exponential"`],
  ['lrSchedule', 3, `lrSchedule must be one of 'cosine', 'linear', 'constant', got 3`],
];

/** Values at the edges that the engine takes, as it computes in 32-bit floats. */
const EDGES: Array<Partial<OptimizerConfig>> = [
  { lr: 0 },
  { lr: 1e30 },
  { beta1: 0, beta2: 0 },
  { beta1: 0.9999999, beta2: 0.9999999 },
  { eps: 1e-30 },
  { weightDecay: 0, maxGradNorm: 0 },
  { weightDecay: 1e30, maxGradNorm: 1e30 },
];

const TINY = { vocabSize: 16, maxSeqLen: 8, numLayers: 1, numHeads: 1, channels: 8 };

describe('resolveOptimizerConfig', () => {
  it('fills the defaults, and takes every field a trainer sets', () => {
    expect(resolveOptimizerConfig()).toEqual(OPTIMIZER_DEFAULTS);
    expect(OPTIMIZER_KEYS).toHaveLength(Object.keys(OPTIMIZER_DEFAULTS).length);
    const all: OptimizerConfig = { lr: 0.5, lrSchedule: 'linear', warmupSteps: 3, warmupRatio: 0.5, minLrRatio: 1, weightDecay: 0.1, beta1: 0, beta2: 0.5, eps: 1, maxGradNorm: 0 };
    expect(resolveOptimizerConfig(all)).toEqual(all);
    // a trainer's defaults under the given fields; other fields of a trainer's config are not its business
    expect(resolveOptimizerConfig({ lr: 0.25, batchSize: 3 } as Partial<OptimizerConfig>, 'x', { ...OPTIMIZER_DEFAULTS, lrSchedule: 'constant' })).toEqual({
      ...OPTIMIZER_DEFAULTS,
      lr: 0.25,
      lrSchedule: 'constant',
    });
  });

  it('refuses a bad value of each field with a message that names it and its source', () => {
    for (const [field, value, message] of BAD) expect(() => resolveOptimizerConfig({ [field]: value }, 'PPO config'), field).toThrow(`PPO config: ${message}`);
    for (const [field, value] of BAD) expect(() => resolveOptimizerConfig({ [field]: value })).toThrow(RangeError);
  });

  it('agrees with the engine: what it refuses model.step() refuses, what it accepts model.step() takes', async () => {
    const model = await Model.create(TINY, { seed: 1 });
    try {
      for (const [field, value] of BAD) {
        // the fields the engine receives (the schedule's are the trainers' alone)
        if (!['lr', 'beta1', 'beta2', 'eps', 'weightDecay', 'maxGradNorm'].includes(field) || typeof value !== 'number') continue;
        const c = { ...OPTIMIZER_DEFAULTS, [field]: value } as OptimizerConfig;
        await expect(model.step(adamWOptions(c, c.lr)), `${field} ${value}`).rejects.toThrow(field);
      }
      for (const edge of EDGES) {
        const c = resolveOptimizerConfig(edge);
        await expect(model.step(adamWOptions(c, c.lr)), JSON.stringify(edge)).resolves.toBeTypeOf('number');
      }
    } finally {
      model.dispose();
    }
  });

  it('is what the supervised trainer checks its config with, before any training', () => {
    const model = Model.empty(TINY);
    const train: SupervisedExample[] = [{ ids: [1, 2, 3], lossMask: [0, 1, 1] }];
    expect(() => new SupervisedTrainer({ model, train, padId: 0, config: { beta1: 1 } })).toThrow('supervised config: beta1 must be a number in [0, 1), got 1');
    expect(() => new SupervisedTrainer({ model, train, padId: 0, config: { lrSchedule: 'step' as never } })).toThrow("supervised config: lrSchedule must be one of 'cosine', 'linear', 'constant'");
    expect(new SupervisedTrainer({ model, train, padId: 0 }).config).toEqual(TRAIN_DEFAULTS);
    model.dispose();
  });
});

describe('the learning-rate schedule', () => {
  const base = { lr: 1, warmupSteps: 0, totalSteps: 4, minLrRatio: 0 };

  it("linear: TRL's decay, the rate PPO used before the schedule was shared (lr * (1 - (step - 1) / steps))", () => {
    expect([1, 2, 3, 4, 5].map((s) => learningRate(s, { ...base, lrSchedule: 'linear' }))).toEqual([1, 0.75, 0.5, 0.25, 0]);
    const lr = 3e-6;
    for (let s = 1; s <= 7; s++) expect(learningRate(s, { ...base, lr, totalSteps: 7, lrSchedule: 'linear' })).toBe(lr * (1 - (s - 1) / 7));
    // with a floor and a warmup
    const c = { lr: 1, warmupSteps: 2, totalSteps: 6, minLrRatio: 0.2, lrSchedule: 'linear' as const };
    [0.5, 1, 1, 0.8, 0.6, 0.4].forEach((x, i) => expect(learningRate(i + 1, c), `step ${i + 1}`).toBeCloseTo(x, 12));
  });

  it('constant: lr after the warmup; cosine: down to the floor at the last step', () => {
    expect([1, 2, 3, 9].map((s) => learningRate(s, { ...base, warmupSteps: 2, lrSchedule: 'constant' }))).toEqual([0.5, 1, 1, 1]);
    const cosine = { lr: 1, warmupSteps: 0, totalSteps: 10, minLrRatio: 0.1 };
    expect(learningRate(5, cosine)).toBe(learningRate(5, { ...cosine, lrSchedule: 'cosine' }));
    expect(learningRate(10, { ...cosine, lrSchedule: 'cosine' })).toBeCloseTo(0.1, 12);
  });

  it('scheduleOf makes warmupRatio steps of the run, and carries the decay and a second rate', () => {
    const c = { ...OPTIMIZER_DEFAULTS, warmupRatio: 0.1, lrSchedule: 'linear' as const };
    expect(scheduleOf(c, 50)).toEqual({ lr: c.lr, warmupSteps: 5, totalSteps: 50, minLrRatio: c.minLrRatio, lrSchedule: 'linear' });
    expect(scheduleOf({ ...c, warmupSteps: 3 }, 50, 0.5)).toMatchObject({ lr: 0.5, warmupSteps: 3 });
  });
});

describe('saveTotalLimit', () => {
  async function runDir(name: string, steps: number[]): Promise<string> {
    const dir = path.join(root, name);
    for (const s of steps) {
      await mkdir(path.join(dir, `checkpoint-${s}`), { recursive: true });
      await writeFile(path.join(dir, `checkpoint-${s}`, 'trainer_state.json'), '{}');
    }
    await mkdir(path.join(dir, 'final'), { recursive: true });
    return dir;
  }
  const names = async (dir: string) => (await readdir(dir)).sort();

  it('keeps the newest N checkpoint-<step> folders, deleting the oldest first; 0 keeps all; final/ is never one', async () => {
    const dir = await runDir('rotate', [1, 2, 10, 20, 3]);
    expect(await rotateCheckpoints(dir, 0)).toEqual([]);
    expect(await names(dir)).toEqual(['checkpoint-1', 'checkpoint-10', 'checkpoint-2', 'checkpoint-20', 'checkpoint-3', 'final']);
    const gone = await rotateCheckpoints(dir, 2, path.join(dir, 'checkpoint-20'));
    expect(gone.map((d) => path.basename(d))).toEqual(['checkpoint-1', 'checkpoint-2', 'checkpoint-3']);
    expect(await names(dir)).toEqual(['checkpoint-10', 'checkpoint-20', 'final']);
    expect(await rotateCheckpoints(dir, 1)).toHaveLength(1);
    expect(await names(dir)).toEqual(['checkpoint-20', 'final']);
  });

  it('never deletes the checkpoint just written, even when a resumed run left newer-numbered ones', async () => {
    const dir = await runDir('resumed', [2, 4, 6, 8]);
    // resumed from checkpoint-4, the run writes checkpoint-5 while 6 and 8 remain from before
    await mkdir(path.join(dir, 'checkpoint-5'));
    await rotateCheckpoints(dir, 2, path.join(dir, 'checkpoint-5'));
    expect(await names(dir)).toEqual(['checkpoint-5', 'checkpoint-8', 'final']);
  });

  it('in the supervised trainer: the newest N checkpoints and final/, or every checkpoint with 0', async () => {
    const rng = new Random(3);
    const train: SupervisedExample[] = Array.from({ length: 8 }, () => {
      const ids = [1, ...Array.from({ length: 4 }, () => 2 + rng.int(12))];
      return { ids, lossMask: ids.map((_, i) => (i > 1 ? 1 : 0)) };
    });
    for (const [limit, kept] of [
      [2, ['checkpoint-3', 'checkpoint-4', 'final']],
      [0, ['checkpoint-1', 'checkpoint-2', 'checkpoint-3', 'checkpoint-4', 'final']],
    ] as const) {
      const out = path.join(root, `sft-limit-${limit}`);
      const model = await Model.create(TINY, { seed: 1 });
      // a checkpoint after every step but the last (the last step's model is final/)
      await new SupervisedTrainer({ model, train, padId: 0, outputDir: out, config: { batchSize: 4, maxSteps: 5, saveEvery: 1, saveTotalLimit: limit } }).train();
      expect(await names(out), `saveTotalLimit ${limit}`).toEqual(kept);
      model.dispose();
    }
  });
});
