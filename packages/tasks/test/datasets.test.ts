// The designed properties of the generated datasets hold in their intended ranges, generation is
// fixed by its seed, and the out-of-distribution split is really out of distribution.
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { Tokenizer, loadJsonl } from '@s2s/core';
import { DATA_FILES, datasetStats, makeTaskData, safety, summarize, TASKS, testbedTokenizer, words } from '@s2s/tasks';

const opts = { seed: 3, sft: 1500, pairs: 3000, rlPrompts: 300, evalPrompts: 200 };

describe.each(TASKS.map((t) => [t.name, t] as const))('%s data', (_, task) => {
  const data = task.generate(opts);
  const stats = datasetStats(task, data);

  it('is fixed by its seed', () => {
    expect(task.generate(opts)).toEqual(data);
    expect(task.generate({ ...opts, seed: 4 }).pairs).not.toEqual(data.pairs);
  });

  it('has the requested sizes and no empty or identical pairs', () => {
    expect(stats.counts).toEqual({ sft: 1500, pairs: 3000, rlPrompts: 300, evalId: 200, evalOod: 200 });
    for (const p of data.pairs) {
      expect(p.chosen).not.toBe(p.rejected);
      expect(words(p.chosen).length).toBeGreaterThan(0);
    }
  });

  it('uses only the words of its closed vocabulary', () => {
    const vocab = new Set(task.words());
    const texts = [
      ...data.sft.flatMap((r) => [r.prompt, r.completion]),
      ...data.pairs.flatMap((r) => [r.prompt, r.chosen, r.rejected]),
      ...data.eval.id.map((r) => r.prompt),
      ...data.eval.ood.map((r) => r.prompt),
    ];
    const outside = new Set(texts.flatMap(words).filter((w) => !vocab.has(w)));
    expect([...outside]).toEqual([]);
    expect(stats.vocabulary.size).toBeGreaterThan(100);
  });

  it("recognizes every prompt it makes, in both splits, and no other task's, nor a stranger's", () => {
    const prompts = [...data.sft, ...data.pairs, ...data.rlPrompts, ...data.eval.id, ...data.eval.ood].map((r) => r.prompt);
    expect(prompts.filter((p) => !task.recognizes(p))).toEqual([]);
    for (const other of TASKS.filter((t) => t !== task)) expect(prompts.filter((p) => other.recognizes(p))).toEqual([]);
    expect(task.recognizes('how many bolts are in stock ?')).toBe(false);
    // its own form with a word from outside its vocabulary
    expect(task.recognizes(`${prompts[0]} zanzibar`)).toBe(false);
  });

  it('keeps its out-of-distribution prompts apart from everything seen in training', () => {
    const train = new Set([...data.sft, ...data.pairs, ...data.rlPrompts].map((r) => r.prompt));
    expect(data.eval.ood.some((r) => train.has(r.prompt))).toBe(false);
    // new phrasings: words that never occur in training data
    expect(stats.vocabulary.unseenInEvalOod).toBeGreaterThan(0);
    expect(stats.vocabulary.unseenInEvalId).toBe(0);
  });

  it('labels pairs mostly as the gold judge would, with some annotator noise', () => {
    expect(stats.pairs.goldAgrees).toBeGreaterThan(0.75);
    expect(stats.pairs.goldAgrees).toBeLessThan(0.97);
  });

  it('has SFT demonstrations of mixed quality, well above chance', () => {
    // room to improve: a quarter to a half of them has a flaw the gold judge names
    expect(stats.sft.flawless).toBeGreaterThan(0.4);
    expect(stats.sft.flawless).toBeLessThan(0.8);
    const flawed = data.sft.filter((r) => task.flaws(r.prompt, r.completion).length > 0);
    expect(flawed.length / data.sft.length).toBeCloseTo(1 - stats.sft.flawless, 10);
    // a flawed demonstration never scores above a flawless one to the same prompt's judge
    for (const r of flawed.slice(0, 200)) expect(task.judge(r.prompt, r.completion).score).toBeLessThan(1);
    expect(Object.keys(stats.sft.flaws).length).toBeGreaterThanOrEqual(3);
    expect(stats.sft.meanGold).toBeGreaterThan(stats.sft.chanceGold + 0.5);
  });
});

describe('designed biases', () => {
  it('summarize: the chosen summary is the longer one in about 60% of pairs (as in Dialogsum)', () => {
    const s = datasetStats(summarize, summarize.generate(opts));
    expect(s.pairs.chosenLonger).toBeGreaterThan(0.55);
    expect(s.pairs.chosenLonger).toBeLessThan(0.66);
  });

  it('summarize: rejected summaries include the errors a policy makes, among them prices the dialogue never gave', () => {
    const data = summarize.generate(opts);
    const priceWords = new Set(['five', 'ten', 'twenty', 'thirty', 'forty', 'fifty', 'sixty', 'eighty']);
    const invented = data.pairs.filter((p) => !words(p.prompt).some((w) => priceWords.has(w)) && words(p.rejected).some((w) => priceWords.has(w)));
    expect(invented.length / data.pairs.length).toBeGreaterThan(0.01);
    for (const p of invented.slice(0, 50)) expect(summarize.judge(p.prompt, p.rejected).parts.hallucinated).toBeGreaterThan(0);
    const wrongName = data.pairs.filter((p) => {
      const said = words(p.rejected)[0];
      return summarize.judge(p.prompt, p.rejected).parts.hallucinated === 1 && !words(p.prompt).includes(said);
    });
    expect(wrongName.length).toBeGreaterThan(0);
  });

  it('safety: dual-use requests use the words of harmful ones, and annotators refuse them more often than benign ones', () => {
    const data = safety.generate(opts);
    const s = datasetStats(safety, data);
    const byClass = s.pairs.byClass!;
    expect(Object.keys(byClass)).toEqual(['benign', 'dual-use', 'harmful']);
    expect(byClass.harmful.refusalChosen).toBeGreaterThan(0.9);
    expect(byClass['dual-use'].refusalChosen).toBeGreaterThan(byClass.benign.refusalChosen + 0.2);
    expect(byClass['dual-use'].share).toBeGreaterThan(0.15);
    // every dual-use prompt shares a word (not a function word) with some harmful prompt
    const common = new Set(['how', 'can', 'i', 'a', 'my', 'to', 'the', '?', '.', 'me', 'tell', 'what', 'is', 'best', 'way', 'of', 'from']);
    const harmfulWords = new Set(data.pairs.filter((p) => safety.promptClass!(p.prompt) === 'harmful').flatMap((p) => words(p.prompt)));
    const dual = data.pairs.filter((p) => safety.promptClass!(p.prompt) === 'dual-use');
    expect(dual.length).toBeGreaterThan(0);
    for (const p of dual) expect(words(p.prompt).filter((w) => !common.has(w) && harmfulWords.has(w))).not.toEqual([]);
    // and the gold judge treats them as the benign requests they are
    for (const p of dual.slice(0, 50)) expect(safety.judge(p.prompt, p.chosen).parts).toMatchObject({ harmful: false, dualUse: true });
  });

  it('safety: refusals are chosen far more often than they are rejected (as in PKU-SafeRLHF)', () => {
    const s = datasetStats(safety, safety.generate(opts));
    expect(s.pairs.refusalShareChosen).toBeGreaterThan(0.45);
    expect(s.pairs.refusalShareChosen).toBeGreaterThan(1.8 * s.pairs.refusalShareRejected);
    expect(s.pairs.refusalShareRejected).toBeGreaterThan(0.1);
  });
});

describe('the testbed on disk', () => {
  it('writes JSONL files that load back, the tokenizer and the statistics', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 's2s-tasks-'));
    const dir = path.join(root, 'summarize');
    const { data, stats } = await makeTaskData(summarize, { seed: 2, sft: 50, pairs: 60, rlPrompts: 10, evalPrompts: 5 }, dir);
    expect((await readdir(dir)).sort()).toEqual(
      [...Object.values(DATA_FILES), 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json'].sort(),
    );
    const pairs = await loadJsonl(path.join(dir, DATA_FILES.pairs), 'preference');
    expect(pairs.rows).toEqual(data.pairs);
    const sft = await loadJsonl(path.join(dir, DATA_FILES.sft), 'supervised');
    expect(sft.rows).toEqual(data.sft);
    expect(JSON.parse(await readFile(path.join(dir, DATA_FILES.stats), 'utf8'))).toEqual(stats);
    // the saved tokenizer is the testbed's, and round-trips every text of the data
    const tok = await Tokenizer.load(dir);
    expect(tok.vocabSize).toBe(testbedTokenizer().vocabSize);
    for (const r of data.pairs) for (const text of [r.prompt, r.chosen, r.rejected]) {
      const ids = tok.encode(text);
      expect(ids).not.toContain(tok.unkId);
      expect(tok.decode(ids)).toBe(text);
    }
    await rm(root, { recursive: true });
  });
});
