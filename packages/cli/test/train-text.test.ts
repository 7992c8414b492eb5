// A small model trained on the project's generated text visibly learns it, and the command line
// refuses what it does not understand.
import { describe, expect, it, vi } from 'vitest';

import { LEXICON, main, sampleText, trainText, TRAIN_TEXT_DEFAULTS } from '@s2s/cli';

describe('train-text', () => {
  it('learns the generated text: the loss falls well below its start and samples use its words', async () => {
    const result = await trainText({ ...TRAIN_TEXT_DEFAULTS, steps: 400, layers: 2, channels: 96, samples: 4, seed: 3 });
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const start = mean(result.losses.slice(0, 5));
    const end = mean(result.losses.slice(-10));
    // near-uniform at the start (ln V), and far below it after training
    expect(start).toBeGreaterThan(0.8 * Math.log(result.vocab.length));
    expect(end).toBeLessThan(0.45 * start);
    // the lexicon is the independent judge: most whole words in the samples must be real words
    const words = result.samples.flatMap((s) => s.split(/[\s.]+/).slice(1, -1)).filter(Boolean);
    const known = words.filter((w) => LEXICON.has(w)).length;
    expect(words.length).toBeGreaterThan(20);
    expect(known / words.length).toBeGreaterThan(0.6);
  });

  it('generates the same text for the same seed', () => {
    expect(sampleText({ seed: 5, sentences: 50 })).toBe(sampleText({ seed: 5, sentences: 50 }));
    expect(sampleText({ seed: 5, sentences: 50 })).not.toBe(sampleText({ seed: 6, sentences: 50 }));
  });
});

describe('s2s command line', () => {
  async function run(args: string[]): Promise<{ code: number; err: string; out: string }> {
    const err: string[] = [];
    const out: string[] = [];
    const e = vi.spyOn(console, 'error').mockImplementation((m: string) => void err.push(m));
    const o = vi.spyOn(console, 'log').mockImplementation((m: string) => void out.push(m));
    try {
      const code = await main(args);
      return { code, err: err.join('\n'), out: out.join('\n') };
    } finally {
      e.mockRestore();
      o.mockRestore();
    }
  }

  it('refuses unknown commands, unknown flags and bad values with exit status 2', async () => {
    expect(await run(['frobnicate'])).toMatchObject({ code: 2, err: expect.stringContaining('unknown command "frobnicate"') });
    expect(await run(['train-text', '--stepz', '3'])).toMatchObject({ code: 2, err: expect.stringContaining("'--stepz'") });
    expect(await run(['train-text', '--steps', 'ten'])).toMatchObject({ code: 2, err: expect.stringContaining('--steps must be a positive integer') });
  });

  it('reports a missing text file as an error naming it', async () => {
    const r = await run(['train-text', '--text', '/nonexistent/corpus.txt', '--steps', '1']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('/nonexistent/corpus.txt');
  });

  it('prints help', async () => {
    const r = await run(['train-text', '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('--steps N');
  });
});
