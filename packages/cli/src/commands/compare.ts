// `s2s compare`: the paper's comparison (PPO with a scalar RM, PPO-T, PPO-S, against SFT) on the
// user's own files, judged by their own judge module, with the demo's tested settings as defaults.
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import * as path from 'node:path';

import { type PreferenceRow, type SupervisedRow, assertTokenizerFitsModel, readCheckpointConfig, resolveConfig, writeFileAtomic } from '@s2s/core';

import { type Command, defineCommand, engineOptions } from '../command.js';
import { COMPARE_METHODS, type CompareMethod, type CompareRun, CompareStopped, type EvalSplit, type JudgedResponse, type Policy, runComparison } from '../compare/pipeline.js';
import { checkDataFile, dataTemplate, readDataset } from '../datasets.js';
import { DEMO_FULL, DEMO_QUICK, DEMO_SIZES, DEMO_SIZE_NAMES } from '../demo/config.js';
import { formatInterval, interval } from '../demo/stats.js';
import { EXIT_INTERRUPTED } from '../interrupt.js';
import { checkTemplateFitsTokenizer, findTemplate, findTokenizer } from '../model-inputs.js';
import { type OptionSchema, UsageError, need } from '../options.js';
import { loadUserJudge } from '../user-judge.js';

const options = {
  sft: { type: 'string', arg: 'FILE', required: true, group: 'your task', help: 'demonstrations {prompt, completion} for SFT' },
  pairs: { type: 'string', arg: 'FILE', required: true, group: 'your task', help: 'preference pairs {prompt, chosen, rejected} for both reward models' },
  prompts: { type: 'string', arg: 'FILE', required: true, group: 'your task', help: 'prompts {prompt} for the PPO rollouts' },
  evalPrompts: { type: 'string', arg: 'FILE', required: true, group: 'your task', help: 'prompts {prompt} every policy is judged on' },
  oodPrompts: { type: 'string', arg: 'FILE', group: 'your task', help: 'out-of-distribution prompts, judged separately' },
  judge: {
    type: 'string',
    arg: 'FILE',
    required: true,
    group: 'your task',
    help: 'your judge: a module exporting score(prompt, response) and/or compare(prompt, a, b) (as s2s eval --judge)',
  },
  model: { type: 'string', arg: 'DIR', group: 'model', help: 'a model folder to fine-tune; default: a new model of --size' },
  tokenizer: { type: 'string', arg: 'DIR', group: 'model', help: "tokenizer folder; default: --model's, else beside --sft (s2s data tokenizer writes one)" },
  template: { type: 'string', arg: 'NAME|FILE', group: 'model', help: "prompt/response template: default, testbed or a JSON file; default: --model's saved one, else default" },
  size: { type: 'enum', values: DEMO_SIZE_NAMES, default: 'small', group: 'model', help: "a new model's size, as the demo's (small 2 x 128, base 4 x 192, large 6 x 384)" },
  context: { type: 'int', min: 16, default: 128, group: 'model', help: "a new model's context in tokens" },
  out: { type: 'string', arg: 'DIR', default: 'runs/compare', group: 'run', help: 'run folder: cache/ (every stage, reused by the next run) and report/' },
  seeds: { type: 'string', arg: 'N,N,...', default: '1,2,3', group: 'run', help: 'seeds: each trains every model again (the data stays yours)' },
  methods: { type: 'string', arg: 'M,M', default: COMPARE_METHODS.join(','), group: 'run', help: `PPO rewards to compare with SFT (${COMPARE_METHODS.join(', ')})` },
  quick: { type: 'bool', default: false, group: 'run', help: "the demo's CI-sized settings: a smoke test of your files and judge, its numbers meaningless" },
  ...engineOptions,
} as const satisfies OptionSchema;

const sha = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

function listOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T[] {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = items.find((x) => !allowed.includes(x as T));
  if (bad !== undefined || items.length === 0) throw new UsageError(`--${flag} takes a comma-separated list of ${allowed.join(', ')}; got ${JSON.stringify(value)}`);
  return items as T[];
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const pct = (x: number) => `${(100 * x).toFixed(0)}%`;

/** The report: per policy and split, the judge's mean score, the win rate over SFT, length and the share of empty or cut-off responses. */
function reportText(runs: CompareRun[], methods: CompareMethod[], splits: EvalSplit[], judgeName: string, settings: unknown): string {
  const lines = [
    '# s2s compare',
    '',
    `Judge: ${judgeName}. Seeds: ${runs.map((r) => r.seed).join(', ')} (intervals: 95% over seeds, Student's t). Each policy answers the evaluation prompts once per seed, sampled with that seed's random numbers.`,
    '',
  ];
  for (const split of splits) {
    lines.push(`## ${split === 'eval' ? 'Evaluation prompts' : 'Out-of-distribution prompts'}`, '', '| policy | judge score | win rate over SFT | tokens | empty | cut off |', '| --- | --- | --- | --- | --- | --- |');
    for (const p of ['sft', ...methods] as Policy[]) {
      const per = (f: (rows: JudgedResponse[]) => number) => interval(runs.map((r) => f(r.evals[p]![split]!)));
      const score = per((rows) => mean(rows.map((x) => x.score)));
      const win = p === 'sft' ? '(itself)' : formatInterval(interval(runs.map((r) => r.winRates[p as CompareMethod]![split]!)), 0, 100) + '%';
      lines.push(
        `| ${p === 'sft' ? 'SFT' : `PPO ${p}`} | ${Number.isNaN(score.mean) ? '(no score())' : formatInterval(score, 3)} | ${win} | ${formatInterval(per((rows) => mean(rows.map((x) => x.tokens))), 1)} | ${pct(per((rows) => mean(rows.map((x) => (x.tokens === 0 ? 1 : 0)))).mean)} | ${pct(per((rows) => mean(rows.map((x) => (x.finished ? 0 : 1)))).mean)} |`,
      );
    }
    lines.push('');
  }
  lines.push(
    '## Reward models',
    '',
    `- scalar RM, held-out pair accuracy: ${formatInterval(interval(runs.map((r) => r.scalarRM.accuracy)), 3)}`,
    `- seq2seq RM, held-out exact rewrites: correction ${formatInterval(interval(runs.map((r) => r.seq2seqRM.correction)), 3)}, identity ${formatInterval(interval(runs.map((r) => r.seq2seqRM.identity)), 3)}`,
    '',
    '## Settings',
    '',
    '```json',
    JSON.stringify(settings, null, 2),
    '```',
    '',
  );
  return lines.join('\n');
}

export const compareCommand: Command<typeof options> = defineCommand({
  name: 'compare',
  summary: "the paper's comparison on your own task: SFT, both reward models, PPO scalar / token / sentence, judged by your judge",
  description: `Runs on your files what \`s2s demo\` runs on the testbed, for each seed: SFT on --sft (a new model of
--size, or --model fine-tuned), the scalar and the seq2seq reward models on --pairs, PPO with each
reward of --methods on --prompts, and every policy's responses to --eval-prompts (and
--ood-prompts) judged by --judge (a module as \`s2s eval --judge\` takes). Writes report/report.md
and report/results.json under --out: per policy, the judge's mean score, the win rate over SFT
(by the judge's compare() when it has one, else by scores), length, and the share of empty and
cut-off responses, with 95% intervals over seeds. The settings are the demo's (its tested PPO
settings, not \`s2s ppo\`'s TRL defaults). Every stage is cached: a rerun (after Ctrl-C, say)
redoes only what changed. Text prompts only (no chat templates yet).`,
  examples: [
    's2s data tokenizer --data my/sft.jsonl,my/pairs.jsonl --out my/',
    's2s compare --sft my/sft.jsonl --pairs my/pairs.jsonl --prompts my/prompts.jsonl --eval-prompts my/eval.jsonl --judge my/judge.mjs --out runs/mine',
  ],
  options,
  interruptible: true,
  async run({ values: o }, ctx) {
    const files = { sft: need(o.sft, 'sft', 'FILE'), pairs: need(o.pairs, 'pairs', 'FILE'), prompts: need(o.prompts, 'prompts', 'FILE'), evalPrompts: need(o.evalPrompts, 'evalPrompts', 'FILE') };
    const judgeFile = need(o.judge, 'judge', 'FILE');
    const seeds = o.seeds.split(',').map((s) => Number(s.trim()));
    if (!seeds.length || seeds.some((s) => !Number.isInteger(s) || s < 0 || s > 1e6)) throw new UsageError(`--seeds takes a comma-separated list of non-negative integers; got ${JSON.stringify(o.seeds)}`);
    const methods = listOf<CompareMethod>('methods', o.methods, COMPARE_METHODS);
    for (const [flag, f] of [['--sft', files.sft], ['--pairs', files.pairs], ['--prompts', files.prompts], ['--eval-prompts', files.evalPrompts], ...(o.oodPrompts ? [['--ood-prompts', o.oodPrompts]] : [])]) await checkDataFile(f, flag);
    const judge = await loadUserJudge(judgeFile);

    const tok = await findTokenizer(o.tokenizer, [o.model, path.dirname(files.sft)]);
    const { template: modelTemplate, from: templateFrom } = await findTemplate(o.template, [o.model], tok);
    if (modelTemplate.chat) throw new UsageError('s2s compare reads text prompts: chat templates are not supported yet (use --template default, testbed or a JSON file)');
    checkTemplateFitsTokenizer(tok, modelTemplate);
    const tpl = dataTemplate(modelTemplate, undefined);
    const base = o.quick ? DEMO_QUICK : { ...DEMO_FULL, ...DEMO_SIZES[o.size] };
    let model: { from: string } | { config: ReturnType<typeof resolveConfig> };
    if (o.model !== undefined) {
      assertTokenizerFitsModel(tok, await readCheckpointConfig(o.model));
      model = { from: path.resolve(o.model) };
    } else model = { config: resolveConfig({ ...base.model, maxSeqLen: o.context, vocabSize: tok.vocabSize }, 'the new model (--size, --context)') };

    const sft = (await readDataset(files.sft, 'supervised', { prompt: 'prompt', completion: 'completion' }, '--sft', tpl, tok)) as SupervisedRow[];
    const pairs = (await readDataset(files.pairs, 'preference', { prompt: 'prompt', chosen: 'chosen', rejected: 'rejected' }, '--pairs', tpl, tok)) as PreferenceRow[];
    const promptsOf = async (file: string, flag: string) => ((await readDataset(file, 'prompt', { prompt: 'prompt' }, flag, tpl, tok)) as Array<{ prompt: string }>).map((r) => r.prompt);
    const rlPrompts = await promptsOf(files.prompts, '--prompts');
    const evalPrompts: Partial<Record<EvalSplit, string[]>> = { eval: await promptsOf(files.evalPrompts, '--eval-prompts') };
    if (o.oodPrompts) evalPrompts.ood = await promptsOf(o.oodPrompts, '--ood-prompts');
    const settings = { sft: base.sft, scalarRM: base.scalarRM, seq2seqRM: base.seq2seqRM, ppo: base.ppo, eval: base.eval };
    const ppoBatch = settings.ppo.batchSize ?? 32;
    if (rlPrompts.length < ppoBatch) throw new UsageError(`--prompts ${files.prompts} has ${rlPrompts.length} prompts; PPO's batch is ${ppoBatch}`);

    // the stages' cache keys cover the inputs' contents, the judge's included
    const contents = await Promise.all([...Object.values(files), o.oodPrompts, judgeFile].filter((f): f is string => !!f).map((f) => readFile(f)));
    const inputsKey = sha(contents.map((c) => sha(c)).join() + JSON.stringify(tok.files()) + JSON.stringify(tpl));
    console.log(
      `compare: ${sft.length} demonstrations, ${pairs.length} pairs, ${rlPrompts.length} PPO prompts, ${evalPrompts.eval!.length} evaluation prompts${evalPrompts.ood ? ` and ${evalPrompts.ood.length} out of distribution` : ''}; ` +
        `${'from' in model ? `fine-tuning ${o.model}` : `a new ${o.quick ? 'CI-sized' : o.size} model`}; template ${templateFrom}; judge ${judge.name}; seeds ${seeds.join(',')}; methods ${methods.join(',')}`,
    );
    let runs: CompareRun[];
    try {
      runs = await runComparison({ sft, pairs, rlPrompts, evalPrompts, tok, tpl, judge, model, settings, seeds, methods, inputsKey }, o.out, {
        signal: ctx.signal,
        onEvent: (e) => {
          if (e.type === 'stage' && e.status !== 'running') console.error(`${e.status === 'cached' ? '= cached' : '+ done  '} ${e.name}${e.seconds !== undefined ? ` (${e.seconds.toFixed(1)} s)` : ''}`);
        },
      });
    } catch (e) {
      if (e instanceof CompareStopped) {
        console.error(`stopped; finished stages are cached in ${path.join(o.out, 'cache')}: run the same command again to continue`);
        return EXIT_INTERRUPTED;
      }
      throw e;
    }
    const splits = Object.keys(evalPrompts) as EvalSplit[];
    const report = path.join(o.out, 'report');
    await mkdir(report, { recursive: true });
    const text = reportText(runs, methods, splits, judge.name, settings);
    await writeFileAtomic(path.join(report, 'report.md'), text);
    await writeFileAtomic(path.join(report, 'results.json'), JSON.stringify({ settings, seeds, methods, judge: judgeFile, runs }, null, 2) + '\n');
    console.log(text.split('\n## Reward models')[0]);
    console.log(`report: ${path.join(report, 'report.md')} (and results.json)`);
    return 0;
  },
});
