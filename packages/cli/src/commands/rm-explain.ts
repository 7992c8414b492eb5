// `s2s rm explain`: why a response lost reward under the seq2seq reward model -- its token scores,
// the first token the model would not have written, and the model's own rewrite.
import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';

import { encodeResponse, writeFileAtomic } from '@s2s/core';
import { type Explanation, explain, promptText, readRewardModelKind, renderExplanation, renderExplanationHtml } from '@s2s/rm';

import { type Command, defineCommand, engineOptions, specialTextOptions } from '../command.js';
import { checkDataFile } from '../datasets.js';
import { type OptionSchema, UsageError, need } from '../options.js';
import { openRewardModel, readResponses, responseFieldOptions, rewardModelInputs, rewardModelOptions } from '../reward-model-inputs.js';

const options = {
  ...rewardModelOptions,
  prompt: { type: 'string', arg: 'TEXT', group: 'input', help: 'the prompt (with --response)' },
  response: { type: 'string', arg: 'TEXT', group: 'input', help: 'the response to explain' },
  data: { type: 'string', arg: 'FILE', group: 'input', help: 'instead: JSONL rows {prompt, response} (or {prompt, completion})' },
  limit: { type: 'int', min: 1, default: 10, group: 'input', help: 'with --data: explain the first N rows' },
  ...responseFieldOptions,
  ...specialTextOptions,
  html: { type: 'string', arg: 'FILE', group: 'output', help: 'also write the explanations as a self-contained HTML page' },
  color: { type: 'enum', values: ['auto', 'always', 'never'], default: 'auto', group: 'output', help: 'colour the tokens (auto: when stdout is a terminal)' },
  ...engineOptions,
} as const satisfies OptionSchema;

function htmlPage(parts: Explanation[]): string {
  const body = parts.map((e) => `<section style="margin:1.5em 0">${renderExplanationHtml(e)}</section>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>s2s rm explain</title></head>
<body style="max-width:60em;margin:2em auto;font-family:system-ui,sans-serif">
<h1 style="font-size:1.2em">Token scores of the seq2seq reward model</h1>
<p style="color:#555">green: +1 (what the reward model would write), red: -1 (where it would write something else), grey: 0. Hover a token for the model's choice.</p>
${body}
</body></html>
`;
}

export const rmExplainCommand: Command<typeof options> = defineCommand({
  name: 'rm explain',
  summary: 'show which tokens of a response a seq2seq reward model rewards, and its rewrite',
  description: `Explains the seq2seq reward model's token scores for a response: each token coloured by its
score (+1 before the first divergence, -1 where the response differs from what the model would
write, 0 where it agrees), where the response first diverges, and the model's greedy rewrite.
Without colour, each token is written as token[score].`,
  examples: [
    's2s rm explain --model runs/s2s-rm/final --prompt "summarize : ..." --response "jack sold a lamp ."',
    's2s rm explain --model runs/s2s-rm/final --data samples.jsonl --limit 5 --html explain.html',
  ],
  options,
  async run({ values: o }) {
    const dir = need(o.model, 'model', 'RM_DIR');
    const single = o.prompt !== undefined || o.response !== undefined;
    if (single && o.data !== undefined) throw new UsageError('give either --prompt and --response, or --data');
    if (!single && o.data === undefined) throw new UsageError('--prompt TEXT --response TEXT, or --data FILE, is required');
    if (!single) await checkDataFile(o.data!, '--data');
    const inputs = single ? undefined : await rewardModelInputs(dir, o);
    const rows = single
      ? [{ prompt: need(o.prompt, 'prompt', 'TEXT'), response: need(o.response, 'response', 'TEXT'), finished: true }]
      : (await readResponses(o.data!, o, '--data', inputs!.template, inputs!.tokenizer)).slice(0, o.limit);
    if ((await readRewardModelKind(dir)) !== 'seq2seq')
      throw new Error(`${dir} is a scalar reward model: it gives one number per response and cannot explain tokens (use \`s2s rm score\`)`);
    const { model, tokenizer: tok, template } = await openRewardModel(dir, inputs ?? (await rewardModelInputs(dir, o)));
    try {
      const color = o.color === 'always' || (o.color === 'auto' && process.stdout.isTTY === true);
      const explained: Explanation[] = [];
      for (const [i, r] of rows.entries()) {
        // the ids as the policy wrote them: a finished response with EOS (or a chat template's
        // end-of-turn), one cut off at the token limit (finishReason "length") without
        const e = await explain(model, tok, template, r.prompt, encodeResponse(tok, template, r.prompt, r.response, { finished: r.finished }));
        explained.push(e);
        console.log(`${rows.length > 1 ? `[${i + 1}] ` : ''}prompt     ${promptText(r.prompt)}\n${renderExplanation(e, { color })}\n`);
      }
      if (o.html !== undefined) {
        await mkdir(path.dirname(path.resolve(o.html)), { recursive: true });
        await writeFileAtomic(o.html, htmlPage(explained));
        console.log(`HTML written to ${o.html}`);
      }
      return 0;
    } finally {
      model.dispose();
    }
  },
});
