// explain() on a seq2seq reward model that has learned one correction ("bad" -> "good"): where the
// response diverges, what the model would have written there, its rewrite, and the three
// renderings (terminal with and without colour, HTML) of the same scores.
import { beforeAll, describe, expect, it } from 'vitest';

import { Model, SupervisedTrainer, Tokenizer, resolveTemplate, wordLevelTokenizerJSON } from '@s2s/core';
import { explain, extractRewards, renderExplanation, renderExplanationHtml, rewriteExamples } from '@s2s/rm';

const tok = Tokenizer.fromJSON(wordLevelTokenizerJSON(['good', 'bad', 'n1', 'n2', 'n3', '<&>'], ['<pad>', '<unk>', '<bos>', '<eos>', '<sep>', '<fix>']), {
  tokenizerConfig: { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>', unk_token: '<unk>' },
});
const tpl = resolveTemplate({ responsePrefix: ' <sep>', rewritePrefix: ' <fix>', addBos: true });
let rm: Model;

beforeAll(async () => {
  const pairs = [
    { prompt: 'n1 n2', chosen: 'n1 good n3', rejected: 'n1 bad n3' },
    { prompt: 'n3', chosen: 'good n2', rejected: 'bad n2' },
    { prompt: 'n2', chosen: 'n1 n3 good', rejected: 'n1 n3 bad' },
  ];
  rm = await Model.create({ vocabSize: tok.vocabSize, maxSeqLen: 40, numLayers: 2, numHeads: 4, channels: 64 }, { seed: 1 });
  const { examples } = rewriteExamples(tok, tpl, pairs);
  await new SupervisedTrainer({ model: rm, train: examples, padId: tok.padId!, config: { batchSize: 6, maxSteps: 150, lr: 3e-3, seed: 1 } }).train();
}, 60_000);

describe('explain', () => {
  it('finds the first divergence, what the model would write there, and its rewrite', async () => {
    const e = await explain(rm, tok, tpl, 'n1 n2', 'n1 bad n3');
    // a text response is a finished one: EOS is appended and scored
    expect(e.ids).toEqual([...tok.encode('n1 bad n3'), tok.eosId]);
    expect(e.tokens.map((t) => t.trim())).toEqual(['n1', 'bad', 'n3', '<eos>']);
    expect(e.firstDivergence).toBe(1);
    expect(e.predicted[1].trim()).toBe('good');
    expect(e.scores.slice(0, 2)).toEqual([1, -1]);
    expect(e.correction).toBe('n1 good n3');
    // the same scores as reward extraction gives
    const [r] = await extractRewards(rm, tok, tpl, [{ prompt: 'n1 n2', response: e.ids }]);
    expect(e.scores).toEqual(r.scores);

    // a response the model would write itself: +1 everywhere, no divergence
    const same = await explain(rm, tok, tpl, 'n1 n2', 'n1 good n3');
    expect(same.firstDivergence).toBe(-1);
    expect(same.scores).toEqual([1, 1, 1, 1]);
  });

  it('renders the scores for a terminal, plain or coloured, and as HTML', async () => {
    const e = await explain(rm, tok, tpl, 'n1 n2', 'n1 bad n3');
    const plain = renderExplanation(e, { color: false });
    expect(plain).toContain('n1[+1] bad[-1]');
    expect(plain).toContain('diverges   at token 2: "bad" where the reward model would write "good"');
    expect(plain).toContain('rewrite    n1 good n3');
    expect(plain).not.toContain('\x1b[');
    const coloured = renderExplanation(e);
    expect(coloured).toContain('\x1b[42;30mn1\x1b[0m'); // green: before the divergence
    expect(coloured).toContain('\x1b[41;97mbad\x1b[0m'); // red: diverging
    const html = renderExplanationHtml({ ...e, tokens: e.tokens.map((t, i) => (i === 2 ? ' <&>' : t)) });
    expect(html).toContain('&lt;&amp;&gt;');
    expect(html).not.toContain('<&>');
    expect(html).toContain('#c8f0c8');
    expect(html).toContain('#f6c0c0');
    expect(html).not.toMatch(/<script/i);
  });
});
