// The paper's pipeline through the command line at toy size: testbed data, SFT, both reward models,
// scoring and explanations -- checked by the files each step leaves and the shape of its output.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { REWARD_MODEL_FILE } from '@s2s/cli';
import { testbedTokenizer } from '@s2s/tasks';

import { readJson, readJsonl, s2s } from './cli-harness.js';

const root = mkdtempSync(path.join(tmpdir(), 's2s-cli-pipeline-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const data = path.join(root, 'data');
const sft = path.join(root, 'sft');
const scalar = path.join(root, 'rm');
const seq2seq = path.join(root, 's2s-rm');
const tok = testbedTokenizer();

describe('s2s on the testbed, end to end', () => {
  it('data make writes the task data and sums up its statistics', async () => {
    const r = await s2s(['data', 'make', '--task', 'summarize', '--out', data, '--sft', '48', '--pairs', '48', '--rl-prompts', '4', '--eval-prompts', '4', '--seed', '1']);
    expect(r.code).toBe(0);
    for (const f of ['sft.jsonl', 'pairs.jsonl', 'rl_prompts.jsonl', 'eval_id.jsonl', 'eval_ood.jsonl', 'stats.json', 'tokenizer.json']) expect(existsSync(path.join(data, f))).toBe(true);
    expect(readJsonl(path.join(data, 'pairs.jsonl'))).toHaveLength(48);
    expect(r.out).toMatch(/48 sft, 48 pairs, 4 rl prompts, 4 \+ 4 eval prompts/);
    expect(r.out).toMatch(/chosen longer in \d+\.\d%/);
    expect(r.out).toMatch(/refusals: \d+\.\d% of chosen, \d+\.\d% of rejected/);
    expect(r.out).toContain(`tokenizer ${tok.vocabSize} ids`);
  });

  it('sft trains a new model from a config file and flags, and saves it with tokenizer, template and token ids', async () => {
    // kebab-case and camelCase keys; the flag --max-steps wins over the file's
    const config = path.join(root, 'sft-config.json');
    writeFileSync(config, JSON.stringify({ template: 'testbed', 'batch-size': 8, maxSteps: 100, layers: 1, heads: 2, channels: 32, context: 128, evalSplit: 0.1 }));
    const r = await s2s(['sft', '--config', config, '--data', path.join(data, 'sft.jsonl'), '--out', sft, '--max-steps', '4', '--save-every', '2']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/eval loss: \d+\.\d{4} \(5 examples\)/);
    expect(r.out).toContain('held out 5 of 48 examples');
    const final = path.join(sft, 'final');
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 's2s_template.json', 'sft_config.json']) expect(existsSync(path.join(final, f)), f).toBe(true);
    const hf = readJson(path.join(final, 'config.json'));
    expect(hf).toMatchObject({ bos_token_id: tok.bosId, eos_token_id: tok.eosId, pad_token_id: tok.padId, n_layer: 1, n_embd: 32, vocab_size: tok.vocabSize });
    expect(readJson(path.join(final, 's2s_template.json'))).toMatchObject({ responsePrefix: ' <sep>', addBos: true });
    expect(readJson(path.join(final, 'trainer_state.json')).step).toBe(4);
    // the checkpoint carries the template too, and the run's options are saved as a config file
    expect(existsSync(path.join(sft, 'checkpoint-2', 's2s_template.json'))).toBe(true);
    expect(readJson(path.join(sft, 'sft_config.json'))).toMatchObject({ data: path.join(data, 'sft.jsonl'), template: 'testbed', maxSteps: 4, batchSize: 8, layers: 1 });
  });

  it('rm train (scalar) reports held-out pair accuracy and saves the reward statistics', async () => {
    const r = await s2s(['rm', 'train', '--data', path.join(data, 'pairs.jsonl'), '--model', path.join(sft, 'final'), '--out', scalar, '--max-steps', '3', '--batch-size', '8', '--eval-split', '0.1']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/held-out pair accuracy: \d+\.\d% of 5 pairs/);
    const final = path.join(scalar, 'final');
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 's2s_template.json', 'reward_stats.json']) expect(existsSync(path.join(final, f)), f).toBe(true);
    expect(readJson(path.join(final, REWARD_MODEL_FILE)).kind).toBe('scalar');
    expect(readJson(path.join(final, 'config.json')).architectures).toEqual(['GPT2ForSequenceClassification']);
    expect(readJson(path.join(scalar, 'eval_results.json'))).toMatchObject({ kind: 'scalar', pairs: 5 });
  });

  it('rm train --seq2seq reports exact match and token accuracy of rewrites, per mapping', async () => {
    const args = ['rm', 'train', '--seq2seq', '--data', path.join(data, 'pairs.jsonl'), '--model', path.join(sft, 'final'), '--out', seq2seq];
    const r = await s2s([...args, '--max-steps', '3', '--batch-size', '8', '--eval-split', '0.1', '--eval-rewrites', '3', '--identity-weight', '0.5']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/correction \(rejected -> chosen\): exact match \d+\.\d%, token accuracy \d+\.\d% over 3 pairs/);
    expect(r.out).toMatch(/identity +\(chosen +-> chosen\): exact match/);
    const final = path.join(seq2seq, 'final');
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 's2s_template.json']) expect(existsSync(path.join(final, f)), f).toBe(true);
    expect(existsSync(path.join(final, 'reward_stats.json'))).toBe(false);
    expect(readJson(path.join(final, REWARD_MODEL_FILE)).kind).toBe('seq2seq');
    expect(readJson(path.join(final, 'config.json')).architectures).toEqual(['GPT2LMHeadModel']);
    expect(readJson(path.join(seq2seq, 'rm_config.json'))).toMatchObject({ seq2seq: true, identityWeight: 0.5 });
    const results = readJson(path.join(seq2seq, 'eval_results.json'));
    expect(results.correction.n).toBe(3);
    expect(results.identity.n).toBe(3);
  });

  it('rm score writes scalar rewards, normalised by reward_stats.json', async () => {
    // SFT rows: the response field is "completion"
    const input = path.join(root, 'responses-completion.jsonl');
    writeFileSync(input, readFileSync(path.join(data, 'sft.jsonl'), 'utf8').split('\n').slice(0, 3).join('\n') + '\n');
    const out = path.join(root, 'scored-scalar.jsonl');
    const r = await s2s(['rm', 'score', '--model', path.join(scalar, 'final'), '--data', input, '--out', out]);
    expect(r.code, r.err).toBe(0);
    const rows = readJsonl(out);
    const stats = readJson(path.join(scalar, 'final', 'reward_stats.json'));
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      expect(Object.keys(row).sort()).toEqual(['normalizedReward', 'prompt', 'response', 'reward']);
      expect(row.normalizedReward).toBeCloseTo((row.reward - stats.mean) / stats.std, 6);
    }
  });

  it('rm score writes token scores from the seq2seq reward model: one per response token plus EOS', async () => {
    const input = path.join(root, 'responses.jsonl');
    const pairs = readJsonl(path.join(data, 'pairs.jsonl')).slice(0, 3);
    writeFileSync(input, pairs.map((p) => JSON.stringify({ prompt: p.prompt, response: p.rejected })).join('\n') + '\n');
    const out = path.join(root, 'scored-s2s.jsonl');
    const r = await s2s(['rm', 'score', '--model', path.join(seq2seq, 'final'), '--data', input, '--out', out]);
    expect(r.code, r.err).toBe(0);
    const rows = readJsonl(out);
    expect(rows).toHaveLength(3);
    rows.forEach((row, i) => {
      expect(Object.keys(row).sort()).toEqual(['firstDivergence', 'prompt', 'response', 'scores', 'sum', 'tokens']);
      expect(row.response).toBe(pairs[i].rejected);
      const n = tok.encode(row.response).length + 1;
      expect(row.scores).toHaveLength(n);
      expect(row.tokens).toHaveLength(n);
      expect(row.tokens.at(-1)).toBe('<eos>');
      expect(row.sum).toBe(row.scores.reduce((a: number, b: number) => a + b, 0));
      // the rule: +1 before the first divergence, -1 at it, then -1 or 0
      const k = row.firstDivergence === -1 ? n : row.firstDivergence;
      expect(row.scores.slice(0, k).every((s: number) => s === 1)).toBe(true);
      if (k < n) expect(row.scores[k]).toBe(-1);
      expect(row.scores.slice(k).every((s: number) => s === -1 || s === 0)).toBe(true);
    });
  });

  it('rm score and rm explain take the responses a policy gives: empty ones, and ones cut off at the token limit (no EOS scored)', async () => {
    const [p1, p2, p3] = readJsonl(path.join(data, 'pairs.jsonl'));
    const input = path.join(root, 'generated-like.jsonl');
    const rows = [
      { prompt: p1.prompt, response: '', finishReason: 'eos' },
      { prompt: p2.prompt, response: p2.chosen, finishReason: 'length' },
      { prompt: p3.prompt, response: p3.chosen, finishReason: 'eos' },
    ];
    writeFileSync(input, rows.map((x) => JSON.stringify(x)).join('\n') + '\n');
    const out = path.join(root, 'scored-generated.jsonl');
    const r = await s2s(['rm', 'score', '--model', path.join(seq2seq, 'final'), '--data', input, '--out', out]);
    expect(r.code, r.err).toBe(0);
    const [empty, cut, done] = readJsonl(out);
    expect(empty.tokens).toEqual(['<eos>']); // the empty response: its EOS, the one token it wrote
    expect(empty.scores).toHaveLength(1);
    expect(cut.tokens).toHaveLength(tok.encode(p2.chosen).length); // its own words, no EOS it never wrote
    expect(cut.tokens).not.toContain('<eos>');
    expect(done.tokens).toHaveLength(tok.encode(p3.chosen).length + 1);
    expect(done.tokens.at(-1)).toBe('<eos>');
    const scalarOut = path.join(root, 'scored-generated-scalar.jsonl');
    const s = await s2s(['rm', 'score', '--model', path.join(scalar, 'final'), '--data', input, '--out', scalarOut]);
    expect(s.code, s.err).toBe(0);
    expect(readJsonl(scalarOut).every((x) => Number.isFinite(x.reward))).toBe(true);
    const e = await s2s(['rm', 'explain', '--model', path.join(seq2seq, 'final'), '--data', input]);
    expect(e.code, e.err).toBe(0);
    const counts = [...e.out.matchAll(/^response {3}(.*)$/gm)].map((m) => m[1].match(/\S+\[[+-]?[01]\]/g)?.length ?? 0);
    expect(counts).toEqual([1, tok.encode(p2.chosen).length, tok.encode(p3.chosen).length + 1]);
    // a finishReason that is neither is named
    writeFileSync(input, JSON.stringify({ prompt: p1.prompt, response: 'x', finishReason: 'stop' }) + '\n');
    const bad = await s2s(['rm', 'score', '--model', path.join(seq2seq, 'final'), '--data', input, '--out', out]);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain(`${input}:1: field "finishReason" must be "eos" or "length" (as s2s generate writes it), got "stop"`);
  });

  it('rm explain prints plain token[score] text and writes an HTML page', async () => {
    const [p] = readJsonl(path.join(data, 'pairs.jsonl'));
    const r = await s2s(['rm', 'explain', '--model', path.join(seq2seq, 'final'), '--prompt', p.prompt, '--response', p.chosen]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).not.toContain('\x1b[');
    const n = tok.encode(p.chosen).length + 1;
    expect(r.out.match(/\S+\[[+-]?[01]\]/g)).toHaveLength(n);
    expect(r.out).toMatch(/diverges/);
    expect(r.out).toMatch(/rewrite/);

    const html = path.join(root, 'report', 'explain.html');
    const many = await s2s(['rm', 'explain', '--model', path.join(seq2seq, 'final'), '--data', path.join(root, 'responses.jsonl'), '--limit', '2', '--html', html]);
    expect(many.code, many.err).toBe(0);
    expect(many.out).toContain('[2] prompt');
    expect(many.out).not.toContain('[3] prompt');
    const page = readFileSync(html, 'utf8');
    expect(page.startsWith('<!doctype html>')).toBe(true);
    expect(page.match(/class="s2s-explanation"/g)).toHaveLength(2);
  });
});
