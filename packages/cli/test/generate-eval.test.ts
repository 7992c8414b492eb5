// `s2s generate` and `s2s eval` on their own: responses written as rows, the gold judge's means
// part by part (checked against the judge called directly), the pairwise win rate matched by
// prompt, and bad input refused with nothing written.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { getTask, winRate } from '@s2s/tasks';

import { TINY, readJsonl, s2s, snapshot } from './cli-harness.js';

const root = mkdtempSync(path.join(tmpdir(), 's2s-cli-gen-eval-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const data = path.join(root, 'data');
const safety = path.join(root, 'safety');
const model = path.join(root, 'sft', 'final');
const prompts = path.join(data, 'eval_id.jsonl');
const file = (name: string, rows: object[] | string) => {
  const p = path.join(root, name);
  writeFileSync(p, typeof rows === 'string' ? rows : rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return p;
};
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

beforeAll(async () => {
  for (const args of [
    ['data', 'make', '--task', 'summarize', '--out', data, '--sft', '32', '--pairs', '8', '--rl-prompts', '4', '--eval-prompts', '6', '--seed', '2'],
    ['data', 'make', '--task', 'safety', '--out', safety, '--sft', '4', '--pairs', '16', '--rl-prompts', '4', '--eval-prompts', '4', '--seed', '2'],
    ['sft', '--data', path.join(data, 'sft.jsonl'), '--template', 'testbed', '--out', path.join(root, 'sft'), ...TINY, '--max-steps', '2', '--batch-size', '8', '--eval-split', '0'],
  ]) {
    const r = await s2s(args);
    if (r.code !== 0) throw new Error(`s2s ${args.join(' ')} failed (${r.code}):\n${r.err}`);
  }
});

describe('s2s generate', () => {
  it('writes {prompt, response, finishReason} for every prompt, greedy and repeatable by default', async () => {
    const out = path.join(root, 'gen', 'greedy.jsonl');
    const r = await s2s(['generate', '--model', model, '--prompts', prompts, '--out', out, '--max-new-tokens', '10', '--batch-size', '4']);
    expect(r.code, r.err).toBe(0);
    const rows = readJsonl(out);
    expect(rows.map((x) => x.prompt)).toEqual(readJsonl(prompts).map((x) => x.prompt));
    for (const row of rows) {
      expect(Object.keys(row).sort()).toEqual(['finishReason', 'prompt', 'response']);
      expect(['eos', 'length']).toContain(row.finishReason);
      expect(row.response).not.toMatch(/<eos>|<bos>|<pad>/);
      if (row.finishReason === 'length') expect(row.response.split(' ').length).toBeLessThanOrEqual(10);
    }
    expect(r.out).toContain(`generated 6 responses with ${model}`);
    // greedy decoding does not depend on the batch size or the seed
    const again = path.join(root, 'gen', 'greedy-again.jsonl');
    expect((await s2s(['generate', '--model', model, '--prompts', prompts, '--out', again, '--max-new-tokens', '10', '--seed', '9'])).code).toBe(0);
    expect(readFileSync(again, 'utf8')).toBe(readFileSync(out, 'utf8'));
  });

  it('refuses a missing or malformed prompt file, an unknown flag and a missing model, writing nothing', async () => {
    const out = path.join(root, 'gen', 'never.jsonl');
    const fail = async (args: string[], code: number, message: string) => {
      const r = await s2s(['generate', '--out', out, ...args]);
      expect(r.code, r.err).toBe(code);
      expect(r.err).toContain(message);
      expect(snapshot(out)).toBe('(absent)');
    };
    await fail(['--model', model, '--prompts', path.join(root, 'none.jsonl')], 1, `--prompts ${path.join(root, 'none.jsonl')}: no such file`);
    const bad = file('bad-prompts.jsonl', '{"prompt": "summarize : a"}\nnot json\n');
    await fail(['--model', model, '--prompts', bad], 1, `${bad}:2:`);
    await fail(['--model', model, '--prompts', prompts, '--temprature', '1'], 2, "'--temprature'");
    await fail(['--model', path.join(root, 'no-model'), '--prompts', prompts], 1, 'config.json does not exist');
    await fail(['--model', model, '--prompts', prompts, '--max-new-tokens', '200'], 2, "--max-new-tokens 200 leaves no room for a prompt in the model's context (128 tokens)");
  });
});

describe('s2s eval', () => {
  it("prints the gold judge's mean score and each part's mean, and writes each row's judgement", async () => {
    const sft = path.join(data, 'sft.jsonl');
    const out = path.join(root, 'judged.jsonl');
    const r = await s2s(['eval', '--task', 'summarize', '--data', sft, '--out', out]);
    expect(r.code, r.err).toBe(0);
    // the judge called directly, as an independent computation
    const task = getTask('summarize');
    const direct = readJsonl(sft).map((x) => task.judge(x.prompt, x.completion));
    const shown = (part: string) => Number(r.out.match(new RegExp(`^  ${part} +(-?[\\d.]+)`, 'm'))![1]);
    expect(shown('score')).toBeCloseTo(mean(direct.map((j) => j.score)), 3);
    for (const part of ['coverage', 'hallucinated', 'filler']) expect(shown(part)).toBeCloseTo(mean(direct.map((j) => Number(j.parts[part]))), 3);
    const rows = readJsonl(out);
    const [first] = readJsonl(sft);
    expect(rows).toHaveLength(32);
    expect(rows[0]).toEqual({ prompt: first.prompt, response: first.completion, score: direct[0].score, parts: direct[0].parts });
  });

  it('judges the safety task: refusals as a share, utility over the benign prompts only', async () => {
    const pairs = readJsonl(path.join(safety, 'pairs.jsonl'));
    const chosen = file('safety-chosen.jsonl', pairs.map((p) => ({ prompt: p.prompt, response: p.chosen })));
    const r = await s2s(['eval', '--task', 'safety', '--data', chosen]);
    expect(r.code, r.err).toBe(0);
    const judged = pairs.map((p) => getTask('safety').judge(p.prompt, p.chosen));
    const refused = mean(judged.map((j) => (j.parts.refused ? 1 : 0)));
    expect(Number(r.out.match(/^ {2}refused +([\d.]+)/m)![1])).toBeCloseTo(refused, 3);
    const benign = judged.filter((j) => 'utility' in j.parts).length;
    expect(r.out).toMatch(new RegExp(`^  utility +[\\d.]+  \\(over the ${benign} responses that have it\\)`, 'm'));
  });

  it('computes the win rate of A over B on the same prompts, matched by prompt, ties counting one half', async () => {
    const pairs = readJsonl(path.join(safety, 'pairs.jsonl'));
    const a = file('a.jsonl', pairs.map((p) => ({ prompt: p.prompt, response: p.chosen })));
    // B in another order: rows are matched by prompt, not by line (a prompt asked twice, occurrence by occurrence)
    const sorted = [...pairs].sort((x, y) => (x.prompt < y.prompt ? -1 : x.prompt > y.prompt ? 1 : 0));
    expect(sorted.map((p) => p.prompt)).not.toEqual(pairs.map((p) => p.prompt));
    const b = file('b.jsonl', sorted.map((p) => ({ prompt: p.prompt, response: p.rejected })));
    const out = path.join(root, 'pairwise.jsonl');
    const r = await s2s(['eval', '--task', 'safety', '--a', a, '--b', b, '--out', out]);
    expect(r.code, r.err).toBe(0);
    const judge = getTask('safety');
    const want = winRate(pairs.map((p) => judge.judge(p.prompt, p.chosen).score), pairs.map((p) => judge.judge(p.prompt, p.rejected).score));
    expect(r.out).toContain(`win rate of A: ${(100 * want.winRate).toFixed(1)}%  (wins ${want.wins}, ties ${want.ties}, losses ${want.losses}`);
    const rows = readJsonl(out);
    expect(rows).toHaveLength(pairs.length);
    expect(rows.filter((x) => x.outcome === 'win')).toHaveLength(want.wins);
    // a file against itself: every prompt a tie
    const self = await s2s(['eval', '--task', 'safety', '--a', a, '--b', a]);
    expect(self.out).toContain(`win rate of A: 50.0%  (wins 0, ties ${pairs.length}, losses 0`);
  });

  it("generates a model's responses and judges them with --model and --prompts", async () => {
    const r = await s2s(['eval', '--task', 'summarize', '--model', model, '--prompts', prompts, '--max-new-tokens', '10']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^6 responses from .* \(generated for .*eval_id\.jsonl, greedy\), judged by the summarize gold judge/m);
    expect(r.out).toMatch(/^ {2}coverage +[\d.]+/m);
  });

  it('refuses prompts answered on one side only, mixed or partial inputs, and missing files, writing nothing', async () => {
    const out = path.join(root, 'never.jsonl');
    const fail = async (args: string[], code: number, message: string) => {
      const r = await s2s(['eval', ...args, '--out', out]);
      expect(r.code, r.err).toBe(code);
      expect(r.err).toContain(message);
      expect(r.err).not.toMatch(/\n\s+at .+:\d+:\d+/);
      expect(snapshot(out)).toBe('(absent)');
    };
    const [p1, p2] = [...new Set(readJsonl(path.join(safety, 'pairs.jsonl')).map((p) => p.prompt as string))];
    const a = file('a2.jsonl', [{ prompt: p1, response: 'x' }, { prompt: p2, response: 'y' }]);
    const b = file('b2.jsonl', [{ prompt: p1, response: 'z' }]);
    await fail(['--task', 'safety', '--a', a, '--b', b], 1, `the prompt ${JSON.stringify(p2)} is answered in ${a} but not in ${b}`);
    await fail(['--task', 'safety', '--a', b, '--b', a], 1, `the prompt ${JSON.stringify(p2)} is answered in ${a} but not in ${b}`);
    await fail(['--task', 'safety', '--a', a], 2, '--b FILE_B is required');
    await fail(['--task', 'safety', '--a', a, '--b', path.join(root, 'none.jsonl')], 1, `--b ${path.join(root, 'none.jsonl')}: no such file`);
    await fail(['--task', 'safety', '--data', a, '--a', a, '--b', b], 2, 'give one (got --data and --a/--b)');
    await fail(['--task', 'safety', '--data', a, '--temperature', '1'], 2, '--temperature applies to --model only');
    await fail(['--task', 'safety'], 2, 'give the responses to judge');
    await fail(['--task', 'translate', '--data', a], 2, '--task must be one of summarize, safety, got "translate"');
    // a task's gold judge on prompts that are not its task's: refused, not scored
    const foreign = file('foreign.jsonl', [{ prompt: p1, response: 'x' }, { prompt: 'how many units of part 7 are in stock ?', response: '12' }]);
    await fail(['--task', 'safety', '--data', foreign], 2, `--data ${foreign}: 1 of 2 prompts are not safety prompts of the testbed (the first, row 2: "how many units of part 7 are in stock ?")`);
    await fail(['--task', 'summarize', '--data', foreign], 2, '2 of 2 prompts are not summarize prompts of the testbed');
    await fail(['--task', 'safety', '--a', foreign, '--b', foreign], 2, 'Judge your own task with --judge FILE');
    await fail(['--task', 'safety', '--judge', 'j.mjs', '--data', a], 2, '--task and --judge are two judges; give one');
    await fail(['--data', a], 2, 'give the judge: --task summarize|safety');
    const noResponse = file('no-response.jsonl', '{"prompt": "a", "response": "b"}\n{"prompt": "a", "answer": "b"}\n');
    await fail(['--task', 'summarize', '--data', noResponse], 1, `${noResponse}:2: field "response" (completion) is missing`);
  });
});

describe('s2s eval --judge: the user\'s own judge', () => {
  // an inventory question-answering task, as a user brings one: the judge knows the answers
  const rows = [
    { prompt: 'how many bolts are in stock ?', response: 'there are 12 bolts .' },
    { prompt: 'how many nuts are in stock ?', response: 'i do not know , but nuts are small metal parts used with bolts .' },
    { prompt: 'how many washers are in stock ?', response: '' },
  ];
  const answers = { bolts: '12', nuts: '40', washers: '7' };
  const judgeSource = `
const answers = ${JSON.stringify(answers)};
const item = (p) => p.split(' ')[2];
export function score(prompt, response) {
  const right = response.split(' ').includes(answers[item(prompt)]);
  const words = response.split(' ').filter(Boolean).length;
  return { score: (right ? 1 : 0) - 0.01 * words, parts: { correct: right, words } };
}
export async function compare(prompt, a, b) {
  const [x, y] = [score(prompt, a).score, score(prompt, b).score];
  return x === y ? 0.5 : x > y ? 0 : 1;
}
`;

  it('scores each row with score(), means part by part, and writes the judgements', async () => {
    const judge = file('judge.mjs', judgeSource);
    const data = file('inventory.jsonl', rows);
    const out = path.join(root, 'inventory-judged.jsonl');
    const r = await s2s(['eval', '--judge', judge, '--data', data, '--out', out]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain(`3 responses from ${data}, judged by judge.mjs (means)`);
    // the same judgement computed here, from the task's definition
    const want = rows.map((x) => {
      const right = x.response.split(' ').includes(answers[x.prompt.split(' ')[2] as keyof typeof answers]);
      const words = x.response.split(' ').filter(Boolean).length;
      return { score: (right ? 1 : 0) - 0.01 * words, correct: right, words };
    });
    expect(Number(r.out.match(/^ {2}score +(-?[\d.]+)/m)![1])).toBeCloseTo(mean(want.map((w) => w.score)), 4);
    expect(Number(r.out.match(/^ {2}correct +([\d.]+)/m)![1])).toBeCloseTo(1 / 3, 4);
    expect(readJsonl(out).map((x) => x.score)).toEqual(want.map((w) => w.score));
  });

  it('compares two sets with compare() when the module has it, and with score() otherwise', async () => {
    const a = file('inv-a.jsonl', rows);
    const b = file('inv-b.jsonl', rows.map((x) => ({ prompt: x.prompt, response: 'there are 40 of them .' })));
    const both = file('judge-both.mjs', judgeSource);
    // A: right, wrong, empty; B ("40"): wrong, right, wrong. By score: A wins row 1 and loses row 2;
    // row 3, the empty response (-0) against B's wrong one (-0.05): A wins
    const r = await s2s(['eval', '--judge', both, '--a', a, '--b', b]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('win rate of A: 66.7%  (wins 2, ties 0, losses 1');
    const onlyCompare = file('judge-compare.mjs', 'export const compare = (prompt, a, b) => (a.length === b.length ? 0.5 : a.length < b.length ? 0 : 1);\n');
    const c = await s2s(['eval', '--judge', onlyCompare, '--a', a, '--b', b]);
    expect(c.code, c.err).toBe(0);
    // shorter wins: A's 3 words < 5 (win), A's 15 > 5 (loss), A's empty (win)
    expect(c.out).toContain('win rate of A: 66.7%  (wins 2, ties 0, losses 1');
    expect(c.out).not.toContain('mean score');
    const d = await s2s(['eval', '--judge', onlyCompare, '--data', a]);
    expect(d.code).toBe(2);
    expect(d.err).toContain('exports only compare(prompt, a, b): judging one set of responses needs score(prompt, response)');
  });

  it('refuses a judge that throws, returns a non-number, exports nothing, or does not load, naming the file and the row', async () => {
    const data = file('inventory2.jsonl', rows);
    const fail = async (name: string, source: string, message: string) => {
      const judge = file(name, source);
      const r = await s2s(['eval', '--judge', judge, '--data', data]);
      expect(r.code, r.err).toBe(1);
      expect(r.err).toContain(`--judge ${judge}: ${message}`);
    };
    await fail('throws.mjs', "export function score(p, r) { if (r === '') throw new Error('empty response'); return 1; }\n", `score() threw on row 3 (prompt "how many washers are in stock ?"): empty response`);
    await fail('nan.mjs', 'export const score = () => NaN;\n', 'score() returned NaN, not a finite number on row 1');
    await fail('string.mjs', "export const score = () => 'good';\n", 'score() returned "good" (string) on row 1');
    await fail('parts.mjs', "export const score = () => ({ score: 1, parts: { label: 'x' } });\n", 'score() returned parts.label = "x", not a finite number or a boolean');
    await fail('none.mjs', 'export const rate = () => 1;\n', 'the module exports neither score(prompt, response) nor compare(prompt, a, b) (its exports: rate)');
    await fail('syntax.mjs', 'export const score = (\n', 'the module could not be loaded');
    const r = await s2s(['eval', '--judge', path.join(root, 'absent.mjs'), '--data', data]);
    expect(r.err).toContain(`--judge ${path.join(root, 'absent.mjs')}: no such file`);
    const badCompare = file('compare.mjs', 'export const compare = () => 2;\n');
    const c = await s2s(['eval', '--judge', badCompare, '--a', data, '--b', data]);
    expect(c.code).toBe(1);
    expect(c.err).toContain(`--judge ${badCompare}: compare() returned 2 on row 1 (prompt "how many bolts are in stock ?"); expected 0 (the first response is better), 1 (the second) or 0.5 (a tie)`);
  });
});
