// `pnpm bench`: training-step speed of the native engine against PyTorch on the CPU (fp32, bf16
// autocast, one thread) and tfjs (wasm and cpu backends), and generation speed of the engine and
// PyTorch; prints markdown tables and writes JSON to bench-results/.
//
//   pnpm bench [--config small|llama-small|10m|124m|smollm2-135m|all (comma-separated)]
//              [--backends native,native-bf16,native-1t,pytorch,pytorch-bf16,pytorch-1t,wasm,cpu] [--quick]
//              [--max-step-seconds 120] [--no-generate]
//
// Defaults: every config and every backend. Configs are GPT-2 (small, 10m, 124m) or Llama
// (llama-small, smollm2-135m: SmolLM2-135M's shape); tfjs has no Llama baseline, so its rows say
// so for those. A backend whose step a smaller config predicts to take longer than
// --max-step-seconds is skipped with that estimate (and so is its generation on that config).
// Each measurement runs in its own child process, so peak RSS is per backend and config. PyTorch
// runs benchmarks/pytorch_models.py under a Python that can import torch ($S2S_BENCH_PYTHON, else
// /usr/bin/python3, else python3; scripts/setup.sh --for-bench installs it); without one, its rows
// are skipped with one line saying so.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Model, cpuBf16, getNumThreads, measureSgemm } from '@s2s/core';
import { checkPytorchParity, findPytorch, isPytorch, type PytorchInfo, type PytorchParity } from './pytorch.js';
import {
  BACKENDS,
  CONFIGS,
  GENERATE_BACKENDS,
  configByName,
  isLlama,
  unsupported,
  runInChild,
  type Backend,
  type BenchConfig,
  type Effort,
  type GenerateBackend,
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
  const opts: Options = { configs: CONFIGS, backends: [...BACKENDS], quick: false, maxStepSeconds: 120, generate: true };
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
        console.log(`usage: pnpm bench [--config ${CONFIGS.map((c) => c.name).join('|')}|all] [--backends ${BACKENDS.join(',')}] [--quick] [--max-step-seconds N] [--no-generate]`);
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

interface GenRow {
  config: string;
  backend: GenerateBackend;
  result?: GenerateResult;
  skipped?: string;
  failed?: string;
}

/** The engine against each PyTorch variant: [engine backend, PyTorch backend]. */
const VERSUS: [Backend & GenerateBackend, Backend & GenerateBackend][] = [
  ['native', 'pytorch'],
  ['native', 'pytorch-bf16'],
  ['native-bf16', 'pytorch-bf16'],
  ['native-bf16', 'pytorch'],
  ['native-1t', 'pytorch-1t'],
];

/** Rows whose matmuls multiply bf16: their "of peak" is against the engine's bf16 GEMM rate. */
const isBf16 = (b: string) => b === 'native-bf16' || b === 'pytorch-bf16';

/** The lscpu flags that decide what an fp32 or bf16 CPU kernel can use. */
const CPU_FLAGS = ['avx2', 'fma', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'] as const;

/** From /proc/cpuinfo (what lscpu reads): those flags, and family / model / stepping (a VM's model name may be generic). */
function cpuDetails(): { flags: Record<string, boolean>; id: string } | null {
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
    const line = field('flags');
    if (line === undefined) return null;
    const have = new Set(line.split(/\s+/));
    return {
      flags: Object.fromEntries(CPU_FLAGS.map((f) => [f, have.has(f)])),
      id: `${field('vendor_id') ?? '?'} family ${field('cpu family') ?? '?'} model ${field('model') ?? '?'} stepping ${field('stepping') ?? '?'}`,
    };
  } catch {
    return null;
  }
}

const describeCpu = (cpu: ReturnType<typeof cpuDetails>) =>
  cpu ? `${cpu.id}; ${Object.entries(cpu.flags).map(([f, on]) => (on ? f : `no ${f}`)).join(' ')}` : 'cpu flags unknown';

function describePytorch(info: PytorchInfo, threads: number, ompWaitPolicy: string): string {
  const ob = info.blas.openblas;
  const blas = ob
    ? `${ob.config} (core ${ob.core}; OPENBLAS_CORETYPE ${info.env.OPENBLAS_CORETYPE ?? 'unset'})`
    : `${info.blas.libraries.join(', ') || 'unknown'}${info.blas.warning ? ` (${info.blas.warning})` : ''}`;
  const dnn = info.onednn?.isa ? `oneDNN: ${info.onednn.isa}${info.onednn.bf16MatmulKernel ? `, bf16 matmul kernel ${info.onednn.bf16MatmulKernel}` : ''}` : 'oneDNN ISA unknown';
  const attention = info.sdpa ? 'scaled_dot_product_attention' : 'matmul + softmax attention (this torch has no scaled_dot_product_attention)';
  return (
    `PyTorch ${info.torch} (${info.python}, Python ${info.pythonVersion}); BLAS ${info.buildBlasInfo ?? '?'}: ${blas}; ${dnn}; ` +
    `ATen CPU capability ${info.cpuCapability ?? '?'}; ${attention}; threads (torch and OpenBLAS) ${threads} for pytorch and pytorch-bf16, 1 for pytorch-1t; OMP_WAIT_POLICY=${ompWaitPolicy}${ompWaitPolicy === 'passive' ? " (libgomp's spinning otherwise fights OpenBLAS's threads for the cores)" : ''}; ` +
    `Python with torch imported holds ${Math.round(info.importRssMB)} MB of each PyTorch row's peak RSS`
  );
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
    cpuDetails: cpuDetails(),
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
  console.log(`# s2s training-step benchmark${opts.quick ? ' (quick)' : ''}\n`);
  console.log(`machine: ${machine.cpu} (${describeCpu(machine.cpuDetails)}), ${machine.logicalCores} logical cores, ${machine.memoryGB} GB; engine threads ${machine.engineThreads}; ${machine.platform}; Node ${machine.node}`);

  // PyTorch's rows need a Python that imports torch; without one they are left out, not failed.
  let pytorch:
    | { info: PytorchInfo; ompWaitPolicy: string; description: string; parity: PytorchParity[]; parityLines: string[]; parityFailed: string[] }
    | { missing: string }
    | undefined;
  if (opts.backends.some(isPytorch)) {
    const probe = await findPytorch();
    if (probe.ok) {
      const pt = (pytorch = {
        info: probe.info,
        ompWaitPolicy: probe.ompWaitPolicy,
        description: describePytorch(probe.info, machine.engineThreads, probe.ompWaitPolicy),
        parity: [] as PytorchParity[],
        parityLines: [] as string[],
        parityFailed: [] as string[],
      });
      console.log(`pytorch: ${pt.description}`);
      // Same work: PyTorch's model run from the engine's weights must give the engine's numbers;
      // checked on the smallest config of each architecture in this run.
      const parityConfigs = [...new Set(opts.configs.map(smallestOfArch))];
      for (const pc of parityConfigs) {
        try {
          const p = await checkPytorchParity(pc);
          pt.parity.push(p);
          const ok = p.logprobMaxAbsDiff < 1e-4 && Math.abs(p.gradNormTorch - p.gradNormEngine) < 1e-4 * p.gradNormEngine && p.paramsOffByOver1PctLr < 1e-3 * p.numParams;
          const line =
            `PyTorch parity (${p.config} config, fp32, the engine's weights and batch; engine vs PyTorch): log-prob max |diff| ${p.logprobMaxAbsDiff.toExponential(1)}, loss ${fmt(p.lossEngine, 5)} vs ${fmt(p.lossTorch, 5)}, ` +
            `gradient norm ${fmt(p.gradNormEngine, 5)} vs ${fmt(p.gradNormTorch, 5)}; after one clipped AdamW step (lr ${p.lr}) max |param diff| ${p.paramMaxAbsDiff.toExponential(1)}, ` +
            `${fmtInt(p.paramsOffByOver1PctLr)} of ${fmtInt(p.numParams)} parameters off by over 1% of lr${ok ? '' : ' -- WARNING: PyTorch does not reproduce the engine, its rows may not measure the same work'}`;
          pt.parityLines.push(line);
          console.log(line);
        } catch (e) {
          const why = `${pc.name}: ${(e as Error).message.split('\n')[0]}`;
          pt.parityFailed.push(why);
          console.log(`pytorch parity check failed on ${why}`);
        }
      }
    } else {
      pytorch = { missing: probe.why };
      const left = opts.backends.filter(isPytorch);
      console.log(`PyTorch is missing, so the ${left.join(', ')} rows are skipped (${probe.why}); install it with scripts/setup.sh --for-bench`);
      opts.backends = opts.backends.filter((b) => !isPytorch(b));
    }
  }

  // The engine's own GEMM rate is the machine's peak for this comparison; measured at both ends
  // of the run, since a busy machine shows up as the two disagreeing.
  const sgemmStart = await measureSgemm();
  console.log(`sgemm (engine, 2048^3, ${machine.engineThreads} threads): ${fmt(sgemmStart)} GFLOP/s`);
  // And the bf16 GEMM (bf16 operands, fp32 accumulation), where the processor has it.
  const bf16 = cpuBf16();
  const bf16Start = bf16.native ? await measureSgemm(2048, 2048, 2048, 10, 'bf16') : undefined;
  console.log(bf16Start ? `bf16 GEMM (engine, ${bf16.isa}, 2048^3): ${fmt(bf16Start)} GFLOP/s\n` : `bf16 GEMM: not native here (${bf16.reason})\n`);

  for (const c of opts.configs) {
    const f = engineFacts(c);
    console.log(`config ${c.name}: ${describeShape(c)} T=${c.T} B=${c.B}: ${fmtInt(f.params)} parameters, ${fmt(f.flopsPerToken / 1e6, 2)} MFLOP/token`);
  }
  console.log('');

  // Measured GFLOP/s per backend on the largest config (by FLOPs per step) run so far, for estimating the next one.
  const rate = new Map<Backend, { gflops: number; from: string; stepFlops: number }>();
  const rows: Row[] = [];
  for (const c of opts.configs) {
    const fpt = engineFacts(c).flopsPerToken;
    const stepFlops = fpt * c.B * c.T;
    for (const backend of opts.backends) {
      const row: Row = { config: c.name, backend, params: engineFacts(c).params, flopsPerToken: fpt };
      rows.push(row);
      const why = unsupported(c, backend, bf16);
      if (why) {
        row.skipped = why;
        console.log(`[${c.name}/${backend}] ${why}`);
        continue;
      }
      let known = rate.get(backend);
      const small = smallestOfArch(c);
      if (!known && c !== small) {
        // Nothing measured yet to estimate from: measure the smallest config of this architecture first (not reported as a row).
        console.log(`[${backend}] measuring ${small.name} first to estimate ${c.name}'s step time`);
        try {
          const probeJob = { kind: 'train' as const, config: small.name, backend, effort: { minSamples: 1, maxTime: 0.5 }, threads: machine.engineThreads, expectedParams: engineFacts(small).params };
          const probe = (await runInChild(probeJob, childTimeout)) as TrainResult;
          const smallFlops = engineFacts(small).flopsPerToken * probe.tokensPerStep;
          known = { gflops: smallFlops / probe.step.mean / 1e9, from: small.name, stepFlops: smallFlops };
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
        const job = { kind: 'train' as const, config: c.name, backend, effort, threads: machine.engineThreads, expectedParams: engineFacts(c).params };
        const r = (await runInChild(job, childTimeout)) as TrainResult;
        row.result = r;
        const gflops = (fpt * r.tokensPerStep) / r.step.mean / 1e9;
        if (!known || stepFlops >= known.stepFlops) rate.set(backend, { gflops, from: c.name, stepFlops });
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

  const genRows: GenRow[] = [];
  const genBackends = opts.generate ? GENERATE_BACKENDS.filter((b) => opts.backends.includes(b)) : [];
  for (const c of opts.configs) {
    for (const backend of genBackends) {
      const row: GenRow = { config: c.name, backend };
      genRows.push(row);
      // A backend too slow to train this config within --max-step-seconds does not generate on it either.
      const trained = rows.find((r) => r.config === c.name && r.backend === backend);
      if (trained?.skipped) {
        row.skipped = `skipped with its training step (${trained.skipped.replace(/^skipped \(|\)$/g, '')})`;
        console.log(`[${c.name}/generate/${backend}] ${row.skipped}`);
        continue;
      }
      const job = { kind: 'generate' as const, config: c.name, backend, batches: [1, 32], promptLen: 16, newTokens: 64, effort, threads: machine.engineThreads, expectedParams: engineFacts(c).params };
      process.stdout.write(`[${c.name}/generate/${backend}] running...`);
      try {
        const g = (await runInChild(job, childTimeout)) as GenerateResult;
        row.result = g;
        console.log(' ' + g.runs.map((r) => `B=${r.batch}: ${fmt(r.tokensPerSec)} tok/s`).join(', '));
      } catch (e) {
        row.failed = (e as Error).message;
        console.log(` FAILED: ${row.failed.split('\n')[0]}`);
        console.log(row.failed.split('\n').slice(1).map((l) => `    ${l}`).join('\n'));
      }
    }
  }
  const generations = genRows.flatMap((g) => (g.result ? [g.result] : []));
  const genFailures = genRows.flatMap((g) => (g.failed ? [`${g.config}/${g.backend}: ${g.failed}`] : []));

  const sgemmEnd = await measureSgemm();
  const bf16End = bf16.native ? await measureSgemm(2048, 2048, 2048, 10, 'bf16') : undefined;
  const fp32Peak = Math.max(sgemmStart, sgemmEnd);
  const bf16Peak = bf16Start !== undefined && bf16End !== undefined ? Math.max(bf16Start, bf16End) : undefined;
  // a row's peak: bf16 rows against the bf16 GEMM where it was measured
  const peakOf = (backend: string) => (isBf16(backend) && bf16Peak ? bf16Peak : fp32Peak);

  console.log(`\n## Training step\n`);
  console.log(`${machine.cpu} (${describeCpu(machine.cpuDetails)}), ${machine.logicalCores} cores; engine threads ${machine.engineThreads}. sgemm (engine): ${fmt(sgemmStart)} GFLOP/s at start, ${fmt(sgemmEnd)} at end; "of peak" uses ${fmt(fp32Peak)}${bf16Peak ? `; bf16 GEMM (engine, ${bf16.isa}): ${fmt(bf16Start!)} at start, ${fmt(bf16End!)} at end, the peak of the bf16 rows (native-bf16, pytorch-bf16): ${fmt(bf16Peak)}` : `; bf16 GEMM not native here (${bf16.reason})`}.`);
  const archs = new Set(opts.configs.map((c) => (isLlama(c) ? 'llama' : 'gpt2')));
  console.log(
    `FLOPs per token from the engine's flopsPerToken(T) for every backend (every matmul of forward and backward, the tied LM head included, and causal attention, as llm.c counts them): ` +
      [
        ...(archs.has('gpt2') ? ['GPT-2 6*(L*12*C^2 + V*C) + 6*L*C*T'] : []),
        ...(archs.has('llama') ? ['Llama 6*(L*(C*(QW + 2*KW) + QW*C + 3*C*F) + V*C) + 6*L*QW*T with QW = heads*headDim, KW = kvHeads*headDim, F = ffnSize'] : []),
      ].join('; ') +
      `. Step = forward + backward + optimizer (engine: AdamW, weight decay 0.1, clipping at 1.0; ` +
      `PyTorch: the same model written from Hugging Face's GPT2LMHeadModel / LlamaForCausalLM (parameter count checked equal to the engine's), mean cross-entropy, clip_grad_norm_ 1.0, torch.optim.AdamW with weight decay 0.1 on matrices and embeddings as the engine; tfjs: tf.train.adam, GPT-2 only).`,
  );
  console.log(
    `native is the engine in fp32, native-bf16 with bf16 matmuls (S2S_CPU_PRECISION=bf16: operands rounded to bf16, fp32 accumulation; weights, norms, softmax, losses and AdamW in fp32), native-1t fp32 on one thread; tfjs-wasm runs on one thread in Node (tfjs does not enable its threaded build there).`,
  );
  if (pytorch && 'info' in pytorch)
    console.log(
      `pytorch is fp32, pytorch-bf16 the same under torch.autocast('cpu', dtype=torch.bfloat16) (weights, gradients and AdamW state fp32; its "of peak" is against the bf16 GEMM where that was measured), pytorch-1t fp32 on one thread. ` +
        `${pytorch.description}.${pytorch.parityLines.map((l) => ` ${l}.`).join('')}${pytorch.parityFailed.map((f) => ` Parity check failed on ${f}.`).join('')}`,
    );
  else if (pytorch) console.log(`PyTorch rows skipped: PyTorch is missing (${pytorch.missing}); scripts/setup.sh --for-bench installs it.`);
  console.log('');
  console.log('| config | params | backend | threads | ms/step | tokens/s | GFLOP/s | of peak | peak RSS (MB) |');
  console.log('|---|---:|---|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) {
    const c = configByName(row.config);
    const params = row.params;
    if (row.result) {
      const r = row.result;
      const gflops = (row.flopsPerToken * r.tokensPerStep) / r.step.mean / 1e9;
      console.log(
        `| ${row.config} (T=${c.T}, B=${c.B}) | ${fmt(params / 1e6, 2)}M | ${row.backend} | ${r.threads} | ${fmt(r.step.mean * 1000)} ±${fmt(r.step.rme)}% | ${fmtInt(r.tokensPerStep / r.step.mean)} | ${fmt(gflops, 2)} | ${fmt((100 * gflops) / peakOf(row.backend))}% | ${fmtInt(r.maxRssMB)} |`,
      );
    } else {
      const why = row.skipped ?? `failed: ${row.failed!.split('\n')[0]}`;
      console.log(`| ${row.config} (T=${c.T}, B=${c.B}) | ${fmt(params / 1e6, 2)}M | ${row.backend} | | ${why} | | | | |`);
    }
  }
  const notes = rows.filter((r) => r.result && r.result.notes.length > 0);
  if (notes.length) console.log('\n' + notes.map((r) => `- ${r.config}/${r.backend}: ${r.result!.notes.join('; ')}`).join('\n'));
  const trainVs = opts.configs.flatMap((c) => {
    const ms = (b: Backend) => rows.find((r) => r.config === c.name && r.backend === b)?.result?.step.mean;
    const parts = VERSUS.flatMap(([engine, torch]) => {
      const [e, t] = [ms(engine), ms(torch)];
      return e && t ? [`${engine} / ${torch} = ${fmt(t / e, 2)}x`] : [];
    });
    return parts.length ? [`- ${c.name}: ${parts.join(', ')}`] : [];
  });
  if (trainVs.length) console.log(`\nEngine vs PyTorch in this run (tokens/s of the engine over PyTorch's; above 1x the engine is faster):\n\n${trainVs.join('\n')}`);
  if (genRows.length) {
    console.log(`\n## Generation (KV cache, temperature 1, prompt 16 tokens, 64 new tokens, prefill included)\n`);
    if (genRows.some((g) => isPytorch(g.backend)))
      console.log(
        `PyTorch: the same model under torch.inference_mode(), one batched prefill (LM head on the last position), then one step per token against a preallocated KV cache (Llama: of its key/value heads, repeat_kv at attention), torch.multinomial sampling; pytorch-bf16 under bf16 autocast with a bf16 cache.`,
      );
    console.log(
      `GFLOP/s counts the model's forward work of a call (2 FLOPs per matmul weight per token through the trunk for the prompt and every new token but the last, ` +
        `the LM head once per new token, attention 4*L*QW per attended position), from the engine's flopsPerToken; "of peak" against the same peaks as the training rows.\n`,
    );
    console.log('| config | backend | threads | batch | s/call | new tokens/s | GFLOP/s | of peak | peak RSS (MB) |');
    console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const g of genRows) {
      if (g.result)
        for (const r of g.result.runs) {
          const gflops = generateFlops(configByName(g.config), r.batch, g.result.promptLen, g.result.newTokens) / r.timing.mean / 1e9;
          console.log(
            `| ${g.config} | ${g.backend} | ${g.result.threads} | ${r.batch} | ${fmt(r.timing.mean, 3)} ±${fmt(r.timing.rme)}% | ${fmt(r.tokensPerSec)} | ${fmt(gflops, 2)} | ${fmt((100 * gflops) / peakOf(g.backend))}% | ${fmtInt(g.result.maxRssMB)} |`,
          );
        }
      else console.log(`| ${g.config} | ${g.backend} | | | ${g.skipped ?? `failed: ${g.failed!.split('\n')[0]}`} | | | | |`);
    }
    const genVs = opts.configs.flatMap((c) =>
      [1, 32].flatMap((batch) => {
        const tps = (b: GenerateBackend) => genRows.find((g) => g.config === c.name && g.backend === b)?.result?.runs.find((r) => r.batch === batch)?.tokensPerSec;
        const parts = VERSUS.flatMap(([engine, torch]) => {
          const [e, t] = [tps(engine), tps(torch)];
          return e && t ? [`${engine} / ${torch} = ${fmt(e / t, 2)}x`] : [];
        });
        return parts.length ? [`- ${c.name}, batch ${batch}: ${parts.join(', ')}`] : [];
      }),
    );
    if (genVs.length) console.log(`\nEngine vs PyTorch in this run (new tokens/s of the engine over PyTorch's):\n\n${genVs.join('\n')}`);
  }

  const outDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bench-results');
  mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `train-step-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        machine,
        quick: opts.quick,
        sgemm: { start: sgemmStart, end: sgemmEnd },
        bf16Gemm: bf16Peak ? { isa: bf16.isa, start: bf16Start, end: bf16End } : { native: false, reason: bf16.reason },
        pytorch: pytorch ?? null,
        train: rows,
        generate: generations,
        generateFailures: genFailures,
        generateSkipped: genRows.flatMap((g) => (g.skipped ? [{ config: g.config, backend: g.backend, why: g.skipped }] : [])),
      },
      null,
      2,
    ),
  );
  console.log(`\nresults: ${path.relative(process.cwd(), file)}`);
}

/** The smallest config of c's architecture (CONFIGS lists each architecture's smallest first). */
function smallestOfArch(c: BenchConfig): BenchConfig {
  return CONFIGS.find((x) => isLlama(x) === isLlama(c))!;
}

function describeShape(c: BenchConfig): string {
  const m = c.model;
  const base = `V=${m.vocabSize} C=${m.channels} L=${m.numLayers} NH=${m.numHeads}`;
  if (!isLlama(c)) return `gpt2 ${base}`;
  const tied = (m.tieEmbeddings ?? true) ? 'tied' : 'untied';
  return `llama ${base} KVH=${m.numKvHeads ?? m.numHeads} hd=${m.headDim ?? m.channels / m.numHeads} F=${m.ffnSize ?? 4 * m.channels} rope_theta=${m.ropeTheta ?? 10000} ${tied}`;
}

const facts = new Map<string, { params: number; flopsPerToken: number; matmulFlops: number; attnFlops: number }>();

/**
 * Parameter count and FLOPs per token from the engine, used for every backend (GPT-2:
 * 6 * (L*12*C^2 + V*C) + 6*L*C*T per token, as llm.c counts it; Llama the same with its
 * projections: see the table's header line). matmulFlops = flopsPerToken(0) / 6 (the matmul
 * weights a token passes, LM head included); attnFlops = the T slope / 6 (L * QW).
 */
function engineFacts(c: BenchConfig): { params: number; flopsPerToken: number; matmulFlops: number; attnFlops: number } {
  let f = facts.get(c.name);
  if (!f) {
    const m = Model.empty({ ...c.model });
    const f0 = m.flopsPerToken(0);
    f = { params: m.numParams, flopsPerToken: m.flopsPerToken(c.T), matmulFlops: f0 / 6, attnFlops: (m.flopsPerToken(1) - f0) / 6 };
    m.dispose();
    facts.set(c.name, f);
  }
  return f;
}

/**
 * Forward FLOPs of one generation call (batch B, prompt P, N new tokens), counted as the training
 * rows count them: the trunk's matmuls (2 per weight) for the P prompt tokens and the N - 1 new
 * tokens fed back, the LM head (2*V*C) for each of the N sampled positions, and attention
 * (4*L*QW per attended key: QK^T and AV) for each query against its causal prefix.
 */
function generateFlops(c: BenchConfig, B: number, P: number, N: number): number {
  const f = engineFacts(c);
  const head = c.model.vocabSize * c.model.channels;
  const trunk = f.matmulFlops - head;
  let keys = (P * (P + 1)) / 2; // prefill: query t attends t keys
  for (let s = 0; s < N - 1; s++) keys += P + s + 1; // the s-th fed-back token attends P + s + 1
  return B * (2 * trunk * (P + N - 1) + 2 * head * N + 4 * f.attnFlops * keys);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
