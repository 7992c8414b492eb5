// Advantage estimation for PPO on per-token rewards: the KL penalty against the reference model
// (k1 and k3 estimators), generalised advantage estimation, and whitening.

export type KLEstimator = 'k1' | 'k3';

/**
 * Per-token KL estimate between the policy and the reference at the sampled tokens, from their
 * log-probs: k1 = log p - log q (unbiased, can be negative), k3 = (q/p - 1) - log(q/p) (unbiased,
 * never negative; Schulman's "Approximating KL divergence").
 */
export function klPenalty(logprob: readonly number[], refLogprob: readonly number[], estimator: KLEstimator = 'k1'): number[] {
  return logprob.map((lp, t) => {
    if (estimator === 'k1') return lp - refLogprob[t];
    const logr = refLogprob[t] - lp;
    return Math.expm1(logr) - logr;
  });
}

/**
 * Generalised advantage estimation over one response: delta_t = r_t + gamma V_{t+1} - V_t (with
 * V after the last token taken as 0), A_t = delta_t + gamma lambda A_{t+1}; returns = A + V.
 */
export function gae(rewards: readonly number[], values: readonly number[], gamma: number, lambda: number): { advantages: number[]; returns: number[] } {
  const n = rewards.length;
  if (values.length !== n) throw new RangeError(`gae: ${n} rewards but ${values.length} values`);
  const advantages = new Array<number>(n);
  let next = 0;
  for (let t = n - 1; t >= 0; t--) {
    const nextValue = t + 1 < n ? values[t + 1] : 0;
    const delta = rewards[t] + gamma * nextValue - values[t];
    next = delta + gamma * lambda * next;
    advantages[t] = next;
  }
  return { advantages, returns: advantages.map((a, t) => a + values[t]) };
}

/** (x - mean) / std over all values of all rows (population std, as TRL's masked_whiten), optionally keeping the mean. */
export function whiten(rows: readonly (readonly number[])[], opts: { shiftMean?: boolean } = {}): number[][] {
  const all = rows.flat();
  if (all.length === 0) return rows.map(() => []);
  const mean = all.reduce((a, b) => a + b, 0) / all.length;
  const variance = all.reduce((a, b) => a + (b - mean) ** 2, 0) / all.length;
  return whitenWith(rows, mean, variance, opts.shiftMean ?? true);
}

/** Sums over the ranks of a data-parallel run (the identity in one process). */
export type SumOverRanks = (values: number[]) => Promise<number[]>;

/**
 * whiten() over the rows of every rank together (a data-parallel rollout's global batch): the mean
 * and the variance are the whole batch's, computed in the same two passes.
 */
export async function whitenAcross(rows: readonly (readonly number[])[], sumOverRanks: SumOverRanks, opts: { shiftMean?: boolean } = {}): Promise<number[][]> {
  const all = rows.flat();
  const [total, n] = await sumOverRanks([all.reduce((a, b) => a + b, 0), all.length]);
  if (n === 0) return rows.map(() => []);
  const mean = total / n;
  const [squares] = await sumOverRanks([all.reduce((a, b) => a + (b - mean) ** 2, 0)]);
  return whitenWith(rows, mean, squares / n, opts.shiftMean ?? true);
}

function whitenWith(rows: readonly (readonly number[])[], mean: number, variance: number, shift: boolean): number[][] {
  const inv = 1 / Math.sqrt(variance + 1e-8);
  return rows.map((r) => r.map((x) => (x - mean) * inv + (shift ? 0 : mean)));
}
