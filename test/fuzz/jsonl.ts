// Seeded JSONL datasets (preference pairs, SFT rows, prompts; as text or TRL's conversational
// messages) and the mutation of one line: malformed JSON, wrong field types, missing or empty
// fields, invalid UTF-8, roles out of order; and benign ones (extra fields, CRLF, blank lines).
import type { Random } from '@s2s/core';

import type { Expect, FuzzCase } from './types.js';

type Kind = 'preference' | 'supervised' | 'prompt';
const FIELDS: Record<Kind, string[]> = { preference: ['prompt', 'chosen', 'rejected'], supervised: ['prompt', 'completion'], prompt: ['prompt'] };
const WORDS = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'héllo', '日本', 'emoji 🙂', 'tab\tsep', 'quote "q"', 'back\\slash', 'new\nline'];

function sentence(rng: Random): string {
  return Array.from({ length: 1 + rng.int(6) }, () => rng.pick(WORDS)).join(' ');
}

type Row = Record<string, unknown>;

function validRow(rng: Random, kind: Kind, format: 'text' | 'conversational'): Row {
  if (format === 'text') return Object.fromEntries(FIELDS[kind].map((f) => [f, sentence(rng)]));
  const turn = (role: string) => ({ role, content: sentence(rng) });
  const prompt = rng.chance(0.3) ? [turn('system'), turn('user')] : rng.chance(0.2) ? sentence(rng) : [turn('user')];
  if (kind === 'prompt') return { prompt };
  if (kind === 'supervised') return rng.chance(0.3) ? { messages: [turn('user'), turn('assistant')] } : { prompt, completion: [turn('assistant')] };
  return { prompt, chosen: [turn('assistant')], rejected: [turn('assistant')] };
}

export function jsonlCase(rng: Random, index: number): FuzzCase {
  const kind = rng.pick(['preference', 'supervised', 'prompt'] as const);
  const format = rng.pick(['text', 'conversational'] as const);
  const n = 2 + rng.int(6);
  const rows = Array.from({ length: n }, () => validRow(rng, kind, format));
  const lines: (string | Uint8Array)[] = rows.map((r) => JSON.stringify(r));
  const file = 'data.jsonl';
  const i = rng.int(n);
  const line = i + 1;
  const row = rows[i];
  const fields = Object.keys(row);
  const field = rng.pick(fields);
  let expect: Expect = 'must-refuse';
  // a line's refusal names "file:line"; where one field is at fault, that field too
  const at = [`${file}:${line}`];
  let mustName: string[][] = [at, [field]];
  let note: string;
  let ending = '\n';
  let expectRows: number | undefined = n;
  const edit = (f: (r: Row) => void) => {
    const r = JSON.parse(JSON.stringify(row)) as Row;
    f(r);
    lines[i] = JSON.stringify(r);
  };
  const op = rng.pick([
    'none',
    'json',
    'json',
    'type',
    'type',
    'missing',
    'empty',
    'utf8',
    'utf8',
    'not-object',
    'messages',
    'messages',
    'extra-field',
    'crlf',
    'blank',
    'bom',
    'surrogate',
    'duplicate-key',
    'deep',
    'truncate',
    'long',
  ]);
  let mutation = op;
  switch (op) {
    case 'none':
      expect = 'must-accept';
      note = `${n} valid ${format} ${kind} rows`;
      break;
    case 'json': {
      const text = lines[i] as string;
      const how = rng.pick(['drop-brace', 'trailing-comma', 'single-quotes', 'NaN', 'two-objects', 'unquoted-key', 'cut']);
      mutation = `json-${how}`;
      lines[i] =
        how === 'drop-brace'
          ? text.slice(0, -1)
          : how === 'trailing-comma'
            ? text.slice(0, -1) + ',}'
            : how === 'single-quotes'
              ? text.replace(/"/g, "'")
              : how === 'NaN'
                ? text.slice(0, -1) + ',"score":NaN}'
                : how === 'two-objects'
                  ? text + text
                  : how === 'unquoted-key'
                    ? text.replace(`"${field}"`, field)
                    : text.slice(0, 1 + rng.int(text.length - 1));
      mustName = [at];
      note = `line ${line} ${how}`;
      break;
    }
    case 'type': {
      const v = rng.pick([5, null, true, { text: 'x' }, ['x'], 1.5, [], [5], [{ role: 'user' }], [{ role: 5, content: 'x' }], [{ role: 'user', content: ['part'] }]]);
      edit((r) => (r[field] = v));
      // a string field's list is a conversation: the conversational reader takes a valid one
      note = `line ${line} ${field} -> ${JSON.stringify(v)}`;
      break;
    }
    case 'missing':
      edit((r) => delete r[field]);
      // TRL's implicit prompt: chosen and rejected whole conversations sharing all but the last turn
      if (format === 'conversational' && field === 'prompt' && kind === 'preference') mustName = [at, ['prompt', 'chosen', 'rejected']];
      note = `line ${line} ${field} removed`;
      break;
    case 'empty': {
      const v = rng.pick(['', ' ', '\n\t', '\u3000']);
      edit((r) => {
        if (typeof r[field] === 'string' || format === 'text') r[field] = v;
        else {
          const list = r[field] as { content: string }[];
          list[list.length - 1].content = v;
        }
      });
      // one empty turn of a longer conversation is the conversation's business; a prompt with no text at all is not a prompt
      if (format === 'conversational' && field === 'prompt' && Array.isArray(row.prompt) && row.prompt.length > 1) expect = 'may-accept';
      note = `line ${line} ${field} -> ${JSON.stringify(v)}`;
      break;
    }
    case 'utf8': {
      const text = Buffer.from(lines[i] as string);
      const bad = rng.pick([[0xff], [0xc0, 0x80], [0x80], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80]]);
      const pos = (lines[i] as string).indexOf(':"') + 2;
      lines[i] = Buffer.concat([text.subarray(0, pos), Buffer.from(bad), text.subarray(pos)]);
      mustName = [at];
      note = `line ${line}: bytes ${bad.map((b) => b.toString(16))} in a string`;
      break;
    }
    case 'not-object':
      lines[i] = rng.pick(['[]', '42', '"prompt"', 'null', 'true', '[{"prompt": "x"}]']);
      mustName = [at];
      note = `line ${line} -> ${lines[i]}`;
      break;
    case 'messages': {
      if (format !== 'conversational' || !Array.isArray(row[field])) return jsonlCase(rng, index);
      const how = rng.pick(['no-role', 'role-type', 'content-type', 'not-object', 'empty-list', 'ends-assistant', 'two-responses', 'user-response']);
      mutation = `messages-${how}`;
      edit((r) => {
        const list = r[field] as Row[];
        const last = list[list.length - 1];
        if (how === 'no-role') delete last.role;
        else if (how === 'role-type') last.role = rng.pick([5, null, '', ['user']]);
        else if (how === 'content-type') last.content = rng.pick([5, null, { t: 'x' }, undefined]);
        else if (how === 'not-object') list[list.length - 1] = rng.pick<unknown>(['hi', 5, null, ['user', 'hi']]) as Row;
        else if (how === 'empty-list') r[field] = [];
        else if (how === 'ends-assistant') list.push({ role: 'assistant', content: 'hi' });
        else if (how === 'two-responses') list.unshift({ role: 'assistant', content: 'earlier' });
        else last.role = 'user';
      });
      // an earlier assistant turn is context in a prompt or a {messages} conversation; a user turn can end a prompt
      if (how === 'two-responses' && (field === 'prompt' || field === 'messages')) expect = 'may-accept';
      if (how === 'user-response' && field === 'prompt') expect = 'may-accept';
      note = `line ${line} ${field} ${how}`;
      break;
    }
    case 'extra-field':
      edit((r) => (r[rng.pick(['id', 'score', 'meta', 'prompt_extra'])] = rng.pick([1, 'x', null, { a: [1] }])));
      expect = 'may-accept';
      note = `line ${line}: an extra field`;
      break;
    case 'crlf':
      ending = '\r\n';
      expect = 'may-accept';
      note = 'CRLF line endings';
      break;
    case 'blank':
      lines.splice(i, 0, rng.pick(['', ' ', '\t', '\r']));
      expect = 'may-accept';
      note = `a blank line before line ${line}`;
      break;
    case 'bom':
      lines[i] = '\uFEFF' + lines[i];
      // a byte-order mark starts a file, not a line inside it
      expect = i === 0 ? 'may-accept' : 'must-refuse';
      mustName = [at];
      note = `a byte-order mark at the start of line ${line}`;
      break;
    case 'surrogate':
      lines[i] = (lines[i] as string).replace(/:"/, ':"\\ud800');
      expect = 'may-accept';
      note = `line ${line}: a lone surrogate escape`;
      break;
    case 'duplicate-key': {
      const text = lines[i] as string;
      lines[i] = text.slice(0, -1) + `,${JSON.stringify(field)}:${JSON.stringify(rng.pick(['', 'other', 5]))}}`;
      // JSON.parse keeps the last, as Python's json does: the row stands or falls with it
      expect = 'may-accept';
      note = `line ${line}: ${field} twice`;
      break;
    }
    case 'deep': {
      const depth = rng.pick([50, 1000, 100_000]);
      const inMessage = format === 'conversational' && Array.isArray(row[field]);
      edit((r) => {
        if (inMessage) ((r[field] as Row[])[0] as Row).meta = '@@deep@@';
        else r.meta = '@@deep@@';
      });
      lines[i] = (lines[i] as string).replace('"@@deep@@"', '['.repeat(depth) + ']'.repeat(depth));
      // past serde_json's 128 the line is refused as a whole (a field of it is not at fault)
      expect = 'may-accept';
      mustName = [at];
      note = `line ${line}: a value nested ${depth} deep${inMessage ? ` in a message of ${field}` : ''}`;
      break;
    }
    case 'truncate': {
      // the file cut inside its last line
      const last = lines.length - 1;
      const text = lines[last] as string;
      lines[last] = text.slice(0, 1 + rng.int(text.length - 1));
      ending = '';
      mustName = [[`${file}:${last + 1}`]];
      note = `cut inside line ${last + 1}`;
      break;
    }
    case 'long':
      edit((r) => (r[field] = typeof r[field] === 'string' ? 'x'.repeat(1 << 20) : r[field]));
      expect = 'may-accept';
      note = `line ${line}: a field of 1 MiB`;
      break;
    default:
      throw new Error(op);
  }
  if (expect !== 'must-accept') expectRows = undefined;
  const body = Buffer.concat(lines.flatMap((l, k) => [Buffer.from(l), Buffer.from(k < lines.length - 1 || ending ? (ending || '\n') : '')]));
  return { index, kind: 'jsonl', mutation, expect, mustName, note, files: { [file]: body }, load: { op: 'jsonl', file, kind, format }, rows: expectRows };
}
