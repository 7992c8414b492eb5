// A seeded fuzz over the inputs a user hands s2s: model folders (GPT-2 and Llama layouts, one file
// or shards), optimizer state, config.json, tokenizers and JSONL datasets. Each case is a valid
// generated input with one seeded mutation that states its expected outcome, loaded in a child
// process of its own (test/fuzz/driver.ts), so a native crash is seen as a crash. Asserts no
// crashes or hangs, no silent acceptance of invalid input, no refusal of valid input, every
// refusal's message naming the file and the mutated field/tensor/line, and finite results from
// whatever loaded. S2S_FUZZ_SEED picks the seed, S2S_FUZZ_CASES the number of cases,
// S2S_FUZZ_ONLY=3,17 runs only those cases. About 60 s on 2 cores with the defaults.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { driverCommand, engineLayouts, makeCase, runCases, tally, type Failure } from './fuzz/runner.js';
import type { FuzzCase } from './fuzz/types.js';

const DEFAULT_SEED = 20_151;
const DEFAULT_CASES = 1200;

function envInt(name: string, def: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

describe('input fuzz', () => {
  it('crashes on nothing, accepts nothing invalid, and names the file and field of every refusal', async () => {
    const seed = envInt('S2S_FUZZ_SEED', DEFAULT_SEED) >>> 0;
    const count = envInt('S2S_FUZZ_CASES', DEFAULT_CASES);
    const only = process.env.S2S_FUZZ_ONLY?.split(',').map(Number);
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 's2s-fuzz-'));
    const t0 = performance.now();
    const { args, how } = await driverCommand(root);
    const layoutOf = engineLayouts();
    function* cases(): Generator<FuzzCase> {
      for (const i of only ?? Array.from({ length: count }, (_, k) => k)) yield makeCase(seed, i, layoutOf);
    }
    const outcomes = await runCases(cases(), { root, driver: args, concurrency: 2, timeoutMs: 60_000, memoryKiB: 3 * 1024 * 1024 });
    const seconds = (performance.now() - t0) / 1000;

    const failures = outcomes.filter((o) => o.failure);
    const by = (f: Failure) => failures.filter((o) => o.failure === f).length;
    const expects = ['must-accept', 'must-refuse', 'may-accept'].map((e) => `${outcomes.filter((o) => o.case.expect === e).length} ${e}`).join(', ');
    const overflowed = outcomes.filter((o) => o.case.extreme && o.result?.outcome === 'accepted' && o.result.problems.length);
    const extreme = overflowed.length;
    console.log(
      [
        `input fuzz: seed ${seed} (S2S_FUZZ_SEED), ${outcomes.length} cases (S2S_FUZZ_CASES), children by ${how}, ${seconds.toFixed(1)} s`,
        `expectations: ${expects}`,
        tally(outcomes),
        `crashes ${by('crash')}, hangs ${by('hang')}, silent acceptances ${by('silent-acceptance')}, false refusals ${by('false-refusal')}, ` +
          `unhelpful messages ${by('unhelpful-message')}, bad results ${by('bad-results')}` +
          (extreme ? ` (and ${extreme} loads of extreme finite values whose results overflowed, not judged)` : ''),
      ].join('\n'),
    );
    for (const o of overflowed.slice(0, 5))
      console.log(`note: case ${o.case.index} (${o.case.kind} ${o.case.mutation}): ${o.case.note}\n  ${o.result?.outcome === 'accepted' ? o.result.problems.join('; ') : ''}`);
    for (const o of failures.slice(0, 40))
      console.log(`FAIL ${o.failure} case ${o.case.index} (${o.case.kind} ${o.case.mutation}, ${o.case.expect}): ${o.case.note}\n  ${o.why}`);
    if (failures.length) console.log(`failing cases' folders are kept under ${root}; rerun one with S2S_FUZZ_SEED=${seed} S2S_FUZZ_ONLY=${failures[0].case.index}`);
    else await fs.rm(root, { recursive: true, force: true });

    expect(outcomes.length).toBe(only?.length ?? count);
    expect(failures.map((o) => `${o.failure}: case ${o.case.index} ${o.case.kind} ${o.case.mutation}`)).toEqual([]);
  }, 600_000);
});
