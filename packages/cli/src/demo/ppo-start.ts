// A comparison's PPO run, the same for the demo and `s2s compare`: the policy and the frozen
// reference as copies of SFT, the critic from the scalar RM for ordinary PPO (as TRL does) and from
// SFT otherwise, and the reward each method names.
import type { Model, Template, Tokenizer } from '@s2s/core';
import { type PPOConfig, type PPOEvent, PPOTrainer, type RewardSpec } from '@s2s/ppo';
import type { RewardStats } from '@s2s/rm';

export type PPOMethod = 'scalar' | 'token' | 'sentence' | 'token-positive' | 'token-negative';

export async function comparisonPPO(
  method: PPOMethod,
  m: { sft: Model; scalarRM: Model; seq2seqRM: Model; stats: RewardStats },
  run: { tok: Tokenizer; tpl: Template; config: Partial<PPOConfig>; seed: number; signal?: AbortSignal; onEvent?: (e: PPOEvent) => void },
): Promise<{ trainer: PPOTrainer; dispose(): void }> {
  const policy = await m.sft.clone();
  const ref = await m.sft.clone();
  const critic = await (method === 'scalar' ? m.scalarRM : m.sft).clone({ valueHead: true, seed: run.seed });
  const reward: RewardSpec =
    method === 'scalar'
      ? { type: 'scalar', model: m.scalarRM, stats: m.stats }
      : method === 'sentence'
        ? { type: 'sentence', model: m.seq2seqRM, aggregate: 'sum' }
        : { type: method, model: m.seq2seqRM };
  const trainer = new PPOTrainer({
    policy,
    ref,
    critic,
    reward,
    tokenizer: run.tok,
    template: run.tpl,
    config: { ...run.config, seed: run.seed },
    signal: run.signal,
    onEvent: run.onEvent,
  });
  return { trainer, dispose: () => [policy, ref, critic].forEach((x) => x.dispose()) };
}
