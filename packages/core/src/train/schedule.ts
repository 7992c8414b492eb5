// The learning-rate schedule every trainer uses: linear warmup, then a cosine or linear decay to a
// floor, or a constant rate.

/**
 * After warmup: 'cosine' follows half a cosine from lr down to the floor, reached at the last step
 * (the supervised trainers'); 'linear' decays linearly as TRL's default scheduler does, starting at
 * lr on the first step after warmup and reaching the floor one step after the last (PPO's);
 * 'constant' stays at lr.
 */
export type LRSchedule = 'cosine' | 'linear' | 'constant';
export const LR_SCHEDULES: readonly LRSchedule[] = ['cosine', 'linear', 'constant'];

export interface ScheduleConfig {
  /** peak learning rate */
  lr: number;
  /** steps of linear warmup from lr / warmupSteps up to lr */
  warmupSteps: number;
  /** the run's length in optimizer steps: where the decay ends */
  totalSteps: number;
  /** the floor, as a fraction of lr (0: decay to zero) */
  minLrRatio: number;
  /** the decay after warmup (default 'cosine') */
  lrSchedule?: LRSchedule;
}

/** Learning rate at optimizer step `step` (1-based). */
export function learningRate(step: number, c: ScheduleConfig): number {
  if (c.warmupSteps > 0 && step <= c.warmupSteps) return (c.lr * step) / c.warmupSteps;
  const kind = c.lrSchedule ?? 'cosine';
  if (kind === 'constant') return c.lr;
  const span = Math.max(1, c.totalSteps - c.warmupSteps);
  if (kind === 'linear') {
    const progress = Math.min(1, Math.max(0, (step - 1 - c.warmupSteps) / span));
    return c.lr * (c.minLrRatio + (1 - c.minLrRatio) * (1 - progress));
  }
  const progress = Math.min(1, Math.max(0, (step - c.warmupSteps) / span));
  return c.lr * (c.minLrRatio + (1 - c.minLrRatio) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}
