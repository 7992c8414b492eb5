// What a model is read with: its tokenizer and its prompt/response template (plain, or the model's
// own chat template), found from the flags or beside a checkpoint, checked against each other; and
// the token ids config.json records.
import { access, readFile, stat } from 'node:fs/promises';
import * as path from 'node:path';

import {
  CONFIG_FILE,
  DEFAULT_TEMPLATE,
  type Model,
  TOKENIZER_FILE,
  type Template,
  Tokenizer,
  chatModeTemplate,
  checkpointSource,
  createChatTemplate,
  endOfTurnId,
  loadChatTemplate,
  loadTemplate,
  resolveTemplate,
  templateFromJSON,
  vocabularyDifference,
} from '@s2s/core';
import { TESTBED_TEMPLATE } from '@s2s/tasks';

import { UsageError } from './options.js';

export const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

/** A checkpoint saved with its tokenizer must be read with that vocabulary: its ids mean those tokens. */
export async function checkSameTokenizer(tok: Tokenizer, dir: string, what: string): Promise<void> {
  if (!(await exists(path.join(dir, TOKENIZER_FILE)))) return;
  const diff = vocabularyDifference(tok, await Tokenizer.load(dir));
  if (diff) throw new Error(`${what} ${dir} was trained with another tokenizer than ${tok.source}: ${diff}`);
}

/**
 * The tokenizer of the first directory that has a tokenizer.json; `explicit` (--tokenizer) must have
 * one, and must be the vocabulary of any checkpoint among `fallbacks` that was saved with its own.
 */
export async function findTokenizer(explicit: string | undefined, fallbacks: ReadonlyArray<string | undefined>): Promise<Tokenizer> {
  const dirs = fallbacks.filter((d): d is string => d !== undefined);
  if (explicit !== undefined) {
    const tok = await Tokenizer.load(explicit);
    for (const dir of dirs) if (await exists(path.join(dir, CONFIG_FILE))) await checkSameTokenizer(tok, dir, 'the model');
    return tok;
  }
  for (const dir of dirs) if (await exists(path.join(dir, TOKENIZER_FILE))) return Tokenizer.load(dir);
  throw new UsageError(`no tokenizer: none of ${dirs.map((d) => JSON.stringify(d)).join(', ')} has ${TOKENIZER_FILE}; pass --tokenizer DIR`);
}

/** A template file: JSON of Template fields (a checkpoint's s2s_template.json, plain or chat, or one of the user's), or a Jinja chat template (.jinja). */
async function readTemplateFile(file: string, tok: Tokenizer): Promise<Template> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new UsageError(
      `--template ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file (use default, testbed, chat, a JSON file or a .jinja chat template)' : (e as Error).message}`,
    );
  }
  if (file.endsWith('.jinja')) return chatModeTemplate(createChatTemplate(tok, text, file));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  return templateFromJSON(json, file);
}

/**
 * --template: `default`, `testbed`, `chat` (the chat template of the tokenizer's folder: its
 * tokenizer_config.json's chat_template or chat_template.jinja, as transformers'
 * apply_chat_template uses), a JSON file, a .jinja chat template or a checkpoint folder; without
 * it, the template saved in the first of `dirs` that has one, else the default. `tok` is the
 * tokenizer the template is used with (a chat template's end-of-turn must be one of its tokens).
 */
export async function findTemplate(flag: string | undefined, dirs: ReadonlyArray<string | undefined>, tok: Tokenizer): Promise<{ template: Template; from: string }> {
  if (flag === 'default') return { template: resolveTemplate(DEFAULT_TEMPLATE), from: 'default' };
  if (flag === 'testbed') return { template: TESTBED_TEMPLATE, from: 'testbed' };
  if (flag === 'chat') return { template: chatModeTemplate(await loadChatTemplate(tok.source, tok)), from: `chat (${tok.source})` };
  if (flag !== undefined) {
    const isDir = await stat(flag).then((s) => s.isDirectory(), () => false);
    if (!isDir) return { template: await readTemplateFile(flag, tok), from: flag };
    const t = await loadTemplate(flag);
    if (!t) throw new UsageError(`--template ${flag}: the folder has no s2s_template.json`);
    return { template: t, from: flag };
  }
  for (const dir of dirs) {
    if (dir === undefined) continue;
    const t = await loadTemplate(dir);
    if (t) return { template: t, from: dir };
  }
  return { template: resolveTemplate(DEFAULT_TEMPLATE), from: 'default' };
}

/**
 * Checks that the tokenizer has the special tokens the template adds, and warns where the
 * template's markers become unknown tokens (a word-level vocabulary without them).
 */
export function checkTemplateFitsTokenizer(tok: Tokenizer, tpl: Template): void {
  // chat mode: the template writes BOS where it wants it, and every response ends with its end-of-turn (EOS or not)
  if (tpl.chat) {
    endOfTurnId(tok, tpl.chat);
    return;
  }
  if (tpl.addBos && tok.bosId === undefined) throw new Error(`the template adds BOS but the tokenizer (${tok.source}) has no bos_token; use another --template`);
  if (tpl.addEos && tok.eosId === undefined) throw new Error(`the template adds EOS but the tokenizer (${tok.source}) has no eos_token; use another --template`);
  if (tok.unkId === undefined) return;
  for (const k of ['promptPrefix', 'responsePrefix', 'rewritePrefix'] as const)
    if (tok.encode(tpl[k]).includes(tok.unkId))
      console.error(`warning: the template's ${k} ${JSON.stringify(tpl[k])} has words the tokenizer (${tok.source}) does not know; they become its unk token`);
}

/**
 * config.json's token ids, as transformers reads them: the tokenizer's (null where it has none),
 * but only where the config `model` was loaded from (or cloned from one loaded) has none: its own
 * stay, such as Llama 3.2's list of eos_token_id or Qwen2.5's bos_token_id that its tokenizer does
 * not name.
 */
export function specialTokenIds(tok: Tokenizer, model?: Model): Record<string, number | null> {
  const source = model && checkpointSource(model)?.hfConfig;
  const ids = { bos_token_id: tok.bosId ?? null, eos_token_id: tok.eosId ?? null, pad_token_id: tok.padId ?? null };
  return Object.fromEntries(Object.entries(ids).filter(([k]) => source?.[k] === undefined || source[k] === null));
}

/** Any id works for padding (padded positions are never trained on); the tokenizer's own is clearest. */
export const padIdOf = (tok: Tokenizer): number => tok.padId ?? tok.eosId ?? 0;
