// The four models of a PPO run -- policy, frozen reference, critic, reward model -- checked against
// the reward type and the policy's tokenizer before any weights are read, then loaded.
import * as path from 'node:path';

import {
  type GPTConfig,
  type Model,
  type Prompt,
  type Template,
  type Tokenizer,
  assertTokenizerFitsModel,
  encodePrompt,
  loadModel,
  loadTemplate,
  readCheckpointConfig,
} from '@s2s/core';
import { type RewardModelKind, readRewardModelKind } from '@s2s/rm';

import { checkSameTokenizer } from './model-inputs.js';
import { UsageError } from './options.js';

/** The reward types the command line offers (a custom reward is a function: the API's). */
export const CLI_REWARD_TYPES = ['scalar', 'token', 'sentence', 'token-positive', 'token-negative'] as const;
export type CliRewardType = (typeof CLI_REWARD_TYPES)[number];

export const rewardModelKindFor = (reward: CliRewardType): RewardModelKind => (reward === 'scalar' ? 'scalar' : 'seq2seq');

/** The reward model's kind must be the one --reward reads: a value head for scalar, a rewriting LM for the rest. */
export async function checkRewardModel(dir: string, reward: CliRewardType): Promise<void> {
  const kind = await readRewardModelKind(dir).catch((e: Error) => {
    throw new Error(`--reward-model: ${e.message}`);
  });
  const want = rewardModelKindFor(reward);
  if (kind === want) return;
  if (want === 'scalar')
    throw new UsageError(
      `--reward scalar needs a scalar reward model (a value head, from \`s2s rm train\`), but ${dir} is a seq2seq reward model; ` +
        `use --reward token, sentence, token-positive or token-negative with it, or give a scalar --reward-model`,
    );
  throw new UsageError(
    `--reward ${reward} needs a seq2seq reward model (from \`s2s rm train --seq2seq\`), but ${dir} is a scalar reward model (one number per response, no token scores); ` +
      `use --reward scalar with it, or give a seq2seq --reward-model`,
  );
}

export interface ModelSources {
  /** where the policy's weights come from: the SFT model, or a resumed checkpoint's policy/ */
  policy: string;
  ref: string;
  /** the critic's starting weights (ignored when resuming: the checkpoint has the critic) */
  critic?: string;
  rewardModel: string;
}

/**
 * Reads every model's config.json and checks that the policy's tokenizer fits them all, that the
 * reference scores the policy's vocabulary, and that models reading whole policy sequences can hold
 * them. Returns the policy's and the reward model's configs.
 */
export async function checkModelShapes(src: ModelSources, tok: Tokenizer): Promise<{ policy: GPTConfig; rewardModel: GPTConfig }> {
  const read = async (dir: string, flag: string) => {
    const cfg = await readCheckpointConfig(dir).catch((e: Error) => {
      throw new Error(`${flag}: ${e.message}`);
    });
    try {
      assertTokenizerFitsModel(tok, cfg);
    } catch (e) {
      throw new Error(`${flag} ${dir}: ${(e as Error).message}`);
    }
    await checkSameTokenizer(tok, dir, flag);
    return cfg;
  };
  const policy = await read(src.policy, '--policy');
  const ref = await read(src.ref, '--ref');
  if (ref.vocabSize !== policy.vocabSize)
    throw new Error(`--ref ${src.ref} has a vocabulary of ${ref.vocabSize} ids but the policy ${policy.vocabSize}: the KL penalty compares their distributions token by token`);
  const whole: Array<[string, string, GPTConfig]> = [['--ref', src.ref, ref]];
  if (src.critic !== undefined) whole.push(['--critic', src.critic, await read(src.critic, '--critic')]);
  const rm = await read(src.rewardModel, '--reward-model');
  if (rm.valueHead) whole.push(['--reward-model', src.rewardModel, rm]);
  for (const [flag, dir, cfg] of whole)
    if (cfg.maxSeqLen < policy.maxSeqLen)
      throw new Error(`${flag} ${dir} has a context of ${cfg.maxSeqLen} tokens, shorter than the policy's (${policy.maxSeqLen}): it reads the policy's whole sequences`);
  return { policy, rewardModel: rm };
}

/**
 * The scalar reward reads each prompt whole (@s2s/ppo does not cut it as the rollout does), so a
 * prompt that the policy's context only holds cut would fail mid-run: refuse it before the run.
 */
export function checkPromptsFitScalarRM(tok: Tokenizer, tpl: Template, prompts: readonly Prompt[], rm: GPTConfig, maxNewTokens: number, what: string): void {
  const i = prompts.findIndex((p) => (encodePrompt(tok, tpl, p)?.length ?? Infinity) + maxNewTokens > rm.maxSeqLen);
  if (i >= 0)
    throw new Error(
      `${what}: prompt ${i + 1} and a response of --max-new-tokens ${maxNewTokens} do not fit the scalar reward model's context (${rm.maxSeqLen} tokens); ` +
        'with --reward scalar, prompts are not cut to fit: shorten them or lower --max-new-tokens',
    );
}

/** A warning when the reward model was trained with another template than the policy's: its rewards would read text laid out differently. */
export async function checkRewardTemplate(rewardModel: string, policyTemplate: Template): Promise<void> {
  const own = await loadTemplate(rewardModel).catch(() => undefined);
  if (own && JSON.stringify(own) !== JSON.stringify(policyTemplate))
    console.error(`warning: the reward model ${rewardModel} was trained with another template than the policy's; PPO lays out its inputs with the policy's`);
}

/** A model to train: its weights without optimizer state, with (critic) or without (policy) the value head. */
export async function loadForTraining(dir: string, valueHead: boolean, seed: number): Promise<Model> {
  const m = await loadModel(dir, { optimizer: false });
  if (Boolean(m.config.valueHead) === valueHead) return m;
  try {
    // a new value head starts as GPT-2 initialises weights, fixed by the seed
    return await m.clone({ valueHead, seed });
  } finally {
    m.dispose();
  }
}

export const checkpointPolicy = (checkpoint: string): string => path.join(checkpoint, 'policy');
