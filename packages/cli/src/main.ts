// The `s2s` command: parses the subcommand and its flags, runs it, and turns errors into a
// message and a non-zero exit status.
import { parseArgs, type ParseArgsConfig } from 'node:util';

import { setNumThreads } from '@s2s/core';

import { TRAIN_TEXT_DEFAULTS, trainText, type TrainTextOptions } from './commands/train-text.js';

class UsageError extends Error {}

const HELP = `s2s: RLHF with sequence-to-sequence reward models, on a native engine

usage: s2s <command> [flags]

commands:
  demo         the main job (for now: train-text with its defaults)
  train-text   train a small character-level GPT on a text, print the falling loss, sample from it

common flags:
  --threads N  engine threads (default: S2S_NUM_THREADS, else all cores)
  -h, --help   this help, or a command's help after the command
`;

const TRAIN_TEXT_HELP = `usage: s2s train-text [flags]

Trains a character-level GPT and samples text from it.

  --text FILE        UTF-8 text to learn (default: a text generated from a small grammar)
  --steps N          optimizer steps (default ${TRAIN_TEXT_DEFAULTS.steps})
  --batch-size N     sequences per step (default ${TRAIN_TEXT_DEFAULTS.batchSize})
  --seq-len N        context length (default ${TRAIN_TEXT_DEFAULTS.seqLen})
  --layers N         transformer blocks (default ${TRAIN_TEXT_DEFAULTS.layers})
  --heads N          attention heads (default ${TRAIN_TEXT_DEFAULTS.heads})
  --channels N       model width (default ${TRAIN_TEXT_DEFAULTS.channels})
  --lr X             peak learning rate (default ${TRAIN_TEXT_DEFAULTS.lr})
  --seed N           seed for weights, batches and samples (default ${TRAIN_TEXT_DEFAULTS.seed})
  --samples N        texts to sample at the end (default ${TRAIN_TEXT_DEFAULTS.samples})
  --temperature X    sampling temperature (default ${TRAIN_TEXT_DEFAULTS.temperature})
`;

const trainTextFlags = {
  text: { type: 'string' },
  steps: { type: 'string' },
  'batch-size': { type: 'string' },
  'seq-len': { type: 'string' },
  layers: { type: 'string' },
  heads: { type: 'string' },
  channels: { type: 'string' },
  lr: { type: 'string' },
  seed: { type: 'string' },
  samples: { type: 'string' },
  temperature: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

function num(flag: string, value: string | undefined, fallback: number, integer = true): number {
  if (value === undefined) return fallback;
  const x = Number(value);
  if (!Number.isFinite(x) || (integer && (!Number.isInteger(x) || x < 1)) || x < 0)
    throw new UsageError(`--${flag} must be a ${integer ? 'positive integer' : 'non-negative number'}, got ${JSON.stringify(value)}`);
  return x;
}

async function runTrainText(values: Record<string, string | boolean | undefined>): Promise<void> {
  const v = values as Record<string, string | undefined>;
  const d = TRAIN_TEXT_DEFAULTS;
  const opts: TrainTextOptions = {
    textFile: v.text,
    steps: num('steps', v.steps, d.steps),
    batchSize: num('batch-size', v['batch-size'], d.batchSize),
    seqLen: num('seq-len', v['seq-len'], d.seqLen),
    layers: num('layers', v.layers, d.layers),
    heads: num('heads', v.heads, d.heads),
    channels: num('channels', v.channels, d.channels),
    lr: num('lr', v.lr, d.lr, false),
    seed: num('seed', v.seed, d.seed),
    samples: num('samples', v.samples, d.samples),
    sampleLength: d.sampleLength,
    temperature: num('temperature', v.temperature, d.temperature, false),
  };
  const every = Math.max(1, Math.floor(opts.steps / 15));
  console.log(`training a character-level GPT (${opts.layers} layers, width ${opts.channels}) for ${opts.steps} steps`);
  const result = await trainText(opts, (e) => {
    if (e.step === 1 || e.step % every === 0 || e.step === opts.steps)
      console.log(
        `step ${String(e.step).padStart(5)}  loss ${e.loss.toFixed(4)}  grad norm ${e.gradNorm.toFixed(3)}  ${Math.round(e.tokensPerSecond)} tokens/s`,
      );
  });
  const first = result.losses.slice(0, 10);
  const last = result.losses.slice(-10);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(`\nloss: ${mean(first).toFixed(3)} (first 10 steps) -> ${mean(last).toFixed(3)} (last 10); uniform guess: ${Math.log(result.vocab.length).toFixed(3)}`);
  console.log(`\nsamples (temperature ${opts.temperature}):`);
  for (const s of result.samples) console.log(`  ${JSON.stringify(s)}`);
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const common = { threads: { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const;
  try {
    if (!command || command === '-h' || command === '--help' || command === 'help') {
      console.log(HELP);
      return command ? 0 : 2;
    }
    if (command !== 'demo' && command !== 'train-text') throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    const { values, positionals } = parseArgs({ args: rest, options: { ...common, ...trainTextFlags }, strict: true, allowPositionals: true });
    if (positionals.length) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
    if (values.help) {
      console.log(TRAIN_TEXT_HELP);
      return 0;
    }
    if (values.threads !== undefined) setNumThreads(num('threads', values.threads, 0));
    await runTrainText(values);
    return 0;
  } catch (e) {
    const err = e as Error & { code?: string };
    if (e instanceof UsageError || err.code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`s2s: ${err.message}\n(run \`s2s --help\` for usage)`);
      return 2;
    }
    console.error(`s2s: ${err.message}`);
    return 1;
  }
}

const isEntry = process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/').split('/').pop()!);
if (isEntry) process.exitCode = await main(process.argv.slice(2));
