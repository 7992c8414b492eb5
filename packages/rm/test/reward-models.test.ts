// The two reward models on toy preferences: the scalar one ranks pairs by the Bradley-Terry loss
// (checked against its formula and finite differences), the seq2seq one learns to rewrite.
import { mkdtemp, readFile, rm as rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { BatchSampler, Model, Random, SupervisedTrainer, Tokenizer, resolveTemplate, wordLevelTokenizerJSON } from '@s2s/core';
import { REWARD_STATS_FILE, ScalarRewardTrainer, bradleyTerry, encodePairs, evaluateRewrites, rewriteExamples, sequenceRewards } from '@s2s/rm';

const WORDS = ['good', 'bad', ...Array.from({ length: 12 }, (_, i) => `n${i}`)];
const tok = Tokenizer.fromJSON(wordLevelTokenizerJSON(WORDS, ['<pad>', '<unk>', '<bos>', '<eos>', '<sep>', '<fix>']), {
  tokenizerConfig: { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>', unk_token: '<unk>' },
});
const tpl = resolveTemplate({ promptPrefix: '', responsePrefix: ' <sep>', rewritePrefix: ' <fix>', addBos: true, addEos: true });
const root = await mkdtemp(path.join(tmpdir(), 's2s-rm-'));
afterAll(() => rmdir(root, { recursive: true, force: true }));

/** Responses of noise words where the chosen one says "good" somewhere and the rejected one "bad". */
function toyPairs(n: number, seed: number) {
  const rng = new Random(seed);
  const noise = () => Array.from({ length: 2 + rng.int(3) }, () => `n${rng.int(12)}`);
  return Array.from({ length: n }, () => {
    const body = noise();
    const at = rng.int(body.length + 1);
    const withWord = (w: string) => [...body.slice(0, at), w, ...body.slice(at)].join(' ');
    return { prompt: noise().join(' '), chosen: withWord('good'), rejected: withWord('bad') };
  });
}

const CFG = { vocabSize: tok.vocabSize, maxSeqLen: 32, numLayers: 2, numHeads: 2, channels: 24 };

describe('Bradley-Terry', () => {
  it('is -log sigmoid(rc - rr) with the right derivatives, stable far from zero', () => {
    const { loss, dChosen, dRejected } = bradleyTerry(0.7, -0.4);
    expect(loss).toBeCloseTo(-Math.log(1 / (1 + Math.exp(-1.1))), 12);
    const h = 1e-6;
    expect(dChosen).toBeCloseTo((bradleyTerry(0.7 + h, -0.4).loss - bradleyTerry(0.7 - h, -0.4).loss) / (2 * h), 6);
    expect(dRejected).toBeCloseTo((bradleyTerry(0.7, -0.4 + h).loss - bradleyTerry(0.7, -0.4 - h).loss) / (2 * h), 6);
    expect(bradleyTerry(800, 0).loss).toBe(0);
    expect(bradleyTerry(0, 800).loss).toBeCloseTo(800, 9);
    expect(Number.isFinite(bradleyTerry(0, 800).dChosen)).toBe(true);
  });
});

describe('the scalar reward model', () => {
  it('learns to prefer the chosen responses of held-out pairs', async () => {
    const train = encodePairs(tok, tpl, toyPairs(400, 1)).pairs;
    const evalPairs = encodePairs(tok, tpl, toyPairs(100, 2)).pairs;
    const sft = await Model.create(CFG, { seed: 1 });
    const model = await sft.clone({ valueHead: true, seed: 2 });
    // the first step's loss, computed independently from the rewards before training
    const first: number[] = [];
    const trainer = new ScalarRewardTrainer({
      model,
      train,
      eval: evalPairs,
      padId: tok.padId!,
      outputDir: path.join(root, 'scalar'),
      tokenizer: tok,
      config: { batchSize: 16, epochs: 4, lr: 2e-3, seed: 3 },
      onEvent: (e) => void (e.type === 'step' && e.step === 1 && first.push(e.loss)),
    });
    const idx = new BatchSampler(train.length, { batchSize: 16, seed: 3 }).next().indices;
    const probe = await sft.clone({ valueHead: true, seed: 2 });
    const rc = await sequenceRewards(probe, idx.map((i) => train[i].chosen), tok.padId!);
    const rr = await sequenceRewards(probe, idx.map((i) => train[i].rejected), tok.padId!);
    const expected = rc.reduce((a, c, k) => a + bradleyTerry(c, rr[k]).loss, 0) / idx.length;

    const before = await trainer.pairMetrics(evalPairs);
    const r = await trainer.train();
    expect(first[0]).toBeCloseTo(expected, 5);
    expect(r.eval!.evalLoss).toBeLessThan(0.5 * before.loss);
    expect(r.eval!.accuracy).toBeGreaterThan(0.95);
    // reward statistics are written beside the final model
    const stats = JSON.parse(await readFile(path.join(r.savedTo!, REWARD_STATS_FILE), 'utf8'));
    expect(stats.std).toBeGreaterThan(0);
    expect(stats).toEqual(trainer.rewardStats);
    for (const m of [sft, model, probe]) m.dispose();
  });

  it('needs a value head', async () => {
    const m = Model.empty(CFG);
    expect(() => new ScalarRewardTrainer({ model: m, train: [{ chosen: [1], rejected: [2] }], padId: 0 })).toThrow('needs a value head');
    m.dispose();
  });
});

describe('the seq2seq reward model', () => {
  it('builds both mappings with their weights and loss on the rewrite only', () => {
    const pairs = toyPairs(3, 5);
    const r = rewriteExamples(tok, tpl, pairs, { correctionWeight: 2, identityWeight: 0.5 });
    expect(r.mappings).toEqual(['correction', 'identity', 'correction', 'identity', 'correction', 'identity']);
    expect(r.examples.map((e) => e.weight)).toEqual([2, 0.5, 2, 0.5, 2, 0.5]);
    const fix = tok.tokenToId('<fix>')!;
    r.examples.forEach((e, i) => {
      const p = pairs[i >> 1];
      const after = e.ids.indexOf(fix) + 1;
      expect(tok.decode(e.ids.slice(after), { skipSpecialTokens: true })).toBe(p.chosen);
      expect(e.lossMask.indexOf(1)).toBe(after);
      const source = tok.decode(e.ids.slice(e.ids.indexOf(tok.tokenToId('<sep>')!) + 1, after - 2));
      expect(source).toBe(i % 2 ? p.chosen : p.rejected);
    });
    expect(rewriteExamples(tok, tpl, pairs, { identityWeight: 0 }).mappings).toEqual(['correction', 'correction', 'correction']);
  });

  it('learns to correct "bad" to "good" and to leave good responses alone', async () => {
    // copying the response through the rewrite takes some width and a few hundred steps to appear
    const rm = await Model.create({ ...CFG, maxSeqLen: 40, numHeads: 4, channels: 128 }, { seed: 7 });
    const { examples } = rewriteExamples(tok, tpl, toyPairs(2000, 8));
    await new SupervisedTrainer({ model: rm, train: examples, padId: tok.padId!, config: { batchSize: 32, maxSteps: 300, lr: 2e-3, seed: 1 } }).train();
    const acc = await evaluateRewrites(rm, tok, tpl, toyPairs(40, 9));
    expect(acc.identity.exactMatch).toBeGreaterThan(0.8);
    expect(acc.correction.tokenAccuracy).toBeGreaterThan(0.8);
    rm.dispose();
  });
});
