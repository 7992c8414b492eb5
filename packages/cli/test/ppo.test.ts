// `s2s ppo` at toy size: every reward type runs and logs TRL's metrics, its policy generates and is
// judged, a stopped run resumes to the weights of one never stopped, and bad input is refused with
// a clear message and nothing written.
import { appendFileSync, cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadJsonl, loadModel } from '@s2s/core';
import { PPOTrainer, rewardFromModel } from '@s2s/ppo';
import { loadRewardModel } from '@s2s/rm';
import { TESTBED_TEMPLATE } from '@s2s/tasks';

import { PPOProgress } from '../src/ppo-progress.js';
import { type Fixtures, buildFixtures, readJson, readJsonl, s2s, snapshot, swappedTokenizer } from './cli-harness.js';

const root = mkdtempSync(path.join(tmpdir(), 's2s-cli-ppo-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let f: Fixtures;
let prompts: string;
let sft: string;

beforeAll(async () => {
  f = await buildFixtures(path.join(root, 'run'));
  prompts = path.join(f.data, 'rl_prompts.jsonl');
  sft = path.join(f.sft, 'final');
});

/** Two small steps: 4 prompts, minibatches of 2, one epoch, 8 new tokens. */
const SMALL = ['--steps', '2', '--batch-size', '4', '--mini-batch-size', '2', '--ppo-epochs', '1', '--max-new-tokens', '8', '--sample-every', '1', '--samples', '2'];
const rmOf = (reward: string) => path.join(reward === 'scalar' ? f.scalar : f.seq2seq, 'final');
const ppoArgs = (reward: string, out: string, extra: string[] = SMALL) => ['ppo', '--policy', sft, '--reward', reward, '--reward-model', rmOf(reward), '--prompts', prompts, '--out', out, ...extra];
const out = (name: string) => path.join(root, 'ppo', name);

const METRICS = ['objective/kl', 'objective/entropy', 'objective/scores', 'objective/non_score_reward', 'objective/rlhf_reward', 'policy/approxkl_avg', 'policy/clipfrac_avg', 'loss/policy_avg', 'loss/value_avg', 'val/clipfrac_avg', 'val/ratio', 'val/num_eos_tokens', 'response_length/mean', 'lr', 'episode'];

describe('s2s ppo', () => {
  it('runs with every reward type, logs every metric each step, and saves the policy with its tokenizer and template', async () => {
    for (const reward of ['scalar', 'token', 'sentence', 'token-positive', 'token-negative']) {
      const dir = out(reward);
      const extra = reward === 'sentence' ? [...SMALL, '--sentence-aggregate', 'mean'] : SMALL;
      const r = await s2s(ppoArgs(reward, dir, extra));
      expect(r.code, `${reward}: ${r.err}`).toBe(0);
      const log = readJsonl(path.join(dir, 'log.jsonl'));
      expect(log.map((l) => l.step)).toEqual([1, 2]);
      for (const k of METRICS) expect(Number.isFinite(log[1][k]), `${reward} ${k}`).toBe(true);
      expect(log[1].episode).toBe(8);
      // the reward's wiring shows in the scores' range: each token scores +1, -1 or 0
      const scores = log.map((l) => l['objective/scores']);
      if (reward === 'sentence') for (const s of scores) expect(Math.abs(s)).toBeLessThanOrEqual(1);
      if (reward === 'token-positive') for (const s of scores) expect(s).toBeGreaterThanOrEqual(0);
      if (reward === 'token-negative') for (const s of scores) expect(s).toBeLessThanOrEqual(0);
      for (const file of ['config.json', 'model.safetensors', 'tokenizer.json', 's2s_template.json']) expect(existsSync(path.join(dir, 'final', file)), `${reward} ${file}`).toBe(true);
      expect(readJson(path.join(dir, 'final', 'config.json')).architectures).toEqual(['GPT2LMHeadModel']);
      expect(readJson(path.join(dir, 'final-critic', 'config.json')).architectures).toEqual(['GPT2ForSequenceClassification']);
      expect(readJsonl(path.join(dir, 'samples.jsonl'))).toHaveLength(4);
      expect(readJson(path.join(dir, 'ppo_config.json'))).toMatchObject({ policy: sft, reward, steps: 2, batchSize: 4, targetKl: 0, whitenAdvantages: true });
      // the progress lines and the closing summary
      expect(r.err).toMatch(/^step 1\/2 +50% +score -?\d+\.\d{3} +kl -?\d+\.\d{3} +len \d+\.\d +\d+\.\d\d s\/step +eta /m);
      expect(r.out).toContain(`policy saved to ${path.join(dir, 'final')}`);
      expect(r.out).toMatch(/step 1 +step 2\n +score +-?\d/);
      expect(r.out).toMatch(/response length +\d+\.\d +\d+\.\d/);
    }
    // the scalar run's critic starts from the reward model, normalised by its statistics; the others' from the policy
    const scalarRun = await s2s(ppoArgs('scalar', out('scalar-again'), [...SMALL, '--steps', '1', '--no-whiten-advantages']));
    expect(scalarRun.out).toContain(`critic from ${rmOf('scalar')}`);
    expect(readJson(path.join(out('scalar-again'), 'ppo_config.json')).whitenAdvantages).toBe(false);
  });

  it("generates with the trained policy, and judges it against the SFT model's responses", async () => {
    const evalPrompts = path.join(f.data, 'eval_id.jsonl');
    const ppoGen = path.join(root, 'gen', 'ppo-t.jsonl');
    const sftGen = path.join(root, 'gen', 'sft.jsonl');
    for (const [model, file] of [[path.join(out('token'), 'final'), ppoGen], [sft, sftGen]]) {
      const r = await s2s(['generate', '--model', model, '--prompts', evalPrompts, '--out', file, '--max-new-tokens', '12']);
      expect(r.code, r.err).toBe(0);
      const rows = readJsonl(file);
      expect(rows).toHaveLength(4);
      for (const row of rows) expect(Object.keys(row).sort()).toEqual(['finishReason', 'prompt', 'response']);
    }
    const judged = await s2s(['eval', '--task', 'summarize', '--data', ppoGen]);
    expect(judged.code, judged.err).toBe(0);
    expect(judged.out).toMatch(/^4 responses from .*ppo-t\.jsonl, judged by the summarize gold judge/m);
    for (const part of ['score', 'coverage', 'hallucinated', 'filler']) expect(judged.out).toMatch(new RegExp(`^  ${part} +-?\\d`, 'm'));
    const pair = await s2s(['eval', '--task', 'summarize', '--a', ppoGen, '--b', sftGen]);
    expect(pair.code, pair.err).toBe(0);
    const m = pair.out.match(/win rate of A: (\d+\.\d)% +\(wins (\d+), ties (\d+), losses (\d+)/)!;
    expect(m).not.toBeNull();
    const [wins, ties, losses] = [Number(m[2]), Number(m[3]), Number(m[4])];
    expect(wins + ties + losses).toBe(4);
    expect(Number(m[1])).toBeCloseTo((100 * (wins + ties / 2)) / 4, 1);
  });

  it('stops on its signal with a checkpoint (exit 130), and --resume continues to the weights of a run never stopped', async () => {
    const three = [...SMALL, '--steps', '3', '--seed', '5'];
    const straight = out('straight');
    expect((await s2s(ppoArgs('token', straight, three))).code).toBe(0);

    const stopped = out('stopped');
    const stop = new AbortController();
    const r = await s2s(ppoArgs('token', stopped, three), { signal: stop.signal, onErr: (l) => void (l.startsWith('step 1/3') && stop.abort()) });
    expect(r.code, r.err).toBe(130);
    expect(r.err).toContain(`checkpoint: ${path.join(stopped, 'checkpoint-1')}`);
    expect(r.err).toContain(`continue with: s2s ppo --out ${stopped} --resume`);
    expect(existsSync(path.join(stopped, 'final'))).toBe(false);
    for (const sub of ['policy', 'critic']) expect(existsSync(path.join(stopped, 'checkpoint-1', sub, 'model.safetensors'))).toBe(true);

    // a resumed run keeps what fixes its prompt order, and its reward (it may change, e.g., --steps)
    const changed = await s2s(['ppo', '--out', stopped, '--resume', '--seed', '6']);
    expect(changed.code).toBe(2);
    expect(changed.err).toContain('--seed 6 differs from the run in');
    const otherReward = await s2s(['ppo', '--out', stopped, '--resume', '--reward', 'sentence']);
    expect(otherReward.code).toBe(2);
    expect(otherReward.err).toContain('--reward sentence differs from the run');

    // a run that died after its checkpoint logged a step the resumed run takes again: that line goes
    appendFileSync(path.join(stopped, 'log.jsonl'), JSON.stringify({ step: 2, 'objective/scores': 99 }) + '\n');
    // the policy, prompts and reward model come from the run's saved options
    const resumed = await s2s(['ppo', '--out', stopped, '--resume']);
    expect(resumed.code, resumed.err).toBe(0);
    expect(resumed.out).toContain(`resuming ${path.join(stopped, 'checkpoint-1')} at step 1`);
    expect(readJsonl(path.join(stopped, 'log.jsonl')).map((l) => l.step)).toEqual([1, 2, 3]);
    const weights = (dir: string) => readFileSync(path.join(dir, 'final', 'model.safetensors'));
    expect(weights(stopped).equals(weights(straight))).toBe(true);
    expect(readJsonl(path.join(stopped, 'log.jsonl'))).toEqual(readJsonl(path.join(straight, 'log.jsonl')));
    expect(resumed.out).toMatch(/step 1 +step 3\n/);
  });

  it('draws one progress line in place on a terminal, with score, KL, response length and ETA', () => {
    let text = '';
    const p = new PPOProgress({ tty: true, stream: { write: (x: string) => void (text += x), columns: 120 } });
    const metrics = { 'objective/scores': 0.5, 'objective/kl': 0.0123, 'response_length/mean': 7.25 };
    const event = (step: number) => ({ type: 'step' as const, totalSteps: 2, elapsedMs: 1000 * step, etaMs: 1000 * (2 - step), data: { step, metrics, prompts: [], responses: [], responseIds: [], scores: [] } });
    p.onEvent(event(1));
    p.onEvent({ type: 'checkpoint', step: 1, dir: 'out/checkpoint-1' });
    p.onEvent(event(2));
    p.done();
    expect(text).toContain('\r\x1b[Kcheckpoint saved to out/checkpoint-1\n[');
    expect(text).toMatch(/\r\[#+\] 2\/2 100% +score 0\.500 +kl 0\.012 +len 7\.3 +1\.00 s\/step +eta 0:00\x1b\[K\n$/);
  });
});

describe('s2s ppo refuses bad input', () => {
  const fresh = out('bad');

  async function expectFailure(args: string[], code: number, message: string | RegExp) {
    const r = await s2s(args);
    expect(r.code, r.err).toBe(code);
    if (typeof message === 'string') expect(r.err).toContain(message);
    else expect(r.err).toMatch(message);
    expect(r.err).not.toMatch(/\n\s+at .+:\d+:\d+/);
    expect(snapshot(fresh)).toBe('(absent)');
  }

  it('a reward model of the wrong kind for --reward, or none', async () => {
    await expectFailure(['ppo', '--policy', sft, '--reward', 'token', '--reward-model', rmOf('scalar'), '--prompts', prompts, '--out', fresh], 2, '--reward token needs a seq2seq reward model');
    await expectFailure(['ppo', '--policy', sft, '--reward', 'scalar', '--reward-model', rmOf('token'), '--prompts', prompts, '--out', fresh], 2, '--reward scalar needs a scalar reward model');
    await expectFailure(['ppo', '--policy', sft, '--reward', 'sentence', '--reward-model', sft, '--prompts', prompts, '--out', fresh], 1, `${sft} is not a reward model`);
    await expectFailure(['ppo', '--policy', sft, '--reward', 'token', '--reward-model', path.join(root, 'nowhere'), '--prompts', prompts, '--out', fresh], 1, 'config.json does not exist');
    await expectFailure(['ppo', '--policy', sft, '--reward', 'token', '--prompts', prompts, '--out', fresh], 2, '--reward-model RM_DIR is required');
    // a reward model saved with another vocabulary would score other tokens than the policy writes
    const otherRM = path.join(root, 'other-vocab-rm');
    cpSync(rmOf('token'), otherRM, { recursive: true });
    swappedTokenizer(rmOf('token'), otherRM);
    await expectFailure(['ppo', '--policy', sft, '--reward', 'token', '--reward-model', otherRM, '--prompts', prompts, '--out', fresh, ...SMALL], 1, `--reward-model ${otherRM} was trained with another tokenizer than`);
  });

  it('missing or malformed prompts, unknown flags, a bad config', async () => {
    await expectFailure(ppoArgs('token', fresh).map((a) => (a === prompts ? path.join(root, 'none.jsonl') : a)), 1, `--prompts ${path.join(root, 'none.jsonl')}: no such file`);
    const bad = path.join(root, 'bad-prompts.jsonl');
    writeFileSync(bad, '{"prompt": "summarize : a"}\n{"prompt": 3}\n');
    await expectFailure(ppoArgs('token', fresh).map((a) => (a === prompts ? bad : a)), 1, `${bad}:2: field "prompt" must be a string`);
    await expectFailure([...ppoArgs('token', fresh), '--kl-coeff', '0.1'], 2, "'--kl-coeff'");
    await expectFailure([...ppoArgs('token', fresh), '--kl-estimator', 'k2'], 2, '--kl-estimator must be one of k1, k3, got "k2"');
    await expectFailure([...ppoArgs('token', fresh), '--whiten-advantages', '--no-whiten-advantages'], 2, '--whiten-advantages and --no-whiten-advantages contradict each other');
    await expectFailure([...ppoArgs('token', fresh), '--mini-batch-size', '3'], 2, '--batch-size (4) must be a multiple of --mini-batch-size (3)');
    // truncated sampling would make the rollouts off-policy: the ratio and KL use the whole softmax
    await expectFailure([...ppoArgs('token', fresh), '--top-k', '5'], 2, '--top-k must be 0 (all tokens), got 5');
    await expectFailure([...ppoArgs('token', fresh), '--top-p', '0.9'], 2, '--top-p must be 1 (the whole distribution), got 0.9');
    await expectFailure([...ppoArgs('token', fresh), '--batch-size', '8', '--mini-batch-size', '4'], 2, 'has 4 prompts, fewer than --batch-size (8)');
    await expectFailure([...ppoArgs('token', fresh), '--max-new-tokens', '128'], 2, "--max-new-tokens 128 leaves no room for a prompt in the model's context (128 tokens)");
    // the policy's context holds it cut from the left; the scalar reward model would read it whole
    const long = path.join(root, 'long-prompts.jsonl');
    const prompt = readJsonl(prompts)[0].prompt;
    writeFileSync(long, `${JSON.stringify({ prompt: Array(6).fill(prompt).join(' ') })}\n`.repeat(4));
    await expectFailure(ppoArgs('scalar', fresh).map((a) => (a === prompts ? long : a)), 1, "prompt 1 and a response of --max-new-tokens 8 do not fit the scalar reward model's context (128 tokens)");
    const config = path.join(root, 'ppo-config.json');
    writeFileSync(config, JSON.stringify({ klCoef: 0.1, 'target-kl': 'high' }));
    await expectFailure([...ppoArgs('token', fresh), '--config', config], 2, `${config}: "target-kl" must be a number >= 0, got "high"`);
    await expectFailure(['ppo', '--out', fresh, '--resume'], 1, `--resume: ${fresh} has no checkpoint to resume from`);
    await expectFailure(['ppo', '--resume', sft], 1, `--resume ${sft}: it holds a supervised run, not a PPO one`);
    await expectFailure(['ppo', '--resume', path.join(out('token'), 'final')], 1, 'not a PPO checkpoint (it has no policy/ and critic/ folders)');
    // another run's folder is never mixed with a new one
    await expectFailure(['ppo', '--out', fresh], 2, '--reward scalar|token|sentence|token-positive|token-negative is required');
    const taken = await s2s(ppoArgs('token', out('token')));
    expect(taken.code).toBe(2);
    expect(taken.err).toContain(`${out('token')} already holds a run`);
  });
});

describe('the reward models `s2s rm train` writes, from Node', () => {
  it('open with loadRewardModel and train a policy with @s2s/ppo, no command-line code involved', async () => {
    const scalar = await loadRewardModel(rmOf('scalar'));
    expect(scalar.kind).toBe('scalar');
    expect(scalar.kind === 'scalar' && scalar.stats).toEqual(readJson(path.join(rmOf('scalar'), 'reward_stats.json')));
    expect(scalar.info).toMatchObject({ kind: 'scalar', baseModel: path.resolve(sft) });
    expect(rewardFromModel(scalar)).toMatchObject({ type: 'scalar', model: scalar.model, stats: readJson(path.join(rmOf('scalar'), 'reward_stats.json')) });
    expect(() => rewardFromModel(scalar, 'token')).toThrow(`a 'token' reward needs a seq2seq reward model's token scores, but ${rmOf('scalar')} is a scalar one`);
    scalar.model.dispose();

    const rm = await loadRewardModel(rmOf('token'));
    expect(rm.kind).toBe('seq2seq');
    expect(rm.template).toEqual(TESTBED_TEMPLATE);
    expect(() => rewardFromModel(rm, 'scalar')).toThrow(`a 'scalar' reward needs a scalar reward model, but ${rmOf('token')} is a seq2seq one`);
    expect(rewardFromModel(rm, 'sentence', { aggregate: 'mean' })).toMatchObject({ type: 'sentence', aggregate: 'mean' });
    const policy = await loadModel(sft, { optimizer: false });
    const models = [policy, await policy.clone(), await policy.clone({ valueHead: true, seed: 1 }), rm.model];
    try {
      const trainer = new PPOTrainer({
        policy,
        ref: models[1],
        critic: models[2],
        reward: rewardFromModel(rm),
        tokenizer: rm.tokenizer,
        template: rm.template,
        config: { steps: 1, batchSize: 4, miniBatchSize: 2, ppoEpochs: 1, maxNewTokens: 8 },
      });
      const result = await trainer.train((await loadJsonl(prompts, 'prompt')).rows);
      expect(result.steps).toBe(1);
      expect(Number.isFinite(result.history[0]['objective/scores'])).toBe(true);
    } finally {
      for (const m of models) m.dispose();
    }
  });

  it('keeps --save-total-limit checkpoints as sft does: the newest N, or all with 0', async () => {
    for (const [limit, kept] of [
      ['1', ['checkpoint-2']],
      ['0', ['checkpoint-1', 'checkpoint-2']],
    ] as const) {
      const dir = out(`limit-${limit}`);
      const r = await s2s(ppoArgs('token', dir, [...SMALL, '--steps', '3', '--save-every', '1', '--save-total-limit', limit]));
      expect(r.code, r.err).toBe(0);
      expect(readdirSync(dir).filter((n) => n.startsWith('checkpoint-')).sort(), `--save-total-limit ${limit}`).toEqual(kept);
      expect(existsSync(path.join(dir, 'final'))).toBe(true);
    }
  });
});
