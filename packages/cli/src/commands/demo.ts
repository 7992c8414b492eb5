// `s2s demo`: the paper's experiment end to end on the testbed -- data, SFT, the two reward
// models, PPO with each reward, the gold judge on in- and out-of-distribution prompts -- and a
// report that says, finding by finding, whether the paper's results held.
import os from 'node:os';
import * as path from 'node:path';

import { cpuPrecision, cudaPrecision, cudaStatus, getNumThreads, resolveDevice } from '@s2s/core';
import { TESTBED_TEMPLATE, TASKS, testbedTokenizer } from '@s2s/tasks';

import { type Command, defineCommand, engineOptions } from '../command.js';
import { analyse } from '../demo/analysis.js';
import { DEMO_FULL, DEMO_QUICK, DEMO_SIZES, DEMO_SIZE_NAMES, type DemoConfig, METHODS, type Method } from '../demo/config.js';
import { explainResponses } from '../demo/explanations.js';
import { Stopped, runDemo } from '../demo/pipeline.js';
import { DemoProgress } from '../demo/progress.js';
import { writeReport } from '../demo/report.js';
import { EXIT_INTERRUPTED } from '../interrupt.js';
import { type OptionSchema, UsageError } from '../options.js';

const options = {
  quick: { type: 'bool', default: false, help: 'the same pipeline at CI size (a few minutes on 2 cores); its numbers only show that it runs' },
  out: { type: 'string', arg: 'DIR', default: 'runs/demo', help: 'run folder: cache/ (every stage, reused by the next run) and report/' },
  seeds: { type: 'string', arg: 'N,N,...', help: 'seeds (default 1,2,3; --quick: 1,2)' },
  tasks: { type: 'string', arg: 'T,T', help: `tasks (default: ${TASKS.map((t) => t.name).join(',')})` },
  methods: { type: 'string', arg: 'M,M', help: `PPO rewards to compare (default: ${METHODS.join(',')})` },
  size: {
    type: 'enum',
    values: DEMO_SIZE_NAMES,
    default: 'small',
    help: 'model size: small (2 layers, width 128: minutes on 2 cores), base (4 x 192), large (6 x 384: for a GPU, or hours of CPU)',
  },
  ...engineOptions,
} as const satisfies OptionSchema;

function list<T extends string>(flag: string, value: string | undefined, allowed: readonly T[], fallback: T[]): T[] {
  if (value === undefined) return fallback;
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = items.find((x) => !allowed.includes(x as T));
  if (bad !== undefined || items.length === 0) throw new UsageError(`--${flag} takes a comma-separated list of ${allowed.join(', ')}; got ${JSON.stringify(value)}`);
  return items as T[];
}

function seedList(value: string | undefined, fallback: number[]): number[] {
  if (value === undefined) return fallback;
  const seeds = value.split(',').map((s) => Number(s.trim()));
  if (!seeds.length || seeds.some((s) => !Number.isInteger(s) || s < 0 || s > 1e6)) throw new UsageError(`--seeds takes a comma-separated list of non-negative integers; got ${JSON.stringify(value)}`);
  return seeds;
}

export const demoCommand: Command<typeof options> = defineCommand({
  name: 'demo',
  summary: "the paper's experiment on the testbed, end to end, with a report",
  description: `For each testbed task and seed: make the data, train SFT, the scalar RM and the seq2seq RM,
run PPO with the scalar RM, PPO-T, PPO-S and PPO-T with positive scores only (one PPO setting for
all), and judge every policy with the gold judge on in- and out-of-distribution prompts. Writes
report/results.json, report/report.md and report/report.html (plots, token-score views) under
--out. Every stage is cached by the hash of its settings and inputs: a second run redoes only what
changed, and after Ctrl-C a rerun continues where it stopped.`,
  examples: ['s2s demo', 's2s demo --quick --out runs/demo-quick', 's2s demo --tasks summarize --seeds 1', 's2s demo --size large --device cuda --out runs/demo-large'],
  options,
  interruptible: true,
  async run({ values: o }, ctx) {
    if (o.quick && o.size !== 'small') throw new UsageError('--quick has its own CI-sized models; --size applies to the full demo');
    const base = o.quick ? DEMO_QUICK : { ...DEMO_FULL, ...DEMO_SIZES[o.size] };
    const cfg: DemoConfig = {
      ...base,
      seeds: seedList(o.seeds, base.seeds),
      tasks: list('tasks', o.tasks, TASKS.map((t) => t.name), base.tasks),
      methods: list<Method>('methods', o.methods, METHODS, base.methods),
    };
    const out = o.out;
    const started = performance.now();
    const progress = new DemoProgress();
    let runs;
    try {
      ({ results: runs } = await runDemo(cfg, out, { signal: ctx.signal, onEvent: progress.onEvent }));
    } catch (e) {
      progress.done();
      if (e instanceof Stopped) {
        console.error(`stopped; finished stages are cached in ${path.join(out, 'cache')}: run the same command again to continue`);
        return EXIT_INTERRUPTED;
      }
      throw e;
    }
    progress.done();
    const tables = analyse(runs, cfg.methods);
    const explanations = await explainResponses(runs, testbedTokenizer(), TESTBED_TEMPLATE, cfg.explanations, cfg.methods);
    const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
    const reportDir = path.join(out, 'report');
    await writeReport(reportDir, {
      config: cfg,
      quick: o.quick,
      runs,
      tables,
      explanations,
      machine:
        resolveDevice() === 'cuda'
          ? `${cudaStatus().device}, ${cudaPrecision()} matmuls (host: ${cpu})`
          : `${cpu} (${os.cpus().length} cores, engine threads ${getNumThreads()}, ${cpuPrecision()} matmuls)`,
      seconds: (performance.now() - started) / 1000,
    });
    console.log(`\nfindings${o.quick ? ' (quick run: too small to mean anything)' : ''}:`);
    for (const f of tables.findings) console.log(`  ${f.verdict.padEnd(14)} ${f.claim}: ${f.measured} [${f.power.split(':')[0]}]`);
    console.log(`\nreport: ${path.join(reportDir, 'report.html')} (and report.md, results.json)`);
    return 0;
  },
});
