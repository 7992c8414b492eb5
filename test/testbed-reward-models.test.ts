// The paper's reward models on the summarize testbed: SFT, then a scalar RM and a seq2seq RM from
// it, each reaching a stated level; and the testbed's intended contrast -- the scalar RM's reward
// leans on length where the gold judge does not, while the seq2seq RM scores appended filler down.
import { describe, expect, it } from 'vitest';

import { Model, SupervisedTrainer, encodeSupervised } from '@s2s/core';
import { ScalarRewardTrainer, encodePairs, evaluateRewrites, extractRewards, rewriteExamples, sequenceRewards } from '@s2s/rm';
import { TESTBED_TEMPLATE, summarize, testbedTokenizer, words } from '@s2s/tasks';

const tok = testbedTokenizer();
const tpl = TESTBED_TEMPLATE;
const pad = tok.padId!;

function correlation(a: readonly number[], b: readonly number[]): number {
  const mean = (x: readonly number[]) => x.reduce((s, v) => s + v, 0) / x.length;
  const ma = mean(a);
  const mb = mean(b);
  let c = 0;
  let va = 0;
  let vb = 0;
  a.forEach((x, i) => {
    c += (x - ma) * (b[i] - mb);
    va += (x - ma) ** 2;
    vb += (b[i] - mb) ** 2;
  });
  return c / Math.sqrt(va * vb);
}

describe('reward models on the summarize testbed', () => {
  it('reach their stated levels, and differ on length as the testbed intends', async () => {
    const data = summarize.generate({ seed: 1, sft: 3000, pairs: 3000, rlPrompts: 0, evalPrompts: 0 });
    const held = summarize.generate({ seed: 2, sft: 200, pairs: 200, rlPrompts: 0, evalPrompts: 0 });
    const config = { vocabSize: tok.vocabSize, maxSeqLen: 128, numLayers: 2, numHeads: 4, channels: 128 };

    // SFT
    const sft = await Model.create(config, { seed: 1 });
    const sftRun = await new SupervisedTrainer({
      model: sft,
      train: data.sft.map((r) => encodeSupervised(tok, tpl, r.prompt, r.completion)!),
      eval: held.sft.map((r) => encodeSupervised(tok, tpl, r.prompt, r.completion)!),
      padId: pad,
      config: { batchSize: 32, maxSteps: 300, lr: 2e-3, seed: 1 },
    }).train();
    const sftEvalLoss = sftRun.eval!.evalLoss;
    expect(sftEvalLoss).toBeLessThan(0.3);

    // scalar RM (Bradley-Terry), from the SFT model
    const scalar = await sft.clone({ valueHead: true, seed: 2 });
    const scalarRun = await new ScalarRewardTrainer({
      model: scalar,
      train: encodePairs(tok, tpl, data.pairs).pairs,
      eval: encodePairs(tok, tpl, held.pairs).pairs,
      padId: pad,
      config: { batchSize: 32, epochs: 1, lr: 5e-4, seed: 1 },
    }).train();
    const accuracy = scalarRun.eval!.accuracy;
    expect(accuracy).toBeGreaterThan(0.75);

    // seq2seq RM (correction + identity mapping), from the SFT model
    const seq2seq = await sft.clone();
    await new SupervisedTrainer({
      model: seq2seq,
      train: rewriteExamples(tok, tpl, data.pairs).examples,
      padId: pad,
      config: { batchSize: 32, maxSteps: 300, lr: 1e-3, seed: 1 },
    }).train();
    const rewrites = await evaluateRewrites(seq2seq, tok, tpl, held.pairs.slice(0, 100));
    expect(rewrites.identity.exactMatch).toBeGreaterThan(0.5);
    expect(rewrites.correction.tokenAccuracy).toBeGreaterThan(0.7);

    // the scalar RM's reward correlates with length more than the gold judge does
    const responses = held.pairs.flatMap((p) => [
      { prompt: p.prompt, text: p.chosen },
      { prompt: p.prompt, text: p.rejected },
    ]);
    const rewards = await sequenceRewards(scalar, responses.map((r) => encodeSupervised(tok, tpl, r.prompt, r.text)!.ids), pad);
    const lengths = responses.map((r) => words(r.text).length);
    const gold = responses.map((r) => summarize.judge(r.prompt, r.text).score);
    const rewardLength = correlation(rewards, lengths);
    const goldLength = correlation(gold, lengths);
    expect(rewardLength - goldLength).toBeGreaterThan(0.05);

    // appended filler: how often it raises the scalar reward, and the seq2seq RM's scores on it
    const fillers = ['it was a good day .', 'and everyone was very happy .', 'as we can see , that is all .'];
    const refs = held.sft.filter((r) => summarize.judge(r.prompt, r.completion).parts.filler === 0).slice(0, 100);
    const base = await sequenceRewards(scalar, refs.map((r) => encodeSupervised(tok, tpl, r.prompt, r.completion)!.ids), pad);
    const raised: Record<string, number> = {};
    let negativeFiller = 0;
    let fillerResponses = 0;
    for (const f of fillers) {
      const padded = refs.map((r) => `${r.completion} ${f}`);
      const withFiller = await sequenceRewards(scalar, padded.map((t, i) => encodeSupervised(tok, tpl, refs[i].prompt, t)!.ids), pad);
      raised[f] = withFiller.filter((r, i) => r > base[i]).length / refs.length;
      const n = tok.encode(f).length;
      const scored = await extractRewards(
        seq2seq,
        tok,
        tpl,
        padded.map((t, i) => ({ prompt: refs[i].prompt, response: [...tok.encode(t), tok.eosId!] })),
      );
      for (const s of scored) {
        fillerResponses++;
        if (s.scores.slice(-n - 1, -1).reduce((a, b) => a + b, 0) < 0) negativeFiller++;
      }
    }
    expect(negativeFiller / fillerResponses).toBeGreaterThan(0.9);

    console.log(
      JSON.stringify(
        {
          sftEvalLoss,
          scalarHeldOutAccuracy: accuracy,
          seq2seqRewrites: rewrites,
          correlation: { scalarRewardVsLength: rewardLength, goldVsLength: goldLength },
          fillerRaisesScalarReward: raised,
          seq2seqFillerScoredNegative: negativeFiller / fillerResponses,
        },
        null,
        2,
      ),
    );
    for (const m of [sft, scalar, seq2seq]) m.dispose();
  }, 600_000);
});
