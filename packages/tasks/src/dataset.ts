// The testbed's text format for the engine (one word-level tokenizer and one template for every
// task and stage) and `makeTaskData`, which writes a task's dataset to a folder: the JSONL files
// in TRL's conventions, the tokenizer, and the statistics report.
import { readdir, stat } from 'node:fs/promises';
import * as path from 'node:path';

import {
  SPECIAL_TOKENS_MAP_FILE,
  TOKENIZER_CONFIG_FILE,
  TOKENIZER_FILE,
  type Template,
  Tokenizer,
  resolveTemplate,
  templateWords,
  wordLevelTokenizerJSON,
  writeDirAtomic,
  writeFileDurable,
  writeJsonl,
} from '@s2s/core';

import { TASKS } from './registry.js';
import { type TaskDataStats, datasetStats } from './stats.js';
import type { GenerateOptions, Task, TaskData } from './types.js';

export const TESTBED_SPECIALS = ['<pad>', '<unk>', '<bos>', '<eos>', '<sep>', '<fix>'] as const;

/** `<bos> prompt <sep> response <eos>`; the seq2seq reward model's input adds `<fix> rewrite <eos>`. */
export const TESTBED_TEMPLATE: Template = resolveTemplate({
  promptPrefix: '',
  responsePrefix: ' <sep>',
  rewritePrefix: ' <fix>',
  addBos: true,
  addEos: true,
});

/** One word-level tokenizer for the whole testbed: every task's words plus the special tokens. */
export function testbedTokenizer(tasks: readonly Task[] = TASKS): Tokenizer {
  const specials = new Set<string>(TESTBED_SPECIALS);
  const words = [...new Set(tasks.flatMap((t) => t.words()))].filter((w) => !specials.has(w)).sort();
  const json = wordLevelTokenizerJSON(words, [...TESTBED_SPECIALS], { unkToken: '<unk>' });
  const tok = Tokenizer.fromJSON(
    json,
    { tokenizerConfig: { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>', unk_token: '<unk>' } },
    'testbed tokenizer',
  );
  for (const w of templateWords(TESTBED_TEMPLATE))
    if (tok.tokenToId(w) === undefined) throw new Error(`the testbed template uses ${JSON.stringify(w)}, which the tokenizer lacks`);
  return tok;
}

/** File names of a task's dataset folder. */
export const DATA_FILES = {
  sft: 'sft.jsonl',
  pairs: 'pairs.jsonl',
  rlPrompts: 'rl_prompts.jsonl',
  evalId: 'eval_id.jsonl',
  evalOod: 'eval_ood.jsonl',
  stats: 'stats.json',
} as const;

const DATASET_FILES = new Set<string>([...Object.values(DATA_FILES), TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE]);

/** The folder is replaced whole: only an absent, empty or earlier dataset folder may go. */
async function checkReplaceable(dir: string): Promise<void> {
  const s = await stat(dir).catch(() => undefined);
  if (!s) return;
  if (!s.isDirectory()) throw new Error(`${dir} exists and is not a folder`);
  const other = (await readdir(dir)).filter((n) => !DATASET_FILES.has(n));
  if (other.length)
    throw new Error(`${dir} holds files that are not a dataset's (${other.slice(0, 3).join(', ')}${other.length > 3 ? ', ...' : ''}); a dataset replaces its whole folder, so choose another`);
}

/**
 * Generates `task`'s data and writes it to `dir` (replaced atomically): sft.jsonl
 * ({prompt, completion}), pairs.jsonl ({prompt, chosen, rejected}), rl_prompts.jsonl,
 * eval_id.jsonl and eval_ood.jsonl ({prompt}), the testbed tokenizer's files and stats.json.
 */
export async function makeTaskData(task: Task, opts: GenerateOptions, dir: string): Promise<{ data: TaskData; stats: TaskDataStats }> {
  await checkReplaceable(dir);
  const data = task.generate(opts);
  const stats = datasetStats(task, data);
  const tok = testbedTokenizer();
  await writeDirAtomic(dir, async (tmp) => {
    await writeJsonl(path.join(tmp, DATA_FILES.sft), data.sft);
    await writeJsonl(path.join(tmp, DATA_FILES.pairs), data.pairs);
    await writeJsonl(path.join(tmp, DATA_FILES.rlPrompts), data.rlPrompts);
    await writeJsonl(path.join(tmp, DATA_FILES.evalId), data.eval.id);
    await writeJsonl(path.join(tmp, DATA_FILES.evalOod), data.eval.ood);
    await writeFileDurable(path.join(tmp, DATA_FILES.stats), JSON.stringify(stats, null, 2) + '\n');
    for (const [name, text] of Object.entries(tok.files())) await writeFileDurable(path.join(tmp, name), text);
  });
  return { data, stats };
}
