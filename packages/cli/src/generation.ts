// Responses from a model for a list of prompts, in batches, with the model's template: what
// `s2s generate` writes and `s2s eval --model` judges.
import { type Model, type Prompt, type Template, type Tokenizer, encodePrompt, lengthReport, mix } from '@s2s/core';
import { decodeGenerated, generationStopIds } from '@s2s/rm';

import { type OptionSchema, UsageError } from './options.js';

export const generationOptions = {
  maxNewTokens: { type: 'int', min: 1, default: 53, group: 'generation', help: 'longest response in tokens' },
  temperature: { type: 'float', min: 0, default: 0, group: 'generation', help: 'sampling temperature (0: greedy, the likeliest token each time)' },
  topK: { type: 'int', min: 0, default: 0, group: 'generation', help: 'sample from the K likeliest tokens (0: all)' },
  topP: { type: 'float', min: 0, max: 1, exclusiveMin: true, default: 1, group: 'generation', help: 'nucleus sampling mass' },
  seed: { type: 'int', min: 0, default: 0, group: 'generation', help: 'fixes the samples' },
  batchSize: { type: 'int', min: 1, default: 32, group: 'generation', help: 'prompts per engine call' },
} as const satisfies OptionSchema;

export interface GenerationSettings {
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  batchSize: number;
}

export interface GeneratedRow {
  /** text, or (chat mode) the conversation */
  prompt: Prompt;
  response: string;
  finishReason: 'eos' | 'length';
}

/**
 * Each prompt's query ids, cut from the left to leave room for the response (as PPO's rollouts
 * cut them); an error when even the template's own tokens do not fit. `what` names the prompts.
 */
export function encodeQueries(tok: Tokenizer, tpl: Template, prompts: readonly Prompt[], maxSeqLen: number, maxNewTokens: number, what: string): number[][] {
  if (maxNewTokens >= maxSeqLen) throw new UsageError(`--max-new-tokens ${maxNewTokens} leaves no room for a prompt in the model's context (${maxSeqLen} tokens)`);
  const report = lengthReport();
  const queries = prompts.map((p, i) => {
    const q = encodePrompt(tok, tpl, p, { maxLength: maxSeqLen - maxNewTokens, report });
    if (!q) throw new Error(`${what}: prompt ${i + 1} does not fit the model's context (${maxSeqLen} tokens) with --max-new-tokens ${maxNewTokens}`);
    return q;
  });
  if (report.truncated)
    console.error(`warning: ${report.truncated} of ${prompts.length} prompts were cut from the left to fit the model's context (${maxSeqLen} tokens) with --max-new-tokens ${maxNewTokens}`);
  return queries;
}

/**
 * One response per prompt, in order; batch k samples with seed mix(seed, k). A response ends on any
 * stop id (generationStopIds: the template's EOS or end-of-turn, the model's generation_config
 * ones); its text leaves out special tokens and ids the tokenizer has none for (decodeGenerated).
 */
export async function generateResponses(model: Model, tok: Tokenizer, tpl: Template, prompts: readonly Prompt[], s: GenerationSettings, what = '--prompts'): Promise<GeneratedRow[]> {
  const queries = encodeQueries(tok, tpl, prompts, model.config.maxSeqLen, s.maxNewTokens, what);
  const eos = generationStopIds(model, tok, tpl);
  const out: GeneratedRow[] = [];
  for (let at = 0, k = 0; at < queries.length; at += s.batchSize, k++) {
    const gens = await model.generate(queries.slice(at, at + s.batchSize), {
      maxNewTokens: s.maxNewTokens,
      temperature: s.temperature,
      topK: s.topK,
      topP: s.topP,
      eos,
      seed: mix(s.seed, k),
    });
    gens.forEach((g, j) => out.push({ prompt: prompts[at + j], response: decodeGenerated(tok, g.tokens, { skipSpecialTokens: true }), finishReason: g.finishReason }));
  }
  return out;
}
