// `s2s data tokenizer`: builds a tokenizer from a user's own JSONL (word level, or byte-level BPE
// as GPT-2's), so that a new model trained on their task has a vocabulary that covers it.
import { access, mkdir, readFile } from 'node:fs/promises';
import * as path from 'node:path';

import { DEFAULT_TEMPLATE, TOKENIZER_FILE, Tokenizer, type TokenizerJSON, trainByteLevelBPE, trainWordLevel, wordPieces, writeFileAtomic } from '@s2s/core';
import { TESTBED_SPECIALS } from '@s2s/tasks';

import { defineCommand } from '../command.js';
import { type OptionSchema, UsageError, need } from '../options.js';

const TEXT_FIELDS = ['prompt', 'completion', 'chosen', 'rejected', 'response', 'messages'];
/** The default template's words, as the word-level tokenizer splits them ("Response", ":", ...): always in its vocabulary. */
const templatePieces = [DEFAULT_TEMPLATE.promptPrefix, DEFAULT_TEMPLATE.responsePrefix, DEFAULT_TEMPLATE.rewritePrefix].flatMap(wordPieces);

const options = {
  data: { type: 'string', arg: 'FILE[,FILE...]', required: true, group: 'data', help: 'JSONL files whose text the tokenizer must cover (comma-separated)' },
  out: {
    type: 'string',
    arg: 'DIR',
    required: true,
    group: 'data',
    help: `where ${TOKENIZER_FILE} and tokenizer_config.json go (e.g. the data's folder, where sft finds them)`,
  },
  fields: {
    type: 'string',
    arg: 'A,B,...',
    default: TEXT_FIELDS.join(','),
    group: 'data',
    help: 'the fields holding text: strings, or message lists (their "content")',
  },
  kind: { type: 'enum', values: ['word', 'bpe'], default: 'word', group: 'tokenizer', help: 'word level (a token per word or symbol run), or byte-level BPE (any text, no unknown token)' },
  vocabSize: { type: 'int', min: 1, default: 8000, group: 'tokenizer', help: 'bpe: the vocabulary size (256 bytes, the merges, the special tokens)' },
  minFrequency: { type: 'int', min: 1, group: 'tokenizer', help: 'word: the fewest times a word must occur (default 1); bpe: a pair to merge (default 2)' },
  overwrite: { type: 'bool', default: false, group: 'tokenizer', help: `replace a ${TOKENIZER_FILE} already in --out (models trained with it would no longer read their ids)` },
} as const satisfies OptionSchema;

/** Every text of `file`'s rows in `fields`, with the rows' count; errors name the file and line. */
async function readTexts(file: string, fields: readonly string[]): Promise<{ texts: string[]; rows: number }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`--data ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const texts: string[] = [];
  let rows = 0;
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const at = `${file}:${i + 1}`;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new Error(`${at}: invalid JSON (${(e as Error).message})`);
    }
    if (row === null || typeof row !== 'object' || Array.isArray(row)) throw new Error(`${at}: expected a JSON object, got ${Array.isArray(row) ? 'an array' : JSON.stringify(row)}`);
    let found = 0;
    for (const f of fields) {
      const v = (row as Record<string, unknown>)[f];
      if (v === undefined) continue;
      found++;
      if (typeof v === 'string') texts.push(v);
      else if (Array.isArray(v) && v.every((m) => m !== null && typeof m === 'object' && typeof (m as { content?: unknown }).content === 'string'))
        texts.push(...v.map((m) => (m as { content: string }).content));
      else throw new Error(`${at}: field "${f}" must be a string or a list of messages with "content", got ${JSON.stringify(v).slice(0, 60)}`);
    }
    if (found === 0) throw new Error(`${at}: none of the fields ${fields.join(', ')} is present (name the fields holding text with --fields)`);
    rows++;
  });
  if (rows === 0) throw new Error(`--data ${file} has no rows: ${text.length === 0 ? 'the file is empty' : 'every line is blank'}`);
  return { texts, rows };
}

export const dataTokenizerCommand = defineCommand({
  name: 'data tokenizer',
  summary: 'build a tokenizer (word level or byte-level BPE) from your own JSONL',
  description: `Builds a tokenizer whose vocabulary covers your data, for a new model trained on it (\`s2s sft\`
without --model finds it in the data's folder):
  --kind word   a token per word (letters, digits and "_" of any script) and per run of other
                symbols, split at whitespace, seen at least --min-frequency times; anything else
                becomes <unk>. Special tokens <pad> <unk> <bos> <eos> <sep> <fix>, so that both the
                default template and the testbed's work. Small vocabularies, for small models.
  --kind bpe    byte-level BPE as GPT-2's: 256 byte tokens, then the most frequent pairs merged
                until --vocab-size; encodes any text exactly (no unknown token). Special tokens
                <|endoftext|> (BOS and EOS) and <|pad|>.
Writes ${TOKENIZER_FILE} and tokenizer_config.json (Hugging Face's layout: AutoTokenizer loads them).`,
  examples: [
    's2s data tokenizer --data my/train.jsonl,my/prefs.jsonl --out my/',
    's2s data tokenizer --data my/train.jsonl --kind bpe --vocab-size 4000 --out my/',
  ],
  options,
  async run({ values: o }) {
    const files = need(o.data, 'data', 'FILE').split(',').map((f) => f.trim()).filter((f) => f !== '');
    if (files.length === 0) throw new UsageError('--data names no file');
    const out = need(o.out, 'out', 'DIR');
    const fields = o.fields.split(',').map((f) => f.trim()).filter((f) => f !== '');
    if (fields.length === 0) throw new UsageError('--fields names no field');
    const target = path.join(out, TOKENIZER_FILE);
    if (!o.overwrite && (await access(target).then(() => true, () => false)))
      throw new UsageError(`${target} already exists: models trained with it read its ids; choose another --out, or pass --overwrite`);
    const texts: string[] = [];
    let rows = 0;
    for (const f of files) {
      const r = await readTexts(f, fields);
      texts.push(...r.texts);
      rows += r.rows;
    }
    if (texts.every((t) => t.trim() === '')) throw new Error(`--data ${files.join(',')}: every text field is empty: nothing to build a vocabulary from`);

    let json: TokenizerJSON;
    let config: Record<string, string>;
    let summary: string;
    if (o.kind === 'word') {
      const r = trainWordLevel(texts, { specials: TESTBED_SPECIALS, unkToken: '<unk>', minFrequency: o.minFrequency ?? 1, alwaysWords: templatePieces });
      json = r.json;
      config = { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>', unk_token: '<unk>' };
      const occurrences = texts.flatMap(wordPieces);
      const tok = Tokenizer.fromJSON(json, { tokenizerConfig: config }, 'built');
      const unknown = occurrences.filter((w) => tok.tokenToId(w) === undefined).length;
      summary =
        `word-level tokenizer: ${r.words} words and ${TESTBED_SPECIALS.length} special tokens (${tok.vocabSize} ids)` +
        (r.dropped ? `; ${r.dropped} words seen fewer than ${o.minFrequency} times become <unk> (${((100 * unknown) / Math.max(1, occurrences.length)).toFixed(2)}% of the words in the data)` : '');
    } else {
      const specials = ['<|endoftext|>', '<|pad|>'];
      const r = trainByteLevelBPE(texts, { vocabSize: o.vocabSize, minFrequency: o.minFrequency ?? 2, specials });
      json = r.json;
      config = { bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', pad_token: '<|pad|>', unk_token: '<|endoftext|>' };
      const size = 256 + r.merges + specials.length;
      summary =
        `byte-level BPE tokenizer: ${size} tokens (256 bytes, ${r.merges} merges, ${specials.length} special)` +
        (size < o.vocabSize ? `; fewer than --vocab-size ${o.vocabSize}: no pair occurs ${o.minFrequency ?? 2} times or more beyond these` : '');
    }
    const tok = Tokenizer.fromJSON(json, { tokenizerConfig: config }, target);
    const encoded = texts.reduce((n, t) => n + tok.encode(t).length, 0);
    await mkdir(out, { recursive: true });
    for (const [name, data] of Object.entries(tok.files())) await writeFileAtomic(path.join(out, name), data);
    console.log(`${summary}; from ${texts.length} texts in ${rows} rows of ${files.join(', ')}`);
    console.log(`  the data is ${encoded} tokens (${(encoded / Math.max(1, texts.length)).toFixed(1)} per text); written to ${out}`);
    return 0;
  },
});
