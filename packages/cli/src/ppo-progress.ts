// PPO's progress bar: step/total, percent, the reward model's score, KL to the reference, mean
// response length and ETA -- on a terminal one line redrawn in place, in a log a line every ~5%.
import type { PPOEvent } from '@s2s/ppo';

import { formatDuration } from './progress.js';

type Stream = { write(s: string): unknown; columns?: number };

/** The numbers a person watches during RLHF: is the reward rising, and at what cost in KL and length? */
export function stepStats(m: Record<string, number>): string {
  const f = (k: string, digits: number) => (Number.isFinite(m[k]) ? m[k].toFixed(digits) : '?');
  return `score ${f('objective/scores', 3)}  kl ${f('objective/kl', 3)}  len ${f('response_length/mean', 1)}`;
}

export class PPOProgress {
  private readonly tty: boolean;
  private readonly stream: Stream;
  private readonly sampleEvery: number;
  /** steps seen by this process (a resumed run's elapsed time counts from its resumption) */
  private seen = 0;
  private lastBucket = -1;
  private lastDraw = 0;
  private line = '';

  constructor(opts: { tty?: boolean; stream?: Stream; sampleEvery?: number } = {}) {
    this.tty = opts.tty ?? process.stderr.isTTY === true;
    this.stream = opts.stream ?? process.stderr;
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
    const last = step === e.totalSteps;
    const pct = Math.floor((100 * step) / e.totalSteps);
    const stats = `${step}/${e.totalSteps} ${String(pct).padStart(3)}%  ${stepStats(metrics)}  ${(e.elapsedMs / this.seen / 1000).toFixed(2)} s/step  eta ${formatDuration(last ? 0 : e.etaMs)}`;
    // one sample now and then shows what the numbers mean (all of them go to samples.jsonl)
    if (this.sampleEvery > 0 && step % this.sampleEvery === 0 && prompts.length)
      this.message(`step ${step} sample (score ${scores[0].toFixed(3)}): ${JSON.stringify(prompts[0])} -> ${JSON.stringify(responses[0])}`);
    if (this.tty) {
      const now = performance.now();
      if (!last && now - this.lastDraw < 100) return;
      this.lastDraw = now;
      const cols = this.stream.columns ?? 80;
      const barWidth = Math.max(10, Math.min(30, cols - stats.length - 4));
      const filled = Math.round((barWidth * step) / e.totalSteps);
      this.line = `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] ${stats}`;
      this.stream.write(`\r${this.line}\x1b[K`);
      return;
    }
    const bucket = Math.floor((20 * step) / e.totalSteps);
    if (this.lastBucket < 0 || last || bucket > this.lastBucket) {
      this.lastBucket = bucket;
      console.error(`step ${stats}  elapsed ${formatDuration(e.elapsedMs)}`);
    }
  };

  /** A line of its own; on a terminal the bar is redrawn below it. */
  message(text: string): void {
    if (!this.tty) {
      console.error(text);
      return;
    }
    this.stream.write(`\r\x1b[K${text}\n${this.line}`);
  }

  /** Ends the bar's line, so what follows starts on a fresh one. */
  done(): void {
    if (this.tty && this.line) this.stream.write('\n');
    this.line = '';
  }
}
