// Datasets as JSONL in TRL's conventions ({prompt, chosen, rejected}, {prompt, completion}, {prompt},
// as text or, for chat models, as TRL's conversational message lists and {messages}): a streaming
// reader that checks every line and says which file, line and field is wrong, and an atomic writer.
import { createReadStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { writeFileAtomic } from '../fsutil.js';
import { jsonNestingDepth, MAX_JSON_DEPTH, tooDeep } from '../json-depth.js';
import type { ChatMessage } from './chat-template.js';

export type DatasetKind = 'preference' | 'supervised' | 'prompt';

/** A preference pair: the response people preferred and the one they did not. */
export interface PreferenceRow {
  prompt: string;
  chosen: string;
  rejected: string;
}
/** A demonstration for supervised fine-tuning. */
export interface SupervisedRow {
  prompt: string;
  completion: string;
}
/** A prompt alone (PPO's queries). */
export interface PromptRow {
  prompt: string;
}
export type RowOf<K extends DatasetKind> = K extends 'preference' ? PreferenceRow : K extends 'supervised' ? SupervisedRow : PromptRow;

/**
 * TRL's conversational rows, for a model's chat template (readConversationalJsonl): the prompt is
 * the conversation so far (ending with a user, system or tool turn); a response is the one
 * assistant message that answers it.
 */
export interface ConversationalPreferenceRow {
  prompt: ChatMessage[];
  chosen: ChatMessage[];
  rejected: ChatMessage[];
}
export interface ConversationalSupervisedRow {
  prompt: ChatMessage[];
  completion: ChatMessage[];
}
export interface ConversationalPromptRow {
  prompt: ChatMessage[];
}
export type ConversationalRowOf<K extends DatasetKind> = K extends 'preference'
  ? ConversationalPreferenceRow
  : K extends 'supervised'
    ? ConversationalSupervisedRow
    : ConversationalPromptRow;

/** A field of a row; `messages` is TRL's conversational SFT format (read by readConversationalJsonl only). */
export type FieldRole = 'prompt' | 'chosen' | 'rejected' | 'completion' | 'messages';

/** The fields each kind needs, in the order they are checked. */
export const DATASET_FIELDS: Readonly<Record<DatasetKind, readonly FieldRole[]>> = {
  preference: ['prompt', 'chosen', 'rejected'],
  supervised: ['prompt', 'completion'],
  prompt: ['prompt'],
};

export interface ReadJsonlOptions {
  /** the file's name for a field, where it differs from TRL's (e.g. {prompt: 'question', chosen: 'good'}) */
  fields?: Partial<Record<FieldRole, string>>;
  /** 'throw' (default): the first bad line ends the read; 'collect': bad lines are skipped and listed in stats.errors */
  onError?: 'throw' | 'collect';
  /**
   * Empty or whitespace-only lines. 'skip' (default): counted in stats.blank and passed over, as an
   * editor's stray empty line is no data; 'error': each one is a DatasetError. A newline at the
   * end of the file ends the last line; it does not start an empty one.
   */
  blankLines?: 'skip' | 'error';
  /**
   * An empty response (completion, chosen, rejected). 'error' (default): refused, as training data
   * with an empty demonstration is a mistake; 'allow': kept, for files of a policy's responses
   * (what `s2s generate` and PPO write), where an empty response is one the policy gave. Prompts
   * are never empty.
   */
  emptyResponses?: 'error' | 'allow';
}

/** 'roles': a conversation whose turns are not in the order its field needs (readConversationalJsonl) */
export type DatasetErrorReason = 'io' | 'utf8' | 'json' | 'not-object' | 'missing' | 'type' | 'empty' | 'blank' | 'roles' | 'special-token';

/** A bad line (or an unreadable file: then `line` is undefined). The message starts with "file:line:". */
export class DatasetError extends Error {
  override name = 'DatasetError';
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    /** the field as the file names it, when one field is at fault */
    readonly field: string | undefined,
    readonly reason: DatasetErrorReason,
    detail: string,
  ) {
    super(`${line === undefined ? file : `${file}:${line}`}: ${detail}`);
  }
}

/** A line that was read but looks wrong; the row is still returned. */
export interface DatasetWarning {
  file: string;
  line: number;
  reason: 'identical-pair';
  message: string;
}

/** What a read saw. Every line is accounted for: lines === rows + blank + skipped. */
export interface DatasetStats {
  /** lines read (a final line without a newline counts) */
  lines: number;
  /** rows returned */
  rows: number;
  /** blank lines passed over (blankLines: 'skip') */
  blank: number;
  /** bad lines left out (onError: 'collect') */
  skipped: number;
  /** preference pairs whose chosen and rejected are the same text, or the same messages (returned, and warned about) */
  identicalPairs: number;
  errors: DatasetError[];
  warnings: DatasetWarning[];
}

const newStats = (): DatasetStats => ({ lines: 0, rows: 0, blank: 0, skipped: 0, identicalPairs: 0, errors: [], warnings: [] });

/** Offset of the first byte that is not part of well-formed UTF-8, or -1. */
function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length; ) {
    const c = b[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    const need = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    if (need < 0 || i + need >= b.length) return i; // not a lead byte, or cut off by the line's end
    // The second byte's range excludes overlong forms, surrogates and code points above U+10FFFF.
    const lo = c === 0xe0 ? 0xa0 : c === 0xf0 ? 0x90 : 0x80;
    const hi = c === 0xed ? 0x9f : c === 0xf4 ? 0x8f : 0xbf;
    if (b[i + 1] < lo || b[i + 1] > hi) return i;
    for (let k = 2; k <= need; k++) if ((b[i + k] & 0xc0) !== 0x80) return i;
    i += need + 1;
  }
  return -1;
}

/** The file's lines as bytes, split at "\n" (a trailing "\r" is kept), read in chunks. */
async function* byteLines(file: string): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl);
      yield parts.length ? Buffer.concat([...parts, piece]) : piece;
      parts = [];
      start = nl + 1;
    }
    if (start < chunk.length) parts.push(chunk.subarray(start));
  }
  if (parts.length) yield Buffer.concat(parts);
}

const describe = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v);

export type DatasetFormat = 'text' | 'conversational';

/**
 * A JSONL dataset file, read line by line as it is iterated (each iteration reads the file anew
 * and resets `stats`). Rows hold only the kind's fields; other fields in the file are ignored.
 * `format` 'text' (readJsonl) reads strings; 'conversational' (readConversationalJsonl) message lists.
 */
export class JsonlReader<K extends DatasetKind, R = RowOf<K>> implements AsyncIterable<R> {
  stats: DatasetStats = newStats();
  private readonly roles: readonly FieldRole[];
  private readonly names: Record<FieldRole, string>;

  constructor(
    readonly file: string,
    readonly kind: K,
    private readonly opts: ReadJsonlOptions = {},
    readonly format: DatasetFormat = 'text',
  ) {
    if (!(kind in DATASET_FIELDS)) throw new TypeError(`readJsonl: kind must be one of ${Object.keys(DATASET_FIELDS).join(', ')}, got ${JSON.stringify(kind)}`);
    if (format !== 'text' && format !== 'conversational') throw new TypeError(`readJsonl: format must be "text" or "conversational", got ${JSON.stringify(format)}`);
    this.roles = DATASET_FIELDS[kind];
    this.names = { prompt: 'prompt', chosen: 'chosen', rejected: 'rejected', completion: 'completion', messages: 'messages' };
    for (const [role, name] of Object.entries(opts.fields ?? {})) {
      if (!(role in this.names)) throw new TypeError(`readJsonl: fields.${role}: unknown field; the fields are ${Object.keys(this.names).join(', ')}`);
      if (typeof name !== 'string' || name.length === 0) throw new TypeError(`readJsonl: fields.${role} must be a non-empty string, got ${JSON.stringify(name)}`);
      this.names[role as FieldRole] = name;
    }
    const used = [...this.roles, ...(format === 'conversational' && kind === 'supervised' ? (['messages'] as const) : [])].map((r) => this.names[r]);
    const dup = used.find((n, i) => used.indexOf(n) !== i);
    if (dup !== undefined) throw new TypeError(`readJsonl: two fields are both read from ${JSON.stringify(dup)}`);
  }

  // "chosen", or "good" (chosen) when the file renames it, so the message matches the file.
  private fieldLabel(role: FieldRole): string {
    const name = this.names[role];
    return name === role ? JSON.stringify(name) : `${JSON.stringify(name)} (${role})`;
  }

  /** The row of one line, or the DatasetError that says what is wrong with it. */
  private parseLine(bytes: Buffer, line: number, decoder: TextDecoder): R | DatasetError | 'blank' {
    const fail: Fail = (reason, detail, role) =>
      new DatasetError(this.file, line, role && this.names[role], reason, role ? `field ${this.fieldLabel(role)} ${detail}` : detail);
    let b = bytes;
    if (b.length && b[b.length - 1] === 0x0d) b = b.subarray(0, b.length - 1); // CRLF files
    if (line === 1 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) b = b.subarray(3); // a UTF-8 byte-order mark
    let text: string;
    try {
      text = decoder.decode(b);
    } catch {
      const at = firstInvalidUtf8(b);
      return fail('utf8', `not valid UTF-8${at >= 0 ? ` (byte ${at + 1} of the line is 0x${b[at].toString(16).padStart(2, '0')})` : ''}`);
    }
    if (text.trim() === '') return (this.opts.blankLines ?? 'skip') === 'skip' ? 'blank' : fail('blank', 'blank line');
    // rows are compared and written back with JSON.stringify, which a value this deep overflows
    if (jsonNestingDepth(text) > MAX_JSON_DEPTH) return fail('json', tooDeep());
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (e) {
      return fail('json', `not valid JSON (${(e as Error).message})`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
      return fail('not-object', `expected a JSON object with ${this.roles.map((r) => this.fieldLabel(r)).join(', ')}; got ${describe(obj)}`);
    const fields = obj as Record<string, unknown>;
    if (this.format === 'conversational') return this.conversationalRow(fields, fail) as R | DatasetError;
    const row: Record<string, string> = {};
    for (const role of this.roles) {
      const v = fields[this.names[role]];
      if (v === undefined) return fail('missing', 'is missing', role);
      if (Array.isArray(v))
        return fail('type', "is a list (TRL's conversational format), which is read with the model's chat template (readConversationalJsonl); here it must be a string", role);
      const err = checkText(v, role, fail, this.mayBeEmpty(role));
      if (err) return err;
      row[role] = v as string;
    }
    return row as unknown as R;
  }

  /** Whether the field may hold an empty string (a response, with emptyResponses 'allow'). */
  private mayBeEmpty(role: FieldRole): boolean {
    return this.opts.emptyResponses === 'allow' && (role === 'completion' || role === 'chosen' || role === 'rejected');
  }

  /** A conversational row: each field a message list (or a string: one user turn, or one assistant turn). */
  private conversationalRow(fields: Record<string, unknown>, fail: Fail): ConversationalRowOf<DatasetKind> | DatasetError {
    const get = (role: FieldRole) => fields[this.names[role]];
    const prompt = (v: unknown, role: FieldRole = 'prompt') => {
      const m = messageList(v, role, 'user', fail);
      if (m instanceof DatasetError) return m;
      if (m[m.length - 1].role === 'assistant')
        return fail('roles', 'ends with an "assistant" message; a prompt is the conversation before the response, ending with a user (or system, tool) turn', role);
      // as an empty text prompt is refused: one empty turn of a longer conversation may be, not all of them
      if (m.every((x) => x.content.trim() === ''))
        return fail('empty', m.length === 1 ? 'is a message with empty content' : `has no text: the content of all ${m.length} messages is empty`, role);
      return m;
    };
    const response = (v: unknown, role: FieldRole) => {
      const m = messageList(v, role, 'assistant', fail, this.mayBeEmpty(role));
      if (m instanceof DatasetError) return m;
      if (m.length !== 1 || m[0].role !== 'assistant')
        return fail('roles', `must be one "assistant" message (the response), got ${m.length === 1 ? 'a' : m.length} ${m.map((x) => JSON.stringify(x.role)).join(', ')} message${m.length === 1 ? '' : 's'}`, role);
      if (m[0].content.trim() === '' && !this.mayBeEmpty(role)) return fail('empty', 'is an assistant message with empty content', role);
      return m;
    };

    if (this.kind === 'supervised' && get('prompt') === undefined && get('messages') !== undefined) {
      // TRL's {messages}: the last turn, the assistant's, is the completion; what comes before, the prompt
      const all = messageList(get('messages'), 'messages', 'user', fail);
      if (all instanceof DatasetError) return all;
      if (all.length < 2 || all[all.length - 1].role !== 'assistant')
        return fail('roles', 'must end with an "assistant" message (the completion to learn) after at least one other message', 'messages');
      const p = prompt(all.slice(0, -1), 'messages');
      if (p instanceof DatasetError) return p;
      const c = response(all.slice(-1), 'messages');
      if (c instanceof DatasetError) return c;
      return { prompt: p, completion: c };
    }

    let promptValue = get('prompt');
    let chosenValue = get('chosen');
    let rejectedValue = get('rejected');
    if (this.kind !== 'supervised' && promptValue === undefined && Array.isArray(chosenValue) && Array.isArray(rejectedValue)) {
      // TRL's implicit prompt: chosen and rejected are whole conversations sharing all but their last turn
      const c = chosenValue;
      const r = rejectedValue;
      if (c.length < 2 || c.length !== r.length || JSON.stringify(c.slice(0, -1)) !== JSON.stringify(r.slice(0, -1)))
        return fail('missing', `is missing, and ${this.fieldLabel('chosen')} and ${this.fieldLabel('rejected')} do not share the conversation before their last message (TRL's implicit prompt)`, 'prompt');
      promptValue = c.slice(0, -1);
      chosenValue = c.slice(-1);
      rejectedValue = r.slice(-1);
    }
    for (const role of this.roles)
      if ((role === 'prompt' ? promptValue : get(role)) === undefined)
        return fail('missing', this.kind === 'supervised' && role === 'prompt' ? `is missing (and there is no ${this.fieldLabel('messages')})` : 'is missing', role);
    const p = prompt(promptValue);
    if (p instanceof DatasetError) return p;
    if (this.kind === 'prompt') return { prompt: p };
    if (this.kind === 'supervised') {
      const c = response(get('completion'), 'completion');
      return c instanceof DatasetError ? c : { prompt: p, completion: c };
    }
    const chosen = response(chosenValue, 'chosen');
    if (chosen instanceof DatasetError) return chosen;
    const rejected = response(rejectedValue, 'rejected');
    if (rejected instanceof DatasetError) return rejected;
    return { prompt: p, chosen, rejected };
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<R> {
    const stats = (this.stats = newStats());
    const collect = this.opts.onError === 'collect';
    const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    const lines = byteLines(this.file);
    // Closing the line source when the caller stops early (break, throw) closes the file.
    try {
      for (;;) {
        let next: IteratorResult<Buffer>;
        try {
          next = await lines.next();
        } catch (e) {
          throw new DatasetError(this.file, undefined, undefined, 'io', `cannot read the file (${(e as Error).message})`);
        }
        if (next.done) return;
        const line = ++stats.lines;
        const r = this.parseLine(next.value, line, decoder);
        if (r === 'blank') {
          stats.blank++;
        } else if (r instanceof DatasetError) {
          stats.skipped++;
          stats.errors.push(r);
          if (!collect) throw r;
        } else {
          if (this.kind === 'preference') {
            const p = r as PreferenceRow | ConversationalPreferenceRow;
            if (JSON.stringify(p.chosen) === JSON.stringify(p.rejected)) {
              stats.identicalPairs++;
              stats.warnings.push({
                file: this.file,
                line,
                reason: 'identical-pair',
                message: `${this.file}:${line}: ${this.fieldLabel('chosen')} and ${this.fieldLabel('rejected')} are identical; the pair states no preference`,
              });
            }
          }
          stats.rows++;
          Object.defineProperty(r, SOURCE, { value: `${this.file}:${line}`, enumerable: false });
          yield r;
        }
      }
    } finally {
      await lines.return(undefined);
    }
  }
}

type Fail = (reason: DatasetErrorReason, detail: string, role?: FieldRole) => DatasetError;

function checkText(v: unknown, role: FieldRole, fail: Fail, mayBeEmpty = false): DatasetError | undefined {
  if (typeof v !== 'string') return fail('type', `must be a string, got ${describe(v)}`, role);
  if (v.trim() === '' && !mayBeEmpty) return fail('empty', v === '' ? 'is empty' : 'is empty (whitespace only)', role);
  return undefined;
}

/** A field as a list of messages; a string is one message of `stringRole`. */
function messageList(v: unknown, role: FieldRole, stringRole: 'user' | 'assistant', fail: Fail, mayBeEmpty = false): ChatMessage[] | DatasetError {
  if (typeof v === 'string') return checkText(v, role, fail, mayBeEmpty) ?? [{ role: stringRole, content: v }];
  if (!Array.isArray(v)) return fail('type', `must be a list of messages ({"role", "content"}) or a string, got ${describe(v)}`, role);
  if (v.length === 0) return fail('empty', 'is an empty list of messages', role);
  const out: ChatMessage[] = [];
  for (let i = 0; i < v.length; i++) {
    const m = v[i] as unknown;
    const at = `message ${i + 1}`;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) return fail('type', `${at} must be an object with "role" and "content", got ${describe(m)}`, role);
    const { role: r, content } = m as Record<string, unknown>;
    if (typeof r !== 'string' || r === '') return fail('type', `${at}: "role" must be a non-empty string, got ${r === undefined ? 'nothing' : JSON.stringify(r)}`, role);
    if (Array.isArray(content)) return fail('type', `${at}: "content" is a list of parts (multimodal), which is not supported; it must be a string`, role);
    if (typeof content !== 'string') return fail('type', `${at}: "content" must be a string, got ${content === undefined ? 'nothing' : describe(content)}`, role);
    out.push({ ...(m as Record<string, unknown>), role: r, content });
  }
  return out;
}

const SOURCE = Symbol('s2s.rowSource');

/**
 * Where a row read by readJsonl/loadJsonl came from, as "file:line" (undefined for a row made in
 * code). Carried as a hidden property: it survives shuffling and splitting, not copying.
 */
export function rowSource(row: object): string | undefined {
  return (row as { [SOURCE]?: string })[SOURCE];
}

/** A dataset file to iterate with `for await`; its `stats` fill in as it is read. */
export function readJsonl<K extends DatasetKind>(file: string, kind: K, opts: ReadJsonlOptions = {}): JsonlReader<K> {
  return new JsonlReader(file, kind, opts);
}

/** All rows of a dataset file, with what the read saw. */
export async function loadJsonl<K extends DatasetKind>(file: string, kind: K, opts: ReadJsonlOptions = {}): Promise<{ rows: RowOf<K>[]; stats: DatasetStats }> {
  return collectRows(readJsonl(file, kind, opts));
}

/**
 * A dataset file in TRL's conversational format, for a model's chat template: each field a list of
 * {role, content} messages. 'preference': {prompt, chosen, rejected}, chosen and rejected each one
 * assistant message, or TRL's implicit prompt ({chosen, rejected} as whole conversations that
 * share all but their last turn); 'supervised': {prompt, completion}, or {messages} whose last
 * turn (the assistant's) is the completion and the rest the prompt (the earlier turns are context,
 * not trained on); 'prompt': {prompt}, or a preference row's implicit prompt. A string field is read as one message (a prompt as the
 * user's, a response as the assistant's), so text datasets work with a chat model as they are.
 */
export function readConversationalJsonl<K extends DatasetKind>(file: string, kind: K, opts: ReadJsonlOptions = {}): JsonlReader<K, ConversationalRowOf<K>> {
  return new JsonlReader<K, ConversationalRowOf<K>>(file, kind, opts, 'conversational');
}

/** All rows of a conversational dataset file (see readConversationalJsonl), with what the read saw. */
export async function loadConversationalJsonl<K extends DatasetKind>(
  file: string,
  kind: K,
  opts: ReadJsonlOptions = {},
): Promise<{ rows: ConversationalRowOf<K>[]; stats: DatasetStats }> {
  return collectRows(readConversationalJsonl(file, kind, opts));
}

async function collectRows<K extends DatasetKind, R>(reader: JsonlReader<K, R>): Promise<{ rows: R[]; stats: DatasetStats }> {
  const rows: R[] = [];
  for await (const row of reader) rows.push(row);
  return { rows, stats: reader.stats };
}

/** One line summing up a read, for logs and CLIs. */
export function describeDatasetStats(file: string, s: DatasetStats): string {
  const parts = [`${s.rows} rows from ${s.lines} lines`];
  if (s.blank) parts.push(`${s.blank} blank lines skipped`);
  if (s.skipped) parts.push(`${s.skipped} bad lines skipped`);
  if (s.identicalPairs) parts.push(`${s.identicalPairs} pairs with identical chosen and rejected`);
  return `${file}: ${parts.join(', ')}`;
}

/** Rows whose text holds special-token text (see scanSpecialTokenText). */
export interface SpecialTextReport {
  /** rows scanned */
  rows: number;
  /** rows with special-token text in at least one field */
  withSpecialTokens: number;
  /** the first few: "file:line field "prompt": "<|endoftext|>"" */
  places: string[];
}

/**
 * Counts the rows (as readJsonl/readConversationalJsonl return them) whose text fields or message
 * contents hold a special token's text of `tokenizer` ("<|endoftext|>", "<eos>"), which encoding
 * turns into the control token unless told otherwise (Template.specialTokensInText). With policy
 * 'error' the first such row is a DatasetError naming its file, line, field and the token.
 * `fields` maps a row's field to the file's name for it, where the read renamed it.
 */
export function scanSpecialTokenText(
  rows: readonly object[],
  tokenizer: { findSpecialToken(text: string): string | undefined; readonly source: string },
  policy: 'encode' | 'literal' | 'error' = 'encode',
  fields: Partial<Record<FieldRole, string>> = {},
): SpecialTextReport {
  const report: SpecialTextReport = { rows: 0, withSpecialTokens: 0, places: [] };
  for (const row of rows) {
    report.rows++;
    let hit: { field: string; token: string } | undefined;
    for (const [key, v] of Object.entries(row)) {
      const field = fields[key as FieldRole] ?? key;
      if (typeof v === 'string') {
        const token = tokenizer.findSpecialToken(v);
        if (token !== undefined) hit = { field, token };
      } else if (Array.isArray(v))
        for (const [i, m] of v.entries()) {
          const content = (m as { content?: unknown } | null)?.content;
          const token = typeof content === 'string' ? tokenizer.findSpecialToken(content) : undefined;
          if (token !== undefined) {
            hit = { field: v.length > 1 ? `${field} (message ${i + 1})` : field, token };
            break;
          }
        }
      if (hit) break;
    }
    if (!hit) continue;
    const src = rowSource(row);
    if (policy === 'error') {
      const colon = src?.lastIndexOf(':') ?? -1;
      const file = src === undefined ? '<rows>' : colon > 0 ? src.slice(0, colon) : src;
      const line = src !== undefined && colon > 0 ? Number(src.slice(colon + 1)) : undefined;
      throw new DatasetError(
        file,
        line === undefined && src === undefined ? report.rows : line,
        hit.field,
        'special-token',
        `field ${JSON.stringify(hit.field)} contains the special token ${JSON.stringify(hit.token)} of the tokenizer (${tokenizer.source}); ` +
          `refused under special tokens in text "error" ("encode" makes it the control token, "literal" reads it as ordinary characters)`,
      );
    }
    report.withSpecialTokens++;
    if (report.places.length < 5) report.places.push(`${src ?? `row ${report.rows}`} field ${JSON.stringify(hit.field)}: ${JSON.stringify(hit.token)}`);
  }
  return report;
}

/** Writes `rows` to `file` as JSONL (one JSON object per line), atomically; creates the directory. */
export async function writeJsonl(file: string, rows: Iterable<object>): Promise<void> {
  const chunks: Buffer[] = [];
  let n = 0;
  for (const row of rows) {
    n++;
    if (typeof row !== 'object' || row === null || Array.isArray(row)) throw new TypeError(`writeJsonl: row ${n} must be an object, got ${describe(row)}`);
    chunks.push(Buffer.from(JSON.stringify(row) + '\n', 'utf8'));
  }
  await fs.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  await writeFileAtomic(file, chunks);
}

/** How much of a dataset's text its tokenizer maps to the unknown token (scanUnknownTokens). */
export interface UnknownTokenReport {
  /** rows scanned */
  rows: number;
  /** rows with at least one unknown token */
  withUnknown: number;
  /** unknown tokens, and all tokens, of the scanned text (0 when the tokenizer cannot produce one: not encoded) */
  unknown: number;
  tokens: number;
  /** the first few: "file:line field "prompt": "... 17 ..."" (the words that became unknown, where the tokenizer says) */
  places: string[];
}

/**
 * Encodes every text field (and message content) of `rows` and counts the tokens that come out as
 * the tokenizer's unknown token: text the model will see as <unk>, which a word-level vocabulary
 * built from other data gives every word it lacks (numbers, names). Nothing to count for a
 * tokenizer without an unknown token (byte-level BPE covers every string).
 */
export function scanUnknownTokens(
  rows: readonly object[],
  tokenizer: { encode(text: string): number[]; readonly unkId: number | undefined; readonly coversEveryString?: boolean; unknownWords?(text: string): string[] },
  fields: Partial<Record<FieldRole, string>> = {},
): UnknownTokenReport {
  const report: UnknownTokenReport = { rows: 0, withUnknown: 0, unknown: 0, tokens: 0, places: [] };
  const unk = tokenizer.unkId;
  // nothing can come out unknown: not worth encoding the data twice
  if (unk === undefined || tokenizer.coversEveryString) return { ...report, rows: rows.length };
  for (const row of rows) {
    report.rows++;
    let first: { field: string; text: string } | undefined;
    let inRow = 0;
    const scan = (field: string, text: string) => {
      const ids = tokenizer.encode(text);
      report.tokens += ids.length;
      const n = ids.reduce((c, id) => c + (id === unk ? 1 : 0), 0);
      if (n > 0 && !first) first = { field, text };
      inRow += n;
    };
    for (const [key, v] of Object.entries(row)) {
      const field = fields[key as FieldRole] ?? key;
      if (typeof v === 'string') scan(field, v);
      else if (Array.isArray(v))
        v.forEach((m, i) => {
          const content = (m as { content?: unknown } | null)?.content;
          if (typeof content === 'string') scan(v.length > 1 ? `${field} (message ${i + 1})` : field, content);
        });
    }
    if (inRow === 0) continue;
    report.withUnknown++;
    report.unknown += inRow;
    if (report.places.length < 5 && first) {
      const words = tokenizer.unknownWords?.(first.text) ?? [];
      const what = words.length ? `unknown ${words.slice(0, 5).map((w) => JSON.stringify(w)).join(', ')}` : JSON.stringify(first.text.slice(0, 60));
      report.places.push(`${rowSource(row) ?? `row ${report.rows}`} field ${JSON.stringify(first.field)}: ${what}`);
    }
  }
  return report;
}
