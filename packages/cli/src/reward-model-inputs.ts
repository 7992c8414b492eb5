// What `rm score` and `rm explain` read: the reward model with its kind, tokenizer and template
// (@s2s/rm's loadRewardModel, under the flags), and {prompt, response} rows (the response field
// may be called completion, as in SFT data).
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

import type { SupervisedRow, Template, Tokenizer } from '@s2s/core';
import { type LoadedRewardModel, loadRewardModel } from '@s2s/rm';

import { readDataset } from './datasets.js';
import { checkTemplateFitsTokenizer, findTemplate, findTokenizer } from './model-inputs.js';
import type { OptionSchema } from './options.js';

export const rewardModelOptions = {
  model: { type: 'string', arg: 'RM_DIR', required: true, group: 'model', help: 'the reward model (the final/ folder of `s2s rm train`)' },
  tokenizer: { type: 'string', arg: 'DIR', group: 'model', help: "tokenizer folder; default: the reward model's" },
  template: { type: 'string', arg: 'default|testbed|FILE', group: 'model', help: "prompt/response template; default: the reward model's saved one" },
} as const satisfies OptionSchema;

export const responseFieldOptions = {
  promptField: { type: 'string', arg: 'NAME', default: 'prompt', group: 'data', help: 'the field that holds the prompt' },
  responseField: { type: 'string', arg: 'NAME', group: 'data', help: 'the field that holds the response (default: response, else completion)' },
} as const satisfies OptionSchema;

/**
 * The reward model (@s2s/rm's loadRewardModel), read with --tokenizer and --template where they are
 * given, else its own; its tokenizer and template are checked before any weights are read.
 */
export async function openRewardModel(dir: string, o: { tokenizer?: string; template?: string }): Promise<LoadedRewardModel> {
  const tokenizer = o.tokenizer !== undefined ? await findTokenizer(o.tokenizer, [dir]) : undefined;
  const template = o.template !== undefined ? (await findTemplate(o.template, [dir])).template : undefined;
  const rm = await loadRewardModel(dir, { tokenizer, template });
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

/** {prompt, response} rows; the response field is --response-field, else `response`, else `completion`. `flag` names the file in errors. */
export async function readResponses(file: string, o: { promptField: string; responseField?: string }, flag = '--data'): Promise<Array<{ prompt: string; response: string }>> {
  let field = o.responseField;
  if (field === undefined) {
    const keys = await firstRowKeys(file);
    field = keys.includes('completion') && !keys.includes('response') ? 'completion' : 'response';
  }
  const rows: SupervisedRow[] = await readDataset(file, 'supervised', { prompt: o.promptField, completion: field }, flag);
  return rows.map((r) => ({ prompt: r.prompt, response: r.completion }));
}

/** A text response as the policy would have finished it: with EOS when the template adds one. */
export function responseIds(tok: Tokenizer, tpl: Template, response: string): number[] {
  const ids = tok.encode(response);
  return tpl.addEos && tok.eosId !== undefined ? [...ids, tok.eosId] : ids;
}
