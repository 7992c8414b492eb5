// The paper's comparison on a user's own task: SFT on their demonstrations, the scalar and the
// seq2seq reward models on their preference pairs, PPO with each reward (scalar, token, sentence),
// and every policy's responses to their evaluation prompts judged by their own judge module. The
// demo's pipeline with the testbed swapped for files and a judge; every stage cached by the hash of
// its settings and inputs, so a rerun (after Ctrl-C, or with one setting changed) redoes only what
// changed.
import * as path from 'node:path';

import {
  type GPTConfigInput,
  Model,
  type PreferenceRow,
  SupervisedTrainer,
  type SupervisedRow,
  type Template,
  type Tokenizer,
  type TrainConfig,
  encodeSupervised,
  loadModel,
  permutation,
  saveModel,
  templateFiles,
} from '@s2s/core';
import type { PPOConfig } from '@s2s/ppo';
import { ScalarRewardTrainer, encodePairs, evaluateRewrites, rewardModelFiles, rewardStatsFiles, rewriteExamples } from '@s2s/rm';

import { StageCache, engineKey, stageKey } from '../demo/cache.js';
import { type Judge, type Response, pairwiseWinRate } from '../judging.js';
import { sampleResponses } from '../demo/evaluate.js';
import { comparisonPPO } from '../demo/ppo-start.js';
import { padIdOf } from '../model-inputs.js';

export const COMPARE_METHODS = ['scalar', 'token', 'sentence'] as const;
export type CompareMethod = (typeof COMPARE_METHODS)[number];
export type Policy = 'sft' | CompareMethod;
export type EvalSplit = 'eval' | 'ood';

export interface CompareSettings {
  sft: Partial<TrainConfig>;
  scalarRM: Partial<TrainConfig>;
  seq2seqRM: Partial<TrainConfig>;
  ppo: Partial<PPOConfig>;
  eval: { temperature: number; maxNewTokens: number };
}

export interface CompareInputs {
  sft: SupervisedRow[];
  pairs: PreferenceRow[];
  rlPrompts: string[];
  /** the evaluation prompts, and optionally out-of-distribution ones */
  evalPrompts: Partial<Record<EvalSplit, string[]>>;
  tok: Tokenizer;
  tpl: Template;
  judge: Judge;
  /** a folder to fine-tune, or the shape of a new model */
  model: { from: string } | { config: GPTConfigInput };
  settings: CompareSettings;
  seeds: number[];
  methods: CompareMethod[];
  /** identifies the inputs (data files' and judge's contents) in the stages' cache keys */
  inputsKey: string;
}

export interface JudgedResponse {
  prompt: string;
  response: string;
  score: number;
  /** tokens of the response, its stop token excluded */
  tokens: number;
  /** whether it ended with a stop token (not cut off at maxNewTokens) */
  finished: boolean;
}

export interface CompareRun {
  seed: number;
  sft: { evalLoss: number };
  scalarRM: { accuracy: number };
  seq2seqRM: { correction: number; identity: number };
  evals: Partial<Record<Policy, Partial<Record<EvalSplit, JudgedResponse[]>>>>;
  /** per policy and split: its win rate over SFT's responses, prompt by prompt, by the judge's compare() or scores */
  winRates: Partial<Record<CompareMethod, Partial<Record<EvalSplit, number>>>>;
  models: Partial<Record<'sft' | 'scalarRM' | 'seq2seqRM' | CompareMethod, string>>;
}

export type CompareEvent =
  | { type: 'stage'; name: string; status: 'running' | 'done' | 'cached'; seconds?: number }
  | { type: 'progress'; name: string; step: number; totalSteps: number; detail: string };

export class CompareStopped extends Error {
  constructor() {
    super('stopped by Ctrl-C');
  }
}

interface Ctx {
  in: CompareInputs;
  cache: StageCache;
  signal?: AbortSignal;
  onEvent: (e: CompareEvent) => void;
}

async function stage<T>(ctx: Ctx, name: string, key: string, run: (dir: string) => Promise<T>): Promise<{ result: T; dir: string }> {
  const cacheName = name.replace(/[^a-z0-9]+/gi, '-').toLowerCase();
  const dir = ctx.cache.dir(cacheName, key);
  const cached = await ctx.cache.get<T>(cacheName, key);
  if (cached) {
    ctx.onEvent({ type: 'stage', name, status: 'cached' });
    return { result: cached, dir };
  }
  if (ctx.signal?.aborted) throw new CompareStopped();
  ctx.onEvent({ type: 'stage', name, status: 'running' });
  const t0 = performance.now();
  const result = await ctx.cache.put(cacheName, key, run);
  ctx.onEvent({ type: 'stage', name, status: 'done', seconds: (performance.now() - t0) / 1000 });
  return { result, dir };
}

const progress = (ctx: Ctx, name: string) => (e: { type: string; step?: number; totalSteps?: number; loss?: number }) => {
  if (e.type === 'step') ctx.onEvent({ type: 'progress', name, step: e.step!, totalSteps: e.totalSteps!, detail: `loss ${e.loss!.toFixed(3)}` });
};

/** A held-out tenth (at least one, when there are 10 or more) of `rows`, drawn by `seed`. */
function holdOut<T>(rows: readonly T[], seed: number): { train: T[]; held: T[] } {
  const n = rows.length >= 10 ? Math.max(1, Math.round(rows.length / 10)) : 0;
  const order = permutation(rows.length, seed);
  const heldIdx = new Set(order.slice(0, n));
  return { train: rows.filter((_, i) => !heldIdx.has(i)), held: rows.filter((_, i) => heldIdx.has(i)) };
}

/** A policy's responses to the evaluation prompts (sampled with the seed's random numbers), each judged. */
async function judgeResponses(ctx: Ctx, policy: Model, seed: number): Promise<Partial<Record<EvalSplit, JudgedResponse[]>>> {
  const { tok, tpl, judge, settings } = ctx.in;
  const out: Partial<Record<EvalSplit, JudgedResponse[]>> = {};
  for (const [split, prompts] of Object.entries(ctx.in.evalPrompts) as Array<[EvalSplit, string[]]>) {
    const rows: JudgedResponse[] = [];
    for (const [i, r] of (await sampleResponses(policy, tok, tpl, prompts, { ...settings.eval, seed: 7919 * seed + 17 })).entries())
      rows.push({ ...r, score: judge.score ? (await judge.score(r.prompt, r.response, i)).score : Number.NaN });
    out[split] = rows;
  }
  return out;
}

async function runSeed(ctx: Ctx, seed: number): Promise<CompareRun> {
  const { tok, tpl, settings } = ctx.in;
  const files = { ...tok.files(), ...templateFiles(tpl) };
  const tag = `seed ${seed}`;
  const base = { inputs: ctx.in.inputsKey, seed, model: ctx.in.model, tpl, ...engineKey() };
  const sftSplit = holdOut(ctx.in.sft, seed);
  const pairSplit = holdOut(ctx.in.pairs, seed + 1);

  const sftKey = stageKey({ stage: 'sft', ...base, sft: settings.sft });
  const sft = await stage(ctx, `${tag}: sft`, sftKey, async (dir) => {
    const m = 'from' in ctx.in.model ? await loadModel(ctx.in.model.from, { optimizer: false }) : await Model.create(ctx.in.model.config, { seed });
    const encode = (rows: SupervisedRow[]) =>
      rows.map((r, i) => {
        const e = encodeSupervised(tok, tpl, r.prompt, r.completion, { maxLength: m.config.maxSeqLen });
        if (!e) throw new RangeError(`SFT example ${i + 1}: its completion alone does not fit the model's context (${m.config.maxSeqLen})`);
        return e;
      });
    const trainer = new SupervisedTrainer({
      model: m,
      train: encode(sftSplit.train),
      eval: encode(sftSplit.held),
      padId: padIdOf(tok),
      config: { ...settings.sft, seed },
      signal: ctx.signal,
      onEvent: progress(ctx, `${tag}: sft`),
    });
    const r = await trainer.train();
    if (r.stopped) throw new CompareStopped();
    await saveModel(m, path.join(dir, 'model'), { files });
    m.dispose();
    return { evalLoss: r.eval?.evalLoss ?? Number.NaN };
  });
  const sftModel = await loadModel(path.join(sft.dir, 'model'));
  const models: CompareRun['models'] = { sft: path.join(sft.dir, 'model') };

  const scalarKey = stageKey({ stage: 'scalar-rm', sftKey, rm: settings.scalarRM });
  const scalar = await stage(ctx, `${tag}: scalar RM`, scalarKey, async (dir) => {
    const m = await sftModel.clone({ valueHead: true, seed });
    const trainer = new ScalarRewardTrainer({
      model: m,
      train: encodePairs(tok, tpl, pairSplit.train).pairs,
      eval: encodePairs(tok, tpl, pairSplit.held).pairs,
      padId: padIdOf(tok),
      config: { ...settings.scalarRM, seed },
      signal: ctx.signal,
      onEvent: progress(ctx, `${tag}: scalar RM`),
    });
    const r = await trainer.train();
    if (r.stopped) throw new CompareStopped();
    const rmFiles = { ...rewardModelFiles({ kind: 'scalar', baseModel: models.sft }), ...rewardStatsFiles(trainer.rewardStats!) };
    await saveModel(m, path.join(dir, 'model'), { files: { ...files, ...rmFiles } });
    m.dispose();
    return { accuracy: r.eval?.accuracy ?? Number.NaN, stats: trainer.rewardStats! };
  });
  models.scalarRM = path.join(scalar.dir, 'model');

  const s2sKey = stageKey({ stage: 'seq2seq-rm', sftKey, rm: settings.seq2seqRM });
  const s2s = await stage(ctx, `${tag}: seq2seq RM`, s2sKey, async (dir) => {
    const m = await sftModel.clone();
    const trainer = new SupervisedTrainer({
      model: m,
      train: rewriteExamples(tok, tpl, pairSplit.train).examples,
      padId: padIdOf(tok),
      config: { ...settings.seq2seqRM, seed },
      signal: ctx.signal,
      onEvent: progress(ctx, `${tag}: seq2seq RM`),
    });
    const r = await trainer.train();
    if (r.stopped) throw new CompareStopped();
    const acc = pairSplit.held.length ? await evaluateRewrites(m, tok, tpl, pairSplit.held.slice(0, 100)) : undefined;
    await saveModel(m, path.join(dir, 'model'), { files: { ...files, ...rewardModelFiles({ kind: 'seq2seq', baseModel: models.sft }) } });
    m.dispose();
    return { correction: acc?.correction.exactMatch ?? Number.NaN, identity: acc?.identity.exactMatch ?? Number.NaN };
  });
  models.seq2seqRM = path.join(s2s.dir, 'model');

  const evalKey = { judge: ctx.in.inputsKey, eval: settings.eval };
  const sftEval = await stage(ctx, `${tag}: SFT eval`, stageKey({ stage: 'sft-eval', sftKey, ...evalKey }), async () => ({ eval: await judgeResponses(ctx, sftModel, seed) }));
  const evals: CompareRun['evals'] = { sft: sftEval.result.eval };

  const scalarModel = await loadModel(models.scalarRM);
  const s2sModel = await loadModel(models.seq2seqRM);
  const winRates: CompareRun['winRates'] = {};
  try {
    for (const method of ctx.in.methods) {
      const rmKey = method === 'scalar' ? scalarKey : s2sKey;
      const ppo = await stage(ctx, `${tag}: PPO ${method}`, stageKey({ stage: 'ppo', method, sftKey, rmKey, ppo: settings.ppo, ...evalKey }), async (dir) => {
        const { trainer, dispose } = await comparisonPPO(method, { sft: sftModel, scalarRM: scalarModel, seq2seqRM: s2sModel, stats: scalar.result.stats }, {
          tok,
          tpl,
          config: settings.ppo,
          seed,
          signal: ctx.signal,
          onEvent: (e) => {
            if (e.type === 'step')
              ctx.onEvent({ type: 'progress', name: `${tag}: PPO ${method}`, step: e.data.step, totalSteps: e.totalSteps, detail: `score ${e.data.metrics['objective/scores'].toFixed(3)}` });
          },
        });
        const r = await trainer.train(ctx.in.rlPrompts);
        if (r.stopped) throw new CompareStopped();
        const judged = await judgeResponses(ctx, trainer.policy, seed);
        await saveModel(trainer.policy, path.join(dir, 'model'), { files });
        dispose();
        return { eval: judged };
      });
      evals[method] = ppo.result.eval;
      models[method] = path.join(ppo.dir, 'model');
      winRates[method] = {};
      for (const split of Object.keys(ppo.result.eval) as EvalSplit[]) {
        // prompt by prompt against SFT's responses, by the judge's compare() or the scores already given
        const [mine, sftRows] = [ppo.result.eval[split]!, evals.sft![split]!];
        const pairs = mine.map((x, i): [Response, Response] => [x, sftRows[i]]);
        winRates[method]![split] = (await pairwiseWinRate(ctx.in.judge, pairs, { a: mine.map((x) => x.score), b: sftRows.map((x) => x.score) })).rate.winRate;
      }
    }
  } finally {
    for (const m of [sftModel, scalarModel, s2sModel]) m.dispose();
  }
  return { seed, sft: sft.result, scalarRM: { accuracy: scalar.result.accuracy }, seq2seqRM: s2s.result, evals, winRates, models };
}

/** Every stage for every seed (from the cache where it ran before); throws CompareStopped when the signal aborts it. */
export async function runComparison(inputs: CompareInputs, outDir: string, opts: { signal?: AbortSignal; onEvent?: (e: CompareEvent) => void } = {}): Promise<CompareRun[]> {
  const ctx: Ctx = { in: inputs, cache: new StageCache(path.join(outDir, 'cache')), signal: opts.signal, onEvent: opts.onEvent ?? (() => {}) };
  const runs: CompareRun[] = [];
  for (const seed of inputs.seeds) runs.push(await runSeed(ctx, seed));
  return runs;
}
