// The paper's experiment on the testbed, stage by stage, for each task and seed: the data, SFT,
// the scalar RM and the seq2seq RM, PPO with each reward, and the gold judge on in- and
// out-of-distribution prompts. Every stage is cached by the hash of what it depends on.
import * as path from 'node:path';

import {
  Model,
  SupervisedTrainer,
  type Template,
  type Tokenizer,
  encodeSupervised,
  loadModel,
  saveModel,
  templateFiles,
} from '@s2s/core';
import {
  type Mapping,
  type RewardStats,
  type RewriteAccuracy,
  ScalarRewardTrainer,
  encodePairs,
  evaluateRewrites,
  rewardModelFiles,
  rewardStatsFiles,
  rewriteExamples,
} from '@s2s/rm';
import { type Split, TESTBED_TEMPLATE, type TaskData, type TaskDataStats, datasetStats, getTask, testbedTokenizer } from '@s2s/tasks';

import { StageCache, engineKey, stageKey } from './cache.js';
import type { DemoConfig, Method } from './config.js';
import { type SplitResults, judgePolicy } from './evaluate.js';
import { type LengthProbe, lengthProbe } from './probe.js';
import { comparisonPPO } from './ppo-start.js';

/** One point of a PPO run's curves: the rollout batch's gold score, length and KL at that step. */
export interface CurvePoint {
  step: number;
  gold: number;
  length: number;
  kl: number;
  score: number;
  emptyRate: number;
}

export interface RunResult {
  task: string;
  seed: number;
  data: TaskDataStats;
  sft: { evalLoss: number };
  scalarRM: { accuracy: number; stats: RewardStats };
  seq2seqRM: { rewrites: Record<Mapping, RewriteAccuracy> };
  /** summarize only: how each reward model treats length (see probe.ts) */
  lengthProbe?: LengthProbe;
  /** the gold judge on each policy's responses to the evaluation prompts */
  evals: Partial<Record<'sft' | Method, SplitResults>>;
  curves: Partial<Record<Method, CurvePoint[]>>;
  /** seconds each stage took when it ran (cached stages report their first run) */
  seconds: Record<string, number>;
  /** the stages' model folders (inside the cache) */
  models: { sft: string; scalarRM: string; seq2seqRM: string; ppo: Partial<Record<Method, string>> };
}

export type DemoEvent =
  | { type: 'plan'; stages: string[] }
  | { type: 'stage'; index: number; total: number; name: string; status: 'running' | 'done' | 'cached'; seconds?: number; detail?: string }
  | { type: 'progress'; name: string; step: number; totalSteps: number; etaMs: number; detail: string };

export class Stopped extends Error {
  constructor() {
    super('stopped by Ctrl-C');
  }
}

interface Context {
  cfg: DemoConfig;
  cache: StageCache;
  tok: Tokenizer;
  tpl: Template;
  signal?: AbortSignal;
  onEvent: (e: DemoEvent) => void;
  stageIndex: number;
  totalStages: number;
}

const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

/** The task whose paper finding is about length (summaries) gets the reward models' length probe. */
const probesLength = (task: string) => task === 'summarize';

/** The stages of one task and seed, in order (for the plan and the progress count). */
export function stageNames(cfg: DemoConfig): string[] {
  return cfg.tasks.flatMap((task) =>
    cfg.seeds.flatMap((seed) =>
      ['sft', 'scalar RM', 'seq2seq RM', ...(probesLength(task) ? ['RM length probe'] : []), 'SFT eval', ...cfg.methods.map((m) => `PPO ${m}`)].map((s) => `${task} seed ${seed}: ${s}`),
    ),
  );
}

async function stage<T>(ctx: Context, name: string, key: string, run: (dir: string) => Promise<T>): Promise<{ result: T; dir: string; seconds: number }> {
  const cacheName = name.replace(/[^a-z0-9]+/gi, '-').toLowerCase();
  const index = ++ctx.stageIndex;
  const dir = ctx.cache.dir(cacheName, key);
  const cached = await ctx.cache.get<T & { seconds?: number }>(cacheName, key);
  if (cached) {
    ctx.onEvent({ type: 'stage', index, total: ctx.totalStages, name, status: 'cached' });
    return { result: cached, dir, seconds: cached.seconds ?? 0 };
  }
  if (ctx.signal?.aborted) throw new Stopped();
  ctx.onEvent({ type: 'stage', index, total: ctx.totalStages, name, status: 'running' });
  const t0 = performance.now();
  const result = await ctx.cache.put(cacheName, key, async (tmp) => ({ ...(await run(tmp)), seconds: (performance.now() - t0) / 1000 }));
  const seconds = (performance.now() - t0) / 1000;
  ctx.onEvent({ type: 'stage', index, total: ctx.totalStages, name, status: 'done', seconds });
  return { result, dir, seconds };
}

async function supervised(ctx: Context, name: string, model: Model, train: ConstructorParameters<typeof SupervisedTrainer>[0]['train'], config: DemoConfig['sft'], seed: number, evalSet?: typeof train) {
  const trainer = new SupervisedTrainer({
    model,
    train,
    eval: evalSet,
    padId: ctx.tok.padId!,
    config: { ...config, seed },
    signal: ctx.signal,
    onEvent: (e) => {
      if (e.type === 'step') ctx.onEvent({ type: 'progress', name, step: e.step, totalSteps: e.totalSteps, etaMs: e.etaMs, detail: `loss ${e.loss.toFixed(3)}` });
    },
  });
  const r = await trainer.train();
  if (r.stopped) throw new Stopped();
  return r;
}

/** Everything for one task and seed. */
async function runOne(ctx: Context, taskName: string, seed: number): Promise<RunResult> {
  const { cfg, tok, tpl } = ctx;
  // the tokenizer and template saved next to every model, so that each loads on its own
  const files = { ...tok.files(), ...templateFiles(tpl) };
  const task = getTask(taskName);
  const data: TaskData = task.generate({ seed, ...cfg.data });
  const tag = `${taskName} seed ${seed}`;
  const seconds: Record<string, number> = {};
  const modelCfg = { ...cfg.model, vocabSize: tok.vocabSize };
  // the task's version: data generated by an earlier testbed trains nothing of this one
  const base = { task: taskName, ...(task.version > 1 && { taskVersion: task.version }), seed, data: cfg.data, model: modelCfg, ...engineKey() };

  // held out: the SFT references of a generation with another seed
  const heldSft = task.generate({ seed: seed + 10_000, sft: 200, pairs: 0, rlPrompts: 0, evalPrompts: 0 }).sft;
  const sftKey = stageKey({ stage: 'sft', ...base, sft: cfg.sft });
  const sft = await stage(ctx, `${tag}: sft`, sftKey, async (dir) => {
    const model = await Model.create(modelCfg, { seed });
    const encode = (rows: TaskData['sft']) => rows.map((r) => encodeSupervised(tok, tpl, r.prompt, r.completion)!);
    const r = await supervised(ctx, `${tag}: sft`, model, encode(data.sft), cfg.sft, seed, encode(heldSft));
    await saveModel(model, path.join(dir, 'model'), { files });
    model.dispose();
    return { evalLoss: r.eval!.evalLoss };
  });
  seconds.sft = sft.seconds;
  const sftModel = await loadModel(path.join(sft.dir, 'model'));
  const held = task.generate({ seed: seed + 20_000, sft: 0, pairs: 200, rlPrompts: 0, evalPrompts: 0 }).pairs;

  const scalarKey = stageKey({ stage: 'scalar-rm', sftKey, rm: cfg.scalarRM });
  const scalar = await stage(ctx, `${tag}: scalar RM`, scalarKey, async (dir) => {
    const model = await sftModel.clone({ valueHead: true, seed });
    const trainer = new ScalarRewardTrainer({
      model,
      train: encodePairs(tok, tpl, data.pairs).pairs,
      eval: encodePairs(tok, tpl, held).pairs,
      padId: tok.padId!,
      config: { ...cfg.scalarRM, seed },
      signal: ctx.signal,
      onEvent: (e) => {
        if (e.type === 'step')
          ctx.onEvent({ type: 'progress', name: `${tag}: scalar RM`, step: e.step, totalSteps: e.totalSteps, etaMs: e.etaMs, detail: `loss ${e.loss.toFixed(3)}` });
      },
    });
    const r = await trainer.train();
    if (r.stopped) throw new Stopped();
    // a reward model as `s2s rm train` leaves one: `rm score`, `rm explain` and `ppo` take it as it is
    const rmFiles = { ...rewardModelFiles({ kind: 'scalar', baseModel: path.join(sft.dir, 'model') }), ...rewardStatsFiles(trainer.rewardStats!) };
    await saveModel(model, path.join(dir, 'model'), { files: { ...files, ...rmFiles } });
    model.dispose();
    return { accuracy: r.eval!.accuracy, stats: trainer.rewardStats! };
  });
  seconds.scalarRM = scalar.seconds;

  const s2sKey = stageKey({ stage: 'seq2seq-rm', sftKey, rm: cfg.seq2seqRM });
  const s2s = await stage(ctx, `${tag}: seq2seq RM`, s2sKey, async (dir) => {
    const model = await sftModel.clone();
    await supervised(ctx, `${tag}: seq2seq RM`, model, rewriteExamples(tok, tpl, data.pairs).examples, cfg.seq2seqRM, seed);
    const rewrites = await evaluateRewrites(model, tok, tpl, held.slice(0, 100));
    await saveModel(model, path.join(dir, 'model'), { files: { ...files, ...rewardModelFiles({ kind: 'seq2seq', baseModel: path.join(sft.dir, 'model') }) } });
    model.dispose();
    return { rewrites };
  });
  seconds.seq2seqRM = s2s.seconds;

  const scalarModel = await loadModel(path.join(scalar.dir, 'model'));
  const s2sModel = await loadModel(path.join(s2s.dir, 'model'));
  let probe: LengthProbe | undefined;
  if (probesLength(taskName)) {
    const p = await stage(ctx, `${tag}: RM length probe`, stageKey({ stage: 'rm-length-probe', scalarKey, s2sKey }), async () => ({
      probe: await lengthProbe(scalarModel, s2sModel, tok, tpl, task, { pairs: held, references: heldSft }),
    }));
    probe = p.result.probe;
    seconds.rmProbe = p.seconds;
  }

  const prompts: Record<Split, string[]> = { id: data.eval.id.map((r) => r.prompt), ood: data.eval.ood.map((r) => r.prompt) };
  // every policy of this task and seed is sampled with the same random numbers
  const evalOpts = { ...cfg.eval, seed: 7919 * seed + 17 };
  const evals: RunResult['evals'] = {};
  const sftEval = await stage(ctx, `${tag}: SFT eval`, stageKey({ stage: 'sft-eval', sftKey, eval: cfg.eval }), async () => ({
    eval: await judgePolicy(sftModel, task, tok, tpl, prompts, evalOpts),
  }));
  evals.sft = sftEval.result.eval;
  seconds.sftEval = sftEval.seconds;

  const curves: RunResult['curves'] = {};
  const ppoDirs: RunResult['models']['ppo'] = {};
  for (const method of cfg.methods) {
    const rmKey = method === 'scalar' ? scalarKey : s2sKey;
    const ppo = await stage(ctx, `${tag}: PPO ${method}`, stageKey({ stage: 'ppo', method, sftKey, rmKey, ppo: cfg.ppo, eval: cfg.eval }), async (dir) => {
      const curve: CurvePoint[] = [];
      const { trainer, dispose } = await comparisonPPO(method, { sft: sftModel, scalarRM: scalarModel, seq2seqRM: s2sModel, stats: scalar.result.stats }, {
        tok,
        tpl,
        config: cfg.ppo,
        seed,
        signal: ctx.signal,
        onEvent: (e) => {
          if (e.type !== 'step') return;
          const m = e.data.metrics;
          // the testbed's prompts are text (the demo's template is plain)
          const gold = mean(e.data.responses.map((r, i) => task.judge(e.data.prompts[i] as string, r).score));
          curve.push({ step: e.data.step, gold, length: m['response_length/mean'], kl: m['objective/kl'], score: m['objective/scores'], emptyRate: m['responses/empty_rate'] });
          ctx.onEvent({
            type: 'progress',
            name: `${tag}: PPO ${method}`,
            step: e.data.step,
            totalSteps: e.totalSteps,
            etaMs: e.etaMs,
            detail: `gold ${gold.toFixed(2)} len ${m['response_length/mean'].toFixed(1)} kl ${m['objective/kl'].toFixed(2)}`,
          });
        },
      });
      const r = await trainer.train(data.rlPrompts);
      if (r.stopped) throw new Stopped();
      const result = { curve, eval: await judgePolicy(trainer.policy, task, tok, tpl, prompts, evalOpts) };
      await saveModel(trainer.policy, path.join(dir, 'model'), { files });
      dispose();
      return result;
    });
    seconds[`ppo ${method}`] = ppo.seconds;
    ppoDirs[method] = path.join(ppo.dir, 'model');
    curves[method] = ppo.result.curve;
    evals[method] = ppo.result.eval;
  }
  for (const m of [sftModel, scalarModel, s2sModel]) m.dispose();
  return {
    task: taskName,
    seed,
    data: datasetStats(task, data),
    sft: sft.result,
    scalarRM: scalar.result,
    seq2seqRM: s2s.result,
    ...(probe && { lengthProbe: probe }),
    evals,
    curves,
    seconds,
    models: { sft: path.join(sft.dir, 'model'), scalarRM: path.join(scalar.dir, 'model'), seq2seqRM: path.join(s2s.dir, 'model'), ppo: ppoDirs },
  };
}

/** Runs (or takes from the cache) every stage; throws Stopped when the signal aborts it. */
export async function runDemo(cfg: DemoConfig, outDir: string, opts: { signal?: AbortSignal; onEvent?: (e: DemoEvent) => void } = {}): Promise<{ results: RunResult[] }> {
  const stages = stageNames(cfg);
  const ctx: Context = {
    cfg,
    cache: new StageCache(path.join(outDir, 'cache')),
    tok: testbedTokenizer(),
    tpl: TESTBED_TEMPLATE,
    signal: opts.signal,
    onEvent: opts.onEvent ?? (() => {}),
    stageIndex: 0,
    totalStages: stages.length,
  };
  ctx.onEvent({ type: 'plan', stages });
  const results: RunResult[] = [];
  for (const task of cfg.tasks) for (const seed of cfg.seeds) results.push(await runOne(ctx, task, seed));
  return { results };
}
