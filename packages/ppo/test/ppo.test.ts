// PPO with real models: a toy objective is learned with bounded KL, token-level rewards keep their
// credit where it was earned while sentence-level ones spread it, a bad custom reward stops with a
// clear error and a checkpoint, and a resumed run continues exactly.
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { Model, Tokenizer, chatModeTemplate, createChatTemplate, encodePrompt, resolveTemplate, stopTokenIds, wordLevelTokenizerJSON } from '@s2s/core';
import { type CustomReward, type PPOConfig, type PPOEvent, type PPOStep, PPOTrainer, collectRollout, resolvePPOConfig, sequenceBatch } from '@s2s/ppo';

const WORDS = Array.from({ length: 10 }, (_, i) => `w${i}`);
const tok = Tokenizer.fromJSON(wordLevelTokenizerJSON(WORDS, ['<pad>', '<unk>', '<bos>', '<eos>', '<sep>']), {
  tokenizerConfig: { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>', unk_token: '<unk>' },
});
const tpl = resolveTemplate({ promptPrefix: '', responsePrefix: ' <sep>', rewritePrefix: '', addBos: true, addEos: true });
const MODEL = { vocabSize: tok.vocabSize, maxSeqLen: 24, numLayers: 1, numHeads: 2, channels: 32 };
const PROMPTS = Array.from({ length: 64 }, (_, i) => `w${i % 10} w${(i * 3) % 10}`);
const TARGET = tok.tokenToId('w3')!;
const frequency: CustomReward = (_p, _r, tokens) => tokens.filter((t) => t === TARGET).length / tokens.length;
const root = await mkdtemp(path.join(tmpdir(), 's2s-ppo-'));
afterAll(() => rm(root, { recursive: true, force: true }));

async function models(seed = 1) {
  const policy = await Model.create(MODEL, { seed });
  return { policy, ref: await policy.clone(), critic: await policy.clone({ valueHead: true, seed: seed + 1 }) };
}

const TOY: Partial<PPOConfig> = { batchSize: 16, miniBatchSize: 8, lr: 1e-3, criticLr: 1e-3, maxNewTokens: 8, temperature: 1, klCoef: 0.05, lrSchedule: 'constant', seed: 1 };

describe('PPO', () => {
  it('learns a toy objective (the frequency of one word) within 20 steps, with the KL bounded', async () => {
    const m = await models();
    const trainer = new PPOTrainer({ ...m, tokenizer: tok, template: tpl, reward: { type: 'custom', fn: frequency }, config: { ...TOY, steps: 20 } });
    const { history } = await trainer.train(PROMPTS);
    const at = (k: number) => history[k]['objective/scores'];
    expect(at(0)).toBeLessThan(0.15);
    expect(at(19)).toBeGreaterThan(0.4);
    for (const h of history) {
      expect(h['objective/kl']).toBeLessThan(10);
      for (const [k, v] of Object.entries(h)) expect(Number.isFinite(v), k).toBe(true);
    }
    // the metrics TRL users look for are all there
    for (const k of ['objective/kl', 'objective/entropy', 'objective/scores', 'objective/non_score_reward', 'objective/rlhf_reward', 'policy/approxkl_avg', 'policy/clipfrac_avg', 'loss/policy_avg', 'loss/value_avg', 'val/clipfrac_avg', 'val/ratio', 'val/num_eos_tokens', 'lr', 'episode'])
      expect(history[0]).toHaveProperty([k]);
    expect(history[19].episode).toBe(20 * 16);
    for (const x of Object.values(m)) x.dispose();
  });

  it('stops a rollout\'s epochs early once the approximate KL passes earlyStopKL, and reports length statistics', async () => {
    const run = async (earlyStopKL: number) => {
      const m = await models();
      const steps: PPOStep[] = [];
      const onEvent = (e: PPOEvent) => void (e.type === 'step' && steps.push(e.data));
      const trainer = new PPOTrainer({ ...m, tokenizer: tok, template: tpl, reward: { type: 'custom', fn: frequency }, config: { ...TOY, lr: 1e-2, ppoEpochs: 4, steps: 1, earlyStopKL }, onEvent });
      await trainer.train(PROMPTS);
      for (const x of Object.values(m)) x.dispose();
      return steps[0];
    };
    // any policy change at all exceeds 1e-12 after the first epoch; without the limit all 4 run
    const stopped = await run(1e-12);
    expect(stopped.metrics.ppo_epochs_run).toBe(1);
    const full = await run(0);
    expect(full.metrics.ppo_epochs_run).toBe(4);
    expect(full.metrics['policy/approxkl_avg']).toBeGreaterThan(1e-12);
    // the length statistics beside TRL's metrics, from the responses themselves (EOS not counted)
    const lengths = full.responseIds.map((ids) => ids.filter((t) => t !== tok.eosId).length);
    const mean = lengths.reduce((a, b) => a + b, 0) / lengths.length;
    expect(full.metrics['response_length/mean']).toBeCloseTo(mean, 10);
    expect(full.metrics['response_length/std']).toBeCloseTo(Math.sqrt(lengths.reduce((a, b) => a + (b - mean) ** 2, 0) / lengths.length), 10);
    expect(full.metrics['responses/empty_rate']).toBe(lengths.filter((n) => n === 0).length / lengths.length);
  });

  it('keeps token-level credit where it was earned; a sentence-level reward spreads it over the response', async () => {
    // reward 1 on the response's third token only; no KL, no critic (its head is zeroed), no whitening
    const onThird: CustomReward = (_p, _r, tokens) => tokens.map((_, t) => (t === 2 ? 1 : 0));
    const sentence: CustomReward = (p, r, tokens) => (onThird(p, r, tokens) as number[]).reduce((a, b) => a + b, 0);
    const config = resolvePPOConfig({ ...TOY, klCoef: 0, whitenAdvantages: false, lam: 0.9, maxNewTokens: 6 });
    for (const [name, fn] of [['token', onThird], ['sentence', sentence]] as const) {
      const m = await models(3);
      await m.critic.writeTensor('score.weight', new Float32Array(MODEL.channels));
      const ro = await collectRollout({ ...m, reward: { type: 'custom', fn }, tokenizer: tok, template: tpl }, config, PROMPTS.slice(0, 16), 0, 7);
      ro.responses.forEach((r, i) => {
        const L = r.length;
        if (L < 3) return;
        ro.advantages[i].forEach((a, t) => {
          // token: A_t = lambda^(2-t) up to the rewarded token and 0 after it; sentence: lambda^(L-1-t) everywhere
          const want = name === 'token' ? (t <= 2 ? 0.9 ** (2 - t) : 0) : 0.9 ** (L - 1 - t);
          expect(a).toBeCloseTo(want, 6);
        });
      });
      for (const x of Object.values(m)) x.dispose();
    }
  });

  it('changes the policy where the token-level reward was earned; a sentence-level reward moves later tokens too', async () => {
    // one update on a reward earned by the third token, given per token or as a sentence total
    // (advantages unwhitened: whitening shifts every token's advantage by the batch mean)
    const onThird: CustomReward = (_p, _r, tokens) => tokens.map((_, t) => (t === 2 ? 1 : 0));
    const total: CustomReward = (p, r, tokens) => (onThird(p, r, tokens) as number[]).reduce((a, b) => a + b, 0);
    const focus: Record<string, number> = {};
    for (const [name, fn] of [['token', onThird], ['sentence', total]] as const) {
      const m = await models(4);
      await m.critic.writeTensor('score.weight', new Float32Array(MODEL.channels));
      const steps: Array<Pick<PPOStep, 'prompts' | 'responseIds'>> = [];
      await new PPOTrainer({
        ...m,
        tokenizer: tok,
        template: tpl,
        reward: { type: 'custom', fn },
        config: { ...TOY, steps: 1, klCoef: 0, maxNewTokens: 6, whitenAdvantages: false },
        onEvent: (e) => void (e.type === 'step' && steps.push(e.data)),
      }).train(PROMPTS);
      const { prompts, responseIds } = steps[0];
      const batch = sequenceBatch(prompts.map((p) => encodePrompt(tok, tpl, p)!), responseIds, tok.padId!);
      const before = batch.gather((await m.ref.forward(batch, { temperature: 1 })).logprob);
      const after = batch.gather((await m.policy.forward(batch, { temperature: 1 })).logprob);
      const change = (pick: (t: number) => boolean) => {
        const d = responseIds.flatMap((r, i) => r.map((_, t) => (pick(t) ? Math.abs(after[i][t] - before[i][t]) : Number.NaN))).filter((x) => !Number.isNaN(x));
        return d.reduce((a, b) => a + b, 0) / d.length;
      };
      // how much more the rewarded token moved than the tokens after it
      focus[name] = change((t) => t === 2) / change((t) => t > 2);
      for (const x of Object.values(m)) x.dispose();
    }
    expect(focus.token).toBeGreaterThan(1.5);
    expect(focus.token).toBeGreaterThan(1.5 * focus.sentence);
  });

  it('stops at a custom reward that throws, returns NaN or the wrong length, leaving a checkpoint to resume from', async () => {
    const cases: Array<[CustomReward, RegExp]> = [
      [() => { throw new Error('judge offline'); }, /the custom reward threw for response 0: judge offline/],
      [() => Number.NaN, /returned NaN for response 0; rewards must be finite numbers/],
      [(_p, _r, tokens) => new Array(tokens.length + 1).fill(0), /returned \d+ values for response 0, which has \d+ tokens/],
    ];
    for (const [bad, message] of cases) {
      const out = path.join(root, `bad-${cases.findIndex((c) => c[0] === bad)}`);
      const m = await models();
      let calls = 0;
      // fine for the first two steps (16 responses each), broken from the third on
      const fn: CustomReward = (p, r, t) => (calls++ < 32 ? frequency(p, r, t) : bad(p, r, t));
      const trainer = new PPOTrainer({ ...m, tokenizer: tok, template: tpl, reward: { type: 'custom', fn }, outputDir: out, config: { ...TOY, steps: 4 } });
      await expect(trainer.train(PROMPTS)).rejects.toThrow(message);
      await expect(trainer.train(PROMPTS)).rejects.toThrow(/checkpointed at step 2/);
      const resumed = await PPOTrainer.resume(path.join(out, 'checkpoint-2'), { ...m, tokenizer: tok, template: tpl, reward: { type: 'custom', fn: frequency } });
      expect(resumed.currentStep).toBe(2);
      expect((await resumed.train(PROMPTS)).steps).toBe(4);
      for (const x of [...Object.values(m), resumed.policy, resumed.critic]) x.dispose();
    }
  });

  it("ends responses on a chat template's end-of-turn when the tokenizer has no eos_token, and counts it out of their length", async () => {
    // a chat model's tokenizer may name no eos_token: its template's <eot> is where the policy stops
    const chatTok = Tokenizer.fromJSON(wordLevelTokenizerJSON(WORDS, ['<pad>', '<unk>', '<user>', '<assistant>', '<eot>']), { tokenizerConfig: { pad_token: '<pad>', unk_token: '<unk>' } });
    const jinja = "{% for m in messages %}{{ '<' + m['role'] + '> ' + m['content'] + ' <eot> ' }}{% endfor %}{% if add_generation_prompt %}{{ '<assistant>' }}{% endif %}";
    const chat = chatModeTemplate(createChatTemplate(chatTok, jinja, 'toy chat template'));
    const eot = chatTok.tokenToId('<eot>')!;
    expect(chatTok.eosId).toBeUndefined();
    expect(stopTokenIds(chatTok, chat)).toEqual([eot]);
    const policy = await Model.create({ ...MODEL, vocabSize: chatTok.vocabSize }, { seed: 5 });
    const ref = await policy.clone();
    const critic = await policy.clone({ valueHead: true, seed: 6 });
    const steps: PPOStep[] = [];
    const prompts = [...PROMPTS.slice(0, 8), ...PROMPTS.slice(8, 16).map((p) => [{ role: 'user', content: p }])];
    await new PPOTrainer({
      policy,
      ref,
      critic,
      tokenizer: chatTok,
      template: chat,
      reward: { type: 'custom', fn: frequency },
      config: { ...TOY, steps: 1, maxNewTokens: 8 },
      onEvent: (e) => void (e.type === 'step' && steps.push(e.data)),
    }).train(prompts);
    const { responseIds, metrics, responses } = steps[0];
    // <eot> only ever ends a response; responses that end with it lose it from their length
    const stopped = responseIds.filter((r) => r[r.length - 1] === eot).length;
    expect(stopped).toBeGreaterThan(0);
    for (const r of responseIds) expect(r.slice(0, -1)).not.toContain(eot);
    expect(metrics['val/num_eos_tokens']).toBe(stopped);
    expect(metrics['response_length/mean']).toBeCloseTo((responseIds.reduce((a, r) => a + r.length, 0) - stopped) / responseIds.length, 10);
    for (const r of responses) expect(r).not.toContain('<eot>');
    for (const m of [policy, ref, critic]) m.dispose();
  });

  it('resumes a stopped run with exactly the next-step statistics of an uninterrupted one', async () => {
    const config = { ...TOY, steps: 5, targetKL: 1, klHorizon: 100 };
    const a = await models(5);
    const straight = await new PPOTrainer({ ...a, tokenizer: tok, template: tpl, reward: { type: 'custom', fn: frequency }, config }).train(PROMPTS);

    const out = path.join(root, 'resume');
    const b = await models(5);
    const stop = new AbortController();
    const first = new PPOTrainer({
      ...b,
      tokenizer: tok,
      template: tpl,
      reward: { type: 'custom', fn: frequency },
      config,
      outputDir: out,
      signal: stop.signal,
      onEvent: (e) => void (e.type === 'step' && e.data.step === 2 && stop.abort()),
    });
    const r1 = await first.train(PROMPTS);
    expect(r1).toMatchObject({ stopped: true, steps: 2 });
    const resumed = await PPOTrainer.resume(r1.savedTo!, { ref: b.ref, tokenizer: tok, template: tpl, reward: { type: 'custom', fn: frequency }, outputDir: out });
    const r2 = await resumed.train(PROMPTS);
    expect(r2.history).toEqual(straight.history.slice(2));
    expect(await resumed.policy.readBuffer('params')).toEqual(await a.policy.readBuffer('params'));
    // one JSON line per step, across the interruption
    const log = (await readFile(path.join(out, 'log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(log.map((l) => l.step)).toEqual([1, 2, 3, 4, 5]);
    for (const x of [...Object.values(a), ...Object.values(b), resumed.policy, resumed.critic]) x.dispose();
  });
});

describe("PPO's optimizer config and checkpoints, shared with the other trainers", () => {
  it('refuses an optimizer value the engine would refuse in the constructor, before any rollout', async () => {
    const m = await models();
    let scored = 0;
    const fn: CustomReward = (p, r, t) => (scored++, frequency(p, r, t));
    const make = (config: Partial<PPOConfig>) => () => new PPOTrainer({ ...m, tokenizer: tok, template: tpl, reward: { type: 'custom', fn }, config: { ...TOY, ...config } });
    expect(make({ beta1: 1 })).toThrow('PPO config: beta1 must be a number in [0, 1), got 1');
    expect(make({ eps: 1e-50 })).toThrow("PPO config: eps must be a finite number > 0, got 1e-50 (0 as the engine's 32-bit float)");
    expect(make({ criticLr: -1 })).toThrow('PPO config: criticLr must be a finite number >= 0, got -1');
    expect(make({ warmupSteps: 0.5 })).toThrow('PPO config: warmupSteps must be a non-negative integer, got 0.5');
    expect(scored).toBe(0);
    // the schedule's kinds are every trainer's
    expect(resolvePPOConfig({ lrSchedule: 'cosine', warmupSteps: 2, minLrRatio: 0.1 })).toMatchObject({ lrSchedule: 'cosine', warmupSteps: 2, minLrRatio: 0.1 });
    expect(resolvePPOConfig()).toMatchObject({ lrSchedule: 'linear', warmupSteps: 0, warmupRatio: 0, minLrRatio: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, maxGradNorm: 1 });
    for (const x of Object.values(m)) x.dispose();
  });

  it('steps the learning rate on the shared schedule: linear to 0 over the run by default, with a warmup when asked', async () => {
    const run = async (config: Partial<PPOConfig>) => {
      const m = await models();
      const { history } = await new PPOTrainer({ ...m, tokenizer: tok, template: tpl, reward: { type: 'custom', fn: frequency }, config: { ...TOY, ppoEpochs: 1, maxNewTokens: 4, steps: 4, ...config } }).train(PROMPTS);
      for (const x of Object.values(m)) x.dispose();
      return history.map((h) => h.lr);
    };
    expect(await run({ lrSchedule: 'linear', lr: 0.01 })).toEqual([0.01, 0.01 * 0.75, 0.01 * 0.5, 0.01 * 0.25]);
    const warm = await run({ lrSchedule: 'constant', lr: 0.01, warmupSteps: 2 });
    expect(warm).toEqual([0.005, 0.01, 0.01, 0.01]);
  });

  it('keeps saveTotalLimit checkpoints as the supervised trainers do: the newest N, or all with 0; final/ is not one', async () => {
    for (const [limit, kept] of [
      [2, ['checkpoint-2', 'checkpoint-3']],
      [0, ['checkpoint-1', 'checkpoint-2', 'checkpoint-3']],
    ] as const) {
      const out = path.join(root, `limit-${limit}`);
      const m = await models();
      const trainer = new PPOTrainer({
        ...m,
        tokenizer: tok,
        template: tpl,
        reward: { type: 'custom', fn: frequency },
        outputDir: out,
        config: { ...TOY, ppoEpochs: 1, maxNewTokens: 4, steps: 4, saveEvery: 1, saveTotalLimit: limit },
      });
      await trainer.train(PROMPTS);
      expect((await readdir(out)).filter((n) => n.startsWith('checkpoint-')).sort(), `saveTotalLimit ${limit}`).toEqual(kept);
      expect(await readdir(out)).toEqual(expect.arrayContaining(['final', 'final-critic']));
      for (const x of Object.values(m)) x.dispose();
    }
  });
});
