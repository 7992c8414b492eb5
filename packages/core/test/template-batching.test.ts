// Template and batching: prompt masking, rewrite alignment, the length rule and its counts, collate's
// targets through a real Model, and the sampler's determinism and exact resume.
import { describe, expect, it } from 'vitest';
import {
  BatchSampler,
  collate,
  DEFAULT_TEMPLATE,
  describeLengthReport,
  encodePrompt,
  encodeResponse,
  encodeRewrite,
  encodeSupervised,
  gpt2Tokenizer,
  lengthReport,
  Model,
  mulberry32,
  permutation,
  resolveTemplate,
  shuffled,
  templateFiles,
  templateWords,
  Tokenizer,
  wordLevelTokenizerJSON,
  type EncodedExample,
  type Template,
} from '../src/index.js';

const WORDS = ['what', 'is', 'the', 'capital', 'of', 'france', 'paris', 'london', 'it', 'a', 'city', '?', '.'];
const tpl: Template = resolveTemplate({ promptPrefix: 'Question:', addBos: true });
const tok = Tokenizer.fromJSON(wordLevelTokenizerJSON([...WORDS, ...templateWords(tpl)], ['<pad>', '<bos>', '<eos>']), {
  tokenizerConfig: { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>' },
});
const [PAD, BOS, EOS] = [0, 1, 2];
const ones = (ex: EncodedExample) => ex.lossMask.flatMap((m, t) => (m ? [t] : []));
const span = (ex: EncodedExample, s: [number, number]) => ex.ids.slice(s[0], s[1]);

describe('template', () => {
  it('has documented defaults and checks its fields', () => {
    expect(DEFAULT_TEMPLATE).toEqual({ promptPrefix: '', responsePrefix: '\n\nResponse:', rewritePrefix: '\n\nRewrite:', addBos: false, addEos: true });
    expect(() => resolveTemplate({ addEos: 'yes' as never })).toThrow(/template\.addEos must be a boolean/);
    expect(templateWords(tpl)).toEqual(['Question:', 'Response:', 'Rewrite:']);
  });

  it('encodes the policy query as BOS, prefix, prompt, response prefix', () => {
    const q = encodePrompt(tok, tpl, 'what is the capital of france ?')!;
    expect(q).toEqual([BOS, tok.tokenToId('Question:'), ...tok.encode('what is the capital of france ?'), tok.tokenToId('Response:')]);
  });

  it('masks everything but the completion and its EOS in supervised examples', () => {
    const prompt = 'what is the capital of france ?';
    const ex = encodeSupervised(tok, tpl, prompt, 'paris .')!;
    const query = encodePrompt(tok, tpl, prompt)!;
    expect(ex.ids).toEqual([...query, ...tok.encode('paris .'), EOS]);
    expect(ones(ex)).toEqual([query.length, query.length + 1, query.length + 2]);
    expect(ex.targetSpan).toEqual([query.length, query.length + 3]);
    expect(span(ex, ex.promptSpan)).toEqual(tok.encode(prompt));
    expect(ex.promptTokensDropped).toBe(0);
    // Without EOS: only the completion carries loss.
    const noEos = encodeSupervised(tok, { ...tpl, addEos: false }, prompt, 'paris .')!;
    expect(ones(noEos)).toEqual([query.length, query.length + 1]);
    // A template that needs a special token the tokenizer lacks says so.
    const bare = Tokenizer.fromJSON(wordLevelTokenizerJSON(WORDS, []), {}, 'bare');
    expect(() => encodeSupervised(bare, { ...DEFAULT_TEMPLATE, responsePrefix: '' }, 'paris', 'paris')).toThrow(/template\.addEos is set but the tokenizer \(bare\) has no eos_token/);
  });

  it("lays out a rewrite so the response's ids appear verbatim and loss covers exactly target + EOS", () => {
    const prompt = 'what is the capital of france ?';
    const rejected = tok.encode('london .');
    const chosen = tok.encode('paris it is a city .');
    const ex = encodeRewrite(tok, tpl, prompt, rejected, chosen)!;
    const query = encodePrompt(tok, tpl, prompt)!;
    expect(ex.ids).toEqual([...query, ...rejected, EOS, tok.tokenToId('Rewrite:'), ...chosen, EOS]);
    expect(span(ex, ex.sourceSpan!)).toEqual([...rejected, EOS]);
    expect(span(ex, ex.targetSpan)).toEqual([...chosen, EOS]);
    expect(ones(ex)).toEqual(Array.from({ length: chosen.length + 1 }, (_, i) => ex.targetSpan[0] + i));

    // Reward extraction's teacher-forced pass with GPT-2 BPE: a policy response (ids, ending in EOS
    // as generate returns it) sits at the target positions exactly, with no second EOS.
    const g = gpt2Tokenizer();
    const y = [...g.encode(' Paris, of course! 🇫🇷'), g.eosId!];
    const gx = encodeRewrite(g, DEFAULT_TEMPLATE, 'What is the capital of France?', y, y)!;
    expect(span(gx, gx.targetSpan)).toEqual(y);
    expect(span(gx, gx.sourceSpan!)).toEqual(y);
    expect(gx.lossMask.reduce((a, b) => a + b, 0)).toBe(y.length);
    // The supervised example of the same text puts the same ids after the same query.
    const sft = encodeSupervised(g, DEFAULT_TEMPLATE, 'What is the capital of France?', ' Paris, of course! 🇫🇷')!;
    expect(span(sft, sft.targetSpan)).toEqual(y);
    expect(sft.ids.slice(0, sft.targetSpan[0])).toEqual(encodePrompt(g, DEFAULT_TEMPLATE, 'What is the capital of France?'));
    expect(() => encodeRewrite(g, DEFAULT_TEMPLATE, 'p', [50257], y)).toThrow(/responseIds: token id 50257 is outside the vocabulary/);
  });

  it('truncates the prompt from the left, keeps responses whole, skips what cannot fit, and counts it all', () => {
    const prompt = 'what is the capital of france ?'; // 7 tokens
    const report = lengthReport();
    const full = encodeSupervised(tok, tpl, prompt, 'paris .')!; // 1 + 1 + 7 + 1 + 2 + 1 = 13
    expect(full.ids).toHaveLength(13);

    const fits = encodeSupervised(tok, tpl, prompt, 'paris .', { maxLength: 13, report })!;
    expect(fits.ids).toEqual(full.ids);

    const cut = encodeSupervised(tok, tpl, prompt, 'paris .', { maxLength: 10, report, at: 'f.jsonl:4' })!;
    expect(cut.ids).toHaveLength(10);
    expect(cut.promptTokensDropped).toBe(3);
    expect(span(cut, cut.promptSpan)).toEqual(tok.encode('capital of france ?')); // the end of the prompt stays
    expect(cut.ids.slice(0, 2)).toEqual([BOS, tok.tokenToId('Question:')]);
    expect(span(cut, cut.targetSpan)).toEqual([...tok.encode('paris .'), EOS]);

    // One prompt token is the least kept; below that the example is skipped.
    expect(encodeSupervised(tok, tpl, prompt, 'paris .', { maxLength: 7, report })!.promptTokensDropped).toBe(6);
    expect(encodeSupervised(tok, tpl, prompt, 'paris .', { maxLength: 6, report })).toBeNull();
    // 'skip' leaves out anything over the limit.
    expect(encodeSupervised(tok, tpl, prompt, 'paris .', { maxLength: 12, overflow: 'skip', report })).toBeNull();

    const rw = encodeRewrite(tok, tpl, prompt, tok.encode('london'), tok.encode('paris'), { maxLength: 10, report })!;
    expect(rw.ids).toHaveLength(10);
    expect(span(rw, rw.targetSpan)).toEqual([tok.tokenToId('paris'), EOS]);
    expect(span(rw, rw.sourceSpan!)).toEqual([tok.tokenToId('london'), EOS]);
    expect(encodePrompt(tok, tpl, prompt, { maxLength: 5, report })).toEqual([BOS, tok.tokenToId('Question:'), ...tok.encode('france ?'), tok.tokenToId('Response:')]);

    // the first five cut examples are named: by file and line where the caller says, else by count
    const places = ['f.jsonl:4 (truncated by 3 tokens)', 'example 3 (truncated by 6 tokens)', 'example 4 (skipped, 13 tokens)', 'example 5 (skipped, 13 tokens)', 'example 6 (truncated by 5 tokens)'];
    expect(report).toEqual({ examples: 7, truncated: 4, skipped: 2, promptTokensDropped: 3 + 6 + 5 + 5, places });
    expect(describeLengthReport(report, 10)).toBe(`7 examples (maxLength 10): 4 truncated (19 prompt tokens dropped), 2 skipped; first: ${places.join(', ')}, ...`);
  });
});

describe('special-token text in the data (specialTokensInText)', () => {
  const g = gpt2Tokenizer();
  const EOT = 50256;
  const plain = resolveTemplate({});
  const prompt = 'Say <|endoftext|> please';
  const promptOf = (e: EncodedExample) => span(e, e.promptSpan);

  it("'literal' encodes its characters, in the prompt and the completion, from the call's option or the template; 'encode' (default) the control token", () => {
    const encoded = encodeSupervised(g, plain, prompt, 'ok')!;
    expect(promptOf(encoded)).toContain(EOT);
    expect(encodeSupervised(g, plain, prompt, 'ok', { specialTokensInText: 'encode' })).toEqual(encoded);
    const e = encodeSupervised(g, plain, prompt, 'a <|endoftext|> b', { specialTokensInText: 'literal' })!;
    expect(promptOf(e)).toEqual(g.encode(prompt, { specialTokensInText: 'literal' }));
    expect(promptOf(e)).not.toContain(EOT);
    // the completion's only EOS is the one the template adds
    expect(span(e, e.targetSpan).filter((id) => id === EOT)).toEqual([EOT]);
    expect(g.decode(span(e, e.targetSpan))).toBe('a <|endoftext|> b<|endoftext|>');
    const viaTemplate = resolveTemplate({ specialTokensInText: 'literal' });
    expect(encodeSupervised(g, viaTemplate, prompt, 'a <|endoftext|> b')).toEqual(e);
    expect(encodePrompt(g, viaTemplate, prompt)).toEqual(encodePrompt(g, plain, prompt, { specialTokensInText: 'literal' }));
    expect(encodePrompt(g, viaTemplate, prompt)).not.toContain(EOT);
    expect(encodeResponse(g, viaTemplate, 'p', 'x<|endoftext|>')).toEqual([...g.encode('x<|endoftext|>', { specialTokensInText: 'literal' }), EOT]);
    const r = encodeRewrite(g, viaTemplate, prompt, [1, 2], [3])!;
    expect(promptOf(r)).not.toContain(EOT);
    // the call's option wins over the template's
    expect(promptOf(encodeSupervised(g, viaTemplate, prompt, 'ok', { specialTokensInText: 'encode' })!)).toContain(EOT);
  });

  it("'error' refuses it, naming the place and the field; the template's own markup is not data", () => {
    const opts = { specialTokensInText: 'error' as const, at: 'data.jsonl:7' };
    expect(() => encodeSupervised(g, plain, prompt, 'ok', opts)).toThrow(/^data\.jsonl:7: encodeSupervised: the prompt contains the special token "<\|endoftext\|>" of the tokenizer \(gpt2\)/);
    expect(() => encodeSupervised(g, plain, 'hi', 'x<|endoftext|>', opts)).toThrow(/data\.jsonl:7: encodeSupervised: the completion contains the special token/);
    expect(() => encodePrompt(g, plain, prompt, opts)).toThrow(/encodePrompt: the prompt contains/);
    expect(() => encodeRewrite(g, plain, prompt, [1], [2], opts)).toThrow(/encodeRewrite: the prompt contains/);
    expect(() => encodeResponse(g, plain, 'p', 'x<|endoftext|>', opts)).toThrow(/encodeResponse: the completion contains/);
    // markup: a prefix holding the special token is encoded as it is, under every policy
    const marked = resolveTemplate({ promptPrefix: '<|endoftext|>', specialTokensInText: 'error' });
    expect(encodePrompt(g, marked, 'hi')![0]).toBe(EOT);
  });

  it('is a run setting: checked, and not saved with the template', () => {
    expect(() => resolveTemplate({ specialTokensInText: 'sometimes' as never })).toThrow(/template\.specialTokensInText must be one of encode, literal, error/);
    const t = resolveTemplate({ specialTokensInText: 'literal' });
    expect(templateFiles(t)).toEqual(templateFiles(plain));
    expect(resolveTemplate({})).not.toHaveProperty('specialTokensInText');
  });

  it('word-level: "<eos>" in the data is <unk> under literal', () => {
    const t = resolveTemplate({ promptPrefix: 'Question:', addBos: true });
    const e = encodeSupervised(tok, t, 'what is <eos>', 'paris', { specialTokensInText: 'literal' })!;
    expect(promptOf(e)).toEqual([tok.tokenToId('what'), tok.tokenToId('is'), tok.unkId]);
    expect(promptOf(encodeSupervised(tok, t, 'what is <eos>', 'paris')!)).toEqual([tok.tokenToId('what'), tok.tokenToId('is'), EOS]);
  });
});

describe('collate', () => {
  const a = encodeSupervised(tok, tpl, 'what is the capital of france ?', 'paris .')!;
  const b = encodeSupervised(tok, tpl, 'capital of france ?', 'paris')!;

  it('right-pads and sets targets to the next token inside the loss, -1 elsewhere', () => {
    const batch = collate([a, b], PAD);
    const T = a.ids.length;
    expect([batch.B, batch.T, batch.lengths]).toEqual([2, T, [a.ids.length, b.ids.length]]);
    expect(batch.tokens).toHaveLength(2 * T);
    expect(Array.from(batch.tokens.subarray(T, T + b.ids.length))).toEqual(b.ids);
    expect(Array.from(batch.tokens.subarray(T + b.ids.length, 2 * T))).toEqual(new Array(T - b.ids.length).fill(PAD));
    for (const [row, ex] of [a, b].entries()) {
      for (let t = 0; t < T; t++) {
        const trained = t + 1 < ex.ids.length && ex.lossMask[t + 1] === 1;
        expect(batch.targets[row * T + t]).toBe(trained ? ex.ids[t + 1] : -1);
        expect(batch.lossMask[row * T + t]).toBe(trained ? 1 : 0);
        expect(batch.attentionMask[row * T + t]).toBe(t < ex.ids.length ? 1 : 0);
      }
    }
    // Row b's targets: predict "paris" and EOS from the positions before them.
    const bt = Array.from(batch.targets.subarray(T, 2 * T));
    const s = b.targetSpan[0];
    expect(bt.filter((x) => x !== -1)).toEqual([tok.tokenToId('paris'), EOS]);
    expect(bt.indexOf(tok.tokenToId('paris')!)).toBe(s - 1);
    expect(collate([b], PAD, { padTo: 20 }).T).toBe(20);
    expect(() => collate([a], PAD, { padTo: 3 })).toThrow(/more than padTo 3/);
    expect(() => collate([], PAD)).toThrow(/no examples/);
  });

  it('gives log-prob 0 exactly at target -1 and finite negative values elsewhere in a real Model', async () => {
    const rw = encodeRewrite(tok, tpl, 'what is the capital of france ?', tok.encode('london .'), tok.encode('paris .'))!;
    const batch = collate([a, b, rw], PAD);
    const model = await Model.create({ vocabSize: tok.vocabSize, maxSeqLen: batch.T, numLayers: 1, numHeads: 2, channels: 16 }, { seed: 1 });
    try {
      const { logprob } = await model.forward(batch);
      let counted = 0;
      for (let i = 0; i < logprob.length; i++) {
        if (batch.targets[i] === -1) expect(Object.is(logprob[i], 0) || logprob[i] === 0).toBe(true);
        else {
          expect(Number.isFinite(logprob[i]) && logprob[i] < 0).toBe(true);
          counted++;
        }
      }
      expect(counted).toBe(batch.lossMask.reduce((x, y) => x + y, 0));
      expect(counted).toBe([a, b, rw].reduce((n, e) => n + e.targetSpan[1] - e.targetSpan[0], 0));
    } finally {
      model.dispose();
    }
  });
});

describe('seeded shuffling and the batch sampler', () => {
  it('is deterministic: the same seed gives the same order on every run', () => {
    // Pinned values: a change here would change the batches of every resumed run.
    const r = mulberry32(1);
    expect([r(), r(), r()].map((x) => Math.round(x * 1e9))).toEqual([627073941, 2735721, 527447040]);
    expect(permutation(10, 42)).toEqual(permutation(10, 42));
    expect(permutation(10, 42)).not.toEqual(permutation(10, 43));
    expect([...permutation(100, 7)].sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(shuffled(['a', 'b', 'c', 'd'], 3)).toEqual(permutation(4, 3).map((i) => 'abcd'[i]));
    expect(() => mulberry32(-1)).toThrow(/seed must be an integer/);
  });

  it('covers every example once per epoch, in a new order each epoch', () => {
    const s = new BatchSampler(10, { batchSize: 4, seed: 5 });
    expect(s.batchesPerEpoch).toBe(3);
    const epochs: number[][] = [[], []];
    for (let i = 0; i < 6; i++) {
      const b = s.next();
      expect([b.epoch, b.index]).toEqual([Math.floor(i / 3), i % 3]);
      expect(b.indices).toHaveLength(i % 3 === 2 ? 2 : 4);
      epochs[b.epoch].push(...b.indices);
    }
    for (const e of epochs) expect([...e].sort((x, y) => x - y)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    expect(epochs[0]).not.toEqual(epochs[1]);
    expect(new BatchSampler(10, { batchSize: 4, dropLast: true }).batchesPerEpoch).toBe(2);
    expect(new BatchSampler(3, { batchSize: 2, shuffle: false }).next().indices).toEqual([0, 1]);
  });

  it('resumes from a saved state with exactly the same batches', () => {
    const opts = { batchSize: 3, seed: 1234 };
    const straight = new BatchSampler(11, opts);
    const reference = Array.from({ length: 20 }, () => straight.next());

    const first = new BatchSampler(11, opts);
    for (let i = 0; i < 9; i++) first.next(); // stop mid-epoch 2
    const saved = JSON.parse(JSON.stringify(first.state()));
    expect(saved).toEqual({ size: 11, batchSize: 3, seed: 1234, shuffle: true, dropLast: false, epoch: 2, index: 1 });

    const resumed = new BatchSampler(11, opts);
    resumed.restore(saved);
    expect(Array.from({ length: 11 }, () => resumed.next())).toEqual(reference.slice(9));
    const fromState = BatchSampler.fromState(saved);
    expect(fromState.next()).toEqual(reference[9]);

    // At an epoch boundary too.
    const atEnd = new BatchSampler(11, opts);
    for (let i = 0; i < 4; i++) atEnd.next();
    expect(BatchSampler.fromState(atEnd.state()).next()).toEqual(reference[4]);

    expect(() => new BatchSampler(12, opts).restore(saved)).toThrow(/saved size is 11 but this sampler's is 12/);
    expect(() => new BatchSampler(11, { ...opts, seed: 1 }).restore(saved)).toThrow(/saved seed is 1234/);
    expect(() => new BatchSampler(11, opts).restore({ ...saved, index: 9 })).toThrow(/index must be an integer in \[0, 4\]/);
  });
});

describe('the template file beside a checkpoint', () => {
  it('round-trips, and a malformed one is an error naming the file', async () => {
    const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const { TEMPLATE_FILE, loadTemplate, resolveTemplate, templateFiles } = await import('@s2s/core');
    const dir = await mkdtemp(path.join(tmpdir(), 's2s-tpl-'));
    expect(await loadTemplate(dir)).toBeUndefined();
    const tpl = resolveTemplate({ responsePrefix: ' <sep>', addBos: true });
    await writeFile(path.join(dir, TEMPLATE_FILE), templateFiles(tpl)[TEMPLATE_FILE]);
    expect(await loadTemplate(dir)).toEqual(tpl);
    await writeFile(path.join(dir, TEMPLATE_FILE), '{"responsePrefix": 3}');
    await expect(loadTemplate(dir)).rejects.toThrow(`${TEMPLATE_FILE}: template.responsePrefix must be a string`);
    await writeFile(path.join(dir, TEMPLATE_FILE), '{"respons": "x"}');
    await expect(loadTemplate(dir)).rejects.toThrow('unknown template field "respons"');
    await rm(dir, { recursive: true });
  });
});
