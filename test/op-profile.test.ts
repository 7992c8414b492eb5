// S2S_PROFILE_OPS=1 (read when the engine loads, so in a child process of its own): the table
// printed at exit, and opProfileReset() leaving in it only the ops that ran after the call.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The op table a child writes: op name -> calls. */
function profile(reset: boolean): Map<string, number> {
  const script = `
    const n = require('./native');
    (async () => {
      const m = new n.NativeModel({ vocabSize: 64, maxSeqLen: 16, numLayers: 2, numHeads: 2, channels: 32, device: 'cpu' });
      await m.initWeights(1);
      const tok = Int32Array.from({ length: 32 }, (_, i) => i % 64);
      await m.forward(tok, tok, 2, 16);
      await m.backward(new Float32Array(32).fill(-1 / 32));
      await m.step({ lr: 1e-3 });
      ${reset ? 'n.opProfileReset();' : ''}
      await m.forward(tok, tok, 2, 16);
    })();`;
  const env: NodeJS.ProcessEnv = { ...process.env, S2S_PROFILE_OPS: '1', S2S_NUM_THREADS: '1' };
  delete env.NODE_OPTIONS;
  const r = spawnSync(process.execPath, ['-e', script], { cwd: root, env, encoding: 'utf8', timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
  const calls = new Map<string, number>();
  for (const m of r.stderr.matchAll(/^ {2}(\w+) +(\d+) calls/gm)) calls.set(m[1], Number(m[2]));
  return calls;
}

describe('S2S_PROFILE_OPS', () => {
  it('counts every op of the process, and after opProfileReset() only those that ran since', () => {
    // two forwards of a 2-layer GPT-2: LayerNorm twice a layer and once at the end, each time
    const all = profile(false);
    expect(all.get('layernorm_forward')).toBe(10);
    expect(all.get('adamw_update')).toBeGreaterThan(0);
    expect(all.get('layernorm_backward')).toBe(5);
    const after = profile(true);
    expect(after.get('layernorm_forward')).toBe(5);
    expect(after.has('adamw_update')).toBe(false);
    expect(after.has('layernorm_backward')).toBe(false);
  });
});
