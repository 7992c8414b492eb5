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

/** A policy's responses to `prompts`, sampled with `opts.seed`'s random numbers (the same for every policy judged alike). */
export async function sampleResponses(
  policy: Model,
  tok: Tokenizer,
  tpl: Template,
  prompts: readonly string[],
  opts: { temperature: number; maxNewTokens: number; seed: number },
): Promise<Array<{ prompt: string; response: string; tokens: number; finished: boolean }>> {
  const queries = prompts.map((p, i) => {
    const q = encodePrompt(tok, tpl, p, { maxLength: policy.config.maxSeqLen - opts.maxNewTokens });
    if (!q) throw new RangeError(`evaluation prompt ${i + 1} does not fit the model's context (${policy.config.maxSeqLen}) with ${opts.maxNewTokens} new tokens`);
    return q;
  });
  const gens = await policy.generate(queries, { maxNewTokens: opts.maxNewTokens, temperature: opts.temperature, eos: generationStopIds(policy, tok, tpl), seed: opts.seed });
  return gens.map((g, i) => {
    const finished = g.finishReason === 'eos';
    return { prompt: prompts[i], response: decodeGenerated(tok, g.tokens, { skipSpecialTokens: true }), tokens: g.tokens.length - (finished ? 1 : 0), finished };
  });
}

export async function judgePolicy(
  policy: Model,
  task: Task,
  tok: Tokenizer,
  tpl: Template,
  prompts: Record<Split, readonly string[]>,
  opts: { temperature: number; maxNewTokens: number; seed: number },
): Promise<SplitResults> {
  const out = {} as SplitResults;
  for (const split of ['id', 'ood'] as const)
    out[split] = (await sampleResponses(policy, tok, tpl, prompts[split], opts)).map(({ prompt, response }) => {
      const j = task.judge(prompt, response);
      return { prompt, score: j.score, parts: j.parts, length: words(response).length, response };
    });
  return out;
}
