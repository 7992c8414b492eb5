// Judging a policy on evaluation prompts with the task's gold judge: its responses are sampled
// with a seed shared by every policy of a run (the same random numbers for SFT and each PPO
// policy), and each response's score, its parts, its length and its text are kept.
import { type Model, type Template, type Tokenizer, encodePrompt } from '@s2s/core';
import { decodeGenerated, generationStopIds } from '@s2s/rm';
import { type Split, type Task, words } from '@s2s/tasks';

export interface Judged {
  prompt: string;
  score: number;
  /** words, EOS excluded */
  length: number;
  parts: Record<string, number | boolean>;
  response: string;
}

export type SplitResults = Record<Split, Judged[]>;

export async function judgePolicy(
  policy: Model,
  task: Task,
  tok: Tokenizer,
  tpl: Template,
  prompts: Record<Split, readonly string[]>,
  opts: { temperature: number; maxNewTokens: number; seed: number },
): Promise<SplitResults> {
  const out = {} as SplitResults;
  for (const split of ['id', 'ood'] as const) {
    const queries = prompts[split].map((p) => encodePrompt(tok, tpl, p, { maxLength: policy.config.maxSeqLen - opts.maxNewTokens })!);
    const gens = await policy.generate(queries, { maxNewTokens: opts.maxNewTokens, temperature: opts.temperature, eos: generationStopIds(policy, tok, tpl), seed: opts.seed });
    out[split] = gens.map((g, i) => {
      const response = decodeGenerated(tok, g.tokens, { skipSpecialTokens: true });
      const j = task.judge(prompts[split][i], response);
      return { prompt: prompts[split][i], score: j.score, parts: j.parts, length: words(response).length, response };
    });
  }
  return out;
}
