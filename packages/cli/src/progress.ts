// The training progress bar: on a terminal one line redrawn in place (step/total, percent, loss,
// rate, ETA); in a log file a plain line every ~5% so the log stays readable.
import type { TrainerEvent } from '@s2s/core';

/** 75 -> "1:15", 3725 -> "1:02:05" (as tqdm writes durations) */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  const s = Math.round(ms / 1000);
  const two = (n: number) => String(n).padStart(2, '0');
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}:${two(m)}:${two(s % 60)}` : `${m}:${two(s % 60)}`;
}

function formatRate(x: number): string {
  return x >= 1e4 ? `${(x / 1000).toFixed(0)}k` : x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

const formatMetrics = (m: Record<string, number>) =>
  Object.entries(m)
    .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`)
    .join(', ');

export interface ProgressOptions {
  /** what the trainer's throughput counts: "tok" or "pairs" */
  unit: string;
  /** redraw in place (default: whether stderr is a terminal) */
  tty?: boolean;
  /** where terminal output goes (default process.stderr) */
  stream?: { write(s: string): unknown; columns?: number };
}

export class Progress {
  private readonly tty: boolean;
  private readonly stream: { write(s: string): unknown; columns?: number };
  private rate: number | undefined;
  private lastBucket = -1;
  private lastDraw = 0;
  private line = '';

  constructor(private readonly opts: ProgressOptions) {
    this.tty = opts.tty ?? process.stderr.isTTY === true;
    this.stream = opts.stream ?? process.stderr;
  }

  /** A trainer's onEvent. */
  readonly onEvent = (e: TrainerEvent): void => {
    if (e.type === 'step') this.step(e);
    else if (e.type === 'eval') this.message(`eval at step ${e.step}: ${formatMetrics(e.metrics)}`);
    else this.message(`checkpoint saved to ${e.dir}`);
  };

  private step(e: Extract<TrainerEvent, { type: 'step' }>): void {
    // one step's throughput is noisy; the bar shows a moving average
    this.rate = this.rate === undefined ? e.throughput : 0.9 * this.rate + 0.1 * e.throughput;
    const pct = Math.floor((100 * e.step) / e.totalSteps);
    const last = e.step === e.totalSteps;
    const stats = `${e.step}/${e.totalSteps} ${String(pct).padStart(3)}%  loss ${e.loss.toFixed(4)}  ${formatRate(this.rate)} ${this.opts.unit}/s  eta ${formatDuration(last ? 0 : e.etaMs)}`;
    if (this.tty) {
      const now = performance.now();
      if (!last && now - this.lastDraw < 100) return;
      this.lastDraw = now;
      const cols = this.stream.columns ?? 80;
      const barWidth = Math.max(10, Math.min(30, cols - stats.length - 4));
      const filled = Math.round((barWidth * e.step) / e.totalSteps);
      this.line = `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] ${stats}`;
      this.stream.write(`\r${this.line}\x1b[K`);
      return;
    }
    const bucket = Math.floor((20 * e.step) / e.totalSteps);
    if (e.step === 1 || last || bucket > this.lastBucket) {
      this.lastBucket = bucket;
      console.error(`step ${stats}  elapsed ${formatDuration(e.elapsedMs)}`);
    }
  }

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
