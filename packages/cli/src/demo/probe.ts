// How the two reward models treat length, measured directly rather than through PPO: the scalar
// RM's reward and the seq2seq RM's summed token scores against response length (beside the gold
// judge's, which says how much length the true preference carries), and what appending a filler sentence to a clean response does to each
// model -- does the scalar reward rise, and does the seq2seq RM score the filler tokens down?
import { type Model, type PreferenceRow, type SupervisedRow, type Template, type Tokenizer, encodeSupervised } from '@s2s/core';
import { extractRewards, sequenceRewards } from '@s2s/rm';
import { type Task, words } from '@s2s/tasks';

import { meanOf } from './stats.js';

/** Sentences appended to clean responses: two the testbed's own filler uses, one it never writes. */
export const PROBE_FILLERS = ['it was a good day .', 'and everyone was very happy .', 'as we can see , that is all .'] as const;

export interface LengthProbe {
  /** Pearson correlation of the scalar RM's reward with length in words, over held-out chosen and rejected responses */
  scalarVsLength: number;
  /** the gold judge's score against length over the same responses */
  goldVsLength: number;
  /** the seq2seq RM's summed token scores (PPO-S's reward) against length over the same responses */
  seq2seqVsLength?: number;
  /** clean responses probed (references the gold judge finds no filler in) */
  references: number;
  /** per filler: the share of references whose scalar reward rises when it is appended */
  fillerRaisesScalar: Record<string, number>;
  /** the share of all padded references whose seq2seq token scores over the filler sum below zero */
  fillerScoredNegative: number;
}

/** Pearson's correlation coefficient (NaN when either side is constant). */
export function correlation(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length || a.length === 0) throw new RangeError(`correlation: ${a.length} and ${b.length} values`);
  const ma = meanOf(a);
  const mb = meanOf(b);
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

export async function lengthProbe(
  scalar: Model,
  seq2seq: Model,
  tok: Tokenizer,
  tpl: Template,
  task: Task,
  held: { pairs: readonly PreferenceRow[]; references: readonly SupervisedRow[] },
  maxReferences = 100,
): Promise<LengthProbe> {
  const pad = tok.padId ?? 0;
  const ids = (prompt: string, response: string) => {
    const e = encodeSupervised(tok, tpl, prompt, response, { maxLength: scalar.config.maxSeqLen });
    if (!e) throw new RangeError(`lengthProbe: a response does not fit the scalar RM's context (${scalar.config.maxSeqLen} tokens)`);
    return e.ids;
  };
  const responses = held.pairs.flatMap((p) => [
    { prompt: p.prompt, text: p.chosen },
    { prompt: p.prompt, text: p.rejected },
  ]);
  const rewards = await sequenceRewards(scalar, responses.map((r) => ids(r.prompt, r.text)), pad);
  const lengths = responses.map((r) => words(r.text).length);
  const gold = responses.map((r) => task.judge(r.prompt, r.text).score);
  const summed = (await extractRewards(seq2seq, tok, tpl, responses.map((r) => ({ prompt: r.prompt, response: [...tok.encode(r.text), tok.eosId!] })))).map((s) =>
    s.scores.reduce((a, b) => a + b, 0),
  );

  const refs = held.references.filter((r) => !task.judge(r.prompt, r.completion).parts.filler).slice(0, maxReferences);
  const base = await sequenceRewards(scalar, refs.map((r) => ids(r.prompt, r.completion)), pad);
  const fillerRaisesScalar: Record<string, number> = {};
  let negative = 0;
  for (const filler of PROBE_FILLERS) {
    const padded = refs.map((r) => `${r.completion} ${filler}`);
    const withFiller = await sequenceRewards(scalar, padded.map((t, i) => ids(refs[i].prompt, t)), pad);
    fillerRaisesScalar[filler] = withFiller.filter((r, i) => r > base[i]).length / refs.length;
    // the filler's own tokens: the last n before EOS
    const n = tok.encode(filler).length;
    const scored = await extractRewards(seq2seq, tok, tpl, padded.map((t, i) => ({ prompt: refs[i].prompt, response: [...tok.encode(t), tok.eosId!] })));
    negative += scored.filter((s) => s.scores.slice(-n - 1, -1).reduce((a, b) => a + b, 0) < 0).length;
  }
  return {
    scalarVsLength: correlation(rewards, lengths),
    goldVsLength: correlation(gold, lengths),
    seq2seqVsLength: correlation(summed, lengths),
    references: refs.length,
    fillerRaisesScalar,
    fillerScoredNegative: negative / (refs.length * PROBE_FILLERS.length),
  };
}
