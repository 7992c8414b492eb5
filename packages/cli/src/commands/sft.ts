// `s2s sft`: supervised fine-tuning (sequence MLE on the completion) of a checkpoint or a new GPT,
// on {prompt, completion} JSONL, as TRL's SFTTrainer does.
import * as path from 'node:path';

import {
  type EncodedExample,
  type GPTConfig,
  type LengthReport,
  Model,
  SupervisedTrainer,
  TRAIN_DEFAULTS,
  assertTokenizerFitsModel,
  encodeSupervised,
  lengthReport,
  loadModel,
  readCheckpointConfig,
  resolveConfig,
  rowSource,
  templateFiles,
} from '@s2s/core';

import { type Command, defineCommand, evalOptions, lengthOptions, modelInputOptions, runOptions, saveOptions, specialTextOptions } from '../command.js';
import { type DataRowOf, checkDataFile, dataTemplate, readDataset, reportLengths, trainAndEval } from '../datasets.js';
import { checkTemplateFitsTokenizer, findTemplate, findTokenizer, padIdOf, specialTokenIds } from '../model-inputs.js';
import { type OptionSchema, UsageError, need } from '../options.js';
import { Progress } from '../progress.js';
import { runConfigText, saveRunConfig } from '../run-dir.js';
import { trainOptions } from '../train-options.js';
import { ranksText, reportEnd, setUpRun } from '../training-run.js';

export const SFT_CONFIG_FILE = 'sft_config.json';

const NEW_MODEL = 'new model (without --model)';
const options = {
  data: {
    type: 'string',
    arg: 'FILE',
    required: true,
    group: 'data',
    help: 'training data: JSONL rows {prompt, completion}; with a chat template also TRL\'s conversational rows ({messages}, or message lists)',
  },
  out: { type: 'string', arg: 'DIR', required: true, group: 'data', help: `output folder: checkpoint-N/, final/, ${SFT_CONFIG_FILE}` },
  promptField: { type: 'string', arg: 'NAME', default: 'prompt', group: 'data', help: 'the field of --data that holds the prompt' },
  completionField: { type: 'string', arg: 'NAME', default: 'completion', group: 'data', help: 'the field of --data that holds the completion' },
  ...evalOptions,
  ...lengthOptions,
  ...specialTextOptions,
  model: { type: 'string', arg: 'DIR', group: 'model', help: 'a checkpoint to fine-tune; default: a new model of the size below' },
  ...modelInputOptions,
  layers: { type: 'int', min: 1, default: 4, group: NEW_MODEL, help: 'transformer blocks' },
  heads: { type: 'int', min: 1, default: 4, group: NEW_MODEL, help: 'attention heads' },
  channels: { type: 'int', min: 1, default: 128, group: NEW_MODEL, help: 'model width (a multiple of --heads)' },
  context: { type: 'int', min: 1, default: 256, group: NEW_MODEL, help: 'context length in tokens' },
  ...trainOptions(TRAIN_DEFAULTS),
  ...runOptions,
  ...saveOptions,
} as const satisfies OptionSchema;

export const sftCommand: Command<typeof options> = defineCommand({
  name: 'sft',
  summary: 'supervised fine-tuning on {prompt, completion} JSONL (a checkpoint, or a new model)',
  description: `Supervised fine-tuning: the loss is the completion's negative log-likelihood (the prompt is
context only). Fine-tunes --model, or trains a new GPT whose vocabulary is the tokenizer's. The
tokenizer defaults to --model's, else the one in the folder of --data (as \`s2s data make\` writes it).
Checkpoints (with optimizer state, for --resume) go to --out/checkpoint-N, the trained model to
--out/final; each carries the tokenizer and the template. With --template chat (a Hugging Face
chat model's own template, e.g. Qwen2.5-Instruct's) the data may be TRL's conversational rows.
Ctrl-C stops with a checkpoint.`,
  examples: [
    's2s sft --data data/summarize/sft.jsonl --template testbed --out runs/sft --max-steps 2000',
    's2s sft --model models/Qwen2.5-0.5B-Instruct --template chat --data chats.jsonl --out runs/sft',
    's2s sft --model runs/sft/final --data more.jsonl --out runs/sft2 --lr 1e-4',
    's2s sft --out runs/sft --resume',
  ],
  options,
  interruptible: true,
  distributed: true,
  async run(parsed, ctx) {
    const { values: o, explicit, out, resume, train } = await setUpRun(options, parsed, { command: 'sft', configFile: SFT_CONFIG_FILE, defaults: TRAIN_DEFAULTS, dist: ctx.dist });
    const data = need(o.data, 'data', 'FILE');
    if (!resume && o.model !== undefined)
      for (const k of ['layers', 'heads', 'channels', 'context'] as const)
        if (k in explicit) throw new UsageError(`--${k} sets the size of a new model; --model ${o.model} has its own`);

    await checkDataFile(data, '--data');
    // the model's shape first (config.json only): the tokenizer must fit it before any weights are read
    const from = resume?.checkpoint ?? o.model;
    const tok = await findTokenizer(o.tokenizer, [from, path.dirname(data)]);
    const cfg: GPTConfig = from
      ? await readCheckpointConfig(from)
      : resolveConfig({ vocabSize: tok.vocabSize, maxSeqLen: o.context, numLayers: o.layers, numHeads: o.heads, channels: o.channels }, 'the new model (--layers, --heads, --channels, --context)');
    assertTokenizerFitsModel(tok, cfg);
    const { template: modelTemplate, from: templateFrom } = await findTemplate(o.template, [from], tok);
    checkTemplateFitsTokenizer(tok, modelTemplate);
    const template = dataTemplate(modelTemplate, o.specialTokensInText);

    // with a chat template the data may be TRL's conversational rows ({messages}, message lists)
    const fields = { prompt: o.promptField, completion: o.completionField };
    const rows = await readDataset(data, 'supervised', fields, '--data', template, tok);
    const split = await trainAndEval(rows, 'supervised', { evalData: o.evalData, evalSplit: o.evalSplit, seed: train.seed }, fields, 'evalSplit' in explicit, template, tok);
    const maxLength = o.maxLength ?? cfg.maxSeqLen;
    if (maxLength > cfg.maxSeqLen) throw new UsageError(`--max-length ${maxLength} is longer than the model's context (${cfg.maxSeqLen})`);

    const encode = (rs: DataRowOf<'supervised'>[], report: LengthReport) =>
      rs.map((r) => encodeSupervised(tok, template, r.prompt, r.completion, { maxLength, overflow: o.overflow, report, at: rowSource(r) })).filter((e): e is EncodedExample => e !== null);
    const trainReport = lengthReport();
    const trainSet = encode(split.train, trainReport);
    reportLengths('training examples', trainReport, maxLength, trainSet.length);
    const evalReport = lengthReport();
    const evalSet = encode(split.eval, evalReport);
    if (split.eval.length) reportLengths('evaluation examples', evalReport, maxLength, Math.max(1, evalSet.length));

    let model: Model;
    if (resume) model = await loadModel(resume.checkpoint);
    else if (o.model !== undefined) {
      model = await loadModel(o.model, { optimizer: false });
      if (model.config.valueHead) {
        // a reward model's checkpoint: fine-tune its language model, without the scalar head
        const lm = await model.clone({ valueHead: false });
        model.dispose();
        model = lm;
      }
    } else model = await Model.create(cfg, { seed: train.seed });

    try {
      const runConfig = runConfigText({ ...o, ...train });
      const configFile = ctx.dist.isMain ? await saveRunConfig(out, SFT_CONFIG_FILE, runConfig) : path.join(out, SFT_CONFIG_FILE);
      const progress = new Progress({ unit: 'tok' });
      const trainer = new SupervisedTrainer({
        model,
        config: train,
        train: trainSet,
        eval: evalSet,
        padId: padIdOf(tok),
        outputDir: out,
        tokenizer: tok,
        hfConfig: specialTokenIds(tok, model),
        files: { ...templateFiles(template), [SFT_CONFIG_FILE]: runConfig },
        saveDtype: o.saveDtype,
        signal: ctx.signal,
        dist: ctx.dist,
        onEvent: (e) => progress.onEvent(e),
      });
      // training flags given now may differ from the saved run's (see resumedTrainConfig)
      if (resume) trainer.restore(resume.state, resume.checkpoint);
      const c = model.config;
      console.log(
        `sft: ${resume ? 'continuing the run' : from ? `fine-tuning ${from}` : 'a new model'} (${c.numLayers} layers, ${c.numHeads} heads, width ${c.channels}, context ${c.maxSeqLen}, ` +
          `${(model.numParams / 1e6).toFixed(2)}M parameters, on ${model.device}); template ${templateFrom}; tokenizer ${tok.source} (${tok.vocabSize} ids)`,
      );
      console.log(
        `${resume ? `resuming ${resume.checkpoint} at step ${trainer.currentStep}; ` : ''}${trainer.totalSteps} steps of ${train.batchSize * train.gradAccumulation * ctx.dist.worldSize} examples${ranksText(ctx.dist)}; ` +
          `${trainSet.length} training and ${evalSet.length} evaluation examples; options saved to ${configFile}`,
      );
      const result = await trainer.train().finally(() => progress.done());
      const code = reportEnd(result, trainer.totalSteps, 'sft', out);
      if (code === 0) console.log(result.eval ? `eval loss: ${result.eval.evalLoss.toFixed(4)} (${evalSet.length} examples)` : 'eval loss: no evaluation set (--eval-split 0)');
      return code;
    } finally {
      model.dispose();
    }
  },
});
