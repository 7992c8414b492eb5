// loadRewardModel on reward-model folders written by the real trainers (with the files `s2s rm
// train` adds to final/), and its errors for a missing or malformed folder, each naming the file and
// field at fault.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { DEFAULT_TEMPLATE, Model, SupervisedTrainer, Tokenizer, resolveTemplate, saveModel, templateFiles, vocabularyDifference, wordLevelTokenizerJSON } from '@s2s/core';
import {
  REWARD_MODEL_FILE,
  REWARD_STATS_FILE,
  type RewardStats,
  ScalarRewardTrainer,
  encodePairs,
  extractRewards,
  loadRewardModel,
  readRewardModelInfo,
  rewardModelFiles,
  rewriteExamples,
} from '@s2s/rm';

const WORDS = ['good', 'bad', 'n1', 'n2', 'n3'];
const tok = Tokenizer.fromJSON(wordLevelTokenizerJSON(WORDS, ['<pad>', '<unk>', '<bos>', '<eos>', '<sep>', '<fix>']), {
  tokenizerConfig: { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>', unk_token: '<unk>' },
});
const tpl = resolveTemplate({ promptPrefix: '', responsePrefix: ' <sep>', rewritePrefix: ' <fix>', addBos: true, addEos: true });
const CFG = { vocabSize: tok.vocabSize, maxSeqLen: 32, numLayers: 1, numHeads: 2, channels: 16 };
const PAIRS = [
  { prompt: 'n1 n2', chosen: 'n1 good n3', rejected: 'n1 bad n3' },
  { prompt: 'n3', chosen: 'good n2', rejected: 'bad n2' },
  { prompt: 'n2 n2', chosen: 'n2 good', rejected: 'n2 bad' },
  { prompt: 'n1', chosen: 'good', rejected: 'bad' },
];

const root = mkdtempSync(path.join(tmpdir(), 's2s-load-rm-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let scalarDir: string;
let seq2seqDir: string;
let stats: RewardStats;
let scalarParams: Float32Array;
let seq2seqModel: Model;

/** A copy of `from` to break, in a fresh folder. */
function copy(from: string, name: string): string {
  const to = path.join(root, 'broken', name);
  cpSync(from, to, { recursive: true });
  return to;
}

beforeAll(async () => {
  // what `s2s rm train` passes the trainers: the template and s2s_reward_model.json beside the tokenizer
  const sft = await Model.create(CFG, { seed: 1 });
  const scalar = await sft.clone({ valueHead: true, seed: 2 });
  const trainer = new ScalarRewardTrainer({
    model: scalar,
    train: encodePairs(tok, tpl, PAIRS).pairs,
    padId: tok.padId!,
    outputDir: path.join(root, 'scalar'),
    tokenizer: tok,
    files: { ...templateFiles(tpl), ...rewardModelFiles({ kind: 'scalar', baseModel: 'runs/sft/final', data: 'pairs.jsonl' }) },
    config: { batchSize: 4, maxSteps: 2 },
  });
  scalarDir = (await trainer.train()).savedTo!;
  stats = trainer.rewardStats!;
  scalarParams = await scalar.readBuffer('params');
  scalar.dispose();

  seq2seqModel = await sft.clone();
  seq2seqDir = (
    await new SupervisedTrainer({
      model: seq2seqModel,
      train: rewriteExamples(tok, tpl, PAIRS).examples,
      padId: tok.padId!,
      outputDir: path.join(root, 'seq2seq'),
      tokenizer: tok,
      files: { ...templateFiles(tpl), ...rewardModelFiles({ kind: 'seq2seq' }) },
      config: { batchSize: 4, maxSteps: 2 },
    }).train()
  ).savedTo!;
  sft.dispose();
});
afterAll(() => seq2seqModel?.dispose());

describe('loadRewardModel', () => {
  it('opens a scalar reward model: its weights, tokenizer, template, statistics and provenance', async () => {
    const rm = await loadRewardModel(scalarDir);
    try {
      expect(rm.kind).toBe('scalar');
      expect(rm.dir).toBe(scalarDir);
      expect(rm.info).toEqual({ kind: 'scalar', baseModel: 'runs/sft/final', data: 'pairs.jsonl' });
      expect(rm.kind === 'scalar' && rm.stats).toEqual(stats);
      expect(rm.model.config.valueHead).toBe(true);
      expect(await rm.model.readBuffer('params')).toEqual(scalarParams);
      expect(vocabularyDifference(rm.tokenizer, tok)).toBeUndefined();
      expect(rm.template).toEqual(tpl);
      // no optimizer state: it scores, it does not train on
      expect((await rm.model.snapshot({ optimizer: true })).step).toBe(0);
    } finally {
      rm.model.dispose();
    }
  });

  it('opens a seq2seq reward model that scores tokens as the trained one does', async () => {
    const rm = await loadRewardModel(seq2seqDir);
    try {
      expect(rm.kind).toBe('seq2seq');
      expect(rm.info).toEqual({ kind: 'seq2seq' });
      expect(rm.model.config.valueHead).toBe(false);
      const items = PAIRS.map((p) => ({ prompt: p.prompt, response: [...tok.encode(p.rejected), tok.eosId!] }));
      expect(await extractRewards(rm.model, rm.tokenizer, rm.template, items)).toEqual(await extractRewards(seq2seqModel, tok, tpl, items));
    } finally {
      rm.model.dispose();
    }
  });

  it('takes a tokenizer and a template in place of the folder\'s, refusing another vocabulary', async () => {
    const other = resolveTemplate({ ...tpl, promptPrefix: 'n1' });
    const rm = await loadRewardModel(seq2seqDir, { tokenizer: tok, template: other });
    expect(rm.tokenizer).toBe(tok);
    expect(rm.template).toEqual(other);
    rm.model.dispose();
    const swapped = Tokenizer.fromJSON(wordLevelTokenizerJSON(['bad', 'good', 'n1', 'n2', 'n3'], ['<pad>', '<unk>', '<bos>', '<eos>', '<sep>', '<fix>']), {
      tokenizerConfig: { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>', unk_token: '<unk>' },
    }, 'swapped');
    await expect(loadRewardModel(seq2seqDir, { tokenizer: swapped })).rejects.toThrow(`the reward model ${seq2seqDir} was trained with another tokenizer than swapped: token id`);
  });

  it('takes a GPT-2 with a value head and nothing else of ours for a scalar reward model, with the default template', async () => {
    const dir = path.join(root, 'bare-scalar');
    const m = await Model.create({ ...CFG, valueHead: true }, { seed: 3 });
    await saveModel(m, dir, { files: tok.files() });
    m.dispose();
    const rm = await loadRewardModel(dir);
    expect(rm.kind).toBe('scalar');
    expect(rm.kind === 'scalar' && rm.stats).toBeUndefined();
    expect(rm.template).toEqual(resolveTemplate(DEFAULT_TEMPLATE));
    rm.model.dispose();
  });

  it('names the file and field at fault in a missing or malformed folder', async () => {
    const missing = path.join(root, 'nowhere');
    await expect(loadRewardModel(missing)).rejects.toThrow(`${path.join(missing, 'config.json')} does not exist`);
    // a language model without s2s_reward_model.json is no reward model (the SFT model, say)
    const lm = copy(seq2seqDir, 'no-info');
    rmSync(path.join(lm, REWARD_MODEL_FILE));
    await expect(loadRewardModel(lm)).rejects.toThrow(`${lm} is not a reward model: it has no ${REWARD_MODEL_FILE} (written by \`s2s rm train\`) and no value head`);

    const info = (name: string, text: string, from = seq2seqDir) => {
      const dir = copy(from, name);
      writeFileSync(path.join(dir, REWARD_MODEL_FILE), text);
      return [dir, path.join(dir, REWARD_MODEL_FILE)];
    };
    let [dir, file] = info('bad-json', '{"kind": ');
    await expect(loadRewardModel(dir)).rejects.toThrow(`${file}: not valid JSON`);
    [dir, file] = info('array', '["seq2seq"]');
    await expect(loadRewardModel(dir)).rejects.toThrow(`${file}: expected a JSON object {"kind": "scalar" | "seq2seq", ...}, got ["seq2seq"]`);
    [dir, file] = info('bad-kind', '{"kind": "dpo"}');
    await expect(loadRewardModel(dir)).rejects.toThrow(`${file}: "kind" must be "scalar" or "seq2seq", got "dpo"`);
    [dir, file] = info('no-kind', '{"baseModel": "runs/sft"}');
    await expect(readRewardModelInfo(dir)).rejects.toThrow(`${file}: "kind" must be "scalar" or "seq2seq", got undefined`);
    [dir, file] = info('bad-base', '{"kind": "seq2seq", "baseModel": 3}');
    await expect(loadRewardModel(dir)).rejects.toThrow(`${file}: "baseModel" must be a string (a path), got 3`);
    [dir] = info('scalar-without-head', '{"kind": "scalar"}');
    await expect(loadRewardModel(dir)).rejects.toThrow(`${dir}: a scalar reward model needs a value head, and this checkpoint has none`);

    const stats = (name: string, text: string) => {
      const d = copy(scalarDir, name);
      writeFileSync(path.join(d, REWARD_STATS_FILE), text);
      return [d, path.join(d, REWARD_STATS_FILE)];
    };
    [dir, file] = stats('bad-std', '{"mean": 0.5, "std": -1}');
    await expect(loadRewardModel(dir)).rejects.toThrow(`${file}: "std" must be a finite number >= 0, got -1`);
    [dir, file] = stats('no-mean', '{"std": 1}');
    await expect(loadRewardModel(dir)).rejects.toThrow(`${file}: "mean" must be a finite number, got nothing (it is missing)`);
    [dir, file] = stats('stats-json', 'mean=1');
    await expect(loadRewardModel(dir)).rejects.toThrow(`${file}: not valid JSON`);

    dir = copy(seq2seqDir, 'no-tokenizer');
    rmSync(path.join(dir, 'tokenizer.json'));
    await expect(loadRewardModel(dir)).rejects.toThrow(`${path.join(dir, 'tokenizer.json')} does not exist: a reward model's folder holds the tokenizer it was trained with`);
    dir = copy(seq2seqDir, 'bad-template');
    writeFileSync(path.join(dir, 's2s_template.json'), JSON.stringify({ ...tpl, suffix: '!' }));
    await expect(loadRewardModel(dir)).rejects.toThrow(`${path.join(dir, 's2s_template.json')}: unknown template field "suffix"`);
    dir = copy(seq2seqDir, 'bad-config');
    const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, n_head: 0 }));
    await expect(loadRewardModel(dir)).rejects.toThrow(`${path.join(dir, 'config.json')}: n_head must be a positive integer, got 0`);
  });
});
