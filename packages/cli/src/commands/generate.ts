// `s2s generate`: a model's responses to a JSONL of prompts, written as {prompt, response,
// finishReason} rows -- the input `s2s eval` judges and `s2s rm score` scores.
import { writeJsonl } from '@s2s/core';

import { type Command, defineCommand, engineOptions, modelInputOptions, specialTextOptions } from '../command.js';
import { checkDataFile, compactPrompt, dataTemplate, readDataset } from '../datasets.js';
import { generateResponses, generationOptions } from '../generation.js';
import { modelInputs, openModel } from '../open-model.js';
import { type OptionSchema, need } from '../options.js';

const options = {
  model: { type: 'string', arg: 'DIR', required: true, group: 'model', help: 'the model (an SFT or PPO final/ folder, or any checkpoint)' },
  ...modelInputOptions,
  ...specialTextOptions,
  prompts: { type: 'string', arg: 'FILE', required: true, group: 'data', help: 'JSONL rows {prompt} (with a chat template: a message list, or text as one user turn)' },
  out: { type: 'string', arg: 'FILE', required: true, group: 'data', help: 'where the rows {prompt, response, finishReason} go (JSONL, written atomically)' },
  promptField: { type: 'string', arg: 'NAME', default: 'prompt', group: 'data', help: 'the field of --prompts that holds the prompt' },
  ...generationOptions,
  ...engineOptions,
} as const satisfies OptionSchema;

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export const generateCommand: Command<typeof options> = defineCommand({
  name: 'generate',
  summary: "write a model's responses to {prompt} JSONL",
  description: `Generates one response per prompt with the model's KV-cache decoding, using the template and
tokenizer saved beside the model. Greedy by default (--temperature 0); with a temperature, the
samples are fixed by --seed and --batch-size. finishReason is "eos" when the model ended the
response, "length" when --max-new-tokens cut it off.`,
  examples: [
    's2s generate --model runs/ppo-t/final --prompts data/summarize/eval_id.jsonl --out gen/ppo-t.jsonl',
    's2s generate --model runs/sft/final --prompts data/summarize/eval_ood.jsonl --out gen/sft-ood.jsonl --temperature 0.7 --seed 1',
  ],
  options,
  async run({ values: o }) {
    const dir = need(o.model, 'model', 'DIR');
    const promptsFile = need(o.prompts, 'prompts', 'FILE');
    const out = need(o.out, 'out', 'FILE');
    await checkDataFile(promptsFile, '--prompts');
    const found = await modelInputs(dir, o);
    const inputs = { ...found, template: dataTemplate(found.template, o.specialTokensInText) };
    const prompts = (await readDataset(promptsFile, 'prompt', { prompt: o.promptField }, '--prompts', inputs.template, inputs.tok)).map((r) => r.prompt);
    const { model, tok, template } = await openModel(dir, o, inputs);
    try {
      const rows = await generateResponses(model, tok, template, prompts, o);
      await writeJsonl(out, rows.map((r) => ({ ...r, prompt: compactPrompt(r.prompt) })));
      const ended = rows.filter((r) => r.finishReason === 'eos').length / rows.length;
      const words = rows.reduce((a, r) => a + (r.response.trim() ? r.response.trim().split(/\s+/).length : 0), 0) / rows.length;
      console.log(`generated ${rows.length} responses with ${dir} (${pct(ended)} ended with ${template.chat ? 'a stop token' : 'EOS'}, mean ${words.toFixed(1)} words); written to ${out}`);
      return 0;
    } finally {
      model.dispose();
    }
  },
});
