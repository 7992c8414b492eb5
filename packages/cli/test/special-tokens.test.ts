// Special-token text inside data ("<eos>" in a prompt): counted in one warning by default (encoded
// as the control token, as Hugging Face does), read as characters under --special-tokens-in-text
// literal, refused naming file, line and field under error.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Tokenizer, wordLevelTokenizerJSON } from '@s2s/core';

import { TINY, s2s } from './cli-harness.js';

const root = mkdtempSync(path.join(tmpdir(), 's2s-cli-special-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let data: string;
const tokDir = path.join(root, 'tok');

beforeAll(async () => {
  const tok = Tokenizer.fromJSON(wordLevelTokenizerJSON(['a', 'b', 'c', 'Response:', 'Rewrite:'], ['<pad>', '<eos>']), {
    tokenizerConfig: { eos_token: '<eos>', pad_token: '<pad>' },
  });
  await tok.save(tokDir);
  data = path.join(root, 'sft.jsonl');
  const rows = [
    { prompt: 'a b', completion: 'c' },
    { prompt: 'a <eos> b', completion: 'c' },
    { prompt: 'b', completion: 'a' },
    { prompt: 'c', completion: 'b <eos>' },
  ];
  writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
});

const sft = (out: string, ...extra: string[]) =>
  s2s(['sft', '--data', data, '--tokenizer', tokDir, '--out', path.join(root, out), ...TINY, '--max-steps', '1', '--batch-size', '2', '--eval-split', '0', '--threads', '1', ...extra]);

describe('--special-tokens-in-text', () => {
  it('error: refuses the first row with special-token text, naming file, line and field', async () => {
    const r = await sft('err', '--special-tokens-in-text', 'error');
    expect(r.code, r.err).not.toBe(0);
    expect(r.err).toContain(`${data}:2: field "prompt" contains the special token "<eos>" of the tokenizer (${tokDir})`);
  });

  it('encode (default): one warning with the count and the first file:line', async () => {
    const r = await sft('enc');
    expect(r.code, r.err).toBe(0);
    const warnings = r.err.split('\n').filter((l) => l.includes('special-token text'));
    expect(warnings).toEqual([
      `warning: 2 of 4 rows of ${data} contain special-token text, which becomes the control token (first: ${data}:2 field "prompt": "<eos>"); ` +
        '--special-tokens-in-text literal reads it as ordinary characters, error refuses it',
    ]);
  });

  it('literal: counted in a note, no warning; refuses an unknown value', async () => {
    const r = await sft('lit', '--special-tokens-in-text', 'literal');
    expect(r.code, r.err).toBe(0);
    expect(r.err).not.toContain('special-token text');
    expect(r.out).toContain(`${data}: 2 of 4 rows contain special-token text, read as ordinary characters`);
    const bad = await sft('bad', '--special-tokens-in-text', 'sometimes');
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--special-tokens-in-text must be one of encode, literal, error');
  });
});

describe('words the tokenizer does not know', () => {
  it('give one warning with the counts, the first place and the words, and the run goes on', async () => {
    const unknown = path.join(root, 'unknown.jsonl');
    const rows = [
      { prompt: 'a b', completion: 'c' },
      { prompt: 'a 17 b', completion: 'c 42' },
      { prompt: 'b', completion: 'a zebra' },
    ];
    writeFileSync(unknown, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const r = await s2s(['sft', '--data', unknown, '--tokenizer', tokDir, '--out', path.join(root, 'unk'), ...TINY, '--max-steps', '1', '--batch-size', '2', '--eval-split', '0', '--threads', '1']);
    expect(r.code, r.err).toBe(0);
    const warnings = r.err.split('\n').filter((l) => l.includes('unknown token'));
    expect(warnings).toEqual([
      `warning: 3 of 11 tokens (2 of 3 rows) of ${unknown} are the tokenizer's unknown token, words its vocabulary lacks (${tokDir}); ` +
        `first: ${unknown}:2 field "prompt": unknown "17". Build a tokenizer from your data, or use one that covers it`,
    ]);
    // data the vocabulary covers: no such warning
    expect((await sft('known')).err).not.toContain('unknown token');
  });
});
