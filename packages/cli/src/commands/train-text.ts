// `s2s train-text`: trains a small character-level GPT on a text and samples from it -- the
// shortest path through the engine (forward, backward, AdamW, KV-cache generation).
import { readFile } from 'node:fs/promises';

import { Model, Random } from '@s2s/core';

import { type Command, defineCommand, engineOptions } from '../command.js';
import type { OptionSchema } from '../options.js';
import { sampleText } from '../sample-text.js';

export interface TrainTextOptions {
  /** a UTF-8 text file; default: a text generated from a small grammar */
  textFile?: string;
  steps: number;
  batchSize: number;
  seqLen: number;
  layers: number;
  heads: number;
  channels: number;
  lr: number;
  seed: number;
  samples: number;
  sampleLength: number;
  temperature: number;
}

export const TRAIN_TEXT_DEFAULTS: TrainTextOptions = {
  steps: 400,
  batchSize: 8,
  seqLen: 128,
  layers: 4,
  heads: 4,
  channels: 128,
  lr: 3e-3,
  seed: 1,
  samples: 3,
  sampleLength: 120,
  temperature: 0.8,
};

export interface TrainTextEvent {
  step: number;
  loss: number;
  gradNorm: number;
  tokensPerSecond: number;
}

export interface TrainTextResult {
  losses: number[];
  samples: string[];
  vocab: string[];
}

export async function trainText(
  opts: TrainTextOptions,
  onStep: (e: TrainTextEvent) => void = () => {},
  onStart: (model: { device: 'cpu' | 'cuda'; numParams: number }) => void = () => {},
): Promise<TrainTextResult> {
  const text = opts.textFile ? await readFile(opts.textFile, 'utf8') : sampleText({ seed: opts.seed });
  const vocab = [...new Set(text)].sort();
  if (text.length < opts.seqLen + 1)
    throw new Error(`${opts.textFile ?? 'the text'} has ${text.length} characters; it needs more than seqLen (${opts.seqLen})`);
  const id = new Map(vocab.map((ch, i) => [ch, i]));
  const data = Int32Array.from(text, (ch) => id.get(ch)!);

  const model = await Model.create(
    { vocabSize: vocab.length, maxSeqLen: opts.seqLen, numLayers: opts.layers, numHeads: opts.heads, channels: opts.channels },
    { seed: opts.seed },
  );
  onStart({ device: model.device, numParams: model.numParams });
  const { batchSize: B, seqLen: T } = opts;
  const tokens = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  const dlogprob = new Float32Array(B * T).fill(-1 / (B * T)); // d(mean NLL)/d logprob
  const rng = new Random(opts.seed);
  const losses: number[] = [];
  const warmup = Math.max(1, Math.floor(opts.steps / 10));
  try {
    for (let step = 1; step <= opts.steps; step++) {
      const t0 = performance.now();
      for (let b = 0; b < B; b++) {
        const at = rng.int(data.length - T);
        tokens.set(data.subarray(at, at + T), b * T);
        targets.set(data.subarray(at + 1, at + T + 1), b * T);
      }
      const { logprob } = await model.forward({ tokens, targets, B, T });
      const loss = -logprob.reduce((a, x) => a + x, 0) / (B * T);
      await model.backward({ dlogprob });
      // linear warmup, then cosine decay to a tenth
      const progress = Math.max(0, (step - warmup) / Math.max(1, opts.steps - warmup));
      const lr = step <= warmup ? (opts.lr * step) / warmup : opts.lr * (0.1 + 0.45 * (1 + Math.cos(Math.PI * progress)));
      const gradNorm = await model.step({ lr, weightDecay: 0.01, maxGradNorm: 1 });
      losses.push(loss);
      onStep({ step, loss, gradNorm, tokensPerSecond: (B * T) / ((performance.now() - t0) / 1000) });
    }
    const prompts = Array.from({ length: opts.samples }, (_, i) => [id.get(text[text.indexOf('\n', i * 97) + 1] ?? text[0])!]);
    const gens = await model.generate(prompts, {
      maxNewTokens: Math.min(opts.sampleLength, T - 1),
      temperature: opts.temperature,
      seed: opts.seed,
    });
    const samples = gens.map((g, i) => [...prompts[i], ...g.tokens].map((t) => vocab[t]).join(''));
    return { losses, samples, vocab };
  } finally {
    model.dispose();
  }
}

const d = TRAIN_TEXT_DEFAULTS;
const options = {
  text: { type: 'string', arg: 'FILE', help: 'UTF-8 text to learn (default: a text generated from a small grammar)' },
  steps: { type: 'int', min: 1, default: d.steps, help: 'optimizer steps' },
  batchSize: { type: 'int', min: 1, default: d.batchSize, help: 'sequences per step' },
  seqLen: { type: 'int', min: 1, default: d.seqLen, help: 'context length' },
  layers: { type: 'int', min: 1, default: d.layers, help: 'transformer blocks' },
  heads: { type: 'int', min: 1, default: d.heads, help: 'attention heads' },
  channels: { type: 'int', min: 1, default: d.channels, help: 'model width' },
  lr: { type: 'float', min: 0, default: d.lr, help: 'peak learning rate' },
  seed: { type: 'int', min: 0, default: d.seed, help: 'seed for weights, batches and samples' },
  samples: { type: 'int', min: 1, default: d.samples, help: 'texts to sample at the end' },
  temperature: { type: 'float', min: 0, default: d.temperature, help: 'sampling temperature' },
  ...engineOptions,
} as const satisfies OptionSchema;

async function runTrainText(o: TrainTextOptions): Promise<number> {
  const every = Math.max(1, Math.floor(o.steps / 15));
  const result = await trainText(
    o,
    (e) => {
      if (e.step === 1 || e.step % every === 0 || e.step === o.steps)
        console.log(`step ${String(e.step).padStart(5)}  loss ${e.loss.toFixed(4)}  grad norm ${e.gradNorm.toFixed(3)}  ${Math.round(e.tokensPerSecond)} tokens/s`);
    },
    (m) => console.log(`training a character-level GPT (${o.layers} layers, width ${o.channels}, ${m.numParams.toLocaleString('en-US')} parameters) on ${m.device} for ${o.steps} steps`),
  );
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(
    `\nloss: ${mean(result.losses.slice(0, 10)).toFixed(3)} (first 10 steps) -> ${mean(result.losses.slice(-10)).toFixed(3)} (last 10); uniform guess: ${Math.log(result.vocab.length).toFixed(3)}`,
  );
  console.log(`\nsamples (temperature ${o.temperature}):`);
  for (const s of result.samples) console.log(`  ${JSON.stringify(s)}`);
  return 0;
}

export const trainTextCommand: Command<typeof options> = defineCommand({
  name: 'train-text',
  summary: 'train a small character-level GPT on a text, print the falling loss, sample from it',
  description: 'Trains a character-level GPT and samples text from it.',
  options,
  run: ({ values: { text, threads: _threads, device: _device, ...o } }) => runTrainText({ ...o, textFile: text, sampleLength: d.sampleLength }),
});
