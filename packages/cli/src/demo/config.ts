// The demo's experiment, as one plain object: which tasks and seeds, the data sizes, the model,
// and every stage's training settings. One setting is shared by every PPO method, so that the
// methods differ only in their reward. --quick shrinks everything for CI.
import type { GPTConfigInput, TrainConfig } from '@s2s/core';
import type { PPOConfig } from '@s2s/ppo';

/** The PPO variants the paper compares. */
export const METHODS = ['scalar', 'token', 'sentence', 'token-positive'] as const;
export type Method = (typeof METHODS)[number];

export const METHOD_LABELS: Record<Method, string> = {
  scalar: 'PPO (scalar RM)',
  token: 'PPO-T (token)',
  sentence: 'PPO-S (sentence)',
  'token-positive': 'PPO-T positive-only',
};

export interface DemoConfig {
  tasks: string[];
  seeds: number[];
  data: { sft: number; pairs: number; rlPrompts: number; evalPrompts: number };
  /** every model of a run has this shape (vocabulary from the testbed tokenizer) */
  model: Omit<GPTConfigInput, 'vocabSize'>;
  sft: Partial<TrainConfig>;
  scalarRM: Partial<TrainConfig>;
  seq2seqRM: Partial<TrainConfig>;
  ppo: Partial<PPOConfig>;
  methods: Method[];
  /** evaluation: sampled as the rollouts are, so SFT and PPO policies are judged alike */
  eval: { temperature: number; maxNewTokens: number };
  /** how many responses the report shows scored token by token */
  explanations: number;
}

export const DEMO_FULL: DemoConfig = {
  tasks: ['summarize', 'safety'],
  // 10 seeds and 200 prompts per split: enough to decide a win rate 0.1 from one half when the
  // seeds agree about as well as they did over 3 (where one seed's RM blind spot could swing it)
  seeds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  data: { sft: 4000, pairs: 4000, rlPrompts: 2000, evalPrompts: 200 },
  model: { maxSeqLen: 128, numLayers: 2, numHeads: 4, channels: 128 },
  sft: { batchSize: 32, maxSteps: 400, lr: 2e-3 },
  scalarRM: { batchSize: 32, epochs: 1, lr: 5e-4 },
  seq2seqRM: { batchSize: 32, maxSteps: 400, lr: 1e-3 },
  ppo: {
    steps: 50,
    batchSize: 32,
    miniBatchSize: 8,
    ppoEpochs: 4,
    lr: 5e-5,
    criticLr: 1e-4,
    klCoef: 0.05,
    maxNewTokens: 40,
    temperature: 1,
    sampleEvery: 0,
  },
  methods: [...METHODS],
  eval: { temperature: 1, maxNewTokens: 40 },
  explanations: 4,
};

/** The same pipeline, small enough for CI (a few minutes on 2 cores); its numbers show only that it runs. */
export const DEMO_QUICK: DemoConfig = {
  ...DEMO_FULL,
  seeds: [1, 2],
  data: { sft: 600, pairs: 600, rlPrompts: 200, evalPrompts: 24 },
  model: { maxSeqLen: 128, numLayers: 1, numHeads: 2, channels: 32 },
  sft: { batchSize: 16, maxSteps: 40, lr: 3e-3 },
  scalarRM: { batchSize: 16, maxSteps: 20, lr: 1e-3 },
  seq2seqRM: { batchSize: 16, maxSteps: 40, lr: 2e-3 },
  ppo: { ...DEMO_FULL.ppo, steps: 4, batchSize: 8, miniBatchSize: 4, ppoEpochs: 2, maxNewTokens: 24 },
  eval: { temperature: 1, maxNewTokens: 24 },
  explanations: 2,
};

/**
 * Model sizes for the full demo (--size): small is the default (minutes on 2 cores); base and
 * large are for machines that have the time or a GPU (the demo runs on CUDA when it is usable).
 * Each scales the model and the supervised stages' lengths; data, PPO and evaluation are the same.
 */
export const DEMO_SIZES = {
  small: { model: DEMO_FULL.model, sft: DEMO_FULL.sft, scalarRM: DEMO_FULL.scalarRM, seq2seqRM: DEMO_FULL.seq2seqRM },
  base: {
    model: { maxSeqLen: 128, numLayers: 4, numHeads: 4, channels: 192 },
    sft: { batchSize: 32, maxSteps: 800, lr: 1e-3 },
    scalarRM: { batchSize: 32, epochs: 1, lr: 3e-4 },
    seq2seqRM: { batchSize: 32, maxSteps: 800, lr: 7e-4 },
  },
  large: {
    model: { maxSeqLen: 128, numLayers: 6, numHeads: 6, channels: 384 },
    sft: { batchSize: 32, maxSteps: 1500, lr: 5e-4 },
    scalarRM: { batchSize: 32, epochs: 1, lr: 1e-4 },
    seq2seqRM: { batchSize: 32, maxSteps: 1500, lr: 5e-4 },
  },
} as const satisfies Record<string, Pick<DemoConfig, 'model' | 'sft' | 'scalarRM' | 'seq2seqRM'>>;
export type DemoSize = keyof typeof DEMO_SIZES;
export const DEMO_SIZE_NAMES = Object.keys(DEMO_SIZES) as DemoSize[];
