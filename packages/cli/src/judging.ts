// A judge over a file of responses (a testbed task's gold judge, or the user's --judge module):
// per-row judgements, their means part by part, and the pairwise win rate of one file's responses
// over another's on the same prompts.
import { type Judgement, type Task, type WinRate, winRate } from '@s2s/tasks';

import { UsageError } from './options.js';

/**
 * What `s2s eval` judges with. Pointwise, `score`; pairwise, `compare` (0: the first response is
 * better, 1: the second, 0.5: a tie), or the two responses' scores when there is no `compare`.
 * `row` (0-based) is for error messages.
 */
export interface Judge {
  name: string;
  score?(prompt: string, response: string, row: number): Promise<Judgement>;
  compare?(prompt: string, a: string, b: string, row: number): Promise<number>;
}

/** A testbed task's gold judge. */
export const taskJudge = (task: Task): Judge => ({ name: `the ${task.name} gold judge`, score: async (prompt, response) => task.judge(prompt, response) });

/**
 * Refuses prompts that are not the task's (Task.recognizes): its gold judge would score them, but
 * the numbers would mean nothing. Names how many, the first, and what to use instead.
 */
export function checkTaskPrompts(task: Task, prompts: readonly string[], source: string): void {
  const foreign = prompts.map((p, i) => [p, i] as const).filter(([p]) => !task.recognizes(p));
  if (foreign.length === 0) return;
  const [first, at] = foreign[0];
  throw new UsageError(
    `${source}: ${foreign.length} of ${prompts.length} prompts are not ${task.name} prompts of the testbed (the first, row ${at + 1}: ` +
      `${JSON.stringify(first.length > 80 ? first.slice(0, 77) + '...' : first)}); the ${task.name} gold judge would score them meaninglessly. ` +
      'Judge your own task with --judge FILE (a module exporting score(prompt, response) or compare(prompt, a, b))',
  );
}

export interface Response {
  prompt: string;
  response: string;
}

export interface JudgedRow extends Response, Judgement {}

export interface JudgementSummary {
  n: number;
  meanScore: number;
  /**
   * each part's mean over the rows that have it (a flag's: the share of rows where it is true);
   * parts differ by kind of prompt (safety's harmful and benign requests), hence the count
   */
  parts: Record<string, { mean: number; n: number }>;
}

/** Each row's judgement (rows one at a time: a judge may be a slow model or a service). */
export async function judgeRows(judge: Judge, rows: readonly Response[]): Promise<JudgedRow[]> {
  const score = judge.score;
  if (!score) throw new UsageError(`${judge.name} has no score(prompt, response): judging one set of responses needs it (compare() judges pairs: --a and --b)`);
  const out: JudgedRow[] = [];
  for (const [i, r] of rows.entries()) out.push({ ...r, ...(await score(r.prompt, r.response, i)) });
  return out;
}

export function summarizeJudgements(rows: readonly Judgement[]): JudgementSummary {
  const sums = new Map<string, { sum: number; n: number }>();
  for (const r of rows)
    for (const [k, v] of Object.entries(r.parts)) {
      const s = sums.get(k) ?? { sum: 0, n: 0 };
      s.sum += Number(v);
      s.n++;
      sums.set(k, s);
    }
  const parts = Object.fromEntries([...sums].map(([k, s]) => [k, { mean: s.sum / s.n, n: s.n }]));
  return { n: rows.length, meanScore: rows.reduce((a, r) => a + r.score, 0) / Math.max(1, rows.length), parts };
}

export interface PairedRow {
  prompt: string;
  a: string;
  b: string;
  /** the judge's scores, when it scores responses (absent for a compare()-only judge) */
  scoreA?: number;
  scoreB?: number;
  /** A's result against B */
  outcome: 'win' | 'tie' | 'loss';
}

/**
 * B's row for each of A's, matched by prompt (a prompt asked k times is matched occurrence by
 * occurrence); every prompt must be answered on both sides. `names` name the files in errors.
 */
export function matchByPrompt(a: readonly Response[], b: readonly Response[], names: { a: string; b: string }): Array<[Response, Response]> {
  const count = (rows: readonly Response[], prompt: string) => rows.filter((x) => x.prompt === prompt).length;
  const missing = (prompt: string, from: string, other: string) => {
    const [na, nb] = [count(a, prompt), count(b, prompt)];
    const times = Math.min(na, nb) > 0 ? ` (${na} times in ${names.a}, ${nb} in ${names.b})` : '';
    return new Error(`the prompt ${JSON.stringify(prompt)} is answered in ${from} but not in ${other}${times}; both files must answer the same prompts`);
  };
  const byPrompt = new Map<string, Response[]>();
  for (const r of b) {
    const list = byPrompt.get(r.prompt);
    if (list) list.push(r);
    else byPrompt.set(r.prompt, [r]);
  }
  const pairs = a.map((r): [Response, Response] => {
    const other = byPrompt.get(r.prompt)?.shift();
    if (!other) throw missing(r.prompt, names.a, names.b);
    return [r, other];
  });
  for (const [prompt, left] of byPrompt) if (left.length) throw missing(prompt, names.b, names.a);
  return pairs;
}

/** The judge's verdict on each pair, and A's win rate over B (a tie counts one half): by compare() when the judge has one, else by the two scores. */
export async function pairwiseWinRate(
  judge: Judge,
  pairs: ReadonlyArray<[Response, Response]>,
  /** the two sides' scores when they were judged already (not judged again) */
  known?: { a: readonly number[]; b: readonly number[] },
): Promise<{ rate: WinRate; rows: PairedRow[] }> {
  const { score, compare } = judge;
  let scoresA: number[] | undefined = known && [...known.a];
  let scoresB: number[] | undefined = known && [...known.b];
  if (score && !known) {
    scoresA = [];
    scoresB = [];
    for (const [i, [a, b]] of pairs.entries()) {
      scoresA.push((await score(a.prompt, a.response, i)).score);
      scoresB.push((await score(b.prompt, b.response, i)).score);
    }
  }
  let outcomes: PairedRow['outcome'][];
  if (compare) {
    outcomes = [];
    for (const [i, [a, b]] of pairs.entries()) {
      const better = await compare(a.prompt, a.response, b.response, i);
      outcomes.push(better === 0.5 ? 'tie' : better === 0 ? 'win' : 'loss');
    }
  } else {
    // the same tolerance as winRate's, so that the rows add up to its counts
    outcomes = scoresA!.map((x, i) => (Math.abs(x - scoresB![i]) <= 1e-9 ? 'tie' : x > scoresB![i] ? 'win' : 'loss'));
  }
  // a win is (1, 0), a tie (0, 0), a loss (0, 1): winRate counts them as it counts scores
  const rate = winRate(outcomes.map((o) => (o === 'win' ? 1 : 0)), outcomes.map((o) => (o === 'loss' ? 1 : 0)));
  const rows = pairs.map(([a, b], i) => ({
    prompt: a.prompt,
    a: a.response,
    b: b.response,
    ...(scoresA ? { scoreA: scoresA[i], scoreB: scoresB![i] } : {}),
    outcome: outcomes[i],
  }));
  return { rate, rows };
}
