// JSONL datasets: every kind of bad line gets its own clear error with file, line and field; collect
// mode accounts for every line; renamed fields; identical-pair warnings; invalid UTF-8; atomic writes.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DatasetError,
  describeDatasetStats,
  gpt2Tokenizer,
  scanSpecialTokenText,
  scanUnknownTokens,
  Tokenizer,
  wordLevelTokenizerJSON,
  loadConversationalJsonl,
  loadJsonl,
  readConversationalJsonl,
  readJsonl,
  rowSource,
  writeJsonl,
  type DatasetKind,
  type ReadJsonlOptions,
} from '../src/index.js';

let root: string;
let n = 0;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 's2s-jsonl-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

async function file(content: string | Buffer): Promise<string> {
  const f = path.join(root, `d${n++}.jsonl`);
  await fs.writeFile(f, content);
  return f;
}

const pair = (i: number) => JSON.stringify({ prompt: `p${i}`, chosen: `good ${i}`, rejected: `bad ${i}` });

/** The error a file with `badLine` as its 2nd line gives. */
async function errorOf(badLine: string | Buffer, kind: DatasetKind = 'preference', opts: ReadJsonlOptions = {}): Promise<DatasetError> {
  // Good lines around it, in the file's field names.
  const good = (i: number) => {
    const names = { prompt: 'prompt', chosen: 'chosen', rejected: 'rejected', completion: 'completion', ...opts.fields };
    const row = { prompt: `p${i}`, chosen: 'c', rejected: 'r', completion: 'c' };
    return JSON.stringify(Object.fromEntries(Object.entries(row).map(([k, v]) => [names[k as keyof typeof names], v])));
  };
  const f = await file(Buffer.concat([Buffer.from(good(1) + '\n'), Buffer.from(badLine), Buffer.from('\n' + good(3) + '\n')]));
  const err = await loadJsonl(f, kind, opts).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DatasetError);
  const e = err as DatasetError;
  expect(e.file).toBe(f);
  expect(e.line).toBe(2);
  expect(e.message.startsWith(`${f}:2: `)).toBe(true);
  return e;
}

describe('readJsonl', () => {
  it('reads the three TRL kinds, keeping only their fields', async () => {
    const f = await file([pair(1), JSON.stringify({ prompt: 'q', chosen: 'a', rejected: 'b', score: 3 }), pair(3)].join('\n')); // no final newline
    const { rows, stats } = await loadJsonl(f, 'preference');
    expect(rows).toEqual([
      { prompt: 'p1', chosen: 'good 1', rejected: 'bad 1' },
      { prompt: 'q', chosen: 'a', rejected: 'b' },
      { prompt: 'p3', chosen: 'good 3', rejected: 'bad 3' },
    ]);
    expect(stats).toMatchObject({ lines: 3, rows: 3, blank: 0, skipped: 0, identicalPairs: 0 });
    // A preference file also serves as prompts.
    expect((await loadJsonl(f, 'prompt')).rows).toEqual([{ prompt: 'p1' }, { prompt: 'q' }, { prompt: 'p3' }]);
    const s = await file('{"prompt":"2+2=","completion":" 4"}\r\n{"prompt":"héllo 👋","completion":"wörld\\n"}\r\n');
    expect((await loadJsonl(s, 'supervised')).rows).toEqual([
      { prompt: '2+2=', completion: ' 4' },
      { prompt: 'héllo 👋', completion: 'wörld\n' },
    ]);
  });

  it('streams: rows come as the file is read, across chunk boundaries', async () => {
    const lines = Array.from({ length: 3000 }, (_, i) => JSON.stringify({ prompt: `prompt ${i} ${'x'.repeat(i % 97)}`, completion: `c${i} ✓` }));
    const f = await file(lines.join('\n') + '\n');
    const reader = readJsonl(f, 'supervised');
    let i = 0;
    for await (const row of reader) {
      expect(row.completion).toBe(`c${i} ✓`);
      expect(reader.stats.rows).toBe(i + 1);
      i++;
    }
    expect(reader.stats.lines).toBe(3000);
    // Stopping early closes the file and keeps the counts so far.
    for await (const row of reader) if (row.prompt.startsWith('prompt 9 ')) break;
    expect(reader.stats).toMatchObject({ lines: 10, rows: 10 });
  });

  it('strips a UTF-8 byte-order mark on the first line', async () => {
    const f = await file(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(pair(1) + '\n')]));
    expect((await loadJsonl(f, 'preference')).rows).toHaveLength(1);
  });

  it('gives each malformed line its own clear error', async () => {
    let e = await errorOf('{"prompt": "p", "chosen": "c"');
    expect([e.reason, e.field]).toEqual(['json', undefined]);
    expect(e.message).toMatch(/:2: not valid JSON \(/);

    e = await errorOf('[1, 2]');
    expect(e.reason).toBe('not-object');
    expect(e.message).toMatch(/:2: expected a JSON object with "prompt", "chosen", "rejected"; got an array/);
    e = await errorOf('"just a string"');
    expect(e.message).toMatch(/got string$/);
    e = await errorOf('null');
    expect(e.message).toMatch(/got null$/);

    e = await errorOf(JSON.stringify({ prompt: 'p', rejected: 'r' }));
    expect([e.reason, e.field, e.message.split(': ').slice(1).join(': ')]).toEqual(['missing', 'chosen', 'field "chosen" is missing']);

    e = await errorOf(JSON.stringify({ prompt: 'p', chosen: 'c', rejected: 7 }));
    expect([e.reason, e.field]).toEqual(['type', 'rejected']);
    expect(e.message).toMatch(/:2: field "rejected" must be a string, got number$/);
    e = await errorOf(JSON.stringify({ prompt: 'p', chosen: null, rejected: 'r' }));
    expect(e.message).toMatch(/field "chosen" must be a string, got null$/);
    e = await errorOf(JSON.stringify({ prompt: [{ role: 'user', content: 'hi' }], chosen: 'c', rejected: 'r' }));
    expect(e.message).toMatch(/field "prompt" is a list \(TRL's conversational format/);

    e = await errorOf(JSON.stringify({ prompt: '', chosen: 'c', rejected: 'r' }));
    expect([e.reason, e.field]).toEqual(['empty', 'prompt']);
    expect(e.message).toMatch(/:2: field "prompt" is empty$/);
    e = await errorOf(JSON.stringify({ prompt: 'p', completion: ' \n\t' }), 'supervised');
    expect(e.message).toMatch(/:2: field "completion" is empty \(whitespace only\)$/);
  });

  it('refuses a line nested deeper than 128 (rows are compared and written back with JSON.stringify), naming file and line', async () => {
    const deep = (n: number) => `{"prompt": "p", "chosen": "c", "rejected": "r", "meta": ${'['.repeat(n)}${']'.repeat(n)}}`;
    const e = await errorOf(deep(100_000));
    expect([e.reason, e.field]).toEqual(['json', undefined]);
    expect(e.message).toMatch(/:2: nests objects and arrays more than 128 deep \(corrupt or hostile\)$/);
    const f = await file(deep(100) + '\n');
    expect((await loadJsonl(f, 'preference')).rows).toEqual([{ prompt: 'p', chosen: 'c', rejected: 'r' }]);
  });

  it('detects invalid UTF-8 instead of reading U+FFFD', async () => {
    const bad = Buffer.concat([Buffer.from('{"prompt": "caf'), Buffer.from([0xc3]), Buffer.from('", "chosen": "a", "rejected": "b"}')]);
    const e = await errorOf(bad);
    expect(e.reason).toBe('utf8');
    expect(e.message).toMatch(/:2: not valid UTF-8 \(byte 16 of the line is 0xc3\)$/);
    // Overlong encodings and UTF-16 surrogates encoded as UTF-8 are invalid too.
    expect((await errorOf(Buffer.from([0x7b, 0xc0, 0xaf, 0x7d]))).message).toMatch(/byte 2 of the line is 0xc0/);
    expect((await errorOf(Buffer.from([0x7b, 0xed, 0xa0, 0x80, 0x7d]))).message).toMatch(/byte 2 of the line is 0xed/);
    expect((await errorOf(Buffer.from([0x7b, 0xff]))).reason).toBe('utf8');
  });

  it('skips and counts blank lines by default, or makes them errors', async () => {
    const f = await file(`${pair(1)}\n\n   \n${pair(2)}\n\n`);
    const { rows, stats } = await loadJsonl(f, 'preference');
    expect(rows).toHaveLength(2);
    expect(stats).toMatchObject({ lines: 5, rows: 2, blank: 3, skipped: 0 });
    // each row knows its line (blank lines counted), and the mark does not show in the row's JSON
    expect(rows.map((r) => rowSource(r))).toEqual([`${f}:1`, `${f}:4`]);
    expect(JSON.parse(JSON.stringify(rows[1]))).toEqual(rows[1]);
    expect(rowSource({ ...rows[1] })).toBeUndefined();
    const e = await errorOf('  ', 'preference', { blankLines: 'error' });
    expect([e.reason, e.message.endsWith(':2: blank line')]).toEqual(['blank', true]);
  });

  it('collect mode reports every bad line and accounts for every line', async () => {
    const lines = [pair(1), '{oops', JSON.stringify({ prompt: 'p' }), '', pair(5), JSON.stringify({ prompt: 'p', chosen: 'same', rejected: 'same' }), '7', pair(8)];
    const f = await file(lines.join('\n') + '\n');
    const { rows, stats } = await loadJsonl(f, 'preference', { onError: 'collect' });
    expect(rows.map((r) => r.prompt)).toEqual(['p1', 'p5', 'p', 'p8']);
    expect(stats).toMatchObject({ lines: 8, rows: 4, blank: 1, skipped: 3, identicalPairs: 1 });
    expect(stats.lines).toBe(stats.rows + stats.blank + stats.skipped);
    expect(stats.errors.map((e) => [e.line, e.reason, e.field])).toEqual([
      [2, 'json', undefined],
      [3, 'missing', 'chosen'],
      [7, 'not-object', undefined],
    ]);
    expect(stats.warnings).toEqual([
      { file: f, line: 6, reason: 'identical-pair', message: `${f}:6: "chosen" and "rejected" are identical; the pair states no preference` },
    ]);
    expect(describeDatasetStats(f, stats)).toBe(`${f}: 4 rows from 8 lines, 1 blank lines skipped, 3 bad lines skipped, 1 pairs with identical chosen and rejected`);
  });

  it('throw mode stops at the first bad line, with the stats so far', async () => {
    const f = await file([pair(1), '{oops', pair(3)].join('\n'));
    const reader = readJsonl(f, 'preference');
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const r of reader) seen.push(r.prompt);
      })(),
    ).rejects.toThrow(`${f}:2: not valid JSON`);
    expect(seen).toEqual(['p1']);
    expect(reader.stats).toMatchObject({ lines: 2, rows: 1, skipped: 1 });
  });

  it('reads renamed fields and names them as the file does', async () => {
    const fields = { prompt: 'question', chosen: 'good', rejected: 'bad' };
    const f = await file(`${JSON.stringify({ question: 'q', good: 'g', bad: 'b' })}\n`);
    expect((await loadJsonl(f, 'preference', { fields })).rows).toEqual([{ prompt: 'q', chosen: 'g', rejected: 'b' }]);
    const e = await errorOf(JSON.stringify({ question: 'q', bad: 'b' }), 'preference', { fields });
    expect(e.field).toBe('good');
    expect(e.message).toMatch(/:2: field "good" \(chosen\) is missing$/);
    expect(() => readJsonl(f, 'preference', { fields: { chosen: 'x', rejected: 'x' } })).toThrow(/two fields are both read from "x"/);
    expect(() => readJsonl(f, 'preference', { fields: { answer: 'x' } as never })).toThrow(/fields\.answer: unknown field/);
  });

  it('names a missing file', async () => {
    const f = path.join(root, 'nope.jsonl');
    const err = await loadJsonl(f, 'prompt').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as DatasetError).reason).toBe('io');
    expect((err as DatasetError).message).toMatch(new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: cannot read the file \\(ENOENT`));
  });
});

describe('readConversationalJsonl (TRL conversational format)', () => {
  const u = (content: string) => ({ role: 'user', content });
  const a = (content: string) => ({ role: 'assistant', content });
  const sys = (content: string) => ({ role: 'system', content });

  /** The error a conversational file with `row` as its 2nd line gives. */
  async function chatErrorOf(row: unknown, kind: DatasetKind = 'preference', opts: ReadJsonlOptions = {}): Promise<DatasetError> {
    const good = JSON.stringify({ prompt: [u('p')], chosen: [a('c')], rejected: [a('r')], completion: [a('c')] });
    const f = await file([good, typeof row === 'string' ? row : JSON.stringify(row), good].join('\n') + '\n');
    const err = await loadConversationalJsonl(f, kind, opts).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DatasetError);
    const e = err as DatasetError;
    expect(e.message.startsWith(`${f}:2: `)).toBe(true);
    return e;
  }

  it("reads TRL's conversational preference, prompt-completion, messages and prompt-only rows", async () => {
    const f = await file(
      [
        JSON.stringify({ prompt: [sys('Be brief.'), u('hi')], chosen: [a('hello')], rejected: [a('go away')], score: 1 }),
        // TRL's implicit prompt: whole conversations sharing all but the last turn
        JSON.stringify({ chosen: [u('2+2?'), a('4')], rejected: [u('2+2?'), a('5')] }),
        // a text row reads as one user turn and one assistant turn
        JSON.stringify({ prompt: 'plain', chosen: 'yes', rejected: 'no' }),
      ].join('\n') + '\n',
    );
    const { rows, stats } = await loadConversationalJsonl(f, 'preference');
    expect(rows).toEqual([
      { prompt: [sys('Be brief.'), u('hi')], chosen: [a('hello')], rejected: [a('go away')] },
      { prompt: [u('2+2?')], chosen: [a('4')], rejected: [a('5')] },
      { prompt: [u('plain')], chosen: [a('yes')], rejected: [a('no')] },
    ]);
    expect(stats).toMatchObject({ lines: 3, rows: 3, identicalPairs: 0 });
    expect(rowSource(rows[1])).toBe(`${f}:2`);
    // a preference file serves as prompts, its implicit prompts included
    expect((await loadConversationalJsonl(f, 'prompt')).rows).toEqual([{ prompt: [sys('Be brief.'), u('hi')] }, { prompt: [u('2+2?')] }, { prompt: [u('plain')] }]);

    const s = await file(
      [
        JSON.stringify({ messages: [sys('S'), u('q1'), a('a1'), u('q2'), a('a2')] }),
        JSON.stringify({ prompt: [u('q')], completion: [a('c')] }),
        JSON.stringify({ prompt: 'q', completion: 'c' }),
        JSON.stringify({ messages: [u('q'), { role: 'assistant', content: 'c', name: 'bot' }] }),
      ].join('\n'),
    );
    expect((await loadConversationalJsonl(s, 'supervised')).rows).toEqual([
      { prompt: [sys('S'), u('q1'), a('a1'), u('q2')], completion: [a('a2')] },
      { prompt: [u('q')], completion: [a('c')] },
      { prompt: [u('q')], completion: [a('c')] },
      { prompt: [u('q')], completion: [{ role: 'assistant', content: 'c', name: 'bot' }] },
    ]);
    // renamed fields, as for text files
    const r = await file(JSON.stringify({ conversations: [u('q'), a('c')] }) + '\n');
    expect((await loadConversationalJsonl(r, 'supervised', { fields: { messages: 'conversations' } })).rows).toEqual([{ prompt: [u('q')], completion: [a('c')] }]);
    // and streaming, as readJsonl
    const rows2 = [];
    for await (const row of readConversationalJsonl(f, 'prompt')) rows2.push(row.prompt);
    expect(rows2).toHaveLength(3);
  });

  it('warns about pairs whose chosen and rejected messages are the same', async () => {
    const f = await file(JSON.stringify({ prompt: [u('q')], chosen: [a('same')], rejected: 'same' }) + '\n');
    const { stats } = await loadConversationalJsonl(f, 'preference');
    expect(stats.identicalPairs).toBe(1);
    expect(stats.warnings[0].message).toMatch(/:1: "chosen" and "rejected" are identical/);
  });

  it('names the file, line and field of each malformed conversation', async () => {
    let e = await chatErrorOf({ prompt: [u('q')], chosen: [a('c'), a('more')], rejected: [a('r')] });
    expect([e.reason, e.field]).toEqual(['roles', 'chosen']);
    expect(e.message).toMatch(/:2: field "chosen" must be one "assistant" message \(the response\), got 2 "assistant", "assistant" messages$/);
    e = await chatErrorOf({ prompt: [u('q')], chosen: [a('c')], rejected: [u('r')] });
    expect(e.message).toMatch(/:2: field "rejected" must be one "assistant" message \(the response\), got a "user" message$/);
    e = await chatErrorOf({ prompt: [u('q'), a('x')], chosen: [a('c')], rejected: [a('r')] });
    expect([e.reason, e.field]).toEqual(['roles', 'prompt']);
    expect(e.message).toMatch(/:2: field "prompt" ends with an "assistant" message; a prompt is the conversation before the response/);
    e = await chatErrorOf({ prompt: [u('q'), { role: 'user' }], chosen: [a('c')], rejected: [a('r')] });
    expect([e.reason, e.field]).toEqual(['type', 'prompt']);
    expect(e.message).toMatch(/:2: field "prompt" message 2: "content" must be a string, got nothing$/);
    e = await chatErrorOf({ prompt: [{ content: 'q' }], chosen: [a('c')], rejected: [a('r')] });
    expect(e.message).toMatch(/field "prompt" message 1: "role" must be a non-empty string, got nothing$/);
    e = await chatErrorOf({ prompt: [u('q')], chosen: [{ role: 'assistant', content: [{ type: 'text', text: 'c' }] }], rejected: [a('r')] });
    expect(e.message).toMatch(/field "chosen" message 1: "content" is a list of parts \(multimodal\), which is not supported/);
    e = await chatErrorOf({ prompt: ['q'], chosen: [a('c')], rejected: [a('r')] });
    expect(e.message).toMatch(/field "prompt" message 1 must be an object with "role" and "content", got string$/);
    e = await chatErrorOf({ prompt: [], chosen: [a('c')], rejected: [a('r')] });
    expect([e.reason, e.message.split(': ').slice(1).join(': ')]).toEqual(['empty', 'field "prompt" is an empty list of messages']);
    e = await chatErrorOf({ prompt: 7, chosen: [a('c')], rejected: [a('r')] });
    expect(e.message).toMatch(/field "prompt" must be a list of messages \(\{"role", "content"\}\) or a string, got number$/);
    e = await chatErrorOf({ prompt: [u('q')], chosen: [a('  ')], rejected: [a('r')] });
    expect([e.reason, e.field]).toEqual(['empty', 'chosen']);
    e = await chatErrorOf({ prompt: [u('q')], chosen: '', rejected: [a('r')] });
    expect(e.message).toMatch(/field "chosen" is empty$/);
    // a prompt with no text, as an empty text prompt is refused; one empty turn of several is the conversation's business
    e = await chatErrorOf({ prompt: [u(' ')], chosen: [a('c')], rejected: [a('r')] });
    expect([e.reason, e.field, e.message.split(': ').slice(1).join(': ')]).toEqual(['empty', 'prompt', 'field "prompt" is a message with empty content']);
    e = await chatErrorOf({ prompt: [{ role: 'system', content: '' }, u('')], chosen: [a('c')], rejected: [a('r')] });
    expect(e.message).toMatch(/field "prompt" has no text: the content of all 2 messages is empty$/);
    e = await chatErrorOf({ messages: [u(''), a('c')] }, 'supervised');
    expect([e.reason, e.field]).toEqual(['empty', 'messages']);
    const someText = await file(JSON.stringify({ prompt: [{ role: 'system', content: '' }, u('q')], chosen: [a('c')], rejected: [a('r')] }) + '\n');
    expect((await loadConversationalJsonl(someText, 'preference')).rows).toHaveLength(1);
    e = await chatErrorOf({ chosen: [u('q'), a('c')], rejected: [u('other'), a('r')] });
    expect([e.reason, e.field]).toEqual(['missing', 'prompt']);
    expect(e.message).toMatch(/field "prompt" is missing, and "chosen" and "rejected" do not share the conversation before their last message \(TRL's implicit prompt\)$/);
    e = await chatErrorOf({ prompt: [u('q')], chosen: [a('c')] });
    expect(e.message).toMatch(/field "rejected" is missing$/);
    e = await chatErrorOf({ messages: [u('q'), a('c'), u('again')] }, 'supervised');
    expect([e.reason, e.field]).toEqual(['roles', 'messages']);
    expect(e.message).toMatch(/field "messages" must end with an "assistant" message \(the completion to learn\)/);
    e = await chatErrorOf({ messages: [a('c')] }, 'supervised');
    expect(e.field).toBe('messages');
    e = await chatErrorOf({ completion: [a('c')] }, 'supervised');
    expect(e.message).toMatch(/field "prompt" is missing \(and there is no "messages"\)$/);
    const renamed = await file(JSON.stringify({ question: [u('q'), a('x')] }) + '\n');
    const err = (await loadConversationalJsonl(renamed, 'prompt', { fields: { prompt: 'question' } }).catch((x: unknown) => x)) as DatasetError;
    expect([err.field, err.message]).toEqual(['question', `${renamed}:1: field "question" (prompt) ends with an "assistant" message; a prompt is the conversation before the response, ending with a user (or system, tool) turn`]);
  });

  it('points text readers at the conversational reader', async () => {
    const e = await errorOf(JSON.stringify({ prompt: [u('hi')], chosen: 'c', rejected: 'r' }));
    expect(e.message).toMatch(/field "prompt" is a list \(TRL's conversational format\), which is read with the model's chat template \(readConversationalJsonl\)/);
  });
});

describe('scanUnknownTokens (words the tokenizer does not know)', () => {
  it('counts the unknown tokens and their rows, naming the first places and the words', async () => {
    const words = Tokenizer.fromJSON(wordLevelTokenizerJSON(['the', 'cat', 'sat', 'on', 'mat'], ['<pad>']), {}, 'words');
    const f = await file(
      [
        JSON.stringify({ prompt: 'the cat', completion: 'sat on the mat' }),
        JSON.stringify({ prompt: 'the 17 cats', completion: 'sat on 17 mats' }),
        JSON.stringify({ prompt: 'the cat', completion: 'sat on the zebra' }),
      ].join('\n'),
    );
    const { rows } = await loadJsonl(f, 'supervised');
    const r = scanUnknownTokens(rows, words);
    expect(r).toEqual({
      rows: 3,
      withUnknown: 2,
      unknown: 5,
      tokens: 19,
      places: [`${f}:2 field "prompt": unknown "17", "cats"`, `${f}:3 field "completion": unknown "zebra"`],
    });
    // byte-level BPE covers every string: nothing unknown, nothing encoded to find out
    const g = gpt2Tokenizer();
    expect(g.coversEveryString && !words.coversEveryString).toBe(true);
    expect(g.unknownWords('the 17 cats')).toEqual([]);
    expect(scanUnknownTokens(rows, g)).toEqual({ rows: 3, withUnknown: 0, unknown: 0, tokens: 0, places: [] });
  });
});

describe('scanSpecialTokenText (special-token text in the data)', () => {
  const g = gpt2Tokenizer();

  it('counts the rows whose text or message content holds special-token text, naming the first places', async () => {
    const f = await file(
      [
        pair(1),
        JSON.stringify({ prompt: 'p <|endoftext|>', chosen: 'a', rejected: 'b' }),
        pair(3),
        JSON.stringify({ prompt: 'p', chosen: 'a<|endoftext|>', rejected: 'b <|endoftext|>' }),
      ].join('\n'),
    );
    const { rows } = await loadJsonl(f, 'preference');
    const r = scanSpecialTokenText(rows, g);
    expect(r).toEqual({ rows: 4, withSpecialTokens: 2, places: [`${f}:2 field "prompt": "<|endoftext|>"`, `${f}:4 field "chosen": "<|endoftext|>"`] });
    expect(scanSpecialTokenText(rows, g, 'literal').withSpecialTokens).toBe(2);

    const c = await file([JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'x <|endoftext|>' }] })].join('\n'));
    const conv = await loadConversationalJsonl(c, 'supervised');
    expect(scanSpecialTokenText(conv.rows, g).places).toEqual([`${c}:1 field "completion": "<|endoftext|>"`]);
  });

  it("'error' refuses the first such row with a DatasetError naming file, line and field (as the file names it)", async () => {
    const f = await file([JSON.stringify({ question: 'q', good: 'g', bad: 'b' }), JSON.stringify({ question: 'q', good: 'fine <|endoftext|>', bad: 'b' })].join('\n'));
    const fields = { prompt: 'question', chosen: 'good', rejected: 'bad' };
    const { rows } = await loadJsonl(f, 'preference', { fields });
    let err: unknown;
    try {
      scanSpecialTokenText(rows, g, 'error', fields);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DatasetError);
    const d = err as DatasetError;
    expect([d.file, d.line, d.field, d.reason]).toEqual([f, 2, 'good', 'special-token']);
    expect(d.message).toMatch(new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:2: field "good" contains the special token "<\\|endoftext\\|>" of the tokenizer \\(gpt2\\)`));
    const clean = await loadJsonl(await file(pair(1)), 'preference');
    expect(scanSpecialTokenText(clean.rows, g, 'error')).toEqual({ rows: 1, withSpecialTokens: 0, places: [] });
  });
});

describe('writeJsonl', () => {
  it('writes rows that read back the same, replacing the file atomically', async () => {
    const f = path.join(root, 'out', 'sub', 'prefs.jsonl');
    const rows = [
      { prompt: 'line\nbreak "quoted"', chosen: 'é 👋 漢', rejected: 'tab\there' },
      { prompt: 'p2', chosen: 'c2', rejected: 'r2' },
    ];
    await writeJsonl(f, rows);
    expect((await loadJsonl(f, 'preference')).rows).toEqual(rows);
    await writeJsonl(f, rows.slice(1));
    expect((await fs.readFile(f, 'utf8')).split('\n')).toEqual([JSON.stringify(rows[1]), '']);
    expect((await fs.readdir(path.dirname(f))).filter((x) => x !== 'prefs.jsonl')).toEqual([]); // no temporary files left
    await expect(writeJsonl(f, [3 as never])).rejects.toThrow(/row 1 must be an object/);
  });
});
