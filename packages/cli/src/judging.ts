// The testbed's gold judge over a file of responses: per-row judgements, their means part by part,
// and the pairwise win rate of one file's responses over another's on the same prompts.
import { type Judgement, type Task, type WinRate, winRate } from '@s2s/tasks';

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

export const judgeRows = (task: Task, rows: readonly Response[]): JudgedRow[] => rows.map((r) => ({ ...r, ...task.judge(r.prompt, r.response) }));

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
  scoreA: number;
  scoreB: number;
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

/** The gold judge's verdict on each pair, and A's win rate over B (a tie counts one half). */
export function pairwiseWinRate(task: Task, pairs: ReadonlyArray<[Response, Response]>): { rate: WinRate; rows: PairedRow[] } {
  const scoresA = pairs.map(([a]) => task.judge(a.prompt, a.response).score);
  const scoresB = pairs.map(([, b]) => task.judge(b.prompt, b.response).score);
  const rate = winRate(scoresA, scoresB);
  // the same tolerance as winRate's, so that the rows add up to its counts
  const outcome = (d: number): PairedRow['outcome'] => (Math.abs(d) <= 1e-9 ? 'tie' : d > 0 ? 'win' : 'loss');
  const rows = pairs.map(([a, b], i) => ({ prompt: a.prompt, a: a.response, b: b.response, scoreA: scoresA[i], scoreB: scoresB[i], outcome: outcome(scoresA[i] - scoresB[i]) }));
  return { rate, rows };
}
