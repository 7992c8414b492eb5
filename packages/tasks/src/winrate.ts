// Win rate of one set of responses over another, response by response on the same prompts, by
// the gold judge: a win counts 1, a tie one half.

export interface WinRate {
  winRate: number;
  wins: number;
  ties: number;
  losses: number;
  n: number;
}

/** Scores of A's and B's responses to the same prompts, in the same order. */
export function winRate(scoresA: readonly number[], scoresB: readonly number[], eps = 1e-9): WinRate {
  if (scoresA.length !== scoresB.length)
    throw new RangeError(`winRate: ${scoresA.length} scores for A but ${scoresB.length} for B; they must answer the same prompts`);
  if (scoresA.length === 0) throw new RangeError('winRate: no responses to compare');
  let wins = 0;
  let ties = 0;
  for (let i = 0; i < scoresA.length; i++) {
    const d = scoresA[i] - scoresB[i];
    if (Math.abs(d) <= eps) ties++;
    else if (d > 0) wins++;
  }
  const n = scoresA.length;
  return { winRate: (wins + ties / 2) / n, wins, ties, losses: n - wins - ties, n };
}
