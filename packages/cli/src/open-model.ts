// A language model to generate with (an SFT or PPO policy), with the tokenizer and template found
// beside it, all checked against each other before its weights are read.
import { type Model, type Template, type Tokenizer, assertTokenizerFitsModel, loadModel, readCheckpointConfig } from '@s2s/core';

import { checkTemplateFitsTokenizer, findTemplate, findTokenizer } from './model-inputs.js';

export interface OpenedModel {
  model: Model;
  tok: Tokenizer;
  template: Template;
  /** where the template came from (a folder, "default" or "testbed") */
  templateFrom: string;
}

/** `dir`'s model; --tokenizer and --template (`o`) win over what the folder holds. */
export async function openModel(dir: string, o: { tokenizer?: string; template?: string }): Promise<OpenedModel> {
  const cfg = await readCheckpointConfig(dir);
  const tok = await findTokenizer(o.tokenizer, [dir]);
  assertTokenizerFitsModel(tok, cfg);
  const { template, from } = await findTemplate(o.template, [dir]);
  checkTemplateFitsTokenizer(tok, template);
  return { model: await loadModel(dir, { optimizer: false }), tok, template, templateFrom: from };
}
