// A language model to generate with (an SFT or PPO policy), with the tokenizer and template found
// beside it, all checked against each other before its weights are read.
import { type GPTConfig, type Model, type Template, type Tokenizer, assertTokenizerFitsModel, loadModel, readCheckpointConfig } from '@s2s/core';

import { checkTemplateFitsTokenizer, findTemplate, findTokenizer } from './model-inputs.js';

export interface ModelInputs {
  config: GPTConfig;
  tok: Tokenizer;
  template: Template;
  /** where the template came from (a folder, "default", "testbed" or "chat (DIR)") */
  templateFrom: string;
}

export interface OpenedModel extends ModelInputs {
  model: Model;
}

/** What `dir`'s model is read with, checked, its weights not read yet; --tokenizer and --template (`o`) win over what the folder holds. */
export async function modelInputs(dir: string, o: { tokenizer?: string; template?: string }): Promise<ModelInputs> {
  const config = await readCheckpointConfig(dir);
  const tok = await findTokenizer(o.tokenizer, [dir]);
  assertTokenizerFitsModel(tok, config);
  const { template, from } = await findTemplate(o.template, [dir], tok);
  checkTemplateFitsTokenizer(tok, template);
  return { config, tok, template, templateFrom: from };
}

/** `dir`'s model with its inputs (modelInputs), or those given; the caller disposes of it. */
export async function openModel(dir: string, o: { tokenizer?: string; template?: string }, inputs?: ModelInputs): Promise<OpenedModel> {
  const found = inputs ?? (await modelInputs(dir, o));
  return { ...found, model: await loadModel(dir, { optimizer: false }) };
}
