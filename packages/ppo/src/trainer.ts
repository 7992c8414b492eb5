// The PPO trainer: rollouts from the policy, epochs of clipped-surrogate updates over minibatches
// (the derivative w.r.t. the new log-probs goes to the engine as dlogprob, the critic's as
// dvalue), KL control, TRL-named metrics per step, checkpoints and an exact resume.
//
// Data parallel (opts.dist with several ranks): batchSize and miniBatchSize are per rank. Every
// rank draws the same global batch of prompts and rolls out its share (sampling the streams its
// rows have in the global batch); whitening, the loss normalisers, the early-stop KL, the KL
// controller and the metrics use the global batch; gradients are summed over the ranks before each
// optimizer step, so the ranks' policies and critics stay identical. Rank 0 writes logs and
// checkpoints.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

import {
  BatchSampler,
  Distributed,
  type Model,
  type Prompt,
  type SamplerState,
  type WeightDType,
  loadModel,
  mix,
  permutation,
  saveModel,
  templateFiles,
  writeDirAtomic,
  writeDirsAtomic,
  writeFileAtomic,
  writeFileDurable,
  adamWOptions,
  checkTrainerState,
  checkpointDir,
  learningRate,
  requireOptimizerState,
  rotateCheckpoints,
  scheduleOf,
  stopTokenIds,
} from '@s2s/core';
import { decodeGenerated } from '@s2s/rm';

import { type PPOConfig, resolvePPOConfig } from './config.js';
import { KLController, type KLControlState } from './kl-control.js';
import { lossNormalisers, policyLoss, valueLoss } from './losses.js';
import { type Rollout, type RolloutModels, collectRollout, sequenceBatch } from './rollout.js';

/** One step's statistics, under TRL's metric names plus response-length and empty-response ones. */
export type PPOMetrics = Record<string, number>;

export interface PPOStep {
  step: number;
  metrics: PPOMetrics;
  /** the rollout's prompts (text, or conversations) and decoded responses (for judging them, or logging) */
  prompts: Prompt[];
  responses: string[];
  /** the responses' token ids, the stop token included when the policy stopped */
  responseIds: number[][];
  /** each response's reward score */
  scores: number[];
}

export type PPOEvent = { type: 'step'; data: PPOStep; totalSteps: number; elapsedMs: number; etaMs: number } | { type: 'checkpoint'; step: number; dir: string };

export interface PPOTrainerOptions extends RolloutModels {
  config?: Partial<PPOConfig>;
  /** log.jsonl, samples.jsonl, checkpoint-<step>/ and final/ go here */
  outputDir?: string;
  /** the final policy's and critic's weights dtype (default: saveModel's, the dtype the policy came in) */
  saveDtype?: WeightDType;
  onEvent?: (e: PPOEvent) => void;
  /** when aborted, the trainer checkpoints (with an outputDir) and returns before the next step */
  signal?: AbortSignal;
  /** the data-parallel ranks this trainer is one of (default: the single-rank run) */
  dist?: Distributed;
}

export interface PPOResult {
  steps: number;
  stopped: boolean;
  history: PPOMetrics[];
  savedTo?: string;
}

/** trainer_state.json */
interface PPOState {
  kind: 'ppo';
  step: number;
  episode: number;
  config: PPOConfig;
  sampler: SamplerState;
  kl: KLControlState;
  /** how many data-parallel ranks trained it (absent: 1) */
  worldSize?: number;
}

const STATE_FILE = 'trainer_state.json';
/** out/final: the trained policy; out/final-critic: its critic, written with it as one unit */
const FINAL_DIR = 'final';
const FINAL_CRITIC_DIR = 'final-critic';
export const PPO_LOG_FILES = ['log.jsonl', 'samples.jsonl'] as const;

/** Drops the log lines of steps after `step` (a line cut off mid-write goes too). */
async function trimLogs(out: string, step: number): Promise<void> {
  for (const name of PPO_LOG_FILES) {
    const file = path.join(out, name);
    const text = await fs.readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const lines = text.split('\n').filter((l) => l.trim() !== '');
    const kept = lines.filter((l) => {
      try {
        return (JSON.parse(l) as { step?: number }).step! <= step;
      } catch {
        return false;
      }
    });
    if (kept.length !== lines.length) await writeFileAtomic(file, kept.map((l) => l + '\n').join(''));
  }
}
/** A prompt given alone, or as a row's `prompt`. */
const promptOf = (p: Prompt | { prompt: Prompt }): Prompt => (typeof p !== 'string' && !Array.isArray(p) ? (p as { prompt: Prompt }).prompt : (p as Prompt));
const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

export class PPOTrainer {
  readonly config: PPOConfig;
  readonly policy: Model;
  readonly critic: Model;
  private readonly opts: PPOTrainerOptions;
  private readonly dist: Distributed;
  private readonly kl: KLController;
  private sampler?: BatchSampler;
  private samplerState?: SamplerState;
  private step = 0;
  private episode = 0;
  private readonly history: PPOMetrics[] = [];

  constructor(opts: PPOTrainerOptions) {
    this.opts = opts;
    this.dist = opts.dist ?? Distributed.single;
    this.config = resolvePPOConfig(opts.config);
    this.policy = opts.policy;
    this.critic = opts.critic;
    this.kl = new KLController(this.config);
    if (!opts.critic.config.valueHead) throw new Error('the critic needs a value head: clone the scalar RM or the SFT model with { valueHead: true }');
    // EOS, or a chat template's end-of-turn (which some tokenizers without an eos_token have)
    if (stopTokenIds(opts.tokenizer, opts.template).length === 0)
      throw new Error(`the tokenizer (${opts.tokenizer.source}) has no eos_token and the template is not a chat template with an end-of-turn: PPO needs a token that ends responses`);
    if (opts.ref === opts.policy) throw new Error('ref must be a separate, frozen copy of the policy (clone it)');
  }

  /**
   * A trainer that continues the run saved in `dir` (a checkpoint-<step> folder): exactly, or with
   * the settings in `opts.config` changed (more steps, say; changing batchSize or seed changes the
   * prompt order). With an outputDir, log lines of steps after the checkpoint, which a run that
   * died after it wrote, are dropped: the resumed run writes them again.
   */
  static async resume(dir: string, opts: Omit<PPOTrainerOptions, 'policy' | 'critic'>): Promise<PPOTrainer> {
    const file = path.join(dir, STATE_FILE);
    const state = JSON.parse(await fs.readFile(file, 'utf8').catch(() => {
      throw new Error(`${dir} is not a PPO checkpoint: it has no ${STATE_FILE}`);
    })) as PPOState;
    checkTrainerState(state, file);
    if (state.kind !== 'ppo') throw new Error(`${dir} holds a ${String(state.kind)} run, not a PPO one`);
    const ranks = state.worldSize ?? 1;
    const world = opts.dist?.worldSize ?? 1;
    if (ranks !== world)
      throw new Error(
        `the run in ${dir} was trained on ${ranks} data-parallel rank${ranks > 1 ? 's' : ''} and this one has ${world}: ` +
          `an exact resume needs the same world size (its global batch is batchSize x ranks); resume with ${ranks} rank${ranks > 1 ? 's' : ''}, ` +
          'or start a new run from the checkpoint\'s policy',
      );
    for (const part of ['policy', 'critic']) await requireOptimizerState(path.join(dir, part));
    const policy = await loadModel(path.join(dir, 'policy'));
    const critic = await loadModel(path.join(dir, 'critic'));
    const t = new PPOTrainer({ ...opts, policy, critic, config: { ...state.config, ...opts.config } });
    if (opts.outputDir && (opts.dist?.isMain ?? true)) await trimLogs(opts.outputDir, state.step);
    t.step = state.step;
    t.episode = state.episode;
    t.kl.value = state.kl.value;
    t.samplerState = state.sampler;
    return t;
  }

  get currentStep(): number {
    return this.step;
  }

  get klCoef(): number {
    return this.kl.value;
  }

  /** The learning rate of the step being taken (this.step + 1, 1-based): the policy's `lr`, or the critic's. */
  private learningRate(lr: number): number {
    return learningRate(this.step + 1, scheduleOf(this.config, this.config.steps, lr));
  }

  /** Runs PPO over `prompts` to config.steps, yielding each step's statistics. */
  async *steps(prompts: readonly (Prompt | { prompt: Prompt })[]): AsyncGenerator<PPOStep, PPOResult> {
    const texts = prompts.map(promptOf);
    const c = this.config;
    const global = c.batchSize * this.dist.worldSize;
    if (texts.length < global)
      throw new RangeError(`PPO needs at least batchSize (${c.batchSize})${this.dist.worldSize > 1 ? ` x ${this.dist.worldSize} ranks` : ''} prompts; got ${texts.length}`);
    this.sampler = new BatchSampler(texts.length, { batchSize: global, seed: c.seed, dropLast: true });
    if (this.samplerState) this.sampler.restore(this.samplerState);
    // the ranks start from rank 0's policy and critic, as DDP does
    await this.dist.syncModel(this.policy, { optimizer: true });
    await this.dist.syncModel(this.critic, { optimizer: true });
    const sumOverRanks = (v: number[]) => this.dist.sum(v);
    const started = performance.now();
    const startStep = this.step;
    while (this.step < c.steps) {
      if (await this.dist.any(this.opts.signal?.aborted ?? false)) return { steps: this.step, stopped: true, history: this.history, savedTo: await this.checkpoint() };
      const position = this.sampler.state();
      const indices = this.sampler.next().indices;
      const mine = this.dist.shard(indices);
      const firstRow = this.dist.shard(indices.map((_, i) => i))[0] ?? 0;
      let rollout: Rollout;
      try {
        rollout = await collectRollout(
          { ...this.opts, policy: this.policy, critic: this.critic },
          c,
          mine.map((i) => texts[i]),
          this.kl.value,
          mix(c.seed, this.step),
          { firstRow, sumOverRanks },
        );
      } catch (e) {
        // Nothing was updated yet: checkpoint the run as it stands, so that it can resume from here.
        // (Not with several ranks: the others are inside a collective this rank will not join.)
        if (this.dist.worldSize > 1) throw e;
        this.sampler.restore(position);
        const dir = await this.checkpoint().catch(() => undefined);
        if (dir && e instanceof Error) e.message += ` (the run was checkpointed at step ${this.step} in ${dir})`;
        throw e;
      }
      const data = await this.ppoStep(rollout);
      const elapsedMs = performance.now() - started;
      if (this.dist.isMain)
        this.opts.onEvent?.({
        type: 'step',
        data,
        totalSteps: c.steps,
        elapsedMs,
        etaMs: (elapsedMs / (this.step - startStep)) * (c.steps - this.step),
      });
      yield data;
      if (c.saveEvery > 0 && this.step % c.saveEvery === 0 && this.step < c.steps) await this.checkpoint();
    }
    return { steps: this.step, stopped: false, history: this.history, savedTo: await this.saveFinal() };
  }

  /** Runs every step; returns when done or stopped. */
  async train(prompts: readonly (Prompt | { prompt: Prompt })[]): Promise<PPOResult> {
    const it = this.steps(prompts);
    for (;;) {
      const r = await it.next();
      if (r.done) return r.value;
    }
  }

  private async ppoStep(rollout: Rollout): Promise<PPOStep> {
    const prompts = rollout.prompts;
    const update = await this.update(rollout, mix(this.config.seed, this.step));
    this.step++;
    const episodes = prompts.length * this.dist.worldSize;
    this.episode += episodes;
    const metrics = await this.metrics(rollout, update);
    this.kl.update(metrics['objective/kl'], episodes);
    this.history.push(metrics);
    const tok = this.opts.tokenizer;
    const responses = rollout.responses.map((r) => decodeGenerated(tok, r, { skipSpecialTokens: true }));
    const data: PPOStep = { step: this.step, metrics, prompts, responses, responseIds: rollout.responses, scores: rollout.scores };
    await this.log(data);
    return data;
  }

  /** ppoEpochs passes over the rollout in minibatches; returns token-weighted means of the update's statistics. */
  private async update(ro: Rollout, seed: number) {
    const c = this.config;
    const pad = this.opts.tokenizer.padId ?? 0;
    // sums over every token the update visited; divided by `tokens` at the end
    const acc = { approxkl: 0, clipfrac: 0, pgLoss: 0, vfLoss: 0, vfClipfrac: 0, ratio: 0, ratioSq: 0, entropy: 0, tokens: 0 };
    const lr = this.learningRate(c.lr);
    const criticLr = this.learningRate(c.criticLr);
    let epochsRun = 0;
    for (let epoch = 0; epoch < c.ppoEpochs; epoch++) {
      epochsRun++;
      let epochKL = 0;
      let epochTokens = 0;
      const order = permutation(ro.queries.length, mix(seed, epoch + 1));
      for (let m = 0; m < order.length; m += c.miniBatchSize) {
        const idx = order.slice(m, m + c.miniBatchSize);
        const queries = idx.map((i) => ro.queries[i]);
        const batch = sequenceBatch(queries, idx.map((i) => ro.responses[i]), pad);
        // the minibatch's tokens (and responses) over all ranks: each rank's loss is its share of their mean
        const [count, responses] = await this.dist.sum([sum(idx.map((i) => ro.responses[i].length)), idx.length]);
        const norms = lossNormalisers(idx.map((i) => ro.responses[i].length), c.lossAveraging, count, responses);
        const at = (b: number, t: number) => b * batch.T + queries[b].length - 1 + t;

        // policy: the clipped surrogate, a mean over the minibatch's tokens
        const out = await this.policy.forward(batch, { temperature: c.temperature, entropy: true });
        const newLp = batch.gather(out.logprob);
        const dlogprob = new Float32Array(batch.B * batch.T);
        idx.forEach((i, b) => {
          const n = norms[b];
          const pl = policyLoss(newLp[b], ro.logprobs[i], ro.advantages[i], c.clipRange, n);
          pl.grad.forEach((g, t) => (dlogprob[at(b, t)] = g));
          // (token sums, for the token-weighted statistics reported whichever way the loss averages)
          acc.pgLoss += pl.loss * n;
          acc.clipfrac += pl.clipfrac * n;
          acc.approxkl += pl.approxKL * n;
          epochKL += pl.approxKL * n;
          newLp[b].forEach((lp, t) => {
            const r = Math.exp(lp - ro.logprobs[i][t]);
            acc.ratio += r;
            acc.ratioSq += r * r;
          });
        });
        acc.entropy += sum(batch.gather(out.entropy!).flat());
        await this.policy.backward({ dlogprob });
        await this.dist.reduceGradients(this.policy);
        await this.policy.step(adamWOptions(c, lr));

        // critic: the clipped value loss
        const vout = await this.critic.forward(batch, { logprob: false, values: true });
        const v = batch.gather(vout.values!);
        const dvalue = new Float32Array(batch.B * batch.T);
        idx.forEach((i, b) => {
          const n = norms[b];
          const vl = valueLoss(v[b], ro.values[i], ro.returns[i], c.clipRangeValue, n);
          vl.grad.forEach((g, t) => (dvalue[at(b, t)] = g));
          acc.vfLoss += vl.loss * n;
          acc.vfClipfrac += vl.clipfrac * n;
        });
        await this.critic.backward({ dvalue });
        await this.dist.reduceGradients(this.critic);
        await this.critic.step(adamWOptions(c, criticLr));
        acc.tokens += count;
        epochTokens += count;
      }
      // the policy moved too far from the one that sampled the rollout: stop this rollout's epochs
      [epochKL] = await this.dist.sum([epochKL]);
      if (c.earlyStopKL > 0 && epochKL / epochTokens > c.earlyStopKL) break;
    }
    // the token-weighted sums of every rank (acc.tokens already counts all ranks' tokens)
    const keys = ['approxkl', 'clipfrac', 'pgLoss', 'vfLoss', 'vfClipfrac', 'ratio', 'ratioSq', 'entropy'] as const;
    const summed = await this.dist.sum(keys.map((k) => acc[k]));
    keys.forEach((k, i) => (acc[k] = summed[i]));
    const n = Math.max(1, acc.tokens);
    const ratio = acc.ratio / n;
    return {
      approxkl: acc.approxkl / n,
      clipfrac: acc.clipfrac / n,
      pgLoss: acc.pgLoss / n,
      vfLoss: acc.vfLoss / n,
      vfClipfrac: acc.vfClipfrac / n,
      ratio,
      ratioVar: acc.ratioSq / n - ratio * ratio,
      entropy: acc.entropy / n,
      lr,
      epochsRun,
    };
  }

  /** The step's metrics over the global batch (every rank's responses). */
  private async metrics(ro: Rollout, u: Awaited<ReturnType<PPOTrainer['update']>>): Promise<PPOMetrics> {
    const lengths = ro.responses.map((r) => r.length);
    const nonScore = ro.kl.map((k) => -ro.klCoef * sum(k));
    // a response's content: its tokens less the stop token (EOS, end-of-turn, ...) it ended with
    const content = ro.responses.map((r, i) => r.length - (ro.eos[i] ? 1 : 0));
    const local = [
      ro.responses.length,
      sum(ro.kl.map(sum)),
      sum(ro.logprobs.map((lp) => -sum(lp))),
      sum(nonScore),
      sum(ro.scores),
      ro.eos.filter(Boolean).length,
      sum(content),
      content.filter((n) => n === 0).length,
      sum(lengths),
    ];
    const [n, kl, entropy, nonScoreSum, scores, eosCount, contentSum, empties, tokens] = await this.dist.sum(local);
    const contentMean = contentSum / Math.max(1, n);
    const [contentSq] = await this.dist.sum([sum(content.map((x) => (x - contentMean) ** 2))]);
    const avg = (x: number) => (n > 0 ? x / n : 0);
    return {
      'objective/kl': avg(kl),
      'objective/entropy': avg(entropy),
      'objective/non_score_reward': avg(nonScoreSum),
      'objective/rlhf_reward': avg(scores) + avg(nonScoreSum),
      'objective/scores': avg(scores),
      'policy/approxkl_avg': u.approxkl,
      'policy/clipfrac_avg': u.clipfrac,
      'policy/entropy_avg': u.entropy,
      'loss/policy_avg': u.pgLoss,
      'loss/value_avg': u.vfLoss,
      'val/clipfrac_avg': u.vfClipfrac,
      'val/ratio': u.ratio,
      'val/ratio_var': u.ratioVar,
      'val/num_eos_tokens': eosCount,
      'response_length/mean': avg(contentSum),
      'response_length/std': Math.sqrt(avg(contentSq)),
      'responses/empty_rate': avg(empties),
      'responses/tokens_mean': avg(tokens),
      kl_coef: ro.klCoef,
      ppo_epochs_run: u.epochsRun,
      lr: u.lr,
      episode: this.episode,
    };
  }

  private async log(data: PPOStep): Promise<void> {
    const dir = this.opts.outputDir;
    if (!dir || !this.dist.isMain) return;
    await fs.mkdir(dir, { recursive: true });
    await fs.appendFile(path.join(dir, 'log.jsonl'), JSON.stringify({ step: data.step, ...data.metrics }) + '\n');
    const c = this.config;
    if (c.sampleEvery > 0 && data.step % c.sampleEvery === 0) {
      const rows = data.prompts.slice(0, c.samples).map((prompt, i) => JSON.stringify({ step: data.step, prompt, response: data.responses[i], score: data.scores[i] }));
      await fs.appendFile(path.join(dir, 'samples.jsonl'), rows.map((r) => r + '\n').join(''));
    }
  }

  private state(): PPOState {
    return {
      kind: 'ppo',
      step: this.step,
      episode: this.episode,
      config: this.config,
      sampler: this.sampler!.state(),
      kl: this.kl.state(),
      worldSize: this.dist.worldSize,
    };
  }

  /** Writes on rank 0 only, after checking that every rank holds the same policy and critic; the others wait. */
  private async onMain(what: string, write: () => Promise<void>): Promise<void> {
    await this.dist.checkSameWeights(this.policy, `${what} (policy)`);
    await this.dist.checkSameWeights(this.critic, `${what} (critic)`);
    if (this.dist.isMain) await write();
    await this.dist.barrier();
  }

  private async checkpoint(): Promise<string | undefined> {
    const out = this.opts.outputDir;
    if (!out) return undefined;
    const dir = checkpointDir(out, this.step);
    const files = { ...this.opts.tokenizer.files(), ...templateFiles(this.opts.template) };
    await this.onMain(`the checkpoint at step ${this.step}`, async () => {
      await writeDirAtomic(dir, async (tmp) => {
        await saveModel(this.policy, path.join(tmp, 'policy'), { optimizer: true, files });
        await saveModel(this.critic, path.join(tmp, 'critic'), { optimizer: true, files });
        await writeFileDurable(path.join(tmp, STATE_FILE), JSON.stringify(this.state(), null, 2) + '\n');
      });
      await rotateCheckpoints(out, this.config.saveTotalLimit, dir);
    });
    if (this.dist.isMain) this.opts.onEvent?.({ type: 'checkpoint', step: this.step, dir });
    return dir;
  }

  /**
   * final/ (the policy, with the tokenizer, template and trainer state) and final-critic/ as one
   * unit (writeDirsAtomic, final/ last): a run killed while saving leaves no final/ (the former one,
   * if any, at out/.final.old-*) rather than a policy beside a critic from another save.
   */
  private async saveFinal(): Promise<string | undefined> {
    const out = this.opts.outputDir;
    if (!out) return undefined;
    const dir = path.join(out, FINAL_DIR);
    const files = { ...this.opts.tokenizer.files(), ...templateFiles(this.opts.template) };
    const dtype = this.opts.saveDtype;
    await this.onMain('the final model', async () => {
      // Replacing a directory removes all of it: as saveModel does, refuse one that is not a checkpoint.
      for (const name of [FINAL_DIR, FINAL_CRITIC_DIR]) {
        const present = await fs.readdir(path.join(out, name)).catch(() => undefined);
        if (present && present.length > 0 && !present.includes('config.json'))
          throw new Error(`${path.join(out, name)} exists and is not a checkpoint (it has files but no config.json); refusing to replace it`);
      }
      await writeDirsAtomic(out, [FINAL_DIR, FINAL_CRITIC_DIR], async (tmp) => {
        await saveModel(this.policy, path.join(tmp, FINAL_DIR), { dtype, files: { ...files, [STATE_FILE]: JSON.stringify(this.state(), null, 2) + '\n' } });
        await saveModel(this.critic, path.join(tmp, FINAL_CRITIC_DIR), { dtype, files });
      });
    });
    return dir;
  }
}
