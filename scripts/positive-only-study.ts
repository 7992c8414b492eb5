// What makes PPO on positive-only token scores collapse to empty responses, or not (issue 14): the
// demo's "PPO-T, positive scores only" run again on a demo's own SFT model and seq2seq reward model,
// one setting changed at a time, each judged on the demo's evaluation prompts.
//
//   node --conditions=source --import tsx scripts/positive-only-study.ts --demo runs/demo [--seeds 1,2] [--out FILE.json]
//
// --demo is a finished `s2s demo` run folder (its report/results.json names the cached models); the
// task is summarize, whose data is regenerated from the demo's seed exactly as the demo made it.
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { loadModel } from '@s2s/core';
import { type PPOConfig, PPOTrainer } from '@s2s/ppo';
import { TESTBED_TEMPLATE, getTask, testbedTokenizer } from '@s2s/tasks';

import { DEMO_FULL } from '../packages/cli/src/demo/config.js';
import { judgePolicy } from '../packages/cli/src/demo/evaluate.js';

interface Variant {
  name: string;
  why: string;
  ppo: Partial<PPOConfig>;
}

const VARIANTS: Variant[] = [
  { name: 'as in the demo', why: 'token averaging, no missing-EOS penalty, advantages whitened, KL 0.05 (k1)', ppo: {} },
  { name: 'per-sequence averaging', why: "each response's mean, then over responses (the paper authors' trainers)", ppo: { lossAveraging: 'sequence' } },
  { name: 'missing-EOS penalty 1', why: 'a response cut off at the token limit loses 1 at its last token', ppo: { missingEosPenalty: 1 } },
  { name: 'per-sequence + EOS penalty', why: 'both', ppo: { lossAveraging: 'sequence', missingEosPenalty: 1 } },
  { name: 'advantages not whitened', why: 'raw GAE advantages: every positive score pushes up', ppo: { whitenAdvantages: false } },
  { name: 'KL 0.2', why: 'four times the KL coefficient', ppo: { klCoef: 0.2 } },
  { name: 'lr x10', why: 'the policy learning rate 5e-4 (the critic 1e-3): the same steps move it further', ppo: { lr: 5e-4, criticLr: 1e-3 } },
  { name: 'lr x10 + per-sequence', why: 'both', ppo: { lr: 5e-4, criticLr: 1e-3, lossAveraging: 'sequence' } },
  { name: 'lr x10 + not whitened', why: 'both', ppo: { lr: 5e-4, criticLr: 1e-3, whitenAdvantages: false } },
  { name: '200 steps', why: 'four times as long', ppo: { steps: 200 } },
];

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && process.argv[i + 1]) return process.argv[i + 1];
  if (def === undefined) throw new Error(`--${name} is required`);
  return def;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

async function main(): Promise<void> {
  const demo = arg('demo');
  const seeds = arg('seeds', '1,2').split(',').map(Number);
  const out = arg('out', path.join(demo, 'positive-only-study.json'));
  const only = process.argv.includes('--variants') ? arg('variants').split(';') : undefined;
  const results = JSON.parse(readFileSync(path.join(demo, 'report', 'results.json'), 'utf8')) as { runs: Array<{ task: string; seed: number; models: { sft: string; seq2seqRM: string } }>; config: typeof DEMO_FULL };
  const cfg = results.config ?? DEMO_FULL;
  const task = getTask('summarize');
  const tok = testbedTokenizer();
  const tpl = TESTBED_TEMPLATE;
  const rows: Array<Record<string, unknown>> = [];
  for (const seed of seeds) {
    const run = results.runs.find((r) => r.task === 'summarize' && r.seed === seed);
    if (!run) throw new Error(`${demo} has no summarize run for seed ${seed}`);
    const data = task.generate({ seed, ...cfg.data });
    const prompts = { id: data.eval.id.map((r) => r.prompt), ood: data.eval.ood.map((r) => r.prompt) };
    const evalOpts = { ...cfg.eval, seed: 7919 * seed + 17 };
    const sft = await loadModel(run.models.sft);
    const rm = await loadModel(run.models.seq2seqRM);
    for (const v of VARIANTS.filter((x) => !only || only.includes(x.name))) {
      const t0 = performance.now();
      const policy = await sft.clone();
      const ref = await sft.clone();
      const critic = await sft.clone({ valueHead: true, seed });
      const curve: Array<{ step: number; empty: number; length: number }> = [];
      const trainer = new PPOTrainer({
        policy,
        ref,
        critic,
        reward: { type: 'token-positive', model: rm },
        tokenizer: tok,
        template: tpl,
        config: { ...cfg.ppo, seed, ...v.ppo },
        onEvent: (e) => {
          if (e.type === 'step') curve.push({ step: e.data.step, empty: e.data.metrics['responses/empty_rate'], length: e.data.metrics['response_length/mean'] });
        },
      });
      await trainer.train(data.rlPrompts);
      const judged = await judgePolicy(policy, task, tok, tpl, prompts, evalOpts);
      const id = judged.id;
      const row = {
        seed,
        variant: v.name,
        emptyEval: mean(id.map((j) => (j.length === 0 ? 1 : 0))),
        lengthEval: mean(id.map((j) => j.length)),
        goldEval: mean(id.map((j) => j.score)),
        emptyTrainLast: curve.at(-1)?.empty,
        emptyTrainMax: Math.max(...curve.map((c) => c.empty)),
        seconds: (performance.now() - t0) / 1000,
      };
      rows.push(row);
      console.log(JSON.stringify(row));
      for (const m of [policy, ref, critic]) m.dispose();
      writeFileSync(out, JSON.stringify({ demo, seeds, variants: VARIANTS, ppo: cfg.ppo, rows }, null, 2) + '\n');
    }
    sft.dispose();
    rm.dispose();
  }
}

await main();
