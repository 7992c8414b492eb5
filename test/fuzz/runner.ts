// The input fuzz's parent: makes the seeded cases, runs each in a child process (two at a time,
// from one esbuild bundle of the driver), and judges every outcome against the case's expectation.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { mix, Model, Random, type GPTConfigInput, type TensorInfo } from '@s2s/core';

import { checkpointCase, configCase, optimizerCase, type LayoutOf } from './checkpoints.js';
import { jsonlCase } from './jsonl.js';
import { tokenizerCase } from './tokenizers.js';
import { RESULT_MARK, type ChildResult, type FuzzCase } from './types.js';

export const KINDS = ['checkpoint-gpt2', 'checkpoint-llama', 'optimizer', 'config', 'tokenizer', 'jsonl'] as const;

/** The engine's layout of each config, asked once. */
export function engineLayouts(): LayoutOf {
  const cache = new Map<string, TensorInfo[]>();
  return (config: GPTConfigInput) => {
    const key = JSON.stringify(config);
    let layout = cache.get(key);
    if (!layout) {
      const m = Model.empty(config, { device: 'cpu' });
      layout = m.layout();
      m.dispose();
      cache.set(key, layout);
    }
    return layout;
  };
}

/** Case `index` of the run seeded `seed`: its own random stream, so a case does not depend on how many run. */
export function makeCase(seed: number, index: number, layoutOf: LayoutOf): FuzzCase {
  const rng = new Random(mix(seed, index));
  const kind = KINDS[index % KINDS.length];
  switch (kind) {
    case 'checkpoint-gpt2':
      return checkpointCase(rng, layoutOf, index, 'gpt2');
    case 'checkpoint-llama':
      return checkpointCase(rng, layoutOf, index, 'llama');
    case 'optimizer':
      return optimizerCase(rng, layoutOf, index);
    case 'config':
      return configCase(rng, layoutOf, index);
    case 'tokenizer':
      return tokenizerCase(rng, index);
    case 'jsonl':
      return jsonlCase(rng, index);
  }
}

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * The node arguments that run the driver: one esbuild bundle (tsx's own esbuild) when it can be
 * built, a child starting in ~0.07 s; else tsx's loader (~0.25 s a child).
 */
export async function driverCommand(outDir: string): Promise<{ args: string[]; how: string }> {
  const entry = path.join(here, 'driver.ts');
  try {
    const require = createRequire(import.meta.url);
    const esbuild = createRequire(require.resolve('tsx'))('esbuild') as {
      build(o: Record<string, unknown>): Promise<{ outputFiles: { text: string }[] }>;
    };
    // modules core loads with createRequire at run time: pinned to where they are, so the bundle can live anywhere
    const fromCore = createRequire(path.join(here, '../../packages/core/src/index.ts'));
    const pinned = ['@s2s/native', 'gpt3-tokenizer'];
    const r = await esbuild.build({
      entryPoints: [entry],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      conditions: ['source'],
      write: false,
      logLevel: 'silent',
      banner: { js: "import { createRequire as __fuzzCreateRequire } from 'node:module'; const require = __fuzzCreateRequire(import.meta.url);" },
    });
    let text = r.outputFiles[0].text;
    for (const name of pinned) text = text.replaceAll(JSON.stringify(name), JSON.stringify(fromCore.resolve(name)));
    const out = path.join(outDir, 'driver.mjs');
    await fs.writeFile(out, text);
    return { args: [out], how: 'esbuild bundle' };
  } catch (e) {
    return { args: ['--conditions=source', '--import', 'tsx', entry], how: `tsx (no bundle: ${(e as Error).message.split('\n')[0]})` };
  }
}

export type Failure = 'crash' | 'hang' | 'silent-acceptance' | 'false-refusal' | 'unhelpful-message' | 'bad-results';

export interface Outcome {
  case: FuzzCase;
  result?: ChildResult;
  code: number | null;
  signal: string | null;
  stderr: string;
  ms: number;
  timedOut: boolean;
  failure?: Failure;
  why?: string;
}

/** Messages of a JavaScript slip rather than a refusal: they name nothing a user can fix. */
const SLIPS = [/Maximum call stack size exceeded/, /Cannot read propert/, /is not a function/, /is not iterable/, /undefined is not (a function|iterable|an object)/, /Invalid array length/];

/** The verdict on one case's outcome. */
export function judge(o: Outcome): Outcome {
  const c = o.case;
  const r = o.result;
  const fail = (failure: Failure, why: string): Outcome => ({ ...o, failure, why });
  if (o.timedOut) return fail('hang', `no result in time; stderr: ${o.stderr.slice(-500)}`);
  if (o.signal !== null || o.code !== 0 || !r) return fail('crash', `exit ${o.signal ?? o.code}; stderr: ${o.stderr.slice(-800)}`);
  if (r.outcome === 'refused') {
    if (c.expect === 'must-accept') return fail('false-refusal', `${r.error}: ${r.message}`);
    const slip = SLIPS.find((re) => re.test(r.message));
    if (slip) return fail('unhelpful-message', `${r.error}: ${r.message.slice(0, 400)}`);
    for (const names of c.mustName)
      if (!names.some((n) => r.message.includes(n))) return fail('unhelpful-message', `names none of ${JSON.stringify(names)}: ${r.error}: ${r.message.slice(0, 400)}`);
    return o;
  }
  if (c.expect === 'must-refuse') return fail('silent-acceptance', `loaded (${r.info})${r.problems.length ? `; then: ${r.problems.join('; ')}` : ''}`);
  if (r.problems.length && !c.extreme) return fail('bad-results', r.problems.join('; '));
  if (c.rows !== undefined && r.info !== `${c.rows} rows`) return fail('bad-results', `${r.info}, expected ${c.rows} rows`);
  return o;
}

export interface RunOptions {
  /** where the case folders go */
  root: string;
  /** node arguments that run the driver, the spec file appended */
  driver: string[];
  concurrency: number;
  /** per case */
  timeoutMs: number;
  /** the child's address-space limit (a runaway allocation fails instead of taking the machine) */
  memoryKiB: number;
}

async function runOne(c: FuzzCase, o: RunOptions): Promise<Outcome> {
  const dir = path.join(o.root, `case-${c.index}`);
  await fs.mkdir(dir, { recursive: true });
  for (const [name, data] of Object.entries(c.files)) await fs.writeFile(path.join(dir, name), data);
  const spec = path.join(dir, 'fuzz-spec.json');
  await fs.writeFile(spec, JSON.stringify({ load: c.load }));
  const env: NodeJS.ProcessEnv = { ...process.env, S2S_DEVICE: 'cpu', S2S_NUM_THREADS: '1' };
  delete env.NODE_OPTIONS;
  const t0 = performance.now();
  return new Promise((resolve) => {
    // ulimit -v through a shell: Node has no setrlimit
    const child = spawn('/bin/sh', ['-c', `ulimit -v ${o.memoryKiB} 2>/dev/null; exec "$0" "$@"`, process.execPath, ...o.driver, spec], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, o.timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.split('\n').find((l) => l.startsWith(RESULT_MARK));
      let result: ChildResult | undefined;
      try {
        result = line ? (JSON.parse(line.slice(RESULT_MARK.length)) as ChildResult) : undefined;
      } catch {
        result = undefined;
      }
      resolve({ case: c, result, code, signal, stderr, ms: performance.now() - t0, timedOut });
    });
  });
}

/** Runs the cases `concurrency` at a time, in index order; each outcome judged. */
export async function runCases(cases: Iterable<FuzzCase>, o: RunOptions): Promise<Outcome[]> {
  const it = cases[Symbol.iterator]();
  const out: Outcome[] = [];
  const worker = async () => {
    for (let n = it.next(); !n.done; n = it.next()) {
      const outcome = judge(await runOne(n.value, o));
      out.push(outcome);
      if (!outcome.failure) await fs.rm(path.join(o.root, `case-${n.value.index}`), { recursive: true, force: true });
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  return out.sort((a, b) => a.case.index - b.case.index);
}

/** Per kind: cases run, refused, accepted, crashes (hangs included), failures. */
export function tally(outcomes: Outcome[]): string {
  const rows = new Map<string, { cases: number; refused: number; accepted: number; crashes: number; failed: number }>();
  const total = { cases: 0, refused: 0, accepted: 0, crashes: 0, failed: 0 };
  for (const o of outcomes) {
    const k = o.case.kind;
    const row = rows.get(k) ?? { cases: 0, refused: 0, accepted: 0, crashes: 0, failed: 0 };
    for (const r of [row, total]) {
      r.cases++;
      if (o.result?.outcome === 'refused') r.refused++;
      if (o.result?.outcome === 'accepted') r.accepted++;
      if (o.failure === 'crash' || o.failure === 'hang') r.crashes++;
      if (o.failure) r.failed++;
    }
    rows.set(k, row);
  }
  const pad = (s: string | number, n: number) => String(s).padStart(n);
  const lines = [`${'kind'.padEnd(18)}${pad('cases', 7)}${pad('refused', 9)}${pad('accepted', 10)}${pad('crashes', 9)}${pad('failed', 8)}`];
  for (const [k, r] of [...rows, ['total', total] as const])
    lines.push(`${k.padEnd(18)}${pad(r.cases, 7)}${pad(r.refused, 9)}${pad(r.accepted, 10)}${pad(r.crashes, 9)}${pad(r.failed, 8)}`);
  return lines.join('\n');
}
