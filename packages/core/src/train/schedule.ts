// The learning-rate schedule every trainer uses: linear warmup, then cosine decay to a floor.

export interface ScheduleConfig {
  /** peak learning rate */
  lr: number;
  /** steps of linear warmup from lr / warmupSteps up to lr */
  warmupSteps: number;
  /** the step at which the cosine reaches its floor */
  totalSteps: number;
  /** the floor, as a fraction of lr (0: decay to zero) */
  minLrRatio: number;
}

/** Learning rate at optimizer step `step` (1-based). */
export function learningRate(step: number, c: ScheduleConfig): number {
  if (c.warmupSteps > 0 && step <= c.warmupSteps) return (c.lr * step) / c.warmupSteps;
  const span = Math.max(1, c.totalSteps - c.warmupSteps);
  const progress = Math.min(1, Math.max(0, (step - c.warmupSteps) / span));
  return c.lr * (c.minLrRatio + (1 - c.minLrRatio) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}
