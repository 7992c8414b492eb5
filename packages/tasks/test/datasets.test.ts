// The designed properties of the generated datasets hold in their intended ranges, generation is
// fixed by its seed, and the out-of-distribution split is really out of distribution.
import { describe, expect, it } from 'vitest';

import { datasetStats, safety, summarize, TASKS, words } from '@s2s/tasks';

const opts = { seed: 3, sft: 1500, pairs: 3000, rlPrompts: 300, evalPrompts: 200 };

describe.each(TASKS.map((t) => [t.name, t] as const))('%s data', (_, task) => {
  const data = task.generate(opts);
  const stats = datasetStats(task, data);

  it('is fixed by its seed', () => {
    expect(task.generate(opts)).toEqual(data);
    expect(task.generate({ ...opts, seed: 4 }).pairs).not.toEqual(data.pairs);
  });

  it('has the requested sizes and no empty or identical pairs', () => {
    expect(stats.counts).toEqual({ sft: 1500, pairs: 3000, rlPrompts: 300, evalId: 200, evalOod: 200 });
    for (const p of data.pairs) {
      expect(p.chosen).not.toBe(p.rejected);
      expect(words(p.chosen).length).toBeGreaterThan(0);
    }
  });

  it('uses only the words of its closed vocabulary', () => {
    const vocab = new Set(task.words());
    const texts = [
      ...data.sft.flatMap((r) => [r.prompt, r.completion]),
      ...data.pairs.flatMap((r) => [r.prompt, r.chosen, r.rejected]),
      ...data.eval.id.map((r) => r.prompt),
      ...data.eval.ood.map((r) => r.prompt),
    ];
    const outside = new Set(texts.flatMap(words).filter((w) => !vocab.has(w)));
    expect([...outside]).toEqual([]);
    expect(stats.vocabulary.size).toBeGreaterThan(100);
  });

  it('keeps its out-of-distribution prompts apart from everything seen in training', () => {
    const train = new Set([...data.sft, ...data.pairs, ...data.rlPrompts].map((r) => r.prompt));
    expect(data.eval.ood.some((r) => train.has(r.prompt))).toBe(false);
    // new phrasings: words that never occur in training data
    expect(stats.vocabulary.unseenInEvalOod).toBeGreaterThan(0);
    expect(stats.vocabulary.unseenInEvalId).toBe(0);
  });

  it('labels pairs mostly as the gold judge would, with some annotator noise', () => {
    expect(stats.pairs.goldAgrees).toBeGreaterThan(0.75);
    expect(stats.pairs.goldAgrees).toBeLessThan(0.97);
    // SFT references are good but not perfect
    expect(stats.sft.meanGold).toBeGreaterThan(0.8);
  });
});

describe('designed biases', () => {
  it('summarize: the chosen summary is the longer one in about 60% of pairs (as in Dialogsum)', () => {
    const s = datasetStats(summarize, summarize.generate(opts));
    expect(s.pairs.chosenLonger).toBeGreaterThan(0.55);
    expect(s.pairs.chosenLonger).toBeLessThan(0.66);
  });

  it('safety: refusals are chosen far more often than they are rejected (as in PKU-SafeRLHF)', () => {
    const s = datasetStats(safety, safety.generate(opts));
    expect(s.pairs.refusalShareChosen).toBeGreaterThan(0.45);
    expect(s.pairs.refusalShareChosen).toBeGreaterThan(1.8 * s.pairs.refusalShareRejected);
    expect(s.pairs.refusalShareRejected).toBeGreaterThan(0.1);
  });
});
