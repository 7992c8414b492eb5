// A small engine model trained briefly on the summarize SFT data writes well-formed summaries
// that the gold judge scores far above random responses.
import { describe, expect, it } from 'vitest';

import { BatchSampler, Model, Random, collate, encodePrompt, encodeSupervised } from '@s2s/core';
import { summarize, TESTBED_TEMPLATE, testbedTokenizer, words } from '@s2s/tasks';

describe('the summarize testbed is learnable', () => {
  it('a briefly trained model summarizes far better than random responses', async () => {
    const tok = testbedTokenizer();
    const data = summarize.generate({ seed: 11, sft: 3000, pairs: 0, rlPrompts: 0, evalPrompts: 40 });
    const examples = data.sft.map((r) => encodeSupervised(tok, TESTBED_TEMPLATE, r.prompt, r.completion)!);
    const T = Math.max(...examples.map((e) => e.ids.length));
    const model = await Model.create({ vocabSize: tok.vocabSize, maxSeqLen: T + 8, numLayers: 2, numHeads: 4, channels: 64 }, { seed: 5 });
    const sampler = new BatchSampler(examples.length, { batchSize: 32, seed: 1 });
    const losses: number[] = [];
    for (let step = 0; step < 500; step++) {
      const batch = collate(sampler.next().indices.map((i) => examples[i]), tok.padId!);
      const { logprob } = await model.forward(batch);
      const count = batch.lossMask.reduce((a, b) => a + b, 0);
      losses.push(-logprob.reduce((a, b) => a + b, 0) / count);
      await model.backward({ dlogprob: batch.lossMask.map((m) => -m / count) });
      await model.step({ lr: step < 30 ? (3e-3 * (step + 1)) / 30 : 3e-3, maxGradNorm: 1 });
    }
    expect(losses.at(-1)!).toBeLessThan(0.3 * losses[0]);

    const prompts = data.eval.id.map((r) => r.prompt);
    const gens = await model.generate(
      prompts.map((p) => encodePrompt(tok, TESTBED_TEMPLATE, p)!),
      { maxNewTokens: 24, temperature: 0, eos: tok.eosId! },
    );
    const outputs = gens.map((g) => tok.decode(g.tokens, { skipSpecialTokens: true }));
    const gold = outputs.map((o, i) => summarize.judge(prompts[i], o).score);
    // random responses of the same lengths, drawn from the task's words
    const vocab = summarize.words();
    const rng = new Random(3);
    const random = outputs.map((o, i) => summarize.judge(prompts[i], Array.from({ length: words(o).length }, () => rng.pick(vocab)).join(' ')).score);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    // well-formed: ends with EOS and a full stop, mentions the dialogue's person first
    expect(gens.filter((g) => g.finishReason === 'eos').length).toBeGreaterThan(0.9 * gens.length);
    expect(outputs.filter((o) => o.endsWith('.')).length).toBeGreaterThan(0.9 * outputs.length);
    // 500 steps teach the format and the facts: greedy decoding writes the demonstrations' most
    // common kind, the complete summary, though fewer than half of them are flawless
    expect(mean(gold)).toBeGreaterThan(0.6);
    expect(mean(random)).toBeLessThan(0);
    expect(mean(gold) - mean(random)).toBeGreaterThan(1);
    model.dispose();
  });
});
