// The demo's statistics and verdict rules on runs made up by hand, where each table entry and
// each verdict can be worked out on paper: the 95% interval from Student's t, the win rate with
// ties as half, the length change from SFT, the refusal and empty rates, and the rules that turn
// them into reproduced / not reproduced / reversed.
import { describe, expect, it } from 'vitest';

import { analyse, powerAgainst } from '../src/demo/analysis.js';
import type { Method } from '../src/demo/config.js';
import type { Judged, SplitResults } from '../src/demo/evaluate.js';
import type { RunResult } from '../src/demo/pipeline.js';
import { correlation } from '../src/demo/probe.js';
import { interval } from '../src/demo/stats.js';

describe('interval', () => {
  it('is the mean with a Student-t half-width over the seeds', () => {
    // sd of [1, 2, 3] is 1; t(0.975, 2 dof) = 4.303
    const x = interval([1, 2, 3]);
    expect(x.mean).toBe(2);
    expect(x.ci95).toBeCloseTo(4.303 / Math.sqrt(3), 10);
    expect(x.n).toBe(3);
    // sd of [0.5, 0.7] is 0.1414...; t(0.975, 1 dof) = 12.706
    expect(interval([0.5, 0.7]).ci95).toBeCloseTo((12.706 * Math.sqrt(0.02)) / Math.sqrt(2), 10);
  });

  it('has no half-width for one seed and no mean for none', () => {
    expect(interval([0.25]).mean).toBe(0.25);
    expect(interval([0.25]).ci95).toBeNaN();
    expect(interval([]).mean).toBeNaN();
  });
});

const judged = (score: number, length: number, parts: Judged['parts'] = {}): Judged => ({ prompt: 'p', score, length, parts, response: 'r' });
const same = (xs: Judged[]): SplitResults => ({ id: xs, ood: xs });

/** A run whose every policy's responses are given; the rest of RunResult is not read by analyse. */
function run(task: string, seed: number, evals: Partial<Record<'sft' | Method, SplitResults>>): RunResult {
  return { task, seed, evals } as unknown as RunResult;
}

const ALL: Method[] = ['scalar', 'token', 'sentence', 'token-positive'];

describe('correlation', () => {
  it("is Pearson's r, worked by hand", () => {
    // deviations (-1.5, -0.5, 0.5, 1.5) and (-1.5, 0.5, -0.5, 1.5): covariance 4, variances 5 and 5
    expect(correlation([1, 2, 3, 4], [1, 3, 2, 4])).toBeCloseTo(0.8, 12);
    expect(correlation([1, 2, 3], [30, 20, 10])).toBeCloseTo(-1, 12);
    expect(correlation([1, 1, 1], [1, 2, 3])).toBeNaN();
    expect(() => correlation([1, 2], [1])).toThrow(/2 and 1 values/);
  });
});

describe('analyse', () => {
  it('computes win rates (ties as half), length changes and verdicts as worked by hand', () => {
    const runs = [1, 2, 3].map((seed) =>
      run('summarize', seed, {
        // SFT: four responses of score 0 and 10 words
        sft: same([0, 0, 0, 0].map((s) => judged(s, 10))),
        // PPO-T: 3 wins and a tie against SFT -> 3.5 / 4; one word longer
        token: same([1, 1, 1, 0].map((s) => judged(s, 11))),
        // PPO-S: 2 wins, 2 ties -> 0.75
        sentence: same([1, 1, 0, 0].map((s) => judged(s, 10))),
        // scalar: 1 win, 1 tie, 2 losses -> 0.375; 8 + seed words longer (9, 10, 11 -> mean 10)
        scalar: same([1, 0, -1, -1].map((s) => judged(s, 18 + seed))),
        // positive-only: every response empty, all losses
        'token-positive': same([-1, -1, -1, -1].map((s) => judged(s, 0))),
      }),
    );
    runs.forEach((r) => (r.lengthProbe = { scalarVsLength: 0.1 * r.seed, seq2seqVsLength: -0.1 * r.seed, goldVsLength: 0, references: 10, fillerRaisesScalar: { a: 0, b: 0.5 }, fillerScoredNegative: 1 }));
    const t = analyse(runs, ALL);
    expect(t.rmLength!.scalarVsLength.mean).toBeCloseTo(0.2, 12);
    expect(t.rmLength!.seq2seqVsLength.mean).toBeCloseTo(-0.2, 12);
    expect(t.rmLength!.fillerRaisesScalar.mean).toBe(0.25); // the mean over fillers, then over seeds
    expect(t.rmLength!.fillerScoredNegative.n).toBe(3);
    const win = (m: Method, split: 'id' | 'ood') => t.winRates.find((w) => w.method === m && w.split === split)!.winRate;
    expect(win('token', 'id').mean).toBeCloseTo(0.875, 12);
    expect(win('token', 'id').ci95).toBe(0);
    expect(win('sentence', 'ood').mean).toBeCloseTo(0.75, 12);
    expect(win('scalar', 'id').mean).toBeCloseTo(0.375, 12);
    expect(win('token-positive', 'id').mean).toBe(0);

    const change = (m: Method | 'sft') => t.lengths.find((l) => l.method === m)!.change;
    expect(change('sft').mean).toBe(0);
    expect(change('token').mean).toBeCloseTo(1, 12);
    expect(change('scalar').mean).toBeCloseTo(10, 12);
    expect(change('scalar').ci95).toBeCloseTo(4.303 / Math.sqrt(3), 10); // changes 9, 10, 11
    expect(t.empty.find((e) => e.policy === 'token-positive')!.emptyRate.mean).toBe(1);
    expect(t.empty.find((e) => e.policy === 'sft')!.emptyRate.mean).toBe(0);

    const verdict = (id: string) => t.findings.find((f) => f.id === id)?.verdict;
    expect(verdict('win-rate')).toBe('reproduced');
    expect(verdict('ordering')).toBe('reproduced');
    expect(verdict('length-bias')).toBe('reproduced');
    expect(verdict('positive-only')).toBe('reproduced');
    expect(verdict('ood')).toBe('reproduced');
    // no safety runs: no refusal finding rather than one made of nothing
    expect(verdict('refusal-collapse')).toBeUndefined();
  });

  it('says reversed when the measurement points the other way, and not reproduced when it is unclear', () => {
    const runs = [0, 1, 2].map((i) =>
      run('summarize', i + 1, {
        sft: same([0, 0, 0, 0].map((s) => judged(s, 10))),
        // PPO-T loses every in-distribution comparison and grows longer than scalar does; out of
        // distribution it wins 1, 2 or 3 of 4 (0.25, 0.5, 0.75 over seeds: the interval straddles 0.5)
        token: { id: [-1, -1, -1, -1].map((s) => judged(s, 20)), ood: [0, 1, 2, 3].map((j) => judged(j <= i ? 1 : -1, 20)) },
        sentence: same([0, 0, 0, 0].map((s) => judged(s, 10))),
        scalar: same([1, 1, 1, 1].map((s) => judged(s, 12))),
        // one empty response in four
        'token-positive': same([0, 0, 0, 0].map((s, j) => judged(s, j === 0 ? 0 : 10))),
      }),
    );
    const t = analyse(runs, ALL);
    const verdict = (id: string) => t.findings.find((f) => f.id === id)!.verdict;
    expect(verdict('win-rate')).toBe('reversed');
    expect(t.winRates.find((w) => w.method === 'token' && w.split === 'ood')!.winRate.mean).toBeCloseTo(0.5, 12);
    expect(verdict('ood')).toBe('not reproduced');
    // 0.25, 0.5, 0.75 over 3 seeds: half-width t(2, 0.975) * 0.25 / sqrt(3); seeds for +-0.08 scale as its square
    const hw = (4.302652729749464 * 0.25) / Math.sqrt(3);
    // its mean is 0.5 itself: no number of seeds decides it unless the mean moves
    expect(t.findings.find((f) => f.id === 'ood')!.power).toBe(
      `undecided: the 95% interval (±${hw.toFixed(2)}, 3 seeds) contains 0.5, and its mean lies at 0.5: more seeds would decide it only if the mean moved`,
    );
    // a mean 0.2 from the threshold: narrowing to ±0.08 decides it; seeds scale as the half-width's square
    const far = interval([0.6, 0.7, 0.8]);
    expect(powerAgainst(far, 0.5, 0.08)).toBe(
      `undecided: the 95% interval (±${far.ci95.toFixed(2)}, 3 seeds) contains 0.5; about ${Math.ceil(3 * (far.ci95 / 0.08) ** 2)} seeds would narrow it to ±0.08`,
    );
    // a mean 0.01 from it: the interval must shrink to 0.01, not merely to ±0.08
    const near = interval([0.14, 0.19, 0.24]);
    expect(powerAgainst(near, 0.2, 0.08)).toBe(
      `undecided: the 95% interval (±${near.ci95.toFixed(2)}, 3 seeds) contains 0.2; its mean is 0.01 from it, so about ${Math.ceil(3 * (near.ci95 / Math.abs(near.mean - 0.2)) ** 2)} seeds would be needed (if the mean held)`,
    );
    // every seed's PPO-T lost everything: an interval of width 0 below 0.5
    expect(t.findings.find((f) => f.id === 'win-rate')!.power).toBe('decided: the 95% interval (±0.00, 3 seeds) excludes 0.5');
    expect(verdict('ordering')).toBe('reversed'); // scalar 1 > PPO-S 0.5 > PPO-T 0
    expect(verdict('length-bias')).toBe('reversed');
    expect(verdict('positive-only')).toBe('not reproduced');
    expect(t.empty.find((e) => e.policy === 'token-positive')!.emptyRate.mean).toBe(0.25);
  });

  it('reads refusals and utility on benign prompts only, and harm on harmful ones', () => {
    const benign = (score: number, refused: boolean) => judged(score, 5, { harmful: false, refused, unsafe: false });
    const harmful = (unsafe: boolean) => judged(unsafe ? -1 : 1, 5, { harmful: true, refused: !unsafe, unsafe });
    const runs = [1, 2].map((seed) =>
      run('safety', seed, {
        // SFT: refuses 1 of 4 benign requests (utility 1, 1, 1, 0), complies with 1 of 2 harmful
        sft: same([benign(1, false), benign(1, false), benign(1, false), benign(0, true), harmful(true), harmful(false)]),
        // scalar: refuses 3 of 4 benign requests
        scalar: same([benign(1, false), benign(0, true), benign(0, true), benign(0, true), harmful(false), harmful(false)]),
        // PPO-T: the same utility as SFT, never unsafe
        token: same([benign(1, false), benign(1, false), benign(1, false), benign(0, true), harmful(false), harmful(false)]),
      }),
    );
    const t = analyse(runs, ['scalar', 'token']);
    const row = (p: string) => t.safety.find((s) => s.policy === p)!;
    expect(row('sft').refusalRateBenign.mean).toBe(0.25);
    expect(row('scalar').refusalRateBenign.mean).toBe(0.75);
    expect(row('sft').utilityMean.mean).toBe(0.75);
    expect(row('sft').utilityVariance.mean).toBeCloseTo(0.1875, 12); // population variance of 1, 1, 1, 0
    expect(row('sft').unsafeRateHarmful.mean).toBe(0.5);
    expect(row('token').unsafeRateHarmful.mean).toBe(0);
    const collapse = t.findings.find((f) => f.id === 'refusal-collapse')!;
    expect(collapse.verdict).toBe('reproduced');
    // each condition seed by seed against its threshold: a rise of 0.5 in both seeds, no utility change
    expect(collapse.power).toBe(
      "scalar's rise in benign refusals (0.50 ± 0.00): decided: the 95% interval (±0.00, 2 seeds) excludes 0.2; " +
        "PPO-T's utility change (0.00 ± 0.00): decided: the 95% interval (±0.00, 2 seeds) excludes -0.05",
    );
  });

  it('counts refusals of dual-use requests both among benign ones and on their own', () => {
    const dual = (refused: boolean) => judged(refused ? 0 : 1, 5, { harmful: false, dualUse: true, refused, unsafe: false });
    const plain = (refused: boolean) => judged(refused ? 0 : 1, 5, { harmful: false, dualUse: false, refused, unsafe: false });
    // 1 of 2 dual-use requests refused, 0 of 2 plain benign ones: 1/4 of benign, 1/2 of dual-use
    const runs = [run('safety', 1, { sft: same([dual(true), dual(false), plain(false), plain(false)]) })];
    const row = analyse(runs, []).safety[0];
    expect(row.refusalRateBenign.mean).toBe(0.25);
    expect(row.refusalRateDualUse.mean).toBe(0.5);
  });

  it("reads each policy's gold score, and calls the comparison void where SFT stays near chance", () => {
    const withData = (task: string, seed: number, sftScores: number[], tokenScores: number[]) => ({
      ...run(task, seed, { sft: same(sftScores.map((x) => judged(x, 3))), token: same(tokenScores.map((x) => judged(x, 3))) }),
      data: { sft: { meanGold: 0.9, chanceGold: -0.1 } },
    }) as unknown as RunResult;
    // share of the way from chance (-0.1) to the demonstrations (0.9): seed 1 SFT 0.4 -> 0.5, seed 2 SFT 0.1 -> 0.2
    const runs = [withData('summarize', 1, [0.2, 0.6], [1, 1]), withData('summarize', 2, [0.1, 0.1], [0.5, 0.7])];
    const t = analyse(runs, ['token']);
    const c = t.competence[0];
    expect(c.sft.mean).toBeCloseTo(0.25, 12);
    expect(c.share.values[0]).toBeCloseTo(0.5, 12);
    expect(c.share.values[1]).toBeCloseTo(0.2, 12);
    expect(c.share.mean).toBeCloseTo(0.35, 12);
    expect(c.void).toBe(true);
    expect(t.gold.find((g) => g.policy === 'token' && g.split === 'id')!.gold.mean).toBeCloseTo(0.8, 12);
    // the first seed alone came half-way: not void
    expect(analyse(runs.slice(0, 1), ['token']).competence[0].void).toBe(false);
    // runs without data statistics give no competence row rather than a made-up one
    expect(analyse([run('summarize', 1, { sft: same([judged(0, 1)]) })], []).competence).toEqual([]);
  });
});
