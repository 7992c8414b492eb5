// `s2s eval`: a judge (a testbed task's gold judge, or the user's module) on a file of responses
// (mean score and each part's mean), on a model's own responses to a prompt file, or pairwise: the
// win rate of one file over another.
import { writeJsonl } from '@s2s/core';
import { TASKS, type Task, getTask } from '@s2s/tasks';

import { type Command, defineCommand, engineOptions, modelInputOptions, specialTextOptions } from '../command.js';
import { checkDataFile, compactPrompt, dataTemplate, readDataset } from '../datasets.js';
import { generateResponses, generationOptions } from '../generation.js';
import { type Judge, type JudgedRow, checkTaskPrompts, judgeRows, matchByPrompt, pairwiseWinRate, summarizeJudgements, taskJudge } from '../judging.js';
import { modelInputs, openModel } from '../open-model.js';
import { type OptionSchema, UsageError, flagName, need } from '../options.js';
import type { PartialValues } from '../parse-options.js';
import { readResponses } from '../reward-model-inputs.js';
import { loadUserJudge } from '../user-judge.js';

const options = {
  task: { type: 'enum', values: TASKS.map((t) => t.name), group: 'judge (one of)', help: "the testbed task whose gold judge scores the responses (its prompts only)" },
  judge: {
    type: 'string',
    arg: 'FILE',
    group: 'judge (one of)',
    help: 'your judge: a JS module exporting score(prompt, response) -> number | {score, parts} and/or compare(prompt, a, b) -> 0 | 1 | 0.5 (may be async)',
  },
  data: { type: 'string', arg: 'FILE', group: 'responses to judge', help: 'JSONL rows {prompt, response} (or {prompt, completion}), as `s2s generate` writes them' },
  a: { type: 'string', arg: 'FILE_A', group: 'pairwise (instead of --data)', help: "responses whose win rate over --b's is measured, prompt by prompt" },
  b: { type: 'string', arg: 'FILE_B', group: 'pairwise (instead of --data)', help: 'the responses they are compared with (the same prompts)' },
  model: { type: 'string', arg: 'DIR', group: 'a model (instead of --data)', help: "generate the model's responses to --prompts, then judge them" },
  prompts: { type: 'string', arg: 'FILE', group: 'a model (instead of --data)', help: 'JSONL rows {prompt}, with --model' },
  ...modelInputOptions,
  ...specialTextOptions,
  ...generationOptions,
  promptField: { type: 'string', arg: 'NAME', default: 'prompt', group: 'data', help: 'the field that holds the prompt' },
  responseField: { type: 'string', arg: 'NAME', group: 'data', help: 'the field that holds the response (default: response, else completion)' },
  out: {
    type: 'string',
    arg: 'FILE',
    group: 'data',
    help: 'also write each row\'s judgement (JSONL, atomically): {prompt, response, score, parts}, or pairwise {prompt, a, b, scoreA, scoreB, outcome}',
  },
  ...engineOptions,
} as const satisfies OptionSchema;

const MODEL_ONLY = ['tokenizer', 'template', ...Object.keys(generationOptions)];
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const num = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(4));

type Mode = 'data' | 'pairwise' | 'model';

/** Which of the three inputs the flags give, with a usage error for a mixture or a half. */
function modeOf(o: { data?: string; a?: string; b?: string; model?: string; prompts?: string }, explicit: PartialValues): Mode {
  const given = [o.data !== undefined && 'data', (o.a !== undefined || o.b !== undefined) && 'pairwise', (o.model !== undefined || o.prompts !== undefined) && 'model'].filter(
    (m): m is Mode => m !== false,
  );
  if (given.length === 0) throw new UsageError('give the responses to judge: --data FILE, or --a FILE_A --b FILE_B, or --model DIR --prompts FILE');
  if (given.length > 1) throw new UsageError(`--data, --a/--b and --model/--prompts are three ways to give responses; give one (got ${given.map((m) => (m === 'data' ? '--data' : m === 'pairwise' ? '--a/--b' : '--model/--prompts')).join(' and ')})`);
  const mode = given[0];
  if (mode === 'pairwise') {
    need(o.a, 'a', 'FILE_A');
    need(o.b, 'b', 'FILE_B');
  }
  if (mode === 'model') {
    need(o.model, 'model', 'DIR');
    need(o.prompts, 'prompts', 'FILE');
    if ('responseField' in explicit) throw new UsageError('--response-field reads --data or --a/--b; with --model the responses are generated');
  } else {
    const stray = MODEL_ONLY.find((k) => k in explicit);
    if (stray) throw new UsageError(`--${flagName(stray)} applies to --model only (it generates the responses)`);
  }
  return mode;
}

function printSummary(judge: Judge, judged: JudgedRow[], source: string): void {
  const s = summarizeJudgements(judged);
  console.log(`${s.n} responses from ${source}, judged by ${judge.name} (means)`);
  const width = Math.max(5, ...Object.keys(s.parts).map((k) => k.length)) + 2;
  console.log(`  ${'score'.padEnd(width)}${num(s.meanScore)}`);
  for (const [k, p] of Object.entries(s.parts)) console.log(`  ${k.padEnd(width)}${num(p.mean)}${p.n < s.n ? `  (over the ${p.n} responses that have it)` : ''}`);
}

export const evalCommand: Command<typeof options> = defineCommand({
  name: 'eval',
  summary: "judge responses with a testbed task's gold judge or your own, or the win rate of one set over another",
  description: `Judges responses with the gold judge of a testbed task (--task: the judge the synthetic data was
made by, which the reward models never see; it refuses prompts that are not its task's), or with
your own judge (--judge FILE: a module exporting score(prompt, response), returning a number or
{score, parts}, and/or compare(prompt, a, b), returning 0 when a is better, 1 when b is, 0.5 for a
tie; either may be async, as TRL's judges and reward functions are used):
  --data FILE               each {prompt, response} row: the mean score and the mean of each part
                            of it (summarize: coverage, hallucinated, filler, ...; safety: refused,
                            utility, safety, ...; a flag's mean is the share of rows where it holds)
  --model DIR --prompts FILE
                            the same for the model's responses, generated first (as \`s2s generate\`)
  --a FILE_A --b FILE_B     the win rate of A's responses over B's, prompt by prompt (a tie counts
                            one half); rows are matched by prompt, and every prompt must be answered
                            in both files (by compare() when the judge has one, else by scores)`,
  examples: [
    's2s eval --task summarize --data gen/ppo-t.jsonl',
    's2s eval --judge ./my-judge.mjs --a gen/ppo-t.jsonl --b gen/sft.jsonl',
    's2s eval --task summarize --a gen/ppo-t.jsonl --b gen/sft.jsonl',
    's2s eval --task safety --model runs/ppo-t/final --prompts data/safety/eval_id.jsonl --out judged.jsonl',
  ],
  options,
  async run({ values: o, explicit }) {
    if ((o.task === undefined) === (o.judge === undefined))
      throw new UsageError(o.task === undefined ? 'give the judge: --task summarize|safety (the testbed\'s gold judges) or --judge FILE (your own)' : '--task and --judge are two judges; give one');
    const mode = modeOf(o, explicit);
    const task: Task | undefined = o.task === undefined ? undefined : getTask(o.task);
    const judge: Judge = task ? taskJudge(task) : await loadUserJudge(o.judge!);
    if (mode !== 'pairwise' && !judge.score)
      throw new UsageError(`--judge ${o.judge} exports only compare(prompt, a, b): judging one set of responses needs score(prompt, response); compare two sets with --a and --b`);

    if (mode === 'pairwise') {
      const [fileA, fileB] = [o.a!, o.b!];
      const a = await readResponses(fileA, o, '--a');
      const b = await readResponses(fileB, o, '--b');
      if (task) checkTaskPrompts(task, a.map((r) => r.prompt), `--a ${fileA}`);
      const { rate, rows } = await pairwiseWinRate(judge, matchByPrompt(a, b, { a: fileA, b: fileB }));
      if (o.out !== undefined) await writeJsonl(o.out, rows);
      const mean = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / xs.length;
      console.log(`${fileA} (A) against ${fileB} (B) on ${rate.n} prompts, by ${judge.name}${judge.compare ? ' (compare)' : ''}`);
      console.log(`  win rate of A: ${pct(rate.winRate)}  (wins ${rate.wins}, ties ${rate.ties}, losses ${rate.losses}; a tie counts one half)`);
      if (rows[0]?.scoreA !== undefined) console.log(`  mean score: A ${num(mean(rows.map((r) => r.scoreA!)))}, B ${num(mean(rows.map((r) => r.scoreB!)))}`);
      if (o.out !== undefined) console.log(`per-prompt results written to ${o.out}`);
      return 0;
    }

    let responses: Array<{ prompt: string; response: string }>;
    let source: string;
    if (mode === 'data') {
      source = o.data!;
      responses = await readResponses(source, o);
    } else {
      const dir = o.model!;
      await checkDataFile(o.prompts!, '--prompts');
      const found = await modelInputs(dir, o);
      const inputs = { ...found, template: dataTemplate(found.template, o.specialTokensInText) };
      const prompts = (await readDataset(o.prompts!, 'prompt', { prompt: o.promptField }, '--prompts', inputs.template, inputs.tok)).map((r) => r.prompt);
      // the gold judge reads text: with a chat template, each prompt must be one user turn
      const texts = prompts.map((p, i) => {
        const t = compactPrompt(p);
        if (typeof t !== 'string')
          throw new UsageError(`--prompts ${o.prompts}: prompt ${i + 1} is a conversation of ${t.length} messages; the gold judge reads a text prompt (one user turn)`);
        return t;
      });
      if (task) checkTaskPrompts(task, texts, `--prompts ${o.prompts}`);
      const { model, tok, template } = await openModel(dir, o, inputs);
      try {
        const generated = await generateResponses(model, tok, template, prompts, o);
        responses = generated.map((r, i) => ({ prompt: texts[i], response: r.response }));
      } finally {
        model.dispose();
      }
      source = `${dir} (generated for ${o.prompts}, ${o.temperature === 0 ? 'greedy' : `temperature ${o.temperature}, seed ${o.seed}`})`;
    }
    if (task && mode === 'data') checkTaskPrompts(task, responses.map((r) => r.prompt), `--data ${o.data}`);
    const judged = await judgeRows(judge, responses);
    if (o.out !== undefined) await writeJsonl(o.out, judged.map((r) => ({ prompt: r.prompt, response: r.response, score: r.score, parts: r.parts })));
    printSummary(judge, judged, source);
    if (o.out !== undefined) console.log(`per-row judgements written to ${o.out}`);
    return 0;
  },
});
