// `s2s data tokenizer`: a word-level tokenizer that covers the data (and the default template), a
// byte-level BPE whose merges match a naive trainer written from the algorithm's definition and
// that encodes any text exactly, a new model trained with it, and the bad inputs.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { Tokenizer } from '@s2s/core';

import { s2s, snapshot } from './cli-harness.js';

const root = mkdtempSync(path.join(tmpdir(), 's2s-cli-tok-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const f = path.join(root, name);
  writeFileSync(f, text);
  return f;
};

// an inventory task, as a user brings one: numbers, punctuation, a non-ASCII word, a conversation
const rows = [
  { prompt: 'How many bolts are in stock?', completion: 'There are 12 bolts in stock.' },
  { prompt: 'How many nuts are in stock?', completion: 'There are 40 nuts in stock.' },
  { prompt: 'Where are the washers?', completion: 'Aisle 3, shelf B — next to the Müller clamps.' },
  { prompt: [{ role: 'user', content: 'Any bolts left?' }], completion: [{ role: 'assistant', content: 'Yes: 12.' }] },
];
const texts = ['How many bolts are in stock?', 'There are 12 bolts in stock.', 'How many nuts are in stock?', 'There are 40 nuts in stock.', 'Where are the washers?', 'Aisle 3, shelf B — next to the Müller clamps.', 'Any bolts left?', 'Yes: 12.'];
const jsonl = (xs: object[]) => xs.map((x) => JSON.stringify(x)).join('\n') + '\n';

/** Byte-level BPE from its definition, the slow way: recount every pair after every merge. */
function naiveMerges(corpus: string[], vocabSize: number, specials: number): string[] {
  const printable = [...Array(94).keys()].map((i) => i + 33).concat([...Array(12).keys()].map((i) => i + 161), [...Array(82).keys()].map((i) => i + 174));
  let extra = 0;
  const sym = [...Array(256).keys()].map((b) => String.fromCodePoint(printable.includes(b) ? b : 256 + extra++));
  const pattern = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
  let words = corpus.flatMap((t) => [...t.matchAll(pattern)].map((m) => [...new TextEncoder().encode(m[0])].map((b) => sym[b])));
  const merges: string[] = [];
  const vocab = new Set(sym);
  while (vocab.size < vocabSize - specials) {
    const counts = new Map<string, number>();
    for (const w of words) for (let i = 0; i + 1 < w.length; i++) counts.set(`${w[i]} ${w[i + 1]}`, (counts.get(`${w[i]} ${w[i + 1]}`) ?? 0) + 1);
    const best = [...counts].sort((x, y) => y[1] - x[1] || (x[0].replace(' ', '\0') < y[0].replace(' ', '\0') ? -1 : 1))[0];
    if (!best || best[1] < 2) break;
    const [a, b] = best[0].split(' ');
    merges.push(best[0]);
    vocab.add(a + b);
    words = words.map((w) => {
      const out: string[] = [];
      for (let i = 0; i < w.length; i++)
        if (w[i] === a && w[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(w[i]);
      return out;
    });
  }
  return merges;
}

describe('s2s data tokenizer', () => {
  const data = file('inventory.jsonl', jsonl(rows));

  it('word level: every word of the data and of the default template is a token, and a new model trains with it', async () => {
    const out = path.join(root, 'word');
    const r = await s2s(['data', 'tokenizer', '--data', data, '--out', out]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('word-level tokenizer:');
    const tok = await Tokenizer.load(out);
    for (const t of texts) {
      const ids = tok.encode(t);
      expect(ids).not.toContain(tok.unkId);
      expect(tok.decode(ids).split(' ').join('')).toBe(t.split(' ').join(''));
    }
    expect(tok.encode('Müller')).toHaveLength(1); // a word of any script is one token
    for (const w of ['Response', ':', 'Rewrite']) expect(tok.tokenToId(w)).toBeDefined();
    // (text rows: the default template is not a chat template)
    const textRows = file('inventory-text.jsonl', jsonl(rows.slice(0, 3)));
    const sft = await s2s(['sft', '--data', textRows, '--tokenizer', out, '--out', path.join(root, 'word-sft'), '--layers', '1', '--heads', '2', '--channels', '16', '--context', '64', '--max-steps', '1', '--batch-size', '2', '--eval-split', '0']);
    expect(sft.code, sft.err).toBe(0);
    // --min-frequency: words seen once become <unk>, and the share is said
    const rare = await s2s(['data', 'tokenizer', '--data', data, '--out', path.join(root, 'word-rare'), '--min-frequency', '2']);
    expect(rare.code, rare.err).toBe(0);
    expect(rare.out).toMatch(/words seen fewer than 2 times become <unk> \(\d+\.\d+% of the words in the data\)/);
    // data without ":" (which the default template's "Response:" and "Rewrite:" both need): added once
    const plain = file('plain.jsonl', jsonl([{ prompt: 'how many bolts', completion: 'twelve' }]));
    const p = await s2s(['data', 'tokenizer', '--data', plain, '--out', path.join(root, 'word-plain')]);
    expect(p.code, p.err).toBe(0);
    expect((await Tokenizer.load(path.join(root, 'word-plain'))).tokenToId(':')).toBeDefined();
  });

  it("byte-level BPE: the merges of the algorithm's definition, any text exactly, the same on every run", async () => {
    const out = path.join(root, 'bpe');
    const r = await s2s(['data', 'tokenizer', '--data', data, '--kind', 'bpe', '--vocab-size', '300', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const json = JSON.parse(readFileSync(path.join(out, 'tokenizer.json'), 'utf8'));
    expect(json.model.merges).toEqual(naiveMerges(texts, 300, 2));
    const tok = await Tokenizer.load(out);
    for (const t of [...texts, 'unseen: Zürich, 3.14 ünïcödé 🙂 and\ttabs']) expect(tok.decode(tok.encode(t))).toBe(t);
    expect(tok.vocabSize).toBeLessThanOrEqual(300);
    const again = path.join(root, 'bpe-again');
    await s2s(['data', 'tokenizer', '--data', data, '--kind', 'bpe', '--vocab-size', '300', '--out', again]);
    expect(readFileSync(path.join(again, 'tokenizer.json'), 'utf8')).toBe(readFileSync(path.join(out, 'tokenizer.json'), 'utf8'));
  });

  it('refuses an empty file, rows without text, bad JSON and an existing tokenizer, writing nothing', async () => {
    const fail = async (args: string[], code: number, message: string) => {
      const out = path.join(root, 'never');
      const r = await s2s(['data', 'tokenizer', ...args, '--out', out]);
      expect(r.code, r.err).toBe(code);
      expect(r.err).toContain(message);
      expect(snapshot(out)).toBe('(absent)');
    };
    const empty = file('empty.jsonl', '');
    await fail(['--data', empty], 1, `--data ${empty} has no rows: the file is empty`);
    const blank = file('blank.jsonl', '\n\n');
    await fail(['--data', blank], 1, 'every line is blank');
    const other = file('other.jsonl', jsonl([{ prompt: 'a' }, { question: 'b' }]));
    await fail(['--data', other], 1, `${other}:2: none of the fields prompt, completion, chosen, rejected, response, messages is present (name the fields holding text with --fields)`);
    const badJson = file('bad.jsonl', '{"prompt": "a"}\n{"prompt": \n');
    await fail(['--data', badJson], 1, `${badJson}:2: invalid JSON`);
    const wrongType = file('wrong.jsonl', jsonl([{ prompt: 7 }]));
    await fail(['--data', wrongType], 1, `${wrongType}:1: field "prompt" must be a string or a list of messages with "content", got 7`);
    const emptyText = file('empty-text.jsonl', jsonl([{ prompt: '', completion: ' ' }]));
    await fail(['--data', emptyText], 1, 'every text field is empty');
    await fail(['--data', path.join(root, 'absent.jsonl')], 1, `--data ${path.join(root, 'absent.jsonl')}: no such file`);
    await fail(['--data', data, '--kind', 'bpe', '--vocab-size', '100'], 1, 'vocabSize must be an integer of at least 258 (256 bytes and 2 special tokens), got 100');
    const existing = path.join(root, 'word');
    const before = snapshot(existing);
    const r = await s2s(['data', 'tokenizer', '--data', data, '--out', existing]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${path.join(existing, 'tokenizer.json')} already exists`);
    expect(snapshot(existing)).toBe(before);
  });
});
