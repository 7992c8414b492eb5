// PPO's progress bar: step/total, percent, the reward model's score, KL to the reference, mean
// response length and ETA -- on a terminal one line redrawn in place, in a log a line every ~5%.
import type { PPOEvent } from '@s2s/ppo';

import { Bar, type BarOptions, formatDuration } from './progress.js';

/** The numbers a person watches during RLHF: is the reward rising, and at what cost in KL and length? */
export function stepStats(m: Record<string, number>): string {
  const f = (k: string, digits: number) => (Number.isFinite(m[k]) ? m[k].toFixed(digits) : '?');
  return `score ${f('objective/scores', 3)}  kl ${f('objective/kl', 3)}  len ${f('response_length/mean', 1)}`;
}

export class PPOProgress {
  private readonly bar: Bar;
  private readonly sampleEvery: number;
  /** steps seen by this process (a resumed run's elapsed time counts from its resumption) */
  private seen = 0;

  constructor(opts: BarOptions & { sampleEvery?: number } = {}) {
    this.bar = new Bar(opts);
    this.sampleEvery = opts.sampleEvery ?? 0;
  }

  /** A PPOTrainer's onEvent. */
  readonly onEvent = (e: PPOEvent): void => {
    if (e.type === 'checkpoint') {
      this.message(`checkpoint saved to ${e.dir}`);
      return;
    }
    const { step, metrics, prompts, responses, scores } = e.data;
    this.seen++;
    // one sample now and then shows what the numbers mean (all of them go to samples.jsonl)
    if (this.sampleEvery > 0 && step % this.sampleEvery === 0 && prompts.length)
      this.message(`step ${step} sample (score ${scores[0].toFixed(3)}): ${JSON.stringify(prompts[0])} -> ${JSON.stringify(responses[0])}`);
    const eta = formatDuration(step === e.totalSteps ? 0 : e.etaMs);
    this.bar.update(step, e.totalSteps, `${stepStats(metrics)}  ${(e.elapsedMs / this.seen / 1000).toFixed(2)} s/step  eta ${eta}`, e.elapsedMs);
  };

  message(text: string): void {
    this.bar.message(text);
  }

  done(): void {
    this.bar.done();
  }
}
