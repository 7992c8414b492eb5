// The PPO trainer: rollouts from the policy, epochs of clipped-surrogate updates over minibatches
// (the derivative w.r.t. the new log-probs goes to the engine as dlogprob, the critic's as
// dvalue), KL control, TRL-named metrics per step, checkpoints and an exact resume.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

import {
  BatchSampler,
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
import { policyLoss, valueLoss } from './losses.js';
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
const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const variance = (xs: readonly number[]) => {
  const m = mean(xs);
  return mean(xs.map((x) => (x - m) ** 2));
};

export class PPOTrainer {
  readonly config: PPOConfig;
  readonly policy: Model;
  readonly critic: Model;
  private readonly opts: PPOTrainerOptions;
  private readonly kl: KLController;
  private sampler?: BatchSampler;
  private samplerState?: SamplerState;
  private step = 0;
  private episode = 0;
  private readonly history: PPOMetrics[] = [];

  constructor(opts: PPOTrainerOptions) {
    this.opts = opts;
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
    for (const part of ['policy', 'critic']) await requireOptimizerState(path.join(dir, part));
    const policy = await loadModel(path.join(dir, 'policy'));
    const critic = await loadModel(path.join(dir, 'critic'));
    const t = new PPOTrainer({ ...opts, policy, critic, config: { ...state.config, ...opts.config } });
    if (opts.outputDir) await trimLogs(opts.outputDir, state.step);
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
    if (texts.length < c.batchSize) throw new RangeError(`PPO needs at least batchSize (${c.batchSize}) prompts; got ${texts.length}`);
    this.sampler = new BatchSampler(texts.length, { batchSize: c.batchSize, seed: c.seed, dropLast: true });
    if (this.samplerState) this.sampler.restore(this.samplerState);
    const started = performance.now();
    const startStep = this.step;
    while (this.step < c.steps) {
      if (this.opts.signal?.aborted) return { steps: this.step, stopped: true, history: this.history, savedTo: await this.checkpoint() };
      const position = this.sampler.state();
      const batchPrompts = this.sampler.next().indices.map((i) => texts[i]);
      let rollout: Rollout;
      try {
        rollout = await collectRollout(
          { ...this.opts, policy: this.policy, critic: this.critic },
          c,
          batchPrompts,
          this.kl.value,
          mix(c.seed, this.step),
        );
      } catch (e) {
        // nothing was updated yet: checkpoint the run as it stands, so that it can resume from here
        this.sampler.restore(position);
        const dir = await this.checkpoint().catch(() => undefined);
        if (dir && e instanceof Error) e.message += ` (the run was checkpointed at step ${this.step} in ${dir})`;
        throw e;
      }
      const data = await this.ppoStep(rollout);
      const elapsedMs = performance.now() - started;
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
    this.episode += prompts.length;
    const metrics = this.metrics(rollout, update);
    this.kl.update(metrics['objective/kl'], prompts.length);
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
        const count = sum(idx.map((i) => ro.responses[i].length));
        const at = (b: number, t: number) => b * batch.T + queries[b].length - 1 + t;

        // policy: the clipped surrogate, a mean over the minibatch's tokens
        const out = await this.policy.forward(batch, { temperature: c.temperature, entropy: true });
        const newLp = batch.gather(out.logprob);
        const dlogprob = new Float32Array(batch.B * batch.T);
        idx.forEach((i, b) => {
          const pl = policyLoss(newLp[b], ro.logprobs[i], ro.advantages[i], c.clipRange, count);
          pl.grad.forEach((g, t) => (dlogprob[at(b, t)] = g));
          acc.pgLoss += pl.loss * count;
          acc.clipfrac += pl.clipfrac * count;
          acc.approxkl += pl.approxKL * count;
          epochKL += pl.approxKL * count;
          newLp[b].forEach((lp, t) => {
            const r = Math.exp(lp - ro.logprobs[i][t]);
            acc.ratio += r;
            acc.ratioSq += r * r;
          });
        });
        acc.entropy += sum(batch.gather(out.entropy!).flat());
        await this.policy.backward({ dlogprob });
        await this.policy.step(adamWOptions(c, lr));

        // critic: the clipped value loss
        const vout = await this.critic.forward(batch, { logprob: false, values: true });
        const v = batch.gather(vout.values!);
        const dvalue = new Float32Array(batch.B * batch.T);
        idx.forEach((i, b) => {
          const vl = valueLoss(v[b], ro.values[i], ro.returns[i], c.clipRangeValue, count);
          vl.grad.forEach((g, t) => (dvalue[at(b, t)] = g));
          acc.vfLoss += vl.loss * count;
          acc.vfClipfrac += vl.clipfrac * count;
        });
        await this.critic.backward({ dvalue });
        await this.critic.step(adamWOptions(c, criticLr));
        acc.tokens += count;
        epochTokens += count;
      }
      // the policy moved too far from the one that sampled the rollout: stop this rollout's epochs
      if (c.earlyStopKL > 0 && epochKL / epochTokens > c.earlyStopKL) break;
    }
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

  private metrics(ro: Rollout, u: Awaited<ReturnType<PPOTrainer['update']>>): PPOMetrics {
    const lengths = ro.responses.map((r) => r.length);
    const nonScore = ro.kl.map((k) => -ro.klCoef * sum(k));
    // a response's content: its tokens less the stop token (EOS, end-of-turn, ...) it ended with
    const content = ro.responses.map((r, i) => r.length - (ro.eos[i] ? 1 : 0));
    return {
      'objective/kl': mean(ro.kl.map(sum)),
      'objective/entropy': mean(ro.logprobs.map((lp) => -sum(lp))),
      'objective/non_score_reward': mean(nonScore),
      'objective/rlhf_reward': mean(ro.scores) + mean(nonScore),
      'objective/scores': mean(ro.scores),
      'policy/approxkl_avg': u.approxkl,
      'policy/clipfrac_avg': u.clipfrac,
      'policy/entropy_avg': u.entropy,
      'loss/policy_avg': u.pgLoss,
      'loss/value_avg': u.vfLoss,
      'val/clipfrac_avg': u.vfClipfrac,
      'val/ratio': u.ratio,
      'val/ratio_var': u.ratioVar,
      'val/num_eos_tokens': ro.eos.filter(Boolean).length,
      'response_length/mean': mean(content),
      'response_length/std': Math.sqrt(variance(content)),
      'responses/empty_rate': mean(content.map((n) => (n === 0 ? 1 : 0))),
      'responses/tokens_mean': mean(lengths),
      kl_coef: ro.klCoef,
      ppo_epochs_run: u.epochsRun,
      lr: u.lr,
      episode: this.episode,
    };
  }

  private async log(data: PPOStep): Promise<void> {
    const dir = this.opts.outputDir;
    if (!dir) return;
    await fs.mkdir(dir, { recursive: true });
    await fs.appendFile(path.join(dir, 'log.jsonl'), JSON.stringify({ step: data.step, ...data.metrics }) + '\n');
    const c = this.config;
    if (c.sampleEvery > 0 && data.step % c.sampleEvery === 0) {
      const rows = data.prompts.slice(0, c.samples).map((prompt, i) => JSON.stringify({ step: data.step, prompt, response: data.responses[i], score: data.scores[i] }));
      await fs.appendFile(path.join(dir, 'samples.jsonl'), rows.map((r) => r + '\n').join(''));
    }
  }

  private state(): PPOState {
    return { kind: 'ppo', step: this.step, episode: this.episode, config: this.config, sampler: this.sampler!.state(), kl: this.kl.state() };
  }

  private async checkpoint(): Promise<string | undefined> {
    const out = this.opts.outputDir;
    if (!out) return undefined;
    const dir = checkpointDir(out, this.step);
    const files = { ...this.opts.tokenizer.files(), ...templateFiles(this.opts.template) };
    await writeDirAtomic(dir, async (tmp) => {
      await saveModel(this.policy, path.join(tmp, 'policy'), { optimizer: true, files });
      await saveModel(this.critic, path.join(tmp, 'critic'), { optimizer: true, files });
      await writeFileDurable(path.join(tmp, STATE_FILE), JSON.stringify(this.state(), null, 2) + '\n');
    });
    await rotateCheckpoints(out, this.config.saveTotalLimit, dir);
    this.opts.onEvent?.({ type: 'checkpoint', step: this.step, dir });
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
    return dir;
  }
}
