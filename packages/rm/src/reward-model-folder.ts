// A reward model's folder as `s2s rm train` writes it -- the checkpoint (config.json,
// model.safetensors), its tokenizer and template, s2s_reward_model.json (which kind it is) and, for
// a scalar one, reward_stats.json -- read back in one call, for PPO or anything else that scores.
import { access, readFile } from 'node:fs/promises';
import * as path from 'node:path';

import {
  DEFAULT_TEMPLATE,
  type Device,
  type GPTConfig,
  type Model,
  TOKENIZER_FILE,
  type Template,
  Tokenizer,
  assertTokenizerFitsModel,
  endOfTurnId,
  loadModel,
  loadTemplate,
  readCheckpointConfig,
  resolveTemplate,
  vocabularyDifference,
} from '@s2s/core';

import { type RewardStats, loadRewardStats } from './scalar.js';

export const REWARD_MODEL_FILE = 's2s_reward_model.json';

export type RewardModelKind = 'scalar' | 'seq2seq';

/** s2s_reward_model.json */
export interface RewardModelInfo {
  kind: RewardModelKind;
  /** the SFT model it started from */
  baseModel?: string;
  /** the preference pairs it learned from */
  data?: string;
}

/** s2s_reward_model.json's contents, as saveModel's `files` (or a trainer's) take them. */
export function rewardModelFiles(info: RewardModelInfo): Record<string, string> {
  return { [REWARD_MODEL_FILE]: JSON.stringify(info, null, 2) + '\n' };
}

/**
 * The s2s_reward_model.json of the reward model in `dir`, checked. Without the file, a model with a
 * value head (a GPT2ForSequenceClassification, say from transformers) is taken for a scalar one.
 */
export async function readRewardModelInfo(dir: string): Promise<RewardModelInfo> {
  const file = path.join(dir, REWARD_MODEL_FILE);
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) {
    const config = await readCheckpointConfig(dir);
    if (config.valueHead) return { kind: 'scalar' };
    throw new Error(`${dir} is not a reward model: it has no ${REWARD_MODEL_FILE} (written by \`s2s rm train\`) and no value head`);
  }
  let info: unknown;
  try {
    info = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof info !== 'object' || info === null || Array.isArray(info))
    throw new Error(`${file}: expected a JSON object {"kind": "scalar" | "seq2seq", ...}, got ${text.trim()}`);
  const { kind, baseModel, data } = info as Record<string, unknown>;
  if (kind !== 'scalar' && kind !== 'seq2seq') throw new Error(`${file}: "kind" must be "scalar" or "seq2seq", got ${JSON.stringify(kind)}`);
  for (const [key, value] of [['baseModel', baseModel], ['data', data]] as const)
    if (value !== undefined && typeof value !== 'string') throw new Error(`${file}: "${key}" must be a string (a path), got ${JSON.stringify(value)}`);
  return { kind, ...(baseModel !== undefined ? { baseModel: baseModel as string } : {}), ...(data !== undefined ? { data: data as string } : {}) };
}

/** The kind of the reward model in `dir` (readRewardModelInfo's). */
export async function readRewardModelKind(dir: string): Promise<RewardModelKind> {
  return (await readRewardModelInfo(dir)).kind;
}

export interface LoadRewardModelOptions {
  /** read it with this tokenizer instead of the folder's; where the folder has one, it must be the same vocabulary */
  tokenizer?: Tokenizer;
  /** lay out its inputs with this template instead of the folder's s2s_template.json */
  template?: Template;
  /** where the model runs (default: the engine's default device) */
  device?: Device;
}

interface LoadedBase {
  dir: string;
  info: RewardModelInfo;
  /** the weights, without optimizer state; the caller disposes of it */
  model: Model;
  config: GPTConfig;
  /** the tokenizer it was trained with (or the one given) */
  tokenizer: Tokenizer;
  /** its prompt/response template: the one given, else the folder's s2s_template.json, else the default */
  template: Template;
}

/** A scalar (Bradley-Terry) reward model: a value head read at the last token. */
export interface LoadedScalarRewardModel extends LoadedBase {
  kind: 'scalar';
  /** reward_stats.json: the rewards' mean and std over its training responses, to normalise by; absent when the folder has none */
  stats?: RewardStats;
}

/** A seq2seq reward model: a language model whose token scores extractRewards reads. */
export interface LoadedSeq2SeqRewardModel extends LoadedBase {
  kind: 'seq2seq';
}

export type LoadedRewardModel = LoadedScalarRewardModel | LoadedSeq2SeqRewardModel;

/**
 * Opens the reward model in `dir` (the final/ folder of `s2s rm train`, or one laid out as it is):
 * its kind, tokenizer, template and statistics are read and checked against each other before the
 * weights are, and every error names the file and field at fault. @s2s/ppo's `rewardFromModel`
 * turns the result into a PPO reward.
 */
export async function loadRewardModel(dir: string, opts: LoadRewardModelOptions = {}): Promise<LoadedRewardModel> {
  const info = await readRewardModelInfo(dir);
  const config = await readCheckpointConfig(dir);
  if (info.kind === 'scalar' && !config.valueHead) throw new Error(`${dir}: a scalar reward model needs a value head, and this checkpoint has none`);

  const ownFile = path.join(dir, TOKENIZER_FILE);
  const hasOwn = await access(ownFile).then(() => true, () => false);
  if (!hasOwn && !opts.tokenizer)
    throw new Error(`${ownFile} does not exist: a reward model's folder holds the tokenizer it was trained with (or pass one as the tokenizer option)`);
  const own = hasOwn ? await Tokenizer.load(dir) : undefined;
  const tokenizer = opts.tokenizer ?? own!;
  const diff = opts.tokenizer && own && vocabularyDifference(opts.tokenizer, own);
  if (diff) throw new Error(`the reward model ${dir} was trained with another tokenizer than ${opts.tokenizer!.source}: ${diff}`);
  assertTokenizerFitsModel(tokenizer, config);

  const template = opts.template ?? (await loadTemplate(dir)) ?? resolveTemplate(DEFAULT_TEMPLATE);
  if (template.chat) {
    // chat mode: the template writes BOS itself, and responses end with its end-of-turn token
    try {
      endOfTurnId(tokenizer, template.chat);
    } catch (e) {
      throw new Error(`${dir}: ${(e as Error).message}`);
    }
  } else {
    if (template.addBos && tokenizer.bosId === undefined) throw new Error(`${dir}: the template adds BOS but the tokenizer (${tokenizer.source}) has no bos_token`);
    if (template.addEos && tokenizer.eosId === undefined) throw new Error(`${dir}: the template adds EOS but the tokenizer (${tokenizer.source}) has no eos_token`);
  }

  if (info.kind === 'scalar') {
    const stats = await loadRewardStats(dir);
    const model = await loadModel(dir, { optimizer: false, device: opts.device });
    return { kind: 'scalar', dir, info, model, config, tokenizer, template, ...(stats ? { stats } : {}) };
  }
  return { kind: 'seq2seq', dir, info, model: await loadModel(dir, { optimizer: false, device: opts.device }), config, tokenizer, template };
}
