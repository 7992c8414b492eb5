// What `rm score` and `rm explain` read: the reward model with its kind, tokenizer and template
// (@s2s/rm's loadRewardModel, under the flags), and {prompt, response} rows (the response field
// may be called completion, as in SFT data).
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { createInterface } from 'node:readline';

import { type Prompt, TOKENIZER_FILE, type Template, Tokenizer, rowSource } from '@s2s/core';
import { type LoadedRewardModel, loadRewardModel } from '@s2s/rm';

import { dataTemplate, readDataset } from './datasets.js';
import { checkTemplateFitsTokenizer, exists, findTemplate, findTokenizer } from './model-inputs.js';
import type { OptionSchema } from './options.js';

export const rewardModelOptions = {
  model: { type: 'string', arg: 'RM_DIR', required: true, group: 'model', help: 'the reward model (the final/ folder of `s2s rm train`)' },
  tokenizer: { type: 'string', arg: 'DIR', group: 'model', help: "tokenizer folder; default: the reward model's" },
  template: { type: 'string', arg: 'default|testbed|chat|FILE', group: 'model', help: "prompt/response template (chat: the tokenizer's chat template); default: the reward model's saved one" },
} as const satisfies OptionSchema;

export const responseFieldOptions = {
  promptField: { type: 'string', arg: 'NAME', default: 'prompt', group: 'data', help: 'the field that holds the prompt' },
  responseField: { type: 'string', arg: 'NAME', group: 'data', help: 'the field that holds the response (default: response, else completion)' },
} as const satisfies OptionSchema;

export interface RewardModelInputs {
  /** absent when neither --tokenizer nor the folder has one (loadRewardModel then says so) */
  tokenizer?: Tokenizer;
  template?: Template;
}

/**
 * The tokenizer and template the reward model in `dir` is read with: --tokenizer and --template
 * where given, else its own (as loadRewardModel would take them); found before any weights are
 * read, so that its data can be read with the template (chat mode reads conversations).
 */
export async function rewardModelInputs(dir: string, o: { tokenizer?: string; template?: string; specialTokensInText?: string }): Promise<RewardModelInputs> {
  const tokenizer =
    o.tokenizer !== undefined ? await findTokenizer(o.tokenizer, [dir]) : (await exists(path.join(dir, TOKENIZER_FILE))) ? await Tokenizer.load(dir) : undefined;
  if (!tokenizer) return {};
  // --special-tokens-in-text rides on the template: every encode of the data's text follows it
  return { tokenizer, template: dataTemplate((await findTemplate(o.template, [dir], tokenizer)).template, o.specialTokensInText) };
}

/** The reward model (@s2s/rm's loadRewardModel) with `inputs` (rewardModelInputs); its tokenizer and template are checked before any weights are read. */
export async function openRewardModel(dir: string, inputs: RewardModelInputs): Promise<LoadedRewardModel> {
  const rm = await loadRewardModel(dir, inputs);
  // its warnings (template markers the tokenizer does not know)
  checkTemplateFitsTokenizer(rm.tokenizer, rm.template);
  return rm;
}

/** The first line's keys, to tell a `response` file from a `completion` one. */
async function firstRowKeys(file: string): Promise<string[]> {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      if (line.trim() === '') continue;
      try {
        const obj: unknown = JSON.parse(line);
        return typeof obj === 'object' && obj !== null ? Object.keys(obj) : [];
      } catch {
        return []; // the full read reports the bad line
      }
    }
    return [];
  } catch {
    return [];
  } finally {
    lines.close();
  }
}

/** A response read from a file: `finished` is false for one cut off at the token limit. */
export interface ResponseRow<P = string> {
  prompt: P;
  response: string;
  /** false when the row's finishReason (as `s2s generate` writes it) is "length": the response never wrote its stop token */
  finished: boolean;
}

/**
 * {prompt, response} rows; the response field is --response-field, else `response`, else
 * `completion`. With a chat template a prompt may be a message list (text is one user turn) and
 * a response one assistant message, whose text is taken. An empty response is one the policy gave
 * (kept); a row's finishReason "length" marks a response cut off at the token limit (`finished`
 * false), "eos" or none a finished one. `flag` names the file in errors.
 */
export async function readResponses(file: string, o: { promptField: string; responseField?: string }, flag?: string): Promise<ResponseRow[]>;
export async function readResponses(
  file: string,
  o: { promptField: string; responseField?: string },
  flag: string,
  template: Template | undefined,
  tok?: Tokenizer,
): Promise<ResponseRow<Prompt>[]>;
export async function readResponses(
  file: string,
  o: { promptField: string; responseField?: string },
  flag = '--data',
  template?: Template,
  tok?: Tokenizer,
): Promise<ResponseRow<Prompt>[]> {
  let field = o.responseField;
  if (field === undefined) {
    const keys = await firstRowKeys(file);
    field = keys.includes('completion') && !keys.includes('response') ? 'completion' : 'response';
  }
  // a policy's responses: an empty one is a response it gave (generate and PPO write them)
  const rows = await readDataset(file, 'supervised', { prompt: o.promptField, completion: field }, flag, template, tok, 'allow');
  const lines = (await readFile(file, 'utf8')).split('\n');
  return rows.map((r) => {
    const at = Number(/:(\d+)$/.exec(rowSource(r) ?? '')?.[1]);
    const reason = at > 0 ? (JSON.parse(lines[at - 1]) as { finishReason?: unknown }).finishReason : undefined;
    if (reason !== undefined && reason !== 'eos' && reason !== 'length')
      throw new Error(`${file}:${at}: field "finishReason" must be "eos" or "length" (as s2s generate writes it), got ${JSON.stringify(reason)}`);
    return { prompt: r.prompt, response: typeof r.completion === 'string' ? r.completion : r.completion[0].content, finished: reason !== 'length' };
  });
}
