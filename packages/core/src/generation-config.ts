// generation_config.json, as transformers' GenerationConfig writes it: the token ids that start, pad
// and end a generation (eos_token_id may be a list: Llama 3 ends on any of several), other keys kept.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

import { ConfigError } from './config.js';
import { jsonNestingDepth, MAX_JSON_DEPTH, tooDeep } from './json-depth.js';

export const GENERATION_CONFIG_FILE = 'generation_config.json';

export interface GenerationConfig {
  bos_token_id?: number | null;
  /** generation ends on any of these */
  eos_token_id?: number | number[] | null;
  pad_token_id?: number | null;
  /** sampling defaults and the rest, kept as they are */
  [key: string]: unknown;
}

const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Checks a generation_config.json object's token ids; `file` names it in errors. */
export function parseGenerationConfig(obj: unknown, file = GENERATION_CONFIG_FILE): GenerationConfig {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new ConfigError(`${file}: not a JSON object`);
  const g = obj as GenerationConfig;
  for (const key of ['bos_token_id', 'pad_token_id'] as const)
    if (g[key] != null && !isId(g[key])) throw new ConfigError(`${file}: ${key} must be a token id (a non-negative integer) or null, got ${JSON.stringify(g[key])}`);
  const eos = g.eos_token_id;
  if (eos != null && !isId(eos) && !(Array.isArray(eos) && eos.every(isId)))
    throw new ConfigError(`${file}: eos_token_id must be a token id, a list of them, or null, got ${JSON.stringify(eos)}`);
  return g;
}

/** Refuses token ids of `g` outside a model's vocabulary of `vocabSize` ids: generation could never end on such an EOS. */
export function checkGenerationTokenIds(g: GenerationConfig, vocabSize: number, file = GENERATION_CONFIG_FILE): void {
  for (const key of ['bos_token_id', 'eos_token_id', 'pad_token_id'] as const) {
    const ids = g[key] == null ? [] : [g[key]].flat();
    const bad = ids.find((id) => typeof id === 'number' && id >= vocabSize);
    if (bad !== undefined)
      throw new ConfigError(`${file}: ${key} ${JSON.stringify(g[key])} names token id ${bad}, outside the model's vocabulary of ${vocabSize} ids (config.json's vocab_size)`);
  }
}

/** The generation_config.json in `dir`, checked; undefined when there is none. */
export async function readGenerationConfig(dir: string): Promise<GenerationConfig | undefined> {
  const file = path.join(dir, GENERATION_CONFIG_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  // kept as it is and written back by saveModel: a value too deep for JSON.stringify is refused here
  if (jsonNestingDepth(text) > MAX_JSON_DEPTH) throw new ConfigError(`${file}: ${tooDeep()}`);
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  return parseGenerationConfig(obj, file);
}

const idList = (v: unknown): number[] => (isId(v) ? [v] : Array.isArray(v) ? v.filter(isId) : []);

/**
 * The token ids that end a generation, as transformers' generate() takes them: generation_config's
 * eos_token_id when it has one, else config.json's (`hfConfig`); an id or a list, duplicates dropped.
 * Empty when neither names one.
 */
export function eosTokenIds(generationConfig: GenerationConfig | undefined, hfConfig?: Record<string, unknown>): number[] {
  const g = generationConfig?.eos_token_id;
  const ids = g != null ? idList(g) : idList(hfConfig?.eos_token_id);
  return [...new Set(ids)];
}

/** eosTokenIds of the model folder `dir` (its generation_config.json, else its config.json). */
export async function readEosTokenIds(dir: string): Promise<number[]> {
  const gen = await readGenerationConfig(dir);
  let hf: Record<string, unknown> | undefined;
  try {
    hf = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  } catch {
    hf = undefined; // loadModel reports a missing or broken config.json; here it only has no ids
  }
  return eosTokenIds(gen, hf);
}
