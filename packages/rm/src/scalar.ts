// The scalar reward model, the baseline: the GPT with a value head read at the last response
// token, trained on preference pairs with the Bradley-Terry loss -log sigmoid(r_chosen - r_rejected).
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';

import {
  type FileData,
  type LengthOptions,
  type LengthReport,
  type Model,
  TRAIN_DEFAULTS,
  type Template,
  type Tokenizer,
  type TrainConfig,
  Trainer,
  type TrainerOptions,
  type TrainerState,
  type TrainResult,
  collate,
  encodeSupervised,
  lengthReport,
  loadTrainingCheckpoint,
  rowSource,
} from '@s2s/core';

import type { PreferencePair } from './seq2seq.js';

/** A preference pair as two full sequences: query, response and EOS. */
export interface EncodedPair {
  chosen: number[];
  rejected: number[];
}

/** Both sequences of each pair under the length rule (LengthOptions); a pair one of whose sides is skipped is left out. */
export function encodePairs(
  tok: Tokenizer,
  tpl: Template,
  pairs: readonly PreferencePair[],
  opts: Omit<LengthOptions, 'report'> = {},
): { pairs: EncodedPair[]; report: LengthReport } {
  const report = lengthReport();
  const out: EncodedPair[] = [];
  for (const p of pairs) {
    const at = rowSource(p);
    const c = encodeSupervised(tok, tpl, p.prompt, p.chosen, { ...opts, report, at: at && `${at} chosen` });
    const r = encodeSupervised(tok, tpl, p.prompt, p.rejected, { ...opts, report, at: at && `${at} rejected` });
    if (c && r) out.push({ chosen: c.ids, rejected: r.ids });
  }
  return { pairs: out, report };
}

/** -log sigmoid(rc - rr), and its derivatives with respect to rc and rr. */
export function bradleyTerry(rc: number, rr: number): { loss: number; dChosen: number; dRejected: number } {
  const d = rc - rr;
  // log(1 + exp(-d)) without overflow, and sigmoid(-d) = 1 - sigmoid(d)
  const loss = d > 0 ? Math.log1p(Math.exp(-d)) : -d + Math.log1p(Math.exp(d));
  const s = 1 / (1 + Math.exp(d));
  return { loss, dChosen: -s, dRejected: s };
}

/** The reward of each sequence: the value head at its last token. */
export async function sequenceRewards(model: Model, seqs: readonly (readonly number[])[], padId: number, batchSize = 32): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < seqs.length; i += batchSize) {
    const part = seqs.slice(i, i + batchSize).map((ids) => ({ ids, lossMask: ids.map(() => 0) }));
    const batch = collate(part, padId);
    const { values } = await model.forward(batch, { logprob: false, values: true });
    part.forEach((p, b) => out.push(values![b * batch.T + p.ids.length - 1]));
  }
  return out;
}

export interface RewardStats {
  /** mean and standard deviation of the rewards of the training responses, for normalisation */
  mean: number;
  std: number;
}

export const REWARD_STATS_FILE = 'reward_stats.json';

/** The statistics saved beside a scalar RM in `dir`, or undefined when it has none (one made elsewhere). */
export async function loadRewardStats(dir: string): Promise<RewardStats | undefined> {
  const file = path.join(dir, REWARD_STATS_FILE);
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  let s: unknown;
  try {
    s = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new Error(`${file}: expected {"mean": number, "std": number >= 0}, got ${text.trim()}`);
  const { mean, std } = s as Record<string, unknown>;
  const missing = (v: unknown) => (v === undefined ? 'nothing (it is missing)' : JSON.stringify(v));
  if (typeof mean !== 'number' || !Number.isFinite(mean)) throw new Error(`${file}: "mean" must be a finite number, got ${missing(mean)}`);
  if (typeof std !== 'number' || !Number.isFinite(std) || std < 0) throw new Error(`${file}: "std" must be a finite number >= 0, got ${missing(std)}`);
  return { mean, std };
}

/** reward_stats.json's contents, as saveModel's `files` take them. */
export function rewardStatsFiles(stats: RewardStats): Record<string, string> {
  return { [REWARD_STATS_FILE]: JSON.stringify(stats, null, 2) + '\n' };
}

/** (r - mean) / std; a reward model whose rewards never varied (std 0) is only centred. */
export function normalizeReward(r: number, stats: RewardStats): number {
  return (r - stats.mean) / (stats.std > 0 ? stats.std : 1);
}

export type ScalarRMConfig = TrainConfig;
export const SCALAR_RM_DEFAULTS: ScalarRMConfig = { ...TRAIN_DEFAULTS, lr: 3e-4 };

export interface ScalarRewardTrainerOptions extends TrainerOptions<ScalarRMConfig> {
  train: readonly EncodedPair[];
  eval?: readonly EncodedPair[];
  padId: number;
  /** how many training pairs measure the reward statistics at the end (default 1000) */
  statsSample?: number;
}

export class ScalarRewardTrainer extends Trainer<ScalarRMConfig> {
  protected readonly kind = 'scalar-rm';
  private readonly data: ScalarRewardTrainerOptions;
  /** set when training finishes */
  rewardStats?: RewardStats;

  constructor(opts: ScalarRewardTrainerOptions) {
    super(opts, SCALAR_RM_DEFAULTS, opts.train.length, 'scalar reward model');
    if (!opts.model.config.valueHead) throw new Error('the scalar reward model needs a value head: clone the SFT model with { valueHead: true }');
    this.data = opts;
  }

  /** As SupervisedTrainer.resume. */
  static async resume(dir: string, opts: Omit<ScalarRewardTrainerOptions, 'model'>): Promise<ScalarRewardTrainer> {
    const { model, state, tokenizer } = await loadTrainingCheckpoint<TrainerState<ScalarRMConfig>>(dir);
    const t = new ScalarRewardTrainer({ ...opts, model, config: { ...state.config, ...opts.config }, tokenizer: opts.tokenizer ?? tokenizer });
    t.restore(state, dir);
    return t;
  }

  /** Bradley-Terry loss, accuracy (share of pairs ranked right) and mean margin on `pairs` (each rank scoring its shard). */
  async pairMetrics(all: readonly EncodedPair[]): Promise<{ loss: number; accuracy: number; margin: number }> {
    const pairs = this.dist.shard(all);
    const rc = pairs.length ? await sequenceRewards(this.model, pairs.map((p) => p.chosen), this.data.padId, this.config.batchSize) : [];
    const rr = pairs.length ? await sequenceRewards(this.model, pairs.map((p) => p.rejected), this.data.padId, this.config.batchSize) : [];
    let loss = 0;
    let right = 0;
    let margin = 0;
    rc.forEach((c, i) => {
      loss += bradleyTerry(c, rr[i]).loss;
      right += c > rr[i] ? 1 : 0;
      margin += c - rr[i];
    });
    let count = rc.length;
    [loss, right, margin, count] = await this.dist.sum([loss, right, margin, count]);
    const n = Math.max(1, count);
    return { loss: loss / n, accuracy: right / n, margin: margin / n };
  }

  protected async evaluate(): Promise<Record<string, number> | undefined> {
    if (!this.data.eval?.length) return undefined;
    const m = await this.pairMetrics(this.data.eval);
    return { evalLoss: m.loss, accuracy: m.accuracy, margin: m.margin };
  }

  protected async gradients(parts: number[][]): Promise<{ loss: number; items: number }> {
    const local = parts.reduce((n, p) => n + p.length, 0);
    const pairs = await this.globalCount(local);
    let loss = 0;
    for (const indices of parts) {
      if (indices.length === 0) continue;  // a rank's shard of a short last batch
      // chosen rows first, then the rejected ones, in one batch
      const seqs = [...indices.map((i) => this.data.train[i].chosen), ...indices.map((i) => this.data.train[i].rejected)];
      const batch = collate(seqs.map((ids) => ({ ids, lossMask: ids.map(() => 0) })), this.data.padId);
      const { values } = await this.model.forward(batch, { logprob: false, values: true });
      const last = (row: number) => row * batch.T + seqs[row].length - 1;
      const dvalue = new Float32Array(batch.B * batch.T);
      indices.forEach((_, k) => {
        const bt = bradleyTerry(values![last(k)], values![last(k + indices.length)]);
        loss += bt.loss;
        dvalue[last(k)] = bt.dChosen / pairs;
        dvalue[last(k + indices.length)] = bt.dRejected / pairs;
      });
      await this.model.backward({ dvalue });
    }
    return { loss: loss / pairs, items: local };
  }

  /** Mean and std of the rewards of (a sample of) the training responses. */
  async measureRewardStats(): Promise<RewardStats> {
    const n = Math.min(this.data.train.length, this.data.statsSample ?? 1000);
    const seqs = this.data.train.slice(0, n).flatMap((p) => [p.chosen, p.rejected]);
    const r = await sequenceRewards(this.model, seqs, this.data.padId, this.config.batchSize);
    const mean = r.reduce((a, b) => a + b, 0) / r.length;
    const std = Math.sqrt(r.reduce((a, b) => a + (b - mean) ** 2, 0) / r.length);
    this.rewardStats = { mean, std };
    return this.rewardStats;
  }

  /** Trains, then measures the reward statistics (saved beside the final model as reward_stats.json). */
  override async train(): Promise<TrainResult> {
    const r = await super.train();
    if (!r.stopped && !this.rewardStats) await this.measureRewardStats();
    return r;
  }

  protected override async finalFiles(): Promise<Record<string, FileData>> {
    return rewardStatsFiles(await this.measureRewardStats());
  }
}
