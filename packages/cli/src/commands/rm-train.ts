// `s2s rm train`: a reward model from preference pairs, started from the SFT model -- the scalar
// Bradley-Terry baseline, or with --seq2seq the paper's rewriting reward model.
import * as path from 'node:path';

import { TRAIN_DEFAULTS, assertTokenizerFitsModel, readCheckpointConfig, writeFileAtomic } from '@s2s/core';
import { type RewardModelKind, SCALAR_RM_DEFAULTS, rewardModelFiles } from '@s2s/rm';

import { type Command, defineCommand, evalOptions, lengthOptions, modelInputOptions, runOptions, saveOptions, specialTextOptions } from '../command.js';
import { checkDataFile, dataTemplate, readDataset, trainAndEval } from '../datasets.js';
import { checkTemplateFitsTokenizer, findTemplate, findTokenizer } from '../model-inputs.js';
import { optimizerOption } from '../optimizer-options.js';
import { type OptionSchema, UsageError, need } from '../options.js';
import type { RewardModelRun } from '../reward-model-run.js';
import { runConfigText, saveRunConfig } from '../run-dir.js';
import { trainScalarRM } from '../scalar-rm-run.js';
import { trainSeq2SeqRM } from '../seq2seq-rm-run.js';
import { trainOptions } from '../train-options.js';
import { setUpRun } from '../training-run.js';

export const RM_CONFIG_FILE = 'rm_config.json';
export const EVAL_RESULTS_FILE = 'eval_results.json';

const options = {
  data: {
    type: 'string',
    arg: 'FILE',
    required: true,
    group: 'data',
    help: "preference pairs: JSONL rows {prompt, chosen, rejected}; with a chat template also TRL's conversational rows (message lists)",
  },
  out: { type: 'string', arg: 'DIR', required: true, group: 'data', help: `output folder: checkpoint-N/, final/, ${RM_CONFIG_FILE}, ${EVAL_RESULTS_FILE}` },
  promptField: { type: 'string', arg: 'NAME', default: 'prompt', group: 'data', help: 'the field of --data that holds the prompt' },
  chosenField: { type: 'string', arg: 'NAME', default: 'chosen', group: 'data', help: 'the field that holds the preferred response' },
  rejectedField: { type: 'string', arg: 'NAME', default: 'rejected', group: 'data', help: 'the field that holds the other response' },
  ...evalOptions,
  ...lengthOptions,
  ...specialTextOptions,
  model: { type: 'string', arg: 'SFT_DIR', required: true, group: 'model', help: 'the SFT model the reward model starts from (not needed with --resume)' },
  ...modelInputOptions,
  seq2seq: {
    type: 'bool',
    default: false,
    group: 'reward model',
    help: 'train the seq2seq reward model (correction and identity mappings) instead of the scalar one',
  },
  correctionWeight: { type: 'float', min: 0, default: 1, group: 'reward model', help: '--seq2seq: loss weight of (prompt, rejected) -> chosen' },
  identityWeight: { type: 'float', min: 0, default: 1, group: 'reward model', help: '--seq2seq: loss weight of (prompt, chosen) -> chosen' },
  evalRewrites: { type: 'int', min: 0, default: 100, group: 'reward model', help: '--seq2seq: held-out pairs whose greedy rewrites are checked at the end' },
  ...trainOptions(TRAIN_DEFAULTS),
  lr: optimizerOption('lr', undefined, `peak learning rate (default ${SCALAR_RM_DEFAULTS.lr} scalar, ${TRAIN_DEFAULTS.lr} --seq2seq)`),
  ...runOptions,
  ...saveOptions,
} as const satisfies OptionSchema;

const KIND_OF_RUN: Record<string, RewardModelKind> = { 'scalar-rm': 'scalar', supervised: 'seq2seq' };

export const rmTrainCommand: Command<typeof options> = defineCommand({
  name: 'rm train',
  summary: 'train a reward model on {prompt, chosen, rejected}: scalar (Bradley-Terry), or --seq2seq',
  description: `Trains a reward model from the SFT model (--model) on preference pairs.
  scalar (default): the SFT model with a value head read at the last token, Bradley-Terry loss
    -log sigmoid(r_chosen - r_rejected); reports held-out pair accuracy; final/ gets
    reward_stats.json (reward mean and std, for normalisation).
  --seq2seq: the SFT model learns by sequence MLE to rewrite (prompt, rejected) -> chosen
    (correction mapping) and (prompt, chosen) -> chosen (identity mapping); reports exact match
    and token accuracy of its greedy rewrites of held-out pairs, per mapping.
final/ also gets s2s_reward_model.json (its kind, for \`rm score\` and \`rm explain\`), the template
and the tokenizer. Ctrl-C stops with a checkpoint; --resume continues.`,
  examples: [
    's2s rm train --data data/summarize/pairs.jsonl --model runs/sft/final --out runs/rm',
    's2s rm train --seq2seq --data data/summarize/pairs.jsonl --model runs/sft/final --out runs/s2s-rm',
  ],
  options,
  interruptible: true,
  distributed: true,
  async run(parsed, ctx) {
    const setup = await setUpRun(options, parsed, {
      command: 'rm train',
      configFile: RM_CONFIG_FILE,
      defaults: (v) => (v.seq2seq ? TRAIN_DEFAULTS : SCALAR_RM_DEFAULTS),
      dist: ctx.dist,
    });
    const { values: o, resume, out, train } = setup;
    let kind: RewardModelKind = o.seq2seq ? 'seq2seq' : 'scalar';
    if (resume) {
      const was = KIND_OF_RUN[resume.state.kind];
      if (!was) throw new Error(`${resume.checkpoint} holds a ${String(resume.state.kind)} run, not a reward model's`);
      if ('seq2seq' in setup.explicit && was !== kind) throw new UsageError(`${resume.checkpoint} holds a ${was} reward model run; ${was === 'scalar' ? 'drop' : 'add'} --seq2seq`);
      kind = was;
    }
    const data = need(o.data, 'data', 'FILE');
    const sft = resume ? o.model : need(o.model, 'model', 'SFT_DIR');
    if (kind === 'seq2seq' && o.correctionWeight === 0 && o.identityWeight === 0) throw new UsageError('--correction-weight and --identity-weight are both 0: nothing to learn');

    await checkDataFile(data, '--data');
    const from = resume?.checkpoint ?? sft!;
    const tok = await findTokenizer(o.tokenizer, [from, path.dirname(data)]);
    const cfg = await readCheckpointConfig(from);
    assertTokenizerFitsModel(tok, cfg);
    const { template: modelTemplate } = await findTemplate(o.template, [from], tok);
    checkTemplateFitsTokenizer(tok, modelTemplate);
    const template = dataTemplate(modelTemplate, o.specialTokensInText);

    // with a chat template the pairs may be TRL's conversational rows (message lists, implicit prompts)
    const fields = { prompt: o.promptField, chosen: o.chosenField, rejected: o.rejectedField };
    const rows = await readDataset(data, 'preference', fields, '--data', template, tok);
    const split = await trainAndEval(rows, 'preference', { evalData: o.evalData, evalSplit: o.evalSplit, seed: train.seed }, fields, 'evalSplit' in setup.explicit, template, tok);
    const maxLength = o.maxLength ?? cfg.maxSeqLen;
    if (maxLength > cfg.maxSeqLen) throw new UsageError(`--max-length ${maxLength} is longer than the model's context (${cfg.maxSeqLen})`);

    const runConfig = runConfigText({ ...o, seq2seq: kind === 'seq2seq', ...train });
    const run: RewardModelRun = {
      out,
      resume,
      train,
      tok,
      template,
      maxLength,
      overflow: o.overflow,
      trainRows: split.train,
      evalRows: split.eval,
      from,
      finalFiles: { [RM_CONFIG_FILE]: runConfig, ...rewardModelFiles({ kind, baseModel: sft && path.resolve(sft), data: path.resolve(data) }) },
      saveDtype: o.saveDtype,
      signal: ctx.signal,
      dist: ctx.dist,
      // rank 0 writes the run's files
      saveConfig: async () => (ctx.dist.isMain ? saveRunConfig(out, RM_CONFIG_FILE, runConfig) : path.join(out, RM_CONFIG_FILE)),
      saveResults: async (results) => {
        if (ctx.dist.isMain) await writeFileAtomic(path.join(out, EVAL_RESULTS_FILE), JSON.stringify(results, null, 2) + '\n');
      },
    };
    return kind === 'scalar'
      ? trainScalarRM(run)
      : trainSeq2SeqRM(run, { correctionWeight: o.correctionWeight, identityWeight: o.identityWeight, evalRewrites: o.evalRewrites });
  },
});
