// `s2s ppo`: RLHF of an SFT policy on {prompt} JSONL with PPO, rewarded by a scalar reward model
// (ordinary PPO) or by the seq2seq reward model's token scores (PPO-T), their per-response sum or
// mean (PPO-S), or the paper's positive-only / negative-only ablations.
import * as path from 'node:path';

import { type Model, type Tokenizer, loadModel, stopTokenIds } from '@s2s/core';
import { PPOTrainer, type PPOTrainerOptions, rewardFromModel } from '@s2s/ppo';
import { REWARD_STATS_FILE, loadRewardModel } from '@s2s/rm';

import { type Command, defineCommand, engineOptions, modelInputOptions, saveOptions, specialTextOptions } from '../command.js';
import { checkDataFile, dataTemplate, readDataset } from '../datasets.js';
import { encodeQueries } from '../generation.js';
import { EXIT_INTERRUPTED } from '../interrupt.js';
import { checkTemplateFitsTokenizer, exists, findTemplate, findTokenizer } from '../model-inputs.js';
import { type OptionSchema, UsageError, need } from '../options.js';
import { CLI_REWARD_TYPES, checkModelShapes, checkPromptsFitScalarRM, checkRewardModel, checkRewardTemplate, checkpointPolicy, loadForTraining } from '../ppo-models.js';
import { ppoOptions } from '../ppo-options.js';
import { PPOProgress } from '../ppo-progress.js';
import { PPO_CONFIG_FILE, readStepLog, setUpPPORun } from '../ppo-run.js';
import { runConfigText, saveRunConfig } from '../run-dir.js';
import { ranksText } from '../training-run.js';

const options = {
  policy: { type: 'string', arg: 'SFT_DIR', required: true, group: 'models', help: 'the policy to start from (the final/ folder of `s2s sft`); its tokenizer and template are used throughout' },
  reward: {
    type: 'enum',
    values: CLI_REWARD_TYPES,
    required: true,
    group: 'models',
    help: 'scalar: ordinary PPO; token: PPO-T; sentence: PPO-S; token-positive / token-negative: the ablations',
  },
  rewardModel: { type: 'string', arg: 'RM_DIR', required: true, group: 'models', help: 'a scalar reward model for --reward scalar, a seq2seq one (`rm train --seq2seq`) otherwise' },
  ref: { type: 'string', arg: 'DIR', group: 'models', help: 'the frozen reference of the KL penalty (default: --policy, loaded as a separate copy)' },
  critic: { type: 'string', arg: 'DIR', group: 'models', help: 'where the critic starts, with a value head (default: the reward model for --reward scalar, else --policy)' },
  sentenceAggregate: { type: 'enum', values: ['sum', 'mean'], default: 'sum', group: 'models', help: "--reward sentence: the token scores' sum or mean, on the last token" },
  ...modelInputOptions,
  ...specialTextOptions,
  prompts: { type: 'string', arg: 'FILE', required: true, group: 'data', help: 'rollout prompts: JSONL rows {prompt} (with a chat template: a message list, or text as one user turn)' },
  promptField: { type: 'string', arg: 'NAME', default: 'prompt', group: 'data', help: 'the field of --prompts that holds the prompt' },
  out: { type: 'string', arg: 'DIR', required: true, group: 'data', help: `output folder: log.jsonl, samples.jsonl, checkpoint-N/, final/, final-critic/, ${PPO_CONFIG_FILE}` },
  ...ppoOptions,
  resume: {
    type: 'string',
    optionalValue: true,
    arg: 'DIR',
    group: 'run',
    help: "continue a stopped run from checkpoint DIR, or alone: the latest in --out; it keeps its PPO config, the other options come from the run's saved ones",
  },
  ...engineOptions,
  ...saveOptions,
} as const satisfies OptionSchema;

const SUMMARY: Array<[string, string, number]> = [
  ['objective/scores', 'score', 4],
  ['objective/kl', 'KL', 4],
  ['response_length/mean', 'response length', 1],
  ['responses/empty_rate', 'empty responses', 3],
  ['objective/entropy', 'entropy', 3],
];

/** The first and the last step's key metrics, side by side. */
function printSummary(log: Array<Record<string, number>>): void {
  const steps = log.length > 1 ? [log[0], log[log.length - 1]] : log;
  if (!steps.length) return;
  const fmt = (x: number | undefined, d: number) => (typeof x === 'number' ? x.toFixed(d) : '?');
  console.log(`${''.padEnd(18)}${steps.map((m) => `step ${m.step}`.padStart(10)).join('')}`);
  for (const [key, name, d] of SUMMARY) console.log(`  ${name.padEnd(16)}${steps.map((m) => fmt(m[key], d).padStart(10)).join('')}`);
}

export const ppoCommand: Command<typeof options> = defineCommand({
  name: 'ppo',
  summary: 'RLHF with PPO: scalar reward model, or seq2seq token (PPO-T) / sentence (PPO-S) rewards',
  description: `Trains the policy (--policy, an SFT model) with PPO on the prompts of --prompts. Each step
samples --batch-size responses, scores them with the reward model, subtracts a per-token KL
penalty against the frozen reference (--ref), and takes --ppo-epochs passes of clipped-surrogate
updates; a critic with a value head learns the returns. Rewards (--reward):
  scalar          the scalar reward model's reward on the last token, normalised with its
                  reward_stats.json (ordinary PPO)
  token           PPO-T: the seq2seq reward model's score on every token (+1 before the first
                  token it would not have written, then -1 where the response differs, 0 where
                  it agrees)
  sentence        PPO-S: those scores' sum (or --sentence-aggregate mean) on the last token
  token-positive  the ablation keeping the +1 scores only
  token-negative  the ablation keeping the -1 scores only
Every step's metrics (TRL's names) go to --out/log.jsonl, sample completions to samples.jsonl,
the trained policy to --out/final (with tokenizer and template) and the critic to final-critic.
Ctrl-C stops after the current step with a checkpoint (policy, critic, both optimizers, KL
controller, prompt order); --resume continues it exactly.`,
  examples: [
    's2s ppo --policy runs/sft/final --reward token --reward-model runs/s2s-rm/final --prompts data/summarize/rl_prompts.jsonl --out runs/ppo-t',
    's2s ppo --policy runs/sft/final --reward scalar --reward-model runs/rm/final --prompts data/summarize/rl_prompts.jsonl --out runs/ppo --steps 200',
    's2s ppo --out runs/ppo-t --resume',
  ],
  options,
  interruptible: true,
  distributed: true,
  async run(parsed, ctx) {
    const { values: o, explicit, out, resume, config } = await setUpPPORun(options, parsed, ['reward'], ctx.dist);
    const reward = need(o.reward, 'reward', CLI_REWARD_TYPES.join('|'));
    const rewardModel = need(o.rewardModel, 'rewardModel', 'RM_DIR');
    const policyDir = need(o.policy, 'policy', 'SFT_DIR');
    const promptsFile = need(o.prompts, 'prompts', 'FILE');
    if (resume && 'critic' in explicit) console.error(`warning: --critic is ignored when resuming: ${resume.checkpoint} holds the critic`);
    if ('sentenceAggregate' in explicit && reward !== 'sentence') console.error(`warning: --sentence-aggregate applies to --reward sentence only; --reward ${reward} ignores it`);
    await checkRewardModel(rewardModel, reward);

    await checkDataFile(promptsFile, '--prompts');
    // shapes first (config.json only): every model must read the policy's tokens
    const from = resume ? checkpointPolicy(resume.checkpoint) : policyDir;
    const ref = o.ref ?? policyDir;
    const critic = resume ? undefined : (o.critic ?? (reward === 'scalar' ? rewardModel : policyDir));
    const tok: Tokenizer = await findTokenizer(o.tokenizer, [from, policyDir]);
    const { policy: policyCfg, rewardModel: rmCfg } = await checkModelShapes({ policy: from, ref, critic, rewardModel }, tok);
    const { template: modelTemplate, from: templateFrom } = await findTemplate(o.template, [from, policyDir], tok);
    checkTemplateFitsTokenizer(tok, modelTemplate);
    // a response ends on EOS, or on a chat template's end-of-turn (which a tokenizer without eos_token may have)
    if (stopTokenIds(tok, modelTemplate).length === 0)
      throw new Error(`the tokenizer (${tok.source}) has no eos_token and the template is not a chat template: PPO needs a token that ends responses`);
    await checkRewardTemplate(rewardModel, modelTemplate);
    const template = dataTemplate(modelTemplate, o.specialTokensInText);

    // with a chat template a prompt may be a conversation (a message list; text is one user turn)
    const prompts = (await readDataset(promptsFile, 'prompt', { prompt: o.promptField }, '--prompts', template, tok)).map((r) => r.prompt);
    const globalBatch = config.batchSize * ctx.dist.worldSize;
    if (prompts.length < globalBatch)
      throw new UsageError(
        `--prompts ${promptsFile} has ${prompts.length} prompts, fewer than --batch-size (${config.batchSize})${ctx.dist.worldSize > 1 ? ` x ${ctx.dist.worldSize} ranks` : ''}`,
      );
    encodeQueries(tok, template, prompts, policyCfg.maxSeqLen, config.maxNewTokens, `--prompts ${promptsFile}`);
    if (reward === 'scalar') checkPromptsFitScalarRM(tok, template, prompts, rmCfg, config.maxNewTokens, `--prompts ${promptsFile}`);

    const models: Model[] = [];
    const keep = (m: Model) => (models.push(m), m);
    try {
      // read with the policy's tokenizer (checkModelShapes found them the same); PPO lays out its inputs with the policy's template
      const rm = await loadRewardModel(rewardModel, { tokenizer: tok });
      keep(rm.model);
      if (rm.kind === 'scalar' && !rm.stats) console.error(`warning: ${rewardModel} has no ${REWARD_STATS_FILE}; the scalar rewards are used as they come, not normalised`);
      const refModel = keep(await loadModel(ref, { optimizer: false }));
      const spec = rewardFromModel(rm, reward, { aggregate: o.sentenceAggregate });
      const progress = new PPOProgress({ sampleEvery: config.sampleEvery });
      const shared: Omit<PPOTrainerOptions, 'policy' | 'critic' | 'config'> = {
        ref: refModel,
        reward: spec,
        tokenizer: tok,
        template,
        outputDir: out,
        saveDtype: o.saveDtype,
        signal: ctx.signal,
        dist: ctx.dist,
        onEvent: progress.onEvent,
      };
      let trainer: PPOTrainer;
      if (resume) {
        trainer = await PPOTrainer.resume(resume.checkpoint, { ...shared, config });
        keep(trainer.policy);
        keep(trainer.critic);
      } else {
        const policy = keep(await loadForTraining(policyDir, false, config.seed));
        const criticModel = keep(await loadForTraining(critic!, true, config.seed));
        trainer = new PPOTrainer({ ...shared, policy, critic: criticModel, config });
      }

      // every input has been checked: the run's folder may now be written
      const configFile = ctx.dist.isMain ? await saveRunConfig(out, PPO_CONFIG_FILE, runConfigText(o)) : path.join(out, PPO_CONFIG_FILE);
      const c = policyCfg;
      console.log(
        `ppo (--reward ${reward}${reward === 'sentence' ? `, ${o.sentenceAggregate}` : ''}, reward model ${rewardModel}): ` +
          `${resume ? `resuming ${resume.checkpoint} at step ${trainer.currentStep}` : `policy ${policyDir}`} (${c.numLayers} layers, width ${c.channels}, context ${c.maxSeqLen}, on ${trainer.policy.device}); ` +
          `ref ${ref}${resume ? '' : `; critic from ${critic}`}; template ${templateFrom}; tokenizer ${tok.source}`,
      );
      console.log(
        `${config.steps} steps of ${globalBatch} prompts${ranksText(ctx.dist, config.batchSize)} (${config.ppoEpochs} epochs of minibatches of ${config.miniBatchSize}${ctx.dist.worldSize > 1 ? ' per rank' : ''}); ${prompts.length} prompts; options saved to ${configFile}`,
      );
      const result = await trainer.train(prompts).finally(() => progress.done());
      if (result.stopped) {
        console.error(`stopped at step ${result.steps} of ${config.steps}; checkpoint: ${result.savedTo ?? '(none)'}`);
        console.error(`continue with: s2s ppo --out ${out} --resume`);
        return EXIT_INTERRUPTED;
      }
      if (!ctx.dist.isMain) return 0;
      console.log(`trained ${result.steps} PPO steps; policy saved to ${result.savedTo} (critic: ${path.join(out, 'final-critic')})`);
      const samples = path.join(out, 'samples.jsonl');
      console.log(`per-step metrics: ${path.join(out, 'log.jsonl')}${(await exists(samples)) ? `; sample completions: ${samples}` : ''}`);
      const log = await readStepLog(out);
      printSummary(log.length ? log : result.history.map((m, i) => ({ step: result.steps - result.history.length + i + 1, ...m })));
      return 0;
    } finally {
      for (const m of models) m.dispose();
    }
  },
});
