// Engine calls and the environments that make them (issue 15): each case runs in a child process,
// since the failure being guarded against is the whole process aborting.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

const dir = fileURLToPath(new URL('./engine-calls/', import.meta.url));
const addon = fileURLToPath(new URL('../native/index.cjs', import.meta.url));

function node(args: string[]): { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

describe('a worker that ends with engine calls in flight', () => {
  // Ten workers each, ended 0 to 100 ms after queuing forwards, generations and buffer reads, so
  // the end finds calls queued, running and on their way back. Before the engine's calls went
  // through a thread-safe function this aborted the process (exit 134, "terminate called after
  // throwing an instance of 'Napi::Error'").
  for (const mode of ['terminate', 'exit'] as const) {
    it(`worker ${mode === 'terminate' ? '.terminate()' : 'process.exit()'}: the process goes on and the engine still works`, () => {
      const r = node([path.join(dir, 'terminate.cjs'), mode]);
      expect(r.signal, r.stderr).toBeNull();
      expect(r.status, r.stderr).toBe(0);
      const out = lastJson(r.stdout);
      // terminate() ends a worker with exit code 1; process.exit(3) with 3
      expect(out.codes).toEqual(Array(10).fill(mode === 'terminate' ? 1 : 3));
      expect(out.finite).toBe(true);
      expect(out.generated).toBe(4);
    });
  }
});

describe('engine calls and the libuv thread pool', () => {
  it('a file read made after eight models queued their forwards settles before any of them', () => {
    const r = node([path.join(dir, 'threadpool.cjs')]);
    expect(r.status, r.stderr).toBe(0);
    const { order } = lastJson(r.stdout) as { order: string[] };
    expect(order).toHaveLength(9);
    expect(order[0]).toBe('read');
  });
});

describe('engine calls and the event loop', () => {
  it('a pending call keeps the process alive until it settles; an idle model does not', () => {
    const script = `
      const { NativeModel } = require(${JSON.stringify(addon)});
      const m = new NativeModel({ vocabSize: 64, maxSeqLen: 16, numLayers: 1, numHeads: 2, channels: 32 });
      m.initWeights(1);
      m.forward(new Int32Array([1, 2, 3]), null, 1, 3).then((r) => console.log('settled', r.logprob.length));
      const idle = new NativeModel({ vocabSize: 64, maxSeqLen: 16, numLayers: 1, numHeads: 2, channels: 32 });`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('settled 3');
    // timeout would have killed it with a signal had the idle model kept the loop alive
    expect(r.signal).toBeNull();
  });
});
