// Reward extraction: the scoring rule on hand-worked cases, and the fused path (one greedy-match
// pass in the engine) against a slow reference that finds each argmax by scoring every token.
import { describe, expect, it } from 'vitest';

import { Model, Random, Tokenizer, collate, encodeRewrite, resolveTemplate, wordLevelTokenizerJSON } from '@s2s/core';
import { aggregateScores, extractRewards, tokenScores } from '@s2s/rm';

/** What a reward model that always writes `correction` at position t would match (m_t = [y_t == c_t]). */
const against = (correction: string, y: string) => {
  const c = correction.split(' ');
  return y.split(' ').map((w, t) => (c[t] === w ? 1 : 0));
};

describe('the scoring rule on hand-worked cases', () => {
  // the reward model's own correction of every response below
  const c = 'anna bought a red bike . <eos>';

  it('an identical response scores +1 everywhere, EOS included', () => {
    expect(tokenScores(against(c, c))).toEqual({ scores: [1, 1, 1, 1, 1, 1, 1], firstDivergence: -1 });
  });

  it('one substituted token: +1 before it, -1 at it, 0 on the later matches', () => {
    expect(tokenScores(against(c, 'anna bought a blue bike . <eos>'))).toEqual({ scores: [1, 1, 1, -1, 0, 0, 0], firstDivergence: 3 });
  });

  it('an inserted token shifts everything after it: -1 from there on', () => {
    expect(tokenScores(against(c, 'anna bought a very red bike . <eos>'))).toEqual({ scores: [1, 1, 1, -1, -1, -1, -1, -1], firstDivergence: 3 });
  });

  it('a response that goes on where the model would stop is penalised from there', () => {
    expect(tokenScores(against(c, 'anna bought a red bike . what a story . <eos>')).scores).toEqual([1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1]);
  });

  it('an empty response (EOS only) scores -1 at its EOS, since the model would have written something', () => {
    expect(tokenScores(against(c, '<eos>'))).toEqual({ scores: [-1], firstDivergence: 0 });
  });

  it('the ablations keep one sign, and PPO-S sums or averages', () => {
    const m = against(c, 'anna bought a blue bike . <eos>');
    expect(tokenScores(m, { variant: 'positive-only' }).scores).toEqual([1, 1, 1, 0, 0, 0, 0]);
    expect(tokenScores(m, { variant: 'negative-only' }).scores).toEqual([0, 0, 0, -1, 0, 0, 0]);
    expect(tokenScores(m, { positive: 0.5, negative: -2 }).scores).toEqual([0.5, 0.5, 0.5, -2, 0, 0, 0]);
    expect(aggregateScores([1, 1, 1, -1, 0, 0, 0], 'sum')).toBe(2);
    expect(aggregateScores([1, 1, 1, -1, 0, 0, 0], 'mean')).toBeCloseTo(2 / 7);
  });
});

describe('extractRewards', () => {
  it('equals the rule applied to argmaxes found the slow way, from every token\'s log-prob', async () => {
    const words = Array.from({ length: 20 }, (_, i) => `w${i}`);
    const specials = ['<pad>', '<unk>', '<bos>', '<eos>', '<sep>', '<fix>'];
    const tok = Tokenizer.fromJSON(wordLevelTokenizerJSON(words, specials), {
      tokenizerConfig: { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>', unk_token: '<unk>' },
    });
    const tpl = resolveTemplate({ promptPrefix: '', responsePrefix: ' <sep>', rewritePrefix: ' <fix>', addBos: true, addEos: true });
    const V = tok.vocabSize;
    const rm = await Model.create({ vocabSize: V, maxSeqLen: 40, numLayers: 2, numHeads: 2, channels: 16 }, { seed: 4 });
    const rng = new Random(9);
    const items = Array.from({ length: 5 }, (_, i) => {
      const prompt = Array.from({ length: 2 + rng.int(4) }, () => rng.pick(words)).join(' ');
      const response = Array.from({ length: 1 + rng.int(6) }, () => tok.tokenToId(rng.pick(words))!);
      // some finished (EOS), some cut off by the length limit
      return { prompt, response: i % 2 ? [...response, tok.eosId!] : response };
    });
    const fast = await extractRewards(rm, tok, tpl, items, { batchSize: 2 });

    const encoded = items.map((it) => encodeRewrite(tok, tpl, it.prompt, it.response, it.response)!);
    const batch = collate(encoded, tok.padId!);
    const best = new Float32Array(batch.B * batch.T).fill(-Infinity);
    const arg = new Int32Array(batch.B * batch.T);
    for (let v = 0; v < V; v++) {
      const { logprob } = await rm.forward({ ...batch, targets: new Int32Array(batch.B * batch.T).fill(v) });
      for (let j = 0; j < logprob.length; j++)
        if (logprob[j] > best[j]) {
          best[j] = logprob[j];
          arg[j] = v;
        }
    }
    items.forEach((it, b) => {
      const start = encoded[b].targetSpan[0];
      // position t of the response is predicted at t - 1
      const argmax = it.response.map((_, t) => arg[b * batch.T + start + t - 1]);
      const slow = tokenScores(argmax.map((a, t) => (a === it.response[t] ? 1 : 0)));
      expect(fast[b].argmax).toEqual(argmax);
      expect(fast[b].scores).toEqual(slow.scores);
      expect(fast[b].firstDivergence).toBe(slow.firstDivergence);
      expect(fast[b].scores).toHaveLength(it.response.length);
    });
    rm.dispose();
  });
});
