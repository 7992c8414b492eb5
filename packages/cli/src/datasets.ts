// Dataset files for the commands: read with every line checked (errors name file, line and field),
// as text, or in chat mode as TRL's conversational rows; summed up in one line, warned about, and
// split into training and held-out rows by seed.
import { stat } from 'node:fs/promises';

import {
  type ConversationalRowOf,
  type DatasetKind,
  type LengthReport,
  type Prompt,
  type RowOf,
  type SpecialTokensInText,
  type Template,
  type Tokenizer,
  describeDatasetStats,
  describeLengthReport,
  loadConversationalJsonl,
  loadJsonl,
  mix,
  permutation,
  scanSpecialTokenText,
  scanUnknownTokens,
} from '@s2s/core';

import { UsageError } from './options.js';

const WHAT: Record<DatasetKind, string> = { preference: 'preference pairs', supervised: 'examples', prompt: 'prompts' };

/** A row as the commands use it: text fields, or (chat mode) message lists. */
export type DataRowOf<K extends DatasetKind> = RowOf<K> | ConversationalRowOf<K>;

/** That `file` (given by `flag`) is a file: checked first, before the model its rows are read for (a template) is looked at. */
export async function checkDataFile(file: string, flag: string): Promise<void> {
  const s = await stat(file).catch(() => undefined);
  if (!s) throw new Error(`${flag} ${file}: no such file`);
  if (!s.isFile()) throw new Error(`${flag} ${file}: not a file`);
}

/**
 * `template` with --special-tokens-in-text (a run setting on the template: every encode of data
 * text under it follows it; templateFiles does not save it). Unchanged when the flag is not given.
 */
export function dataTemplate<T extends Template | undefined>(template: T, policy: string | undefined): T {
  return template === undefined || policy === undefined ? template : { ...template, specialTokensInText: policy as SpecialTokensInText };
}

/**
 * Rows of `file` whose text holds a special token's text of `tok`: an error under
 * --special-tokens-in-text error (naming file, line and field), else counted in one line: a
 * warning under encode (the default: such text becomes the control token), a note under literal.
 */
export function checkSpecialTokenText(file: string, rows: readonly object[], tok: Tokenizer, policy: SpecialTokensInText = 'encode', fields: Record<string, string> = {}): void {
  const r = scanSpecialTokenText(rows, tok, policy, fields);
  if (r.withSpecialTokens === 0) return;
  const first = `first: ${r.places[0]}`;
  if (policy === 'literal')
    console.log(`${file}: ${r.withSpecialTokens} of ${r.rows} rows contain special-token text, read as ordinary characters (--special-tokens-in-text literal; ${first})`);
  else
    console.error(
      `warning: ${r.withSpecialTokens} of ${r.rows} rows of ${file} contain special-token text, which becomes the control token (${first}); ` +
        `--special-tokens-in-text literal reads it as ordinary characters, error refuses it`,
    );
}

/**
 * A warning with counts when `tok` maps some of the text of `file` to its unknown token: the model
 * would read those words as <unk> (a word-level vocabulary made from other data lacks them).
 */
export function warnUnknownTokens(file: string, rows: readonly object[], tok: Tokenizer, fields: Record<string, string> = {}): void {
  const r = scanUnknownTokens(rows, tok, fields);
  if (r.unknown === 0) return;
  console.error(
    `warning: ${r.unknown} of ${r.tokens} tokens (${r.withUnknown} of ${r.rows} rows) of ${file} are the tokenizer's unknown token, ` +
      `words its vocabulary lacks (${tok.source}); first: ${r.places[0]}. Build a tokenizer from your data, or use one that covers it`,
  );
}

/**
 * All rows of `file`; an absent, empty or all-blank file is an error that says so. With a chat
 * template (`template.chat`) the file is read in TRL's conversational format (message lists,
 * {messages}, implicit prompts; a string field is one turn), else as text.
 */
export async function readDataset<K extends DatasetKind>(
  file: string,
  kind: K,
  fields: Record<string, string | undefined>,
  flag: string,
  template?: Template,
  /** the tokenizer the rows are encoded with: rows holding its special tokens' text are counted (checkSpecialTokenText) */
  tok?: Tokenizer,
  /** 'allow': a file of a policy's responses, where an empty one is a response given (ReadJsonlOptions) */
  emptyResponses: 'error' | 'allow' = 'error',
): Promise<DataRowOf<K>[]> {
  await checkDataFile(file, flag);
  const defined = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as Record<string, string>;
  const opts = { fields: defined, emptyResponses };
  const { rows, stats } = template?.chat ? await loadConversationalJsonl(file, kind, opts) : await loadJsonl(file, kind, opts);
  console.log(describeDatasetStats(file, stats));
  if (rows.length === 0) throw new Error(`${file} has no ${WHAT[kind]}: ${stats.lines === 0 ? 'the file is empty' : 'every line is blank'}`);
  if (tok) {
    checkSpecialTokenText(file, rows, tok, template?.specialTokensInText, defined);
    warnUnknownTokens(file, rows, tok, defined);
  }
  if (stats.identicalPairs > 0) {
    const w = stats.warnings.filter((x) => x.reason === 'identical-pair');
    console.error(
      `warning: ${stats.identicalPairs} of ${rows.length} pairs have identical chosen and rejected responses and state no preference ` +
        `(first: ${w[0].file}:${w[0].line}${w.length > 1 ? `, then line ${w.slice(1, 4).map((x) => x.line).join(', ')}${w.length > 4 ? ', ...' : ''}` : ''})`,
    );
  }
  return rows;
}

/**
 * Held-out rows: round(fraction * n) of them, at least one when fraction > 0 and at least one
 * row stays for training, drawn by `seed`; both parts keep the file's order.
 */
export function splitHeldOut<T>(rows: readonly T[], fraction: number, seed: number): { train: T[]; heldOut: T[] } {
  const n = rows.length;
  const k = fraction > 0 && n >= 2 ? Math.min(n - 1, Math.max(1, Math.round(fraction * n))) : 0;
  // a stream of its own, so the split does not move when the data order's stream is changed
  const held = new Set(permutation(n, mix(seed, 0x5eed)).slice(0, k));
  return { train: rows.filter((_, i) => !held.has(i)), heldOut: rows.filter((_, i) => held.has(i)) };
}

/** The training rows and the evaluation rows: from --eval-data (read as --data is, under `template`), else held out by --eval-split. */
export async function trainAndEval<K extends DatasetKind>(
  rows: DataRowOf<K>[],
  kind: K,
  o: { evalData?: string; evalSplit: number; seed: number },
  fields: Record<string, string | undefined>,
  explicitSplit: boolean,
  template?: Template,
  tok?: Tokenizer,
): Promise<{ train: DataRowOf<K>[]; eval: DataRowOf<K>[] }> {
  if (o.evalData !== undefined) {
    if (explicitSplit) throw new UsageError('--eval-data and --eval-split both choose the evaluation set; give one');
    return { train: rows, eval: await readDataset(o.evalData, kind, fields, '--eval-data', template, tok) };
  }
  const { train, heldOut } = splitHeldOut(rows, o.evalSplit, o.seed);
  if (heldOut.length) console.log(`held out ${heldOut.length} of ${rows.length} ${WHAT[kind]} for evaluation (--eval-split ${o.evalSplit}, seed ${o.seed})`);
  return { train, eval: heldOut };
}

/** Reports what the length rule did; an error when it left nothing to train on. */
export function reportLengths(what: string, r: LengthReport, maxLength: number, kept: number): void {
  console.log(`${what}: ${describeLengthReport(r, maxLength)}`);
  if (kept === 0)
    throw new Error(`${what}: no example fits in ${maxLength} tokens (raise --max-length up to the model's context, or use --overflow truncate)`);
}

/**
 * A prompt as output rows write it: a conversation of one user turn as its text (which chat mode
 * reads back as that turn, and the testbed's judges and plain templates read), else as it is.
 */
export function compactPrompt(p: Prompt): Prompt {
  return typeof p !== 'string' && p.length === 1 && p[0].role === 'user' && Object.keys(p[0]).length === 2 ? p[0].content : p;
}
