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

type Stream = { write(s: string): unknown; columns?: number };

export interface BarOptions {
  /** redraw in place (default: whether stderr is a terminal) */
  tty?: boolean;
  /** where terminal output goes (default process.stderr) */
  stream?: Stream;
}

/**
 * The bar itself, whatever it counts: on a terminal one line redrawn in place (at most ten times a
 * second), otherwise a plain line at the first step, every ~5% and at the end.
 */
export class Bar {
  private readonly tty: boolean;
  private readonly stream: Stream;
  private lastBucket = -1;
  private lastDraw = 0;
  private line = '';

  constructor(opts: BarOptions = {}) {
    this.tty = opts.tty ?? process.stderr.isTTY === true;
    this.stream = opts.stream ?? process.stderr;
  }

  /** `stats` follows "step/total pct%" on the line; `elapsedMs` is added to plain lines. */
  update(step: number, totalSteps: number, stats: string, elapsedMs: number): void {
    const last = step === totalSteps;
    const pct = Math.floor((100 * step) / totalSteps);
    const text = `${step}/${totalSteps} ${String(pct).padStart(3)}%  ${stats}`;
    if (this.tty) {
      const now = performance.now();
      if (!last && now - this.lastDraw < 100) return;
      this.lastDraw = now;
      const cols = this.stream.columns ?? 80;
      const barWidth = Math.max(10, Math.min(30, cols - text.length - 4));
      const filled = Math.round((barWidth * step) / totalSteps);
      this.line = `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] ${text}`;
      this.stream.write(`\r${this.line}\x1b[K`);
      return;
    }
    const bucket = Math.floor((20 * step) / totalSteps);
    if (this.lastBucket < 0 || last || bucket > this.lastBucket) {
      this.lastBucket = bucket;
      console.error(`step ${text}  elapsed ${formatDuration(elapsedMs)}`);
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

export interface ProgressOptions extends BarOptions {
  /** what the trainer's throughput counts: "tok" or "pairs" */
  unit: string;
}

/** A trainer's progress: loss, a smoothed rate and the ETA on the bar; evaluations and checkpoints as lines. */
export class Progress {
  private readonly bar: Bar;
  private rate: number | undefined;

  constructor(private readonly opts: ProgressOptions) {
    this.bar = new Bar(opts);
  }

  /** A trainer's onEvent. */
  readonly onEvent = (e: TrainerEvent): void => {
    if (e.type === 'step') {
      // one step's throughput is noisy; the bar shows a moving average
      this.rate = this.rate === undefined ? e.throughput : 0.9 * this.rate + 0.1 * e.throughput;
      const eta = formatDuration(e.step === e.totalSteps ? 0 : e.etaMs);
      this.bar.update(e.step, e.totalSteps, `loss ${e.loss.toFixed(4)}  ${formatRate(this.rate)} ${this.opts.unit}/s  eta ${eta}`, e.elapsedMs);
    } else if (e.type === 'eval') this.message(`eval at step ${e.step}: ${formatMetrics(e.metrics)}`);
    else this.message(`checkpoint saved to ${e.dir}`);
  };

  message(text: string): void {
    this.bar.message(text);
  }

  done(): void {
    this.bar.done();
  }
}
