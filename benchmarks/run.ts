// `pnpm bench`: training-step speed of the native engine against tfjs (wasm and cpu backends), and the
// engine's generation speed; prints markdown tables and writes JSON to bench-results/.
//
//   pnpm bench [--config small|10m|124m|all] [--backends native,native-1t,wasm,cpu] [--quick]
//              [--max-step-seconds 120] [--no-generate]
//
// Defaults: every config and every backend. A backend whose step a smaller config predicts to
// take longer than --max-step-seconds is skipped with that estimate. Each measurement runs in its
// own child process, so peak RSS is per backend and config.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Model, getNumThreads, measureSgemm } from '@s2s/core';
import {
  BACKENDS,
  CONFIGS,
  configByName,
  runInChild,
  type Backend,
  type BenchConfig,
  type Effort,
  type GenerateResult,
  type TrainResult,
} from './train-step.js';

interface Options {
  configs: BenchConfig[];
  backends: Backend[];
  quick: boolean;
  maxStepSeconds: number;
  generate: boolean;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { configs: CONFIGS, backends: ['native', 'native-1t', 'wasm', 'cpu'], quick: false, maxStepSeconds: 120, generate: true };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--config':
      case '--configs': {
        const v = value();
        opts.configs = v === 'all' ? CONFIGS : v.split(',').map(configByName);
        break;
      }
      case '--backends':
      case '--backend': {
        const list = value().split(',');
        for (const b of list)
          if (!BACKENDS.includes(b as Backend)) throw new Error(`unknown backend ${JSON.stringify(b)} (known: ${BACKENDS.join(', ')})`);
        opts.backends = list as Backend[];
        break;
      }
      case '--quick':
        opts.quick = true;
        break;
      case '--max-step-seconds':
        opts.maxStepSeconds = Number(value());
        break;
      case '--no-generate':
        opts.generate = false;
        break;
      case '--help':
      case '-h':
        console.log('usage: pnpm bench [--config small|10m|124m|all] [--backends native,native-1t,wasm,cpu] [--quick] [--max-step-seconds N] [--no-generate]');
        process.exit(0);
      default:
        throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  // Smallest first: each measured config gives the estimate that decides whether a larger one runs.
  opts.configs = [...opts.configs].sort((a, b) => CONFIGS.indexOf(a) - CONFIGS.indexOf(b));
  return opts;
}

interface Row {
  config: string;
  backend: Backend;
  params: number;
  flopsPerToken: number;
  result?: TrainResult;
  skipped?: string;
  failed?: string;
}

const fmt = (x: number, digits = 1) => x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const fmtInt = (x: number) => Math.round(x).toLocaleString('en-US');

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const effort: Effort = opts.quick ? { minSamples: 2, maxTime: 1 } : { minSamples: 5, maxTime: 5 };
  const childTimeout = Math.max(600, opts.maxStepSeconds * 15);
  const cpus = os.cpus();
  const machine = {
    cpu: cpus[0]?.model ?? 'unknown',
    logicalCores: cpus.length,
    availableParallelism: os.availableParallelism(),
    engineThreads: getNumThreads(),
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
  console.log(`# s2s training-step benchmark${opts.quick ? ' (quick)' : ''}\n`);
  console.log(`machine: ${machine.cpu}, ${machine.logicalCores} logical cores, ${machine.memoryGB} GB; engine threads ${machine.engineThreads}; ${machine.platform}; Node ${machine.node}`);

  // The engine's own GEMM rate is the machine's peak for this comparison; measured at both ends
  // of the run, since a busy machine shows up as the two disagreeing.
  const sgemmStart = await measureSgemm();
  console.log(`sgemm (engine, 2048^3, ${machine.engineThreads} threads): ${fmt(sgemmStart)} GFLOP/s\n`);

  for (const c of opts.configs) {
    const f = engineFacts(c);
    console.log(`config ${c.name}: V=${c.model.vocabSize} C=${c.model.channels} L=${c.model.numLayers} NH=${c.model.numHeads} T=${c.T} B=${c.B}: ${fmtInt(f.params)} parameters, ${fmt(f.flopsPerToken / 1e6, 2)} MFLOP/token`);
  }
  console.log('');

  // Measured GFLOP/s per backend on the largest config run so far, for estimating the next one.
  const rate = new Map<Backend, { gflops: number; from: string }>();
  const rows: Row[] = [];
  for (const c of opts.configs) {
    const fpt = engineFacts(c).flopsPerToken;
    const stepFlops = fpt * c.B * c.T;
    for (const backend of opts.backends) {
      const row: Row = { config: c.name, backend, params: engineFacts(c).params, flopsPerToken: fpt };
      rows.push(row);
      let known = rate.get(backend);
      if (!known && c !== CONFIGS[0]) {
        // Nothing measured yet to estimate from: measure the smallest config first (not reported as a row).
        console.log(`[${backend}] measuring ${CONFIGS[0].name} first to estimate ${c.name}'s step time`);
        try {
          const probe = (await runInChild({ kind: 'train', config: CONFIGS[0].name, backend, effort: { minSamples: 1, maxTime: 0.5 } }, childTimeout)) as TrainResult;
          const gflops = (engineFacts(CONFIGS[0]).flopsPerToken * probe.tokensPerStep) / probe.step.mean / 1e9;
          known = { gflops, from: CONFIGS[0].name };
          rate.set(backend, known);
        } catch (e) {
          console.log(`  probe failed: ${(e as Error).message.split('\n')[0]}`);
        }
      }
      if (known) {
        const est = stepFlops / (known.gflops * 1e9);
        if (est > opts.maxStepSeconds) {
          row.skipped = `skipped (estimated ${fmtInt(est)} s/step from ${known.from} at ${fmt(known.gflops, 2)} GFLOP/s)`;
          console.log(`[${c.name}/${backend}] ${row.skipped}`);
          continue;
        }
      }
      process.stdout.write(`[${c.name}/${backend}] running...`);
      const t0 = Date.now();
      try {
        const r = (await runInChild({ kind: 'train', config: c.name, backend, effort }, childTimeout)) as TrainResult;
        row.result = r;
        const gflops = (fpt * r.tokensPerStep) / r.step.mean / 1e9;
        rate.set(backend, { gflops, from: c.name });
        console.log(
          ` ${fmt(r.step.mean * 1000)} ms/step ±${fmt(r.step.rme)}% (${r.step.samples} samples), ${fmtInt(r.tokensPerStep / r.step.mean)} tok/s, ${fmt(gflops, 2)} GFLOP/s, maxRSS ${fmtInt(r.maxRssMB)} MB, loss ${fmt(r.lossFirst, 3)} -> ${fmt(r.lossLast, 3)} [${fmt((Date.now() - t0) / 1000)} s]`,
        );
      } catch (e) {
        row.failed = (e as Error).message;
        console.log(` FAILED: ${row.failed.split('\n')[0]}`);
        console.log(row.failed.split('\n').slice(1).map((l) => `    ${l}`).join('\n'));
      }
    }
  }

  const generations: GenerateResult[] = [];
  const genFailures: string[] = [];
  const genBackends = opts.generate ? (['native', 'native-1t'] as const).filter((b) => opts.backends.includes(b)) : [];
  for (const c of opts.configs) {
    for (const backend of genBackends) {
      const job = { kind: 'generate' as const, config: c.name, backend, batches: [1, 32], promptLen: 16, newTokens: 64, effort };
      process.stdout.write(`[${c.name}/generate/${backend}] running...`);
      try {
        const g = (await runInChild(job, childTimeout)) as GenerateResult;
        generations.push(g);
        console.log(' ' + g.runs.map((r) => `B=${r.batch}: ${fmt(r.tokensPerSec)} tok/s`).join(', '));
      } catch (e) {
        genFailures.push(`${c.name}/${backend}: ${(e as Error).message}`);
        console.log(` FAILED: ${(e as Error).message.split('\n')[0]}`);
      }
    }
  }

  const sgemmEnd = await measureSgemm();
  const peak = Math.max(sgemmStart, sgemmEnd);

  console.log(`\n## Training step\n`);
  console.log(`${machine.cpu}, ${machine.logicalCores} cores; engine threads ${machine.engineThreads}. sgemm (engine): ${fmt(sgemmStart)} GFLOP/s at start, ${fmt(sgemmEnd)} at end; "of peak" uses ${fmt(peak)}.`);
  console.log(`FLOPs per token from the engine's flopsPerToken(T) = 6*(L*12*C^2 + V*C) + 6*L*C*T for every backend. Step = forward + backward + optimizer (engine: AdamW, weight decay 0.1, clipping at 1.0; tfjs: tf.train.adam).`);
  console.log(`native-1t is the engine on one thread; tfjs-wasm runs on one thread in Node (tfjs does not enable its threaded build there).\n`);
  console.log('| config | params | backend | threads | ms/step | tokens/s | GFLOP/s | of sgemm peak | peak RSS (MB) |');
  console.log('|---|---:|---|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) {
    const c = configByName(row.config);
    const params = row.params;
    if (row.result) {
      const r = row.result;
      const gflops = (row.flopsPerToken * r.tokensPerStep) / r.step.mean / 1e9;
      console.log(
        `| ${row.config} (T=${c.T}, B=${c.B}) | ${fmt(params / 1e6, 2)}M | ${row.backend} | ${r.threads} | ${fmt(r.step.mean * 1000)} ±${fmt(r.step.rme)}% | ${fmtInt(r.tokensPerStep / r.step.mean)} | ${fmt(gflops, 2)} | ${fmt((100 * gflops) / peak)}% | ${fmtInt(r.maxRssMB)} |`,
      );
    } else {
      const why = row.skipped ?? `failed: ${row.failed!.split('\n')[0]}`;
      console.log(`| ${row.config} (T=${c.T}, B=${c.B}) | ${fmt(params / 1e6, 2)}M | ${row.backend} | | ${why} | | | | |`);
    }
  }
  const notes = rows.filter((r) => r.result && r.result.notes.length > 0);
  if (notes.length) console.log('\n' + notes.map((r) => `- ${r.config}/${r.backend}: ${r.result!.notes.join('; ')}`).join('\n'));
  if (generations.length) {
    console.log(`\n## Generation (engine, KV cache, temperature 1, prompt 16 tokens, 64 new tokens, prefill included)\n`);
    console.log('| config | backend | threads | batch | s/call | new tokens/s | peak RSS (MB) |');
    console.log('|---|---|---:|---:|---:|---:|---:|');
    for (const g of generations)
      for (const r of g.runs)
        console.log(`| ${g.config} | ${g.backend} | ${g.threads} | ${r.batch} | ${fmt(r.timing.mean, 3)} ±${fmt(r.timing.rme)}% | ${fmt(r.tokensPerSec)} | ${fmtInt(g.maxRssMB)} |`);
  }

  const outDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bench-results');
  mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `train-step-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    JSON.stringify({ date: new Date().toISOString(), machine, quick: opts.quick, sgemm: { start: sgemmStart, end: sgemmEnd }, train: rows, generate: generations, generateFailures: genFailures }, null, 2),
  );
  console.log(`\nresults: ${path.relative(process.cwd(), file)}`);
}

const facts = new Map<string, { params: number; flopsPerToken: number }>();

/**
 * Parameter count and FLOPs per token from the engine, used for every backend (the count is
 * 6 * (L*12*C^2 + V*C) + 6*L*C*T per token, as llm.c counts it).
 */
function engineFacts(c: BenchConfig): { params: number; flopsPerToken: number } {
  let f = facts.get(c.name);
  if (!f) {
    const m = Model.empty({ ...c.model });
    f = { params: m.numParams, flopsPerToken: m.flopsPerToken(c.T) };
    m.dispose();
    facts.set(c.name, f);
  }
  return f;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
