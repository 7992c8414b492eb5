// `s2s compare` on a user's own task, as one would bring it: an inventory question-answering task
// (the right stock count, briefly) with a noisy annotator, its own tokenizer (`s2s data tokenizer`)
// and its own judge module; at the demo's CI size, so the numbers only show that it runs. The
// judgements in results.json are checked against the judge's definition applied here.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readJson, s2s } from './cli-harness.js';

const root = mkdtempSync(path.join(tmpdir(), 's2s-cli-compare-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const at = (name: string) => path.join(root, name);
const write = (name: string, rows: object[]) => writeFileSync(at(name), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');

const items = ['bolts', 'nuts', 'washers', 'screws', 'nails', 'hinges', 'clamps', 'springs'];
const stock: Record<string, number> = Object.fromEntries(items.map((it, i) => [it, 3 + 7 * i]));
const question = (it: string) => `how many ${it} are in stock ?`;
const right = (it: string) => `there are ${stock[it]} ${it} in stock .`;
const wrong = (it: string) => `there are ${stock[it] + 5} ${it} in stock , and we also sell many other useful parts .`;
/** the judge's definition: 1 for the right count, less 0.02 a word */
const judgeScore = (prompt: string, response: string) => {
  const w = response.split(' ').filter(Boolean);
  return (w.includes(String(stock[prompt.split(' ')[2]])) ? 1 : 0) - 0.02 * w.length;
};
const args = (out: string, more: string[] = []) => [
  'compare', '--sft', at('sft.jsonl'), '--pairs', at('pairs.jsonl'), '--prompts', at('prompts.jsonl'), '--eval-prompts', at('eval.jsonl'),
  '--judge', at('judge.mjs'), '--quick', '--seeds', '1,2', '--out', out, ...more,
];

beforeAll(async () => {
  const n = 120;
  write('sft.jsonl', Array.from({ length: n }, (_, k) => ({ prompt: question(items[k % 8]), completion: k % 3 ? right(items[k % 8]) : wrong(items[k % 8]) })));
  // the annotator is right four times in five
  write('pairs.jsonl', Array.from({ length: n }, (_, k) => {
    const it = items[k % 8];
    return k % 5 ? { prompt: question(it), chosen: right(it), rejected: wrong(it) } : { prompt: question(it), chosen: wrong(it), rejected: right(it) };
  }));
  write('prompts.jsonl', Array.from({ length: 40 }, (_, k) => ({ prompt: question(items[k % 8]) })));
  write('eval.jsonl', items.map((it) => ({ prompt: question(it) })));
  writeFileSync(
    at('judge.mjs'),
    `const stock = ${JSON.stringify(stock)};\nexport function score(prompt, response) {\n  const w = response.split(' ').filter(Boolean);\n  return { score: (w.includes(String(stock[prompt.split(' ')[2]])) ? 1 : 0) - 0.02 * w.length, parts: {} };\n}\n`,
  );
  const tok = await s2s(['data', 'tokenizer', '--data', `${at('sft.jsonl')},${at('pairs.jsonl')}`, '--out', root]);
  expect(tok.code, tok.err).toBe(0);
}, 60_000);

describe('s2s compare', () => {
  it('trains SFT, both reward models and PPO with each reward, judges every policy with the user\'s judge, and reports', async () => {
    const out = at('run');
    const r = await s2s(args(out));
    expect(r.code, r.err).toBe(0);
    const report = readFileSync(path.join(out, 'report', 'report.md'), 'utf8');
    for (const p of ['SFT', 'PPO scalar', 'PPO token', 'PPO sentence']) expect(report).toMatch(new RegExp(`^\\| ${p} \\| -?\\d`, 'm'));
    const results = readJson(path.join(out, 'report', 'results.json'));
    expect(results.runs.map((x: { seed: number }) => x.seed)).toEqual([1, 2]);
    for (const run of results.runs)
      for (const policy of ['sft', 'scalar', 'token', 'sentence']) {
        const rows = run.evals[policy].eval as Array<{ prompt: string; response: string; score: number }>;
        expect(rows).toHaveLength(items.length);
        // the scores are the judge's, recomputed here from its definition
        for (const x of rows) expect(x.score).toBeCloseTo(judgeScore(x.prompt, x.response), 12);
        if (policy !== 'sft') {
          const sft = run.evals.sft.eval as typeof rows;
          const want = rows.reduce((a, x, i) => a + (Math.abs(x.score - sft[i].score) <= 1e-9 ? 0.5 : x.score > sft[i].score ? 1 : 0), 0) / rows.length;
          expect(run.winRates[policy].eval).toBeCloseTo(want, 12);
        }
      }
    // a rerun takes every stage from the cache and reports the same
    const again = await s2s(args(out));
    expect(again.code, again.err).toBe(0);
    expect(again.err.match(/^= cached /gm)).toHaveLength(14);
    expect(readFileSync(path.join(out, 'report', 'report.md'), 'utf8')).toBe(report);
  }, 240_000);

  it('refuses a judge that fails, unknown methods, too few prompts and a missing file, naming them', async () => {
    writeFileSync(at('bad-judge.mjs'), 'export const score = () => "fine";\n');
    const bad = await s2s(args(at('bad'), ['--judge', at('bad-judge.mjs')]));
    expect(bad.code).toBe(1);
    expect(bad.err).toContain(`--judge ${at('bad-judge.mjs')}: score() returned "fine" (string) on row 1`);
    const methods = await s2s(args(at('bad'), ['--methods', 'token,dpo']));
    expect(methods.code).toBe(2);
    expect(methods.err).toContain('--methods takes a comma-separated list of scalar, token, sentence');
    write('few.jsonl', [{ prompt: question('nuts') }]);
    const few = await s2s(args(at('bad'), ['--prompts', at('few.jsonl')]));
    expect(few.code).toBe(2);
    expect(few.err).toContain(`--prompts ${at('few.jsonl')} has 1 prompts; PPO's batch is 8`);
    const missing = await s2s(args(at('bad'), ['--eval-prompts', at('absent.jsonl')]));
    expect(missing.code).toBe(1);
    expect(missing.err).toContain(`--eval-prompts ${at('absent.jsonl')}: no such file`);
  }, 60_000);
});
