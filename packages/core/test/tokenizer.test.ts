// Tokenizers: GPT-2 against published ids and gpt3-tokenizer's own BPE, round trips, word-level
// vocabularies and unknown words, special tokens from the config files, save/load, the model-fit check.
import * as fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertTokenizerFitsModel,
  gpt2Tokenizer,
  loadModel,
  Model,
  saveModel,
  Tokenizer,
  TokenizerError,
  vocabularyDifference,
  wordLevelTokenizerJSON,
} from '../src/index.js';

let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 's2s-tok-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

// Published GPT-2 (r50k) ids: tiktoken's README/tests, and the test suites of the JS GPT-2 encoders
// (gpt-3-encoder, gpt-tokenizer): independent implementations agreeing on these.
const KNOWN: [string, number[]][] = [
  ['Hello world!', [15496, 995, 0]],
  ['hello world', [31373, 995]],
  ['hello <|endoftext|>', [31373, 220, 50256]],
  ['', []],
  [' ', [220]],
  ['\t', [197]],
  ['This is some text', [1212, 318, 617, 2420]],
  ['indivisible', [521, 452, 12843]],
  ['This is some text with numbers 1234567890', [1212, 318, 617, 2420, 351, 3146, 17031, 2231, 30924, 3829]],
  [
    `This is some text with a few special characters: !@#$%^&*()_+-=~[]{}|;:'",./<>?`,
    [1212, 318, 617, 2420, 351, 257, 1178, 2041, 3435, 25, 5145, 31, 29953, 4, 61, 5, 9, 3419, 62, 10, 12, 31820, 21737, 90, 92, 91, 26, 32105, 1600, 19571, 27, 29, 30],
  ],
  ['hello 👋 world 🌍', [31373, 50169, 233, 995, 12520, 234, 235]],
  ['你好世界', [19526, 254, 25001, 121, 10310, 244, 45911, 234]],
  [
    'Ⓗⓔⓛⓛⓞ Ⓑⓤⓑⓑⓛⓔ',
    [158, 240, 121, 158, 241, 242, 158, 241, 249, 158, 241, 249, 158, 241, 252, 2343, 240, 115, 158, 241, 97, 158, 241, 239, 158, 241, 239, 158, 241, 249, 158, 241, 242],
  ],
  // Object's own property names must not leak into vocabulary lookups.
  ['toString constructor hasOwnProperty valueOf', [1462, 10100, 23772, 468, 23858, 21746, 1988, 5189]],
  // Indentation: each space but the last is its own token ("\s+(?!\S)"); the last joins the word.
  [
    ['function deeplyNested () {', '  return {', '    the: {', '      quick: {', '      }', '    }', '  }', '}'].join('\n'),
    [8818, 7744, 45, 7287, 7499, 1391, 198, 220, 1441, 1391, 198, 220, 220, 220, 262, 25, 1391, 198, 220, 220, 220, 220, 220, 2068, 25, 1391, 198, 220, 220, 220, 220, 220, 1782, 198, 220, 220, 220, 1782, 198, 220, 1782, 198, 92],
  ],
];

// Accented Latin letters: checked against gpt3-tokenizer's own BPE below (no published list to quote).
const ROUND_TRIP = [
  'héllo wörld',
  'Ça va? Très bien, merci.',
  'naïve café — “quotes” and ‘apostrophes’',
  'Здравствуй, мир!',
  'مرحبا بالعالم',
  'こんにちは世界',
  '👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, e\u0301 combining',
  'tabs\tand\nnewlines\r\n  and   runs   of spaces   ',
  "it's we're they've I'm you'll he'd",
  '<|endoftext|>',
  'a<|endoftext|>b',
  '\u0000\u0001 control \u007f chars',
  'mixed123numbers456 and 3.14159',
  '    leading spaces',
];

describe('GPT-2 tokenizer', () => {
  const tok = gpt2Tokenizer();

  it('gives the published GPT-2 ids', () => {
    for (const [text, ids] of KNOWN) {
      expect(tok.encode(text), JSON.stringify(text)).toEqual(ids);
      expect(tok.decode(ids)).toBe(text);
    }
  });

  it("agrees with js-tiktoken (OpenAI's tiktoken ranks and BPE, ported) on every string here and on seeded random Unicode", () => {
    const require = createRequire(import.meta.url);
    const ref = (require('js-tiktoken') as { getEncoding(name: 'gpt2'): { encode(s: string, allowed?: 'all'): number[] } }).getEncoding('gpt2');
    for (const text of [...ROUND_TRIP, ...KNOWN.map(([s]) => s)]) expect(tok.encode(text), JSON.stringify(text)).toEqual(ref.encode(text, 'all'));
    // code points from the ranges that stress byte-level BPE: ASCII, whitespace runs, Latin-1,
    // Cyrillic, CJK, Hangul, emoji (astral), combining marks, digits
    const ranges: Array<[number, number]> = [[0x20, 0x7e], [0x20, 0x20], [0x09, 0x0a], [0xc0, 0xff], [0x400, 0x44f], [0x4e00, 0x4fff], [0xac00, 0xac7f], [0x1f300, 0x1f64f], [0x300, 0x36f], [0x30, 0x39]];
    let state = 12345;
    const next = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
    for (let i = 0; i < 400; i++) {
      let text = '';
      for (let n = 1 + Math.floor(next() * 40); n > 0; n--) {
        const [lo, hi] = ranges[Math.floor(next() * ranges.length)];
        text += String.fromCodePoint(lo + Math.floor(next() * (hi - lo + 1)));
      }
      const ids = tok.encode(text);
      expect(ids, JSON.stringify(text)).toEqual(ref.encode(text));
      expect(tok.decode(ids)).toBe(text);
    }
  });

  it("agrees with gpt3-tokenizer's independent BPE on non-ASCII text", () => {
    const require = createRequire(import.meta.url);
    const G = (require('gpt3-tokenizer') as { default: new (o: { type: 'gpt3' }) => { encode(s: string): { bpe: number[] } } }).default;
    const ref = new G({ type: 'gpt3' });
    expect(tok.encode('héllo wörld')).toEqual([71, 2634, 18798, 266, 30570, 335]);
    for (const text of [...ROUND_TRIP.filter((s) => !s.includes('<|endoftext|>')), ...KNOWN.map(([s]) => s).filter((s) => !s.includes('<|'))])
      expect(tok.encode(text), JSON.stringify(text)).toEqual(ref.encode(text).bpe);
  });

  it('has GPT-2 special tokens and sizes', () => {
    expect(tok.vocabSize).toBe(50257);
    expect(tok.eosId).toBe(50256);
    expect(tok.bosId).toBe(50256);
    expect(tok.unkId).toBe(50256);
    expect(tok.padId).toBeUndefined();
    expect(tok.tokenToId('Hello')).toBe(15496);
    expect(tok.idToToken(995)).toBe('Ġworld');
    expect(tok.idToToken(50256)).toBe('<|endoftext|>');
  });

  it('round-trips text, and skips special tokens when asked', () => {
    for (const s of ROUND_TRIP) expect(tok.decode(tok.encode(s)), JSON.stringify(s)).toBe(s);
    // Seeded random strings over a mixed alphabet.
    const alphabet = [...'abc XYZ 019.,!?\n\t\'"é漢字😀'];
    let seed = 7;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    for (let i = 0; i < 200; i++) {
      const s = Array.from({ length: 1 + Math.floor(rnd() * 40) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join('');
      expect(tok.decode(tok.encode(s))).toBe(s);
    }
    expect(tok.decode([31373, 50256, 995], { skipSpecialTokens: true })).toBe('hello world');
    expect(tok.decode([])).toBe('');
  });

  it('refuses ids outside the vocabulary', () => {
    expect(() => tok.decode([50257])).toThrow(/token id 50257 is outside the vocabulary .*50257 ids/);
    expect(() => tok.decode([-1])).toThrow(RangeError);
    expect(() => tok.decode([1.5])).toThrow(RangeError);
  });
});

describe('word-level tokenizer', () => {
  const WORDS = Array.from({ length: 500 }, (_, i) => `w${i}`).concat(['the', 'cat', 'sat', 'on', 'mat', '.', 'Response:']);
  const SPECIALS = ['<pad>', '<bos>', '<eos>'];
  const cfg = { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>' };

  it('round-trips whitespace-normalised text and counts ids', () => {
    const json = wordLevelTokenizerJSON(WORDS, SPECIALS);
    const tok = Tokenizer.fromJSON(json, { tokenizerConfig: cfg });
    expect(tok.vocabSize).toBe(SPECIALS.length + 1 + WORDS.length); // + <unk>
    expect(tok.encode('the cat sat')).toEqual([4 + WORDS.indexOf('the'), 4 + WORDS.indexOf('cat'), 4 + WORDS.indexOf('sat')]);
    for (let i = 0; i < 50; i++) {
      const s = Array.from({ length: 1 + (i % 9) }, (_, j) => WORDS[(i * 31 + j * 17) % WORDS.length]).join(' ');
      expect(tok.decode(tok.encode(s))).toBe(s);
    }
    // Other whitespace is a separator too; decoding puts single spaces back.
    expect(tok.decode(tok.encode('  the\tcat\n sat  '))).toBe('the cat sat');
    // Special tokens are recognised inside text, and skipped on request.
    expect(tok.encode('the cat<eos>')).toEqual([...tok.encode('the cat'), 2]);
    expect(tok.decode([1, ...tok.encode('the mat'), 2], { skipSpecialTokens: true })).toBe('the mat');
    expect([tok.padId, tok.bosId, tok.eosId, tok.unkId]).toEqual([0, 1, 2, 3]);
  });

  it('maps unknown words to <unk> when there is one', () => {
    const tok = Tokenizer.fromJSON(wordLevelTokenizerJSON(WORDS, SPECIALS), { tokenizerConfig: cfg });
    expect(tok.encode('the dog sat')).toEqual([tok.tokenToId('the'), 3, tok.tokenToId('sat')]);
    // Without any config file, the model's own unk_token is used.
    const bare = Tokenizer.fromJSON(wordLevelTokenizerJSON(WORDS, SPECIALS));
    expect(bare.encode('dog')).toEqual([3]);
  });

  it('names the unknown word when there is no unk token', () => {
    const tok = Tokenizer.fromJSON(wordLevelTokenizerJSON(WORDS, SPECIALS, { unkToken: null }), { tokenizerConfig: cfg }, 'synthetic');
    expect(tok.unkId).toBeUndefined();
    expect(() => tok.encode('the dog sat')).toThrow(/synthetic: unknown word "dog" is not in the vocabulary/);
  });

  it('refuses bad vocabularies', () => {
    expect(() => wordLevelTokenizerJSON(['a', 'a'], [])).toThrow(/"a" appears twice/);
    expect(() => wordLevelTokenizerJSON(['a b'], [])).toThrow(/without whitespace/);
    expect(() => wordLevelTokenizerJSON(['<eos>'], ['<eos>'])).toThrow(/appears twice/);
  });
});

describe('special tokens from the config files', () => {
  const json = wordLevelTokenizerJSON(['x', 'y'], ['<s>', '</s>', '<pad>', '[EOS]']);

  it('reads strings and {content} objects; special_tokens_map.json overrides tokenizer_config.json', () => {
    const tok = Tokenizer.fromJSON(json, {
      tokenizerConfig: { bos_token: { content: '<s>', lstrip: false }, eos_token: '</s>', pad_token: null },
      specialTokensMap: { eos_token: { content: '[EOS]' }, pad_token: '<pad>' },
    });
    expect(tok.bosId).toBe(0);
    expect(tok.eosId).toBe(3);
    expect(tok.padId).toBe(2);
    expect(tok.specialTokens).toEqual({ bos_token: '<s>', eos_token: '[EOS]', pad_token: '<pad>' });
  });

  it('lets tokenizer_config.json win when it has added_tokens_decoder (transformers >= 4.34)', () => {
    const tok = Tokenizer.fromJSON(json, {
      tokenizerConfig: { added_tokens_decoder: {}, eos_token: '</s>' },
      specialTokensMap: { eos_token: '[EOS]', bos_token: '<s>' },
    });
    expect(tok.eosId).toBe(1);
    expect(tok.bosId).toBe(0);
  });

  it('refuses a special token the vocabulary lacks, or of the wrong type', () => {
    expect(() => Tokenizer.fromJSON(json, { tokenizerConfig: { eos_token: '<eos>' } }, 'dir')).toThrow(/dir: eos_token "<eos>" is not in the vocabulary/);
    expect(() => Tokenizer.fromJSON(json, { tokenizerConfig: { eos_token: 3 } }, 'dir')).toThrow(/tokenizer_config\.json: eos_token must be a string/);
  });
});

describe('files, save and load', () => {
  it('round-trips GPT-2 and a word-level tokenizer through a directory', async () => {
    for (const tok of [gpt2Tokenizer(), Tokenizer.fromJSON(wordLevelTokenizerJSON(['a', 'b'], ['<pad>', '<eos>']), { tokenizerConfig: { eos_token: '<eos>', pad_token: '<pad>' } })]) {
      const dir = path.join(root, `tok-${tok.vocabSize}`);
      await tok.save(dir);
      expect((await fs.readdir(dir)).sort()).toEqual(['special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
      const back = await Tokenizer.load(dir);
      expect(back.vocabSize).toBe(tok.vocabSize);
      expect(back.specialTokens).toEqual(tok.specialTokens);
      expect([back.bosId, back.eosId, back.padId, back.unkId]).toEqual([tok.bosId, tok.eosId, tok.padId, tok.unkId]);
      expect(back.files()).toEqual(tok.files());
      const text = tok.vocabSize > 100 ? 'héllo wörld 👋 <|endoftext|>' : 'a b <eos>';
      expect(back.encode(text)).toEqual(tok.encode(text));
    }
  });

  it('names the file that is missing or not JSON', async () => {
    const dir = path.join(root, 'broken');
    await fs.mkdir(dir, { recursive: true });
    await expect(Tokenizer.load(dir)).rejects.toThrow(`${path.join(dir, 'tokenizer.json')} does not exist`);
    await fs.writeFile(path.join(dir, 'tokenizer.json'), '{"model": ');
    await expect(Tokenizer.load(dir)).rejects.toThrow(new RegExp(`${path.join(dir, 'tokenizer.json').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: not valid JSON`));
    await fs.writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify(wordLevelTokenizerJSON(['a'], [])));
    await fs.writeFile(path.join(dir, 'tokenizer_config.json'), 'nope');
    await expect(Tokenizer.load(dir)).rejects.toThrow(/tokenizer_config\.json: not valid JSON/);
    await fs.writeFile(path.join(dir, 'tokenizer_config.json'), '[]');
    await expect(Tokenizer.load(dir)).rejects.toThrow(/tokenizer_config\.json: expected a JSON object, got an array/);
    await fs.writeFile(path.join(dir, 'tokenizer_config.json'), '{}');
    await fs.writeFile(path.join(dir, 'special_tokens_map.json'), '{');
    await expect(Tokenizer.load(dir)).rejects.toThrow(/special_tokens_map\.json: not valid JSON/);
    await fs.rm(path.join(dir, 'special_tokens_map.json'));
    expect((await Tokenizer.load(dir)).encode('a')).toEqual([1]);
    expect(() => Tokenizer.fromJSON({ model: 3 })).toThrow(TokenizerError);
  });

  it('travels inside a checkpoint via saveModel files', async () => {
    const tok = Tokenizer.fromJSON(wordLevelTokenizerJSON(['a', 'b', 'c'], ['<eos>']), { tokenizerConfig: { eos_token: '<eos>' } });
    const model = await Model.create({ vocabSize: tok.vocabSize, maxSeqLen: 8, numLayers: 1, numHeads: 2, channels: 16 }, { seed: 1 });
    const dir = path.join(root, 'ckpt');
    await saveModel(model, dir, { files: tok.files(), config: { eos_token_id: tok.eosId } });
    model.dispose();
    const back = await Tokenizer.load(dir);
    expect(back.eosId).toBe(tok.eosId);
    const m2 = await loadModel(dir);
    assertTokenizerFitsModel(back, m2.config);
    m2.dispose();
  });
});

describe('vocabularyDifference', () => {
  it('is undefined for the same vocabulary and names the first id that differs otherwise', () => {
    const make = (words: string[], source: string) => Tokenizer.fromJSON(wordLevelTokenizerJSON(words, ['<pad>']), {}, source);
    expect(vocabularyDifference(make(['a', 'b', 'c'], 'x'), make(['a', 'b', 'c'], 'y'))).toBeUndefined();
    // <pad> and <unk> are ids 0 and 1, so "b" is id 3
    expect(vocabularyDifference(make(['a', 'b', 'c'], 'x'), make(['a', 'c', 'b'], 'y'))).toBe('token id 3 is "b" in x but "c" in y');
    expect(vocabularyDifference(make(['a', 'b'], 'x'), make(['a', 'b', 'c'], 'y'))).toBe('x has 4 token ids but y has 5');
  });
});

describe('assertTokenizerFitsModel', () => {
  it('accepts a model vocabulary at least as large, and names both numbers otherwise', () => {
    const tok = gpt2Tokenizer();
    expect(() => assertTokenizerFitsModel(tok, { vocabSize: 50257 })).not.toThrow();
    expect(() => assertTokenizerFitsModel(tok, { vocabSize: 50304 })).not.toThrow();
    expect(() => assertTokenizerFitsModel(tok, { vocabSize: 1000 })).toThrow(/50257 token ids but the model's vocabulary has only 1000/);
  });
});
