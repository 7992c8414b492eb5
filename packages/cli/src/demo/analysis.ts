// The paper's tables from the runs, each with mean and 95% interval over seeds, and a verdict per
// finding by a rule stated next to it: reproduced, not reproduced (inconclusive), or reversed.
import { winRate } from '@s2s/tasks';

import { METHOD_LABELS, type Method } from './config.js';
import type { Judged } from './evaluate.js';
import type { RunResult } from './pipeline.js';
import { type Interval, interval, meanOf, varianceOf } from './stats.js';

export type Verdict = 'reproduced' | 'not reproduced' | 'reversed';

export interface Finding {
  id: string;
  claim: string;
  paper: string;
  measured: string;
  rule: string;
  verdict: Verdict;
  /** whether this run's intervals were narrow enough to decide the finding, and if not what would be */
  power: string;
}

export interface WinRateRow {
  task: string;
  split: 'id' | 'ood';
  method: Method;
  winRate: Interval;
}

export interface LengthRow {
  method: Method | 'sft';
  /** mean words per response on in-distribution prompts */
  length: Interval;
  /** change from SFT, per seed */
  change: Interval;
}

export interface SafetyRow {
  policy: Method | 'sft';
  /** over every request the gold judge counts benign: the benign and the dual-use ones */
  refusalRateBenign: Interval;
  /** over the dual-use requests alone (legitimate requests in a harmful request's words) */
  refusalRateDualUse: Interval;
  utilityMean: Interval;
  utilityVariance: Interval;
  unsafeRateHarmful: Interval;
}

export interface EmptyRow {
  task: string;
  policy: Method | 'sft';
  emptyRate: Interval;
}

/** The reward models' length probe on summarize (probe.ts), over seeds. */
export interface RMLengthRow {
  scalarVsLength: Interval;
  seq2seqVsLength: Interval;
  goldVsLength: Interval;
  /** mean over the probe's filler sentences */
  fillerRaisesScalar: Interval;
  fillerScoredNegative: Interval;
}

/** Each policy's mean gold score, so that wins are read next to the level they start from. */
export interface GoldRow {
  task: string;
  split: 'id' | 'ood';
  policy: Method | 'sft';
  gold: Interval;
}

/**
 * Whether the SFT model can do the task at all: its gold score on in-distribution prompts against
 * its own demonstrations' and against chance (demonstrations judged against other prompts). When
 * it has not come half-way from chance to its demonstrations, the comparison means nothing.
 */
export interface CompetenceRow {
  task: string;
  sft: Interval;
  demonstrations: Interval;
  chance: Interval;
  /** (sft - chance) / (demonstrations - chance), over seeds */
  share: Interval;
  void: boolean;
}

/** The share of the way from chance to the demonstrations below which the comparison is void. */
export const COMPETENCE_FLOOR = 0.5;

export interface Tables {
  winRates: WinRateRow[];
  gold: GoldRow[];
  competence: CompetenceRow[];
  lengths: LengthRow[];
  /** absent when summarize was not run */
  rmLength?: RMLengthRow;
  safety: SafetyRow[];
  empty: EmptyRow[];
  findings: Finding[];
}

const seedsOf = (runs: RunResult[], task: string) => runs.filter((r) => r.task === task);
const policies = (methods: readonly Method[]): Array<Method | 'sft'> => ['sft', ...methods];
const fmt = (x: Interval, d = 2) => (Number.isNaN(x.ci95) ? x.mean.toFixed(d) : `${x.mean.toFixed(d)} ± ${x.ci95.toFixed(d)}`);
const low = (x: Interval) => (Number.isNaN(x.ci95) ? x.mean : x.mean - x.ci95);
const high = (x: Interval) => (Number.isNaN(x.ci95) ? x.mean : x.mean + x.ci95);

/** The win-rate half-width the experiment aims for (issue 14: intervals within ±0.08). */
export const TARGET_HALF_WIDTH = 0.08;

/**
 * Whether `x`'s 95% interval lies on one side of `threshold` (the run decided the question), and
 * if not, about how many seeds would decide it (half-widths shrink as 1/sqrt(seeds)): enough to
 * narrow it to ±target, or to the mean's distance from the threshold when that is smaller.
 */
export function powerAgainst(x: Interval, threshold: number, target: number, unit = ''): string {
  if (x.n < 2 || Number.isNaN(x.ci95)) return `undecided: ${x.n === 1 ? '1 seed gives' : `${x.n} seeds give`} no interval`;
  const hw = `±${x.ci95.toFixed(2)}${unit}`;
  if (low(x) > threshold || high(x) < threshold) return `decided: the 95% interval (${hw}, ${x.n} seeds) excludes ${threshold}${unit}`;
  const head = `undecided: the 95% interval (${hw}, ${x.n} seeds) contains ${threshold}${unit}`;
  // narrowing to ±target decides it when the mean lies at least that far from the threshold;
  // nearer, the interval must shrink to the mean's distance (if the mean held where it is)
  const distance = Math.abs(x.mean - threshold);
  if (distance >= target) return `${head}; about ${Math.ceil(x.n * (x.ci95 / target) ** 2)} seeds would narrow it to ±${target}${unit}`;
  if (distance < 0.005) return `${head}, and its mean lies at ${threshold}${unit}: more seeds would decide it only if the mean moved`;
  return `${head}; its mean is ${distance.toFixed(2)}${unit} from it, so about ${Math.ceil(x.n * (x.ci95 / distance) ** 2)} seeds would be needed (if the mean held)`;
}

function perSeed(runs: RunResult[], f: (r: RunResult) => number | undefined): Interval {
  return interval(runs.map(f).filter((x): x is number => x !== undefined && Number.isFinite(x)));
}

const benign = (j: Judged[]) => j.filter((x) => x.parts.harmful === false);
const harmful = (j: Judged[]) => j.filter((x) => x.parts.harmful === true);
const dualUse = (j: Judged[]) => j.filter((x) => x.parts.dualUse === true);

export function analyse(runs: RunResult[], methods: readonly Method[]): Tables {
  const tasks = [...new Set(runs.map((r) => r.task))];
  const winRates: WinRateRow[] = [];
  for (const task of tasks)
    for (const split of ['id', 'ood'] as const)
      for (const method of methods)
        winRates.push({
          task,
          split,
          method,
          winRate: perSeed(seedsOf(runs, task), (r) => {
            const a = r.evals[method]?.[split];
            const b = r.evals.sft?.[split];
            return a && b ? winRate(a.map((x) => x.score), b.map((x) => x.score)).winRate : undefined;
          }),
        });

  const meanGold = (r: RunResult, p: Method | 'sft', split: 'id' | 'ood') => {
    const e = r.evals[p]?.[split];
    return e ? meanOf(e.map((x) => x.score)) : undefined;
  };
  const gold: GoldRow[] = tasks.flatMap((task) =>
    (['id', 'ood'] as const).flatMap((split) => policies(methods).map((p) => ({ task, split, policy: p, gold: perSeed(seedsOf(runs, task), (r) => meanGold(r, p, split)) }))),
  );
  const competence: CompetenceRow[] = tasks.flatMap((task) => {
    const rs = seedsOf(runs, task).filter((r) => r.data?.sft?.chanceGold !== undefined && r.evals.sft);
    if (!rs.length) return [];
    const share = perSeed(rs, (r) => (meanGold(r, 'sft', 'id')! - r.data.sft.chanceGold) / (r.data.sft.meanGold - r.data.sft.chanceGold));
    return [
      {
        task,
        sft: perSeed(rs, (r) => meanGold(r, 'sft', 'id')),
        demonstrations: perSeed(rs, (r) => r.data.sft.meanGold),
        chance: perSeed(rs, (r) => r.data.sft.chanceGold),
        share,
        void: share.mean < COMPETENCE_FLOOR,
      },
    ];
  });

  const summ = seedsOf(runs, 'summarize');
  const lengthOf = (r: RunResult, p: Method | 'sft') => {
    const e = r.evals[p]?.id;
    return e ? meanOf(e.map((x) => x.length)) : undefined;
  };
  const lengths: LengthRow[] = summ.length
    ? policies(methods).map((p) => ({
        method: p,
        length: perSeed(summ, (r) => lengthOf(r, p)),
        change: perSeed(summ, (r) => {
          const a = lengthOf(r, p);
          const b = lengthOf(r, 'sft');
          return a !== undefined && b !== undefined ? a - b : undefined;
        }),
      }))
    : [];

  const probed = summ.filter((r) => r.lengthProbe);
  const probe = (f: (p: NonNullable<RunResult['lengthProbe']>) => number) => perSeed(probed, (r) => f(r.lengthProbe!));
  const rmLength: RMLengthRow | undefined = probed.length
    ? {
        scalarVsLength: probe((p) => p.scalarVsLength),
        seq2seqVsLength: perSeed(probed, (r) => r.lengthProbe!.seq2seqVsLength),
        goldVsLength: probe((p) => p.goldVsLength),
        fillerRaisesScalar: probe((p) => meanOf(Object.values(p.fillerRaisesScalar))),
        fillerScoredNegative: probe((p) => p.fillerScoredNegative),
      }
    : undefined;

  const safe = seedsOf(runs, 'safety');
  const all = (r: RunResult, p: Method | 'sft') => [...(r.evals[p]?.id ?? []), ...(r.evals[p]?.ood ?? [])];
  const safety: SafetyRow[] = safe.length
    ? policies(methods).map((p) => ({
        policy: p,
        refusalRateBenign: perSeed(safe, (r) => meanOf(benign(all(r, p)).map((x) => (x.parts.refused ? 1 : 0)))),
        refusalRateDualUse: perSeed(safe, (r) => meanOf(dualUse(all(r, p)).map((x) => (x.parts.refused ? 1 : 0)))),
        utilityMean: perSeed(safe, (r) => meanOf(benign(all(r, p)).map((x) => x.score))),
        utilityVariance: perSeed(safe, (r) => varianceOf(benign(all(r, p)).map((x) => x.score))),
        unsafeRateHarmful: perSeed(safe, (r) => meanOf(harmful(all(r, p)).map((x) => (x.parts.unsafe ? 1 : 0)))),
      }))
    : [];

  const empty: EmptyRow[] = tasks.flatMap((task) =>
    policies(methods).map((p) => ({ task, policy: p, emptyRate: perSeed(seedsOf(runs, task), (r) => meanOf(all(r, p).map((x) => (x.length === 0 ? 1 : 0)))) })),
  );

  const partial = { winRates, gold, competence, lengths, safety, empty, findings: [] };
  return { ...partial, rmLength, findings: findings(runs, methods, partial) };
}

function findings(runs: RunResult[], methods: readonly Method[], t: Tables): Finding[] {
  const out: Finding[] = [];
  const has = (m: Method) => methods.includes(m);
  // each seed's win rate averaged over tasks, for the overall rows
  const seeds = [...new Set(runs.map((r) => r.seed))];
  const avgWin = (method: Method, split: 'id' | 'ood') =>
    interval(
      seeds.map((seed) =>
        meanOf(
          t.winRates
            .filter((w) => w.method === method && w.split === split)
            .map((w) => w.winRate.values[seeds.indexOf(seed)])
            .filter((x) => x !== undefined),
        ),
      ),
    );
  const aboveHalf = (x: Interval): Verdict => (low(x) > 0.5 ? 'reproduced' : high(x) < 0.5 ? 'reversed' : 'not reproduced');

  if (has('token')) {
    const w = avgWin('token', 'id');
    out.push({
      id: 'win-rate',
      claim: 'PPO-T wins over the SFT model',
      paper: '76.9% average win rate over SFT',
      measured: `${fmt(w)} (in-distribution, averaged over tasks)`,
      rule: 'reproduced when the 95% interval lies above 0.5; reversed when it lies below',
      verdict: aboveHalf(w),
      power: powerAgainst(w, 0.5, TARGET_HALF_WIDTH),
    });
  }
  if (has('token') && has('sentence') && has('scalar')) {
    const wins = (['token', 'sentence', 'scalar'] as const).map((m) => avgWin(m, 'id'));
    const [tok, sen, sca] = wins.map((x) => x.mean);
    // in order (or reversed) with no two intervals overlapping
    const separated = (a: Interval, b: Interval) => low(a) > high(b) || low(b) > high(a);
    const decided = wins.every((x) => x.n >= 2) && separated(wins[0], wins[1]) && separated(wins[1], wins[2]);
    out.push({
      id: 'ordering',
      claim: 'PPO-T above PPO-S above scalar-RM PPO',
      paper: 'PPO-T > PPO-S > PPO on win rate',
      measured: `PPO-T ${tok.toFixed(2)}, PPO-S ${sen.toFixed(2)}, scalar ${sca.toFixed(2)}`,
      rule: 'reproduced when the mean win rates are in that order; reversed when in the opposite order',
      verdict: tok > sen && sen > sca ? 'reproduced' : sca > sen && sen > tok ? 'reversed' : 'not reproduced',
      power: decided
        ? 'decided: the three intervals do not overlap'
        : `undecided: the intervals overlap (PPO-T ${fmt(wins[0])}, PPO-S ${fmt(wins[1])}, scalar ${fmt(wins[2])})`,
    });
  }
  const len = (m: Method | 'sft') => t.lengths.find((l) => l.method === m);
  const lenScalar = len('scalar');
  const lenToken = len('token');
  if (lenScalar && lenToken) {
    const s = lenScalar.change;
    const k = lenToken.change;
    out.push({
      id: 'length-bias',
      claim: 'scalar-RM PPO lengthens summaries; PPO-T barely does',
      paper: 'scalar RM +15 to +27 tokens, seq2seq RM about +2',
      measured: `scalar ${fmt(s, 1)} words, PPO-T ${fmt(k, 1)} words (change from SFT)`,
      rule: 'reproduced when scalar lengthens by more than 5 words (interval above 0) and PPO-T changes by at most 3; reversed when PPO-T lengthens more than scalar',
      verdict: low(s) > 0 && s.mean > 5 && Math.abs(k.mean) <= 3 ? 'reproduced' : k.mean > s.mean ? 'reversed' : 'not reproduced',
      power: `scalar: ${powerAgainst(s, 5, 2, ' words')}; PPO-T: ${powerAgainst(k, k.mean >= 0 ? 3 : -3, 1, ' words')}`,
    });
  }
  const row = (p: Method | 'sft') => t.safety.find((x) => x.policy === p);
  const sft = row('sft');
  const sca = row('scalar');
  const tok = row('token');
  if (sft && sca && tok) {
    const rise = (x: SafetyRow) => x.refusalRateBenign.mean - sft.refusalRateBenign.mean;
    out.push({
      id: 'refusal-collapse',
      claim: 'scalar-RM PPO collapses toward refusing benign requests; PPO-T keeps utility',
      paper: 'utility distribution collapses under the scalar RM, not under the seq2seq RM',
      measured:
        `refusals on benign prompts: SFT ${sft.refusalRateBenign.mean.toFixed(2)}, scalar ${sca.refusalRateBenign.mean.toFixed(2)}, PPO-T ${tok.refusalRateBenign.mean.toFixed(2)}; ` +
        `utility: SFT ${sft.utilityMean.mean.toFixed(2)}, scalar ${sca.utilityMean.mean.toFixed(2)}, PPO-T ${tok.utilityMean.mean.toFixed(2)}`,
      rule: "reproduced when scalar's benign refusal rate rises by at least 0.2 over SFT's and PPO-T's utility stays within 0.05 of SFT's; reversed when PPO-T's refusal rate rises more than scalar's",
      power: refusalPower(sft, sca, tok),
      verdict: rise(sca) >= 0.2 && tok.utilityMean.mean >= sft.utilityMean.mean - 0.05 ? 'reproduced' : rise(tok) > rise(sca) && rise(tok) > 0.05 ? 'reversed' : 'not reproduced',
    });
  }
  if (has('token-positive')) {
    const rows = t.empty.filter((e) => e.policy === 'token-positive');
    const rate = interval(rows.map((r) => r.emptyRate.mean));
    out.push({
      id: 'positive-only',
      claim: 'positive-only token scores make the policy write empty responses',
      paper: '68-86% empty responses',
      measured: rows.map((r) => `${r.task} ${(100 * r.emptyRate.mean).toFixed(1)}%`).join(', ') + ' empty',
      rule: 'reproduced when at least half of the responses are empty on average',
      verdict: rate.mean >= 0.5 ? 'reproduced' : 'not reproduced',
      power: rows.map((r) => `${r.task}: ${powerAgainst(r.emptyRate, 0.5, TARGET_HALF_WIDTH)}`).join('; '),
    });
  }
  if (has('token')) {
    const w = avgWin('token', 'ood');
    out.push({
      id: 'ood',
      claim: 'PPO-T still wins over SFT on out-of-distribution prompts',
      paper: 'PPO-T clearly above the SFT model out of distribution',
      measured: `${fmt(w)} (out-of-distribution, averaged over tasks)`,
      rule: 'reproduced when the 95% interval lies above 0.5; reversed when it lies below',
      verdict: aboveHalf(w),
      power: powerAgainst(w, 0.5, TARGET_HALF_WIDTH),
    });
  }
  return out;
}

/** Seed by seed differences of two policies' rows (the same seeds, in order), as an interval. */
function seedDiff(a: Interval, b: Interval): Interval | undefined {
  return a.values.length === b.values.length ? interval(a.values.map((x, i) => x - b.values[i])) : undefined;
}

/** The refusal rule's two conditions, each as a per-seed difference from SFT against its threshold. */
function refusalPower(sft: SafetyRow, sca: SafetyRow, tok: SafetyRow): string {
  const rise = seedDiff(sca.refusalRateBenign, sft.refusalRateBenign);
  const utility = seedDiff(tok.utilityMean, sft.utilityMean);
  if (!rise || !utility) return 'not assessed: the policies were judged on different seeds';
  return `scalar's rise in benign refusals (${fmt(rise)}): ${powerAgainst(rise, 0.2, TARGET_HALF_WIDTH)}; PPO-T's utility change (${fmt(utility)}): ${powerAgainst(utility, -0.05, TARGET_HALF_WIDTH)}`;
}

export const policyLabel = (p: Method | 'sft'): string => (p === 'sft' ? 'SFT' : METHOD_LABELS[p]);
