// Seeded tokenizer folders (tokenizer.json as WordLevel, BPE or Unigram, with tokenizer_config.json)
// and their mutations: vocabulary ids, merges, added tokens, special tokens, the files' JSON.
import { wordLevelTokenizerJSON, type Random } from '@s2s/core';

import type { Expect, FuzzCase } from './types.js';

const LETTERS = 'abcdefghij';

function word(rng: Random): string {
  let w = '';
  for (let n = 1 + rng.int(5); n > 0; n--) w += LETTERS[rng.int(LETTERS.length)];
  return w;
}

type Json = Record<string, unknown> & { model: Record<string, unknown>; added_tokens: { id: number; content: string; special: boolean }[] };

/** A small BPE: the letters, then merges of pieces already in the vocabulary. */
function bpe(rng: Random, specials: string[]): Json {
  const vocab: Record<string, number> = {};
  const add = (t: string) => {
    if (!(t in vocab)) vocab[t] = Object.keys(vocab).length;
  };
  add('<unk>');
  for (const c of LETTERS) add(c);
  const merges: string[] = [];
  for (let k = 0; k < 12 + rng.int(20); k++) {
    const pieces = Object.keys(vocab).filter((p) => p !== '<unk>');
    const a = rng.pick(pieces);
    const b = rng.pick(pieces);
    if (a + b in vocab || (a + b).length > 6) continue;
    merges.push(`${a} ${b}`);
    add(a + b);
  }
  for (const s of specials) add(s);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((s) => ({ id: vocab[s], content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: null,
    decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}

/** A small Unigram: [piece, score] pairs, ids by position. */
function unigram(rng: Random, specials: string[]): Json {
  const pieces = ['<unk>', ...specials, ...LETTERS];
  for (let k = 0; k < 20; k++) {
    const w = word(rng);
    if (!pieces.includes(w)) pieces.push(w);
  }
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((s) => ({ id: pieces.indexOf(s), content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: null,
    decoder: null,
    model: { type: 'Unigram', unk_id: 0, vocab: pieces.map((p, i) => [p, i === 0 ? 0 : -Math.log(2 + i + rng.next())]), byte_fallback: false },
  };
}

export function tokenizerCase(rng: Random, index: number): FuzzCase {
  const specials = ['<s>', '</s>', '<pad>'];
  const type = rng.pick(['WordLevel', 'WordLevel', 'BPE', 'BPE', 'Unigram']);
  let json: Json;
  if (type === 'WordLevel') {
    const words = [...new Set(Array.from({ length: 10 + rng.int(30) }, () => word(rng)))];
    json = wordLevelTokenizerJSON(words, specials, { unkToken: rng.chance(0.8) ? '<unk>' : null }) as Json;
  } else json = type === 'BPE' ? bpe(rng, specials) : unigram(rng, specials);
  const config: Record<string, unknown> = { tokenizer_class: 'PreTrainedTokenizerFast', bos_token: '<s>', eos_token: '</s>', pad_token: '<pad>', clean_up_tokenization_spaces: false };
  const texts = [Array.from({ length: 6 }, () => word(rng)).join(' '), `${word(rng)} </s> ${word(rng)}`, 'xyz', 'a'];
  const file = 'tokenizer.json';
  const cfgFile = 'tokenizer_config.json';
  const files: Record<string, Uint8Array | string> = {};
  let expect: Expect = 'must-refuse';
  let mustName: string[][] = [[file]];
  let mutation: string;
  let note: string;
  let text: string | Uint8Array | undefined;
  let cfgText: string | undefined;
  const model = json.model;
  // tokens of an object vocabulary (WordLevel, BPE)
  const tokens = Array.isArray(model.vocab) ? [] : Object.keys(model.vocab as object);
  const ops = ['none', 'id', 'id', 'id', 'duplicate', 'vocab', 'added', 'added', 'special', 'config', 'file', 'file', 'model', 'deep'];
  if (type === 'BPE') ops.push('merges', 'merges', 'merges');
  if (type === 'Unigram') ops.push('pieces', 'pieces');
  const op = rng.pick(ops);
  mutation = op;
  const vocab = model.vocab as Record<string, unknown>;
  switch (op) {
    case 'none':
      expect = 'must-accept';
      note = `a valid ${type} tokenizer`;
      break;
    case 'id': {
      if (tokens.length === 0) return tokenizerCase(rng, index);
      const t = rng.pick(tokens);
      const v = rng.pick(['-1', '-5', '1.5', '"7"', 'null', 'true', '9007199254740993', '1e999', '[3]', 'NaN', 'GAP']);
      mutation = `id-${v}`;
      mustName = [[file], [t]];
      if (v === 'GAP') {
        // an id past the others: a gap, which the Rust crate allows too
        const max = Math.max(...(Object.values(vocab) as number[]));
        vocab[t] = max + 10;
        for (const a of json.added_tokens) if (a.content === t) a.id = max + 10;
        expect = 'may-accept';
      } else {
        vocab[t] = '@@raw@@';
        text = JSON.stringify(json).replace('"@@raw@@"', v);
        if (v === 'NaN') mustName = [[file]];
      }
      note = `model.vocab[${JSON.stringify(t)}] -> ${v}`;
      break;
    }
    case 'duplicate': {
      if (tokens.length < 2) return tokenizerCase(rng, index);
      const [a, b] = rng.shuffle(tokens).slice(0, 2);
      vocab[a] = vocab[b];
      mustName = [[file], [a, b]];
      note = `model.vocab: ${JSON.stringify(a)} given the id of ${JSON.stringify(b)}`;
      break;
    }
    case 'vocab': {
      const v = rng.pick([{}, [], 'x', 5, null, 'MISSING']);
      if (v === 'MISSING') delete model.vocab;
      else model.vocab = v;
      mustName = [[file], ['vocab']];
      note = `model.vocab -> ${JSON.stringify(v)}`;
      break;
    }
    case 'merges': {
      const merges = model.merges as unknown[];
      const i = rng.int(merges.length);
      const how = rng.pick(['unknown', 'arity', 'type', 'not-list', 'duplicate', 'reorder', 'pair-form']);
      mutation = `merges-${how}`;
      mustName = [[file], [`merges[${i}]`]];
      if (how === 'unknown') merges[i] = `${merges[i]}`.replace(/^\S+/, 'zzz');
      else if (how === 'arity') merges[i] = rng.pick(['a b c', 'a', '', ['a'], ['a', 'b', 'c']]);
      else if (how === 'type') merges[i] = rng.pick([5, null, ['a', 5], { a: 'b' }]);
      else if (how === 'not-list') {
        model.merges = rng.pick(['a b', 5, { 0: 'a b' }]);
        mustName = [[file], ['merges']];
      } else if (how === 'duplicate') {
        merges.push(merges[i]);
        expect = 'may-accept';
      } else if (how === 'reorder') {
        model.merges = rng.shuffle(merges);
        expect = 'may-accept';
      } else {
        // the newer ["a", "b"] form
        model.merges = merges.map((m) => `${m}`.split(' '));
        expect = 'may-accept';
      }
      note = `merges ${how} at ${i}: ${JSON.stringify((model.merges as unknown[])[i] ?? model.merges)}`;
      break;
    }
    case 'pieces': {
      const pieces = model.vocab as [string, number][];
      const i = 1 + rng.int(pieces.length - 1);
      const how = rng.pick(['duplicate', 'score', 'shape']);
      mutation = `pieces-${how}`;
      if (how === 'duplicate') {
        const j = rng.int(pieces.length);
        if (j === i) return tokenizerCase(rng, index);
        pieces[i] = [pieces[j][0], pieces[i][1]];
        mustName = [[file], [JSON.stringify(pieces[j][0])]];
      } else {
        pieces[i] = (how === 'score' ? [pieces[i][0], rng.pick(['x', null, '@@raw@@'])] : rng.pick<unknown>([[pieces[i][0]], pieces[i][0], [1, 2]])) as [string, number];
        mustName = [[file], [`vocab[${i}]`]];
        if (JSON.stringify(json).includes('@@raw@@')) text = JSON.stringify(json).replace('"@@raw@@"', '1e999');
      }
      note = `Unigram piece ${i} ${how}: ${JSON.stringify(pieces[i])}`;
      break;
    }
    case 'added': {
      const a = rng.pick(json.added_tokens);
      const how = rng.pick(['id-mismatch', 'dup-content', 'bad-id', 'bad-content', 'not-array', 'new', 'not-special', 'empty']);
      mutation = `added-${how}`;
      mustName = [[file], [a.content]];
      if (how === 'id-mismatch') a.id = (a.id + 1) % 5;
      else if (how === 'dup-content') json.added_tokens.push({ ...a, id: a.id + 1000 });
      else if (how === 'bad-id') {
        (a as Record<string, unknown>).id = rng.pick([-1, '3', 1.5, null, undefined]);
        mustName = [[file], ['added_tokens']];
      } else if (how === 'bad-content') {
        (a as Record<string, unknown>).content = rng.pick([5, null, undefined, ['x']]);
        mustName = [[file], ['added_tokens']];
      } else if (how === 'not-array') {
        (json as Record<string, unknown>).added_tokens = rng.pick([{}, 'x', 5]);
        mustName = [[file], ['added_tokens']];
      } else if (how === 'new') {
        const max = Math.max(...json.added_tokens.map((t) => t.id), ...(Array.isArray(model.vocab) ? [(model.vocab as unknown[]).length - 1] : (Object.values(vocab) as number[])));
        json.added_tokens.push({ id: max + 1, content: '<extra>', special: true });
        expect = 'may-accept';
      } else if (how === 'not-special') {
        a.special = false;
        expect = 'may-accept';
      } else {
        (json as Record<string, unknown>).added_tokens = [];
        expect = 'may-accept';
      }
      note = `added_tokens ${how} (${JSON.stringify(a.content)})`;
      break;
    }
    case 'special': {
      const k = rng.pick(['bos_token', 'eos_token', 'pad_token', 'unk_token']);
      const v = rng.pick([5, [], { content: 5 }, '<nope>', { content: '</s>' }, null, '', true]);
      config[k] = v;
      const ok = v === null || (typeof v === 'object' && !Array.isArray(v) && v.content === '</s>');
      expect = ok ? 'may-accept' : 'must-refuse';
      mustName = [[cfgFile, file, 'tokenizer'], [k]];
      note = `${cfgFile} ${k} -> ${JSON.stringify(v)}`;
      break;
    }
    case 'config': {
      const which = rng.pick([cfgFile, 'special_tokens_map.json']);
      const v = rng.pick(['[]', '5', '"x"', 'null', '{"eos_token": "</s>",}', '{"eos_token": "</s>"', '{"unknown_key": [1, {"a": null}]}', '']);
      if (which === cfgFile) cfgText = v;
      else files[which] = v;
      expect = v.startsWith('{"unknown') ? 'may-accept' : 'must-refuse';
      mustName = [[which]];
      note = `${which} -> ${v}`;
      break;
    }
    case 'file': {
      const good = JSON.stringify(json, null, 2) + '\n';
      const how = rng.pick(['truncate', 'byte-flip', 'missing', 'empty', 'bom', 'invalid-utf8']);
      mutation = `file-${how}`;
      if (how === 'truncate') text = good.slice(0, rng.int(good.length - 2));
      else if (how === 'byte-flip') {
        const b = Buffer.from(good);
        b[rng.int(b.length)] ^= 1 << rng.int(8);
        text = b;
        expect = 'may-accept';
      } else if (how === 'missing') text = 'MISSING';
      else if (how === 'empty') text = '';
      else if (how === 'bom') {
        text = '\uFEFF' + good;
        expect = 'may-accept';
      } else {
        const b = Buffer.from(good);
        const at = good.indexOf('"content"') + 12;
        text = Buffer.concat([b.subarray(0, at), Buffer.from([0xc3, 0x28]), b.subarray(at)]);
        expect = 'may-accept';
      }
      note = `tokenizer.json ${how}`;
      break;
    }
    case 'model': {
      const v = rng.pick(['Foo', 5, null, 'MISSING', 'WordPiece']);
      if (v === 'MISSING') delete (json as Record<string, unknown>).model;
      else model.type = v;
      // WordPiece reads the same vocabulary; BPE without merges is refused by the crate too
      expect = v === 'WordPiece' ? 'may-accept' : 'must-refuse';
      mustName = [[file]];
      note = `model.type -> ${JSON.stringify(v)}`;
      break;
    }
    case 'deep': {
      const depth = rng.pick([50, 129, 10_000, 1_000_000]);
      const where = rng.pick(['unknown-key', 'normalizer']);
      const deep = where === 'normalizer' ? nestedNormalizer(Math.min(depth, 20_000)) : '['.repeat(depth) + ']'.repeat(depth);
      (json as Record<string, unknown>)[where === 'normalizer' ? 'normalizer' : 'extra'] = '@@raw@@';
      text = JSON.stringify(json).replace('"@@raw@@"', deep);
      expect = 'may-accept';
      note = `${where} nested ${depth} deep`;
      break;
    }
    default:
      throw new Error(op);
  }
  if (text !== 'MISSING') files[file] = text ?? JSON.stringify(json, null, 2) + '\n';
  files[cfgFile] = cfgText ?? JSON.stringify(config, null, 2) + '\n';
  return { index, kind: 'tokenizer', mutation, expect, mustName, note, files, load: { op: 'tokenizer', dir: '.', texts } };
}

/** A Sequence normalizer holding a Sequence ... `depth` deep (text, without recursion). */
function nestedNormalizer(depth: number): string {
  return '{"type":"Sequence","normalizers":['.repeat(depth) + '{"type":"Lowercase"}' + ']}'.repeat(depth);
}
