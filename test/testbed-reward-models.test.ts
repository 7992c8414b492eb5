// The paper's reward models on the summarize testbed: SFT, then a scalar RM and a seq2seq RM from
// it, each reaching a stated level; and the testbed's intended contrast -- the scalar RM's reward
// leans on length where the gold judge does not, while the seq2seq RM scores appended filler down.
import { describe, expect, it } from 'vitest';

import { Model, SupervisedTrainer, encodeSupervised } from '@s2s/core';
import { lengthProbe } from '@s2s/cli';
import { ScalarRewardTrainer, encodePairs, evaluateRewrites, rewriteExamples } from '@s2s/rm';
import { TESTBED_TEMPLATE, summarize, testbedTokenizer } from '@s2s/tasks';

const tok = testbedTokenizer();
const tpl = TESTBED_TEMPLATE;
const pad = tok.padId!;

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

    // the scalar RM's reward correlates with length more than the gold judge does; the seq2seq RM
    // scores appended filler down
    const probe = await lengthProbe(scalar, seq2seq, tok, tpl, summarize, { pairs: held.pairs, references: held.sft });
    expect(probe.references).toBeGreaterThan(50);
    expect(probe.scalarVsLength - probe.goldVsLength).toBeGreaterThan(0.05);
    expect(probe.fillerScoredNegative).toBeGreaterThan(0.9);
    // how often filler raises the scalar reward is reported, not asserted: the testbed's pairs
    // make length a shortcut, not filler as such (measured: never, for all three sentences)

    console.log(
      JSON.stringify(
        {
          sftEvalLoss,
          scalarHeldOutAccuracy: accuracy,
          seq2seqRewrites: rewrites,
          lengthProbe: probe,
        },
        null,
        2,
      ),
    );
    for (const m of [sft, scalar, seq2seq]) m.dispose();
  }, 600_000);
});
