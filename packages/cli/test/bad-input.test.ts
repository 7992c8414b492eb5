// Bad input to every subcommand: a non-zero exit status, a message that names the file, line, key
// or flag at fault, no stack trace, and no output written (the output absent or unchanged).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Tokenizer, cudaStatus, wordLevelTokenizerJSON } from '@s2s/core';

import { type CliRun, type Fixtures, TINY, buildFixtures, s2s, snapshot, swappedTokenizer } from './cli-harness.js';

const root = mkdtempSync(path.join(tmpdir(), 's2s-cli-bad-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let f: Fixtures;
let pairs: string;
let sftData: string;
let sftModel: string;
const file = (name: string, text: string) => {
  const p = path.join(root, name);
  writeFileSync(p, text);
  return p;
};
const fresh = (name: string) => path.join(root, 'out', name);

beforeAll(async () => {
  f = await buildFixtures(path.join(root, 'run'));
  pairs = path.join(f.data, 'pairs.jsonl');
  sftData = path.join(f.data, 'sft.jsonl');
  sftModel = path.join(f.sft, 'final');
});

/** Fails with `code`, says `message` after "s2s: ", shows no stack, and leaves `outputs` as they were. */
async function expectFailure(args: string[], code: number, message: string | RegExp, outputs: string[] = []): Promise<CliRun> {
  const before = outputs.map(snapshot);
  const r = await s2s(args);
  expect(r.code, r.err).toBe(code);
  expect(r.err).toMatch(/^s2s: /m);
  if (typeof message === 'string') expect(r.err).toContain(message);
  else expect(r.err).toMatch(message);
  expect(r.err).not.toMatch(/\n\s+at .+:\d+:\d+/);
  expect(outputs.map(snapshot)).toEqual(before);
  return r;
}

describe('the command line itself', () => {
  it('refuses unknown commands and subcommands, and unknown flags, naming them (exit 2)', async () => {
    await expectFailure(['frobnicate'], 2, 'unknown command "frobnicate"');
    await expectFailure(['rm', 'frobnicate'], 2, 'unknown command "rm frobnicate"');
    await expectFailure(['sft', '--data', sftData, '--out', fresh('x'), '--lerning-rate', '1'], 2, "'--lerning-rate'", [fresh('x')]);
    await expectFailure(['rm', 'score', '--model', f.scalar, '--data', sftData, '--out', fresh('s.jsonl'), 'extra'], 2, 'unexpected argument "extra"');
    const r = await s2s(['rm']);
    expect(r.code).toBe(2);
    expect(r.out).toContain('s2s rm <train|score|explain>');
  });

  it('checks values against each option: integers, ranges, choices', async () => {
    await expectFailure(['sft', '--data', sftData, '--out', fresh('x'), '--batch-size', '0'], 2, '--batch-size must be a positive integer, got "0"', [fresh('x')]);
    await expectFailure(['sft', '--data', sftData, '--out', fresh('x'), '--eval-split', '1.5'], 2, '--eval-split must be a number in [0, 1), got "1.5"');
    await expectFailure(['sft', '--data', sftData, '--out', fresh('x'), '--overflow', 'wrap'], 2, '--overflow must be one of truncate, skip, got "wrap"');
    await expectFailure(['sft', '--data', sftData], 2, '--out DIR is required');
  });

  it('refuses a malformed --config: bad JSON, unknown keys, wrong types, a missing file -- naming the file and key', async () => {
    const out = fresh('config');
    const base = ['sft', '--data', sftData, '--out', out, '--config'];
    const badJson = file('bad.json', '{"lr": 0.1,');
    await expectFailure([...base, badJson], 2, new RegExp(`${badJson}: not valid JSON`), [out]);
    const unknown = file('unknown.json', '{"lr": 0.1, "learningRate": 0.2}');
    await expectFailure([...base, unknown], 2, `${unknown}: unknown key "learningRate"`, [out]);
    const wrongType = file('type.json', '{"max-steps": "ten"}');
    await expectFailure([...base, wrongType], 2, `${wrongType}: "max-steps" must be a non-negative integer, got "ten"`, [out]);
    const notObject = file('array.json', '[1, 2]');
    await expectFailure([...base, notObject], 2, `${notObject}: a config file must be a JSON object`, [out]);
    const twice = file('twice.json', '{"maxSteps": 1, "max-steps": 2}');
    await expectFailure([...base, twice], 2, `${twice}: "maxSteps" and "max-steps" are the same option`, [out]);
    await expectFailure([...base, path.join(root, 'nope.json')], 2, `config file ${path.join(root, 'nope.json')} does not exist`, [out]);
  });
});

describe('every subcommand', () => {
  // A working command line of each (the files exist), to which one fault is added at a time.
  const commands = (): Array<[string, string[], string]> => {
    const responses = file('ok-responses.jsonl', '{"prompt": "summarize : a", "response": "b"}\n');
    return [
      ['data make', ['data', 'make', '--task', 'summarize', '--sft', '4', '--out', fresh('all-data')], fresh('all-data')],
      ['sft', ['sft', '--data', sftData, '--out', fresh('all-sft')], fresh('all-sft')],
      ['rm train', ['rm', 'train', '--data', pairs, '--model', sftModel, '--out', fresh('all-rm')], fresh('all-rm')],
      ['rm train --seq2seq', ['rm', 'train', '--seq2seq', '--data', pairs, '--model', sftModel, '--out', fresh('all-s2s')], fresh('all-s2s')],
      ['rm score', ['rm', 'score', '--model', f.seq2seq + '/final', '--data', responses, '--out', fresh('all-score.jsonl')], fresh('all-score.jsonl')],
      ['rm explain', ['rm', 'explain', '--model', f.seq2seq + '/final', '--data', responses, '--html', fresh('all-explain.html')], fresh('all-explain.html')],
      ['generate', ['generate', '--model', sftModel, '--prompts', responses, '--out', fresh('all-gen.jsonl')], fresh('all-gen.jsonl')],
      ['eval', ['eval', '--task', 'summarize', '--data', responses, '--out', fresh('all-eval.jsonl')], fresh('all-eval.jsonl')],
      ['train-text', ['train-text', '--steps', '1'], fresh('all-text')],
      ['demo', ['demo', '--quick', '--out', fresh('all-demo')], fresh('all-demo')],
    ];
  };

  it('each refuses an unknown flag and a malformed --config, naming them, and writes nothing', async () => {
    const badJson = file('every-bad.json', '{"seed": 1,');
    const unknownKey = file('every-unknown.json', '{"frobnicate": 1}');
    for (const [name, args, out] of commands()) {
      const r = await expectFailure([...args, '--frobnicate'], 2, "'--frobnicate'", [out]);
      expect(r.err, name).toContain(`s2s ${name.split(' --')[0]} --help`);
      await expectFailure([...args, '--config', badJson], 2, `${badJson}: not valid JSON`, [out]);
      await expectFailure([...args, '--config', unknownKey], 2, `${unknownKey}: unknown key "frobnicate"`, [out]);
    }
  });

  it('each that runs a model refuses an unknown --device, CUDA where it cannot run, and a bad S2S_DEVICE, writing nothing', async () => {
    for (const [name, args, out] of commands()) {
      if (name === 'data make') continue; // runs no model: it takes no --device
      await expectFailure([...args, '--device', 'tpu'], 2, '--device must be one of auto, cpu, cuda, got "tpu"', [out]);
      const previous = process.env.S2S_DEVICE;
      process.env.S2S_DEVICE = 'tpu';
      try {
        await expectFailure(args, 1, `S2S_DEVICE must be 'auto', 'cpu' or 'cuda', got "tpu"`, [out]);
      } finally {
        if (previous === undefined) delete process.env.S2S_DEVICE;
        else process.env.S2S_DEVICE = previous;
      }
      // (on a machine with a usable GPU, --device cuda is no fault: test/cuda-emulated.test.ts runs it)
      if (!cudaStatus().available) await expectFailure([...args, '--device', 'cuda'], 1, `--device cuda: the CUDA backend is unavailable: ${cudaStatus().reason}`, [out]);
    }
  });

  it('each that reads a data file names the one that is missing', async () => {
    const missing = path.join(root, 'missing-input.jsonl');
    for (const [, args, out] of commands()) {
      const i = args.findIndex((a) => a === '--data' || a === '--prompts');
      if (i < 0) continue;
      const withMissing = args.map((a, k) => (k === i + 1 ? missing : a));
      await expectFailure(withMissing, 1, `${args[i]} ${missing}: no such file`, [out]);
    }
  });
});

describe('data make', () => {
  it('refuses an unknown task, and a folder holding other files (it replaces the whole folder)', async () => {
    await expectFailure(['data', 'make', '--task', 'translate', '--out', fresh('d')], 2, '--task must be one of summarize, safety, got "translate"', [fresh('d')]);
    const mine = path.join(root, 'my-project');
    mkdirSync(mine, { recursive: true });
    writeFileSync(path.join(mine, 'notes.txt'), 'keep me');
    await expectFailure(['data', 'make', '--task', 'summarize', '--out', mine, '--sft', '4'], 1, 'holds files that are not a dataset', [mine]);
    await expectFailure(['data', 'make', '--task', 'summarize', '--sft', '-3', '--out', fresh('d')], 2, "'--sft'");
  });
});

describe('sft', () => {
  it('reports a missing or malformed data file with its name and line', async () => {
    await expectFailure(['sft', '--data', path.join(root, 'missing.jsonl'), '--out', fresh('a')], 1, `--data ${path.join(root, 'missing.jsonl')}: no such file`, [fresh('a')]);
    const bad = file('bad-sft.jsonl', '{"prompt": "summarize : a", "completion": "b"}\n{"prompt": "summarize : a", "completion": 3}\n');
    await expectFailure(['sft', '--data', bad, '--tokenizer', f.data, '--out', fresh('a')], 1, `${bad}:2: field "completion" must be a string, got number`, [fresh('a')]);
    const renamed = file('renamed.jsonl', '{"question": "summarize : a", "answer": "b"}\n');
    await expectFailure(['sft', '--data', renamed, '--tokenizer', f.data, '--out', fresh('a'), '--prompt-field', 'question'], 1, `${renamed}:1: field "completion" is missing`);
  });

  it('refuses a tokenizer larger than the model, and size flags with --model', async () => {
    const big = path.join(root, 'big-tokenizer');
    const words = Array.from({ length: 400 }, (_, i) => `w${i}`);
    await Tokenizer.fromJSON(wordLevelTokenizerJSON(words, ['<pad>', '<unk>', '<bos>', '<eos>']), { tokenizerConfig: { eos_token: '<eos>', bos_token: '<bos>' } }).save(big);
    await expectFailure(['sft', '--model', sftModel, '--tokenizer', big, '--data', sftData, '--out', fresh('b')], 1, new RegExp(`the model ${sftModel} was trained with another tokenizer than ${big}: ${big} has 404 token ids but ${sftModel} has \\d+`), [fresh('b')]);
    // the same size, but two ids swapped: caught all the same, naming the first id that differs
    const swapped = swappedTokenizer(sftModel, path.join(root, 'swapped-tokenizer'));
    await expectFailure(['sft', '--model', sftModel, '--tokenizer', swapped, '--data', sftData, '--out', fresh('b')], 1, /was trained with another tokenizer than .*: token id \d+ is "[a-z]+" in .* but "[a-z]+" in /, [fresh('b')]);
    await expectFailure(['sft', '--model', sftModel, '--data', sftData, '--out', fresh('b'), '--layers', '3'], 2, '--layers sets the size of a new model', [fresh('b')]);
    await expectFailure(['sft', '--model', path.join(root, 'no-model'), '--data', sftData, '--out', fresh('b')], 1, 'config.json does not exist', [fresh('b')]);
  });

  it('refuses --resume without a checkpoint, and a second run into the same folder', async () => {
    await expectFailure(['sft', '--data', sftData, '--out', fresh('c'), '--resume'], 1, `--resume: ${fresh('c')} has no checkpoint to resume from`, [fresh('c')]);
    await expectFailure(['sft', '--data', sftData, '--out', fresh('c'), '--resume', path.join(root, 'nowhere')], 1, 'not a training checkpoint', [fresh('c')]);
    await expectFailure(['sft', '--data', sftData, '--template', 'testbed', '--out', f.sft, ...TINY], 2, `${f.sft} already holds a run`, [f.sft]);
  });

  it('refuses conflicting or impossible data options', async () => {
    await expectFailure(['sft', '--data', sftData, '--out', fresh('e'), '--eval-data', sftData, '--eval-split', '0.2'], 2, '--eval-data and --eval-split both', [fresh('e')]);
    await expectFailure(['sft', '--data', sftData, '--template', 'testbed', '--out', fresh('e'), ...TINY, '--max-length', '500'], 2, "--max-length 500 is longer than the model's context (128)", [fresh('e')]);
    await expectFailure(['sft', '--data', sftData, '--template', 'testbed', '--out', fresh('e'), ...TINY, '--max-length', '8', '--overflow', 'skip'], 1, 'no example fits in 8 tokens', [fresh('e')]);
    await expectFailure(['sft', '--data', sftData, '--template', path.join(root, 'nope.json'), '--out', fresh('e')], 2, `--template ${path.join(root, 'nope.json')}: no such file`, [fresh('e')]);
  });
});

describe('rm train', () => {
  it('refuses an empty preference file', async () => {
    const empty = file('empty.jsonl', '');
    await expectFailure(['rm', 'train', '--data', empty, '--model', sftModel, '--out', fresh('r')], 1, `${empty} has no preference pairs: the file is empty`, [fresh('r')]);
    const blank = file('blank.jsonl', '\n  \n');
    await expectFailure(['rm', 'train', '--seq2seq', '--data', blank, '--model', sftModel, '--out', fresh('r')], 1, `${blank} has no preference pairs: every line is blank`, [fresh('r')]);
  });

  it('refuses a tokenizer that does not fit the model, a missing model, and a malformed pair', async () => {
    const big = path.join(root, 'big-tokenizer');
    await expectFailure(['rm', 'train', '--data', pairs, '--model', sftModel, '--tokenizer', big, '--out', fresh('r')], 1, 'was trained with another tokenizer', [fresh('r')]);
    await expectFailure(['rm', 'train', '--data', pairs, '--out', fresh('r')], 2, '--model SFT_DIR is required', [fresh('r')]);
    const bad = file('bad-pairs.jsonl', '{"prompt": "summarize : a", "chosen": "b", "rejected": "c"}\n{"prompt": "summarize : a", "chosen": "b"}\n');
    await expectFailure(['rm', 'train', '--data', bad, '--model', sftModel, '--out', fresh('r')], 1, `${bad}:2: field "rejected" is missing`, [fresh('r')]);
    await expectFailure(['rm', 'train', '--data', pairs, '--model', sftModel, '--out', fresh('r'), '--resume'], 1, 'has no checkpoint to resume from', [fresh('r')]);
    await expectFailure(['rm', 'train', '--seq2seq', '--data', pairs, '--model', sftModel, '--out', fresh('r'), '--correction-weight', '0', '--identity-weight', '0'], 2, 'nothing to learn', [fresh('r')]);
  });

  it('warns about pairs with identical chosen and rejected, with their count and lines', async () => {
    const rows = readFileSync(pairs, 'utf8').trim().split('\n').slice(0, 8).map((l) => JSON.parse(l));
    rows[2].rejected = rows[2].chosen;
    rows[5].rejected = rows[5].chosen;
    const same = file('identical.jsonl', rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const r = await s2s(['rm', 'train', '--data', same, '--model', sftModel, '--out', fresh('identical'), '--max-steps', '1', '--batch-size', '4']);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain(`warning: 2 of 8 pairs have identical chosen and rejected responses and state no preference (first: ${same}:3, then line 6)`);
  });
});

describe('rm score', () => {
  it('refuses a model that is not a reward model, a missing file and a row without a response', async () => {
    const out = fresh('scored.jsonl');
    const responses = file('responses.jsonl', '{"prompt": "summarize : a", "response": "b"}\n');
    await expectFailure(['rm', 'score', '--model', sftModel, '--data', responses, '--out', out], 1, `${sftModel} is not a reward model`, [out]);
    await expectFailure(['rm', 'score', '--model', f.scalar + '/final', '--data', path.join(root, 'none.jsonl'), '--out', out], 1, 'no such file', [out]);
    const noResponse = file('no-response.jsonl', '{"prompt": "summarize : a", "response": "b"}\n{"prompt": "summarize : a", "answer": "b"}\n');
    await expectFailure(['rm', 'score', '--model', f.seq2seq + '/final', '--data', noResponse, '--out', out], 1, `${noResponse}:2: field "response" (completion) is missing`, [out]);
    await expectFailure(['rm', 'score', '--model', f.seq2seq + '/final', '--data', responses], 2, '--out FILE is required', [out]);
  });

  it('leaves an existing output file as it was when scoring fails', async () => {
    const out = file('kept.jsonl', '{"keep": true}\n');
    await expectFailure(['rm', 'score', '--model', f.seq2seq + '/final', '--data', file('empty-responses.jsonl', ''), '--out', out], 1, 'has no examples', [out]);
    expect(readFileSync(out, 'utf8')).toBe('{"keep": true}\n');
  });
});

describe('rm explain', () => {
  it('needs a seq2seq reward model and one kind of input', async () => {
    const html = fresh('explain.html');
    await expectFailure(['rm', 'explain', '--model', f.scalar + '/final', '--prompt', 'summarize : a', '--response', 'b', '--html', html], 1, 'is a scalar reward model', [html]);
    await expectFailure(['rm', 'explain', '--model', f.seq2seq + '/final'], 2, '--prompt TEXT --response TEXT, or --data FILE, is required', [html]);
    await expectFailure(['rm', 'explain', '--model', f.seq2seq + '/final', '--prompt', 'summarize : a'], 2, '--response TEXT is required', [html]);
    await expectFailure(['rm', 'explain', '--model', f.seq2seq + '/final', '--prompt', 'a', '--response', 'b', '--data', pairs], 2, 'give either --prompt and --response, or --data', [html]);
    expect(existsSync(html)).toBe(false);
  });
});

describe('demo', () => {
  it('refuses unknown tasks, methods, bad seeds and unknown flags before running anything', async () => {
    const out = fresh('demo');
    await expectFailure(['demo', '--quick', '--out', out, '--tasks', 'translate'], 2, '--tasks takes a comma-separated list of summarize, safety; got "translate"', [out]);
    await expectFailure(['demo', '--quick', '--out', out, '--methods', 'token,dpo'], 2, '--methods takes a comma-separated list of', [out]);
    await expectFailure(['demo', '--quick', '--out', out, '--seeds', '1,x'], 2, '--seeds takes a comma-separated list of non-negative integers', [out]);
    await expectFailure(['demo', '--quick', '--out', out, '--fast'], 2, "'--fast'", [out]);
    await expectFailure(['demo', '--quick', '--out', out, '--size', 'large'], 2, '--quick has its own CI-sized models; --size applies to the full demo', [out]);
    await expectFailure(['demo', '--out', out, '--size', 'huge'], 2, '--size must be one of', [out]);
  });
});
