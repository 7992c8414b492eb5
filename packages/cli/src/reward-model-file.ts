// The small file in a reward model's folder that says which kind it is, so that `rm score` and
// `rm explain` read a scalar reward from its value head and token scores from a seq2seq one.
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';

import { readCheckpointConfig } from '@s2s/core';

export const REWARD_MODEL_FILE = 's2s_reward_model.json';

export type RewardModelKind = 'scalar' | 'seq2seq';

export interface RewardModelInfo {
  kind: RewardModelKind;
  /** the SFT model it started from */
  baseModel?: string;
  /** the preference pairs it learned from */
  data?: string;
}

export function rewardModelFiles(info: RewardModelInfo): Record<string, string> {
  return { [REWARD_MODEL_FILE]: JSON.stringify(info, null, 2) + '\n' };
}

/**
 * The kind of the reward model in `dir`. Without the file, a model with a value head (a
 * GPT2ForSequenceClassification, say from transformers) is taken for a scalar one.
 */
export async function readRewardModelKind(dir: string): Promise<RewardModelKind> {
  const file = path.join(dir, REWARD_MODEL_FILE);
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) {
    const config = await readCheckpointConfig(dir);
    if (config.valueHead) return 'scalar';
    throw new Error(`${dir} is not a reward model: it has no ${REWARD_MODEL_FILE} (written by \`s2s rm train\`) and no value head`);
  }
  let info: unknown;
  try {
    info = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const kind = (info as { kind?: unknown } | null)?.kind;
  if (kind !== 'scalar' && kind !== 'seq2seq') throw new Error(`${file}: "kind" must be "scalar" or "seq2seq", got ${JSON.stringify(kind)}`);
  return kind;
}
