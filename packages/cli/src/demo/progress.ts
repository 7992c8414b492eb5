// The demo's progress: a line per stage as it finishes (done, or taken from the cache), and for
// the running stage a bar with its step count and ETA -- redrawn in place on a terminal, a plain
// line every quarter otherwise.
import { formatDuration } from '../progress.js';

import type { DemoEvent } from './pipeline.js';

export class DemoProgress {
  private readonly tty: boolean;
  private running = '';
  private lastQuarter = -1;
  private lastDraw = 0;
  private drawn = false;

  constructor(private readonly stream: { write(s: string): unknown; isTTY?: boolean; columns?: number } = process.stderr) {
    this.tty = stream.isTTY === true;
  }

  private clear(): void {
    if (this.tty && this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }

  readonly onEvent = (e: DemoEvent): void => {
    if (e.type === 'plan') {
      this.stream.write(`s2s demo: ${e.stages.length} stages (finished ones come from the cache)\n`);
      return;
    }
    if (e.type === 'stage') {
      const tag = `[${String(e.index).padStart(String(e.total).length)}/${e.total}] ${e.name}`;
      if (e.status === 'running') {
        this.running = tag;
        this.lastQuarter = -1;
        if (!this.tty) this.stream.write(`  ${tag} ...\n`);
        return;
      }
      this.clear();
      this.stream.write(e.status === 'cached' ? `· ${tag}  (cached)\n` : `✓ ${tag}  ${formatDuration((e.seconds ?? 0) * 1000)}\n`);
      return;
    }
    const frac = e.step / e.totalSteps;
    const line = `${e.step}/${e.totalSteps}  eta ${formatDuration(e.etaMs)}  ${e.detail}`;
    if (this.tty) {
      const now = performance.now();
      if (now - this.lastDraw < 100 && e.step < e.totalSteps) return;
      this.lastDraw = now;
      const width = 20;
      const bar = `[${'#'.repeat(Math.round(width * frac))}${'.'.repeat(width - Math.round(width * frac))}]`;
      this.stream.write(`\r  ${this.running} ${bar} ${line}\x1b[K`);
      this.drawn = true;
      return;
    }
    const quarter = Math.floor(frac * 4);
    if (quarter > this.lastQuarter) {
      this.lastQuarter = quarter;
      this.stream.write(`    ${line}\n`);
    }
  };

  done(): void {
    this.clear();
  }
}
