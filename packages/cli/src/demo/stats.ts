// Summaries over seeds: the mean and a 95% confidence interval from Student's t (few seeds make
// the normal approximation too narrow).

// two-sided 97.5% quantiles of t with 1..30 degrees of freedom
const T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];

export interface Interval {
  mean: number;
  /** half-width of the 95% interval (NaN with a single seed) */
  ci95: number;
  n: number;
  values: number[];
}

export function interval(values: readonly number[]): Interval {
  const n = values.length;
  // no values: no mean either (NaN, which the report shows and the tests catch, not a silent 0)
  const mean = n ? values.reduce((a, b) => a + b, 0) / n : Number.NaN;
  if (n < 2) return { mean, ci95: Number.NaN, n, values: [...values] };
  const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  const t = T975[Math.min(n - 1, T975.length) - 1];
  return { mean, ci95: (t * sd) / Math.sqrt(n), n, values: [...values] };
}

export function formatInterval(x: Interval, digits = 2, scale = 1): string {
  const m = (x.mean * scale).toFixed(digits);
  return Number.isNaN(x.ci95) ? m : `${m} ± ${(x.ci95 * scale).toFixed(digits)}`;
}

export const meanOf = (xs: readonly number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);
export const varianceOf = (xs: readonly number[]): number => {
  const m = meanOf(xs);
  return xs.length ? xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length : Number.NaN;
};
