// The supervised trainer: its schedule, its loss against an independent computation, gradient
// accumulation equal to one big batch, example weights, checkpoints, and an exact resume.
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import {
  BatchSampler,
  Model,
  Random,
  type SupervisedExample,
  SupervisedTrainer,
  type TrainerEvent,
  collate,
  learningRate,
  loadModel,
} from '@s2s/core';

const CFG = { vocabSize: 40, maxSeqLen: 24, numLayers: 2, numHeads: 2, channels: 16 };
const root = await mkdtemp(path.join(tmpdir(), 's2s-sft-'));
afterAll(() => rm(root, { recursive: true, force: true }));

/** prompt: random tokens; response: the prompt's tokens + 1 (learnable), loss on the response only */
function examples(n: number, seed: number): SupervisedExample[] {
  const rng = new Random(seed);
  return Array.from({ length: n }, () => {
    const len = 3 + rng.int(5);
    const prompt = Array.from({ length: len }, () => 1 + rng.int(30));
    const response = prompt.map((t) => t + 1);
    return { ids: [0, ...prompt, 39, ...response], lossMask: [0, ...prompt.map(() => 0), 0, ...response.map(() => 1)] };
  });
}

async function params(m: Model): Promise<Float32Array> {
  return m.readBuffer('params');
}

describe('learning-rate schedule', () => {
  it('warms up linearly, then follows the cosine down to its floor', () => {
    const c = { lr: 1, warmupSteps: 4, totalSteps: 14, minLrRatio: 0.1 };
    expect([1, 2, 3, 4].map((s) => learningRate(s, c))).toEqual([0.25, 0.5, 0.75, 1]);
    expect(learningRate(9, c)).toBeCloseTo(0.1 + 0.9 * 0.5, 12); // halfway down the cosine
    expect(learningRate(14, c)).toBeCloseTo(0.1, 12);
    expect(learningRate(20, c)).toBeCloseTo(0.1, 12);
  });
});

describe('SupervisedTrainer', () => {
  const train = examples(64, 1);

  it('optimises the mean NLL of the response tokens only', async () => {
    const model = await Model.create(CFG, { seed: 1 });
    // the first step's loss, computed independently from the model's log-probs
    const batchIdx: number[] = [];
    const events: TrainerEvent[] = [];
    const trainer = new SupervisedTrainer({ model, train, padId: 0, config: { batchSize: 8, maxSteps: 1, seed: 3 }, onEvent: (e) => events.push(e) });
    const probe = await Model.create(CFG, { seed: 1 });
    // the sampler's first batch of 8 is the first 8 of the epoch-0 order
    batchIdx.push(...new BatchSampler(train.length, { batchSize: 8, seed: 3 }).next().indices);
    const batch = collate(batchIdx.map((i) => train[i]), 0);
    const { logprob } = await probe.forward(batch);
    let nll = 0;
    let count = 0;
    batchIdx.forEach((i, b) => {
      const ex = train[i];
      for (let t = 1; t < ex.ids.length; t++)
        if (ex.lossMask[t]) {
          nll -= logprob[b * batch.T + t - 1];
          count++;
        }
    });
    await trainer.train();
    const step = events.find((e) => e.type === 'step')!;
    expect(step.type === 'step' && step.loss).toBeCloseTo(nll / count, 5);
    model.dispose();
    probe.dispose();
  });

  it('accumulates gradients exactly like one big batch', async () => {
    const a = await Model.create(CFG, { seed: 2 });
    const b = await Model.create(CFG, { seed: 2 });
    await new SupervisedTrainer({ model: a, train, padId: 0, config: { batchSize: 16, gradAccumulation: 1, maxSteps: 2, seed: 5 } }).train();
    await new SupervisedTrainer({ model: b, train, padId: 0, config: { batchSize: 4, gradAccumulation: 4, maxSteps: 2, seed: 5 } }).train();
    const [pa, pb] = [await params(a), await params(b)];
    let worst = 0;
    for (let i = 0; i < pa.length; i++) worst = Math.max(worst, Math.abs(pa[i] - pb[i]));
    expect(worst).toBeLessThan(1e-5);
    a.dispose();
    b.dispose();
  });

  it('gives weight-0 examples no influence', async () => {
    const model = await Model.create(CFG, { seed: 4 });
    const before = await params(model);
    const zero = train.map((e) => ({ ...e, weight: 0 }));
    await new SupervisedTrainer({ model, train: zero, padId: 0, config: { batchSize: 8, maxSteps: 2 } }).train();
    expect(await params(model)).toEqual(before);
    expect(() => new SupervisedTrainer({ model, train: [{ ...train[0], weight: -1 }], padId: 0 })).toThrow('weights must be finite and >= 0');
    model.dispose();
  });

  it('learns, evaluates on schedule and writes Hugging Face-style checkpoints', async () => {
    const out = path.join(root, 'run');
    const model = await Model.create(CFG, { seed: 6 });
    const evals: number[] = [];
    const losses: number[] = [];
    const trainer = new SupervisedTrainer({
      model,
      train,
      eval: examples(16, 99),
      padId: 0,
      outputDir: out,
      config: { batchSize: 16, epochs: 30, evalEvery: 40, saveEvery: 20, saveTotalLimit: 2, lr: 3e-3, seed: 1 },
      onEvent: (e) => {
        if (e.type === 'eval') evals.push(e.metrics.evalLoss);
        if (e.type === 'step') losses.push(e.loss);
      },
    });
    expect(trainer.totalSteps).toBe(120);
    const r = await trainer.train();
    expect(evals).toHaveLength(3);
    // it fits the training set, and what it learns carries over to held-out examples
    expect(r.loss).toBeLessThan(0.85 * losses[0]);
    expect(evals[2]).toBeLessThan(evals[0]);
    expect(r.history.at(-1)!.eval).toEqual({ evalLoss: evals[2] });
    expect((await readdir(out)).sort()).toEqual(['checkpoint-100', 'checkpoint-80', 'final']);
    expect((await readdir(path.join(out, 'checkpoint-100'))).sort()).toEqual([
      'config.json',
      'model.safetensors',
      'optimizer.safetensors',
      'trainer_state.json',
    ]);
    const state = JSON.parse(await readFile(path.join(out, 'checkpoint-100', 'trainer_state.json'), 'utf8'));
    expect(state).toMatchObject({ kind: 'supervised', step: 100, totalSteps: 120 });
    const final = await loadModel(r.savedTo!);
    expect(await params(final)).toEqual(await params(model));
    model.dispose();
    final.dispose();
  });

  it('resumes a stopped run to exactly the weights of an uninterrupted one', async () => {
    const config = { batchSize: 8, gradAccumulation: 2, maxSteps: 10, lr: 2e-3, seed: 7 };
    const straight = await Model.create(CFG, { seed: 8 });
    await new SupervisedTrainer({ model: straight, train, padId: 0, config }).train();

    const out = path.join(root, 'resume');
    const stop = new AbortController();
    const first = await Model.create(CFG, { seed: 8 });
    const r1 = await new SupervisedTrainer({
      model: first,
      train,
      padId: 0,
      config,
      outputDir: out,
      signal: stop.signal,
      onEvent: (e) => void (e.type === 'step' && e.step === 4 && stop.abort()),
    }).train();
    expect(r1).toMatchObject({ stopped: true, steps: 4 });
    first.dispose();
    const resumed = await SupervisedTrainer.resume(r1.savedTo!, { train, padId: 0 });
    expect(resumed.currentStep).toBe(4);
    const r2 = await resumed.train();
    expect(r2.steps).toBe(10);
    expect(await params(resumed.model)).toEqual(await params(straight));
    straight.dispose();
    resumed.model.dispose();
  });

  it('refuses a bad configuration, naming the field', () => {
    const model = Model.empty(CFG);
    expect(() => new SupervisedTrainer({ model, train, padId: 0, config: { batchSize: 0 } })).toThrow('batchSize must be a positive integer');
    expect(() => new SupervisedTrainer({ model, train: [], padId: 0 })).toThrow('the training set is empty');
    expect(() => new SupervisedTrainer({ model, train, padId: 0, config: { lr: -1 } })).toThrow('lr must be a finite number >= 0');
    model.dispose();
  });
});
