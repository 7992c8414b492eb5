// `s2s data make`: writes a testbed task's datasets (SFT, preference pairs, RL and evaluation
// prompts), its tokenizer and its statistics report to a folder.
import * as path from 'node:path';

import { TOKENIZER_FILE } from '@s2s/core';
import { DATA_FILES, TASKS, getTask, makeTaskData, testbedTokenizer } from '@s2s/tasks';

import { type Command, defineCommand } from '../command.js';
import { type OptionSchema, need } from '../options.js';

const options = {
  task: { type: 'enum', values: TASKS.map((t) => t.name), required: true, help: 'the testbed task' },
  out: { type: 'string', arg: 'DIR', required: true, help: 'the dataset folder (replaced as a whole)' },
  seed: { type: 'int', min: 0, default: 0, help: 'fixes every example' },
  sft: { type: 'int', min: 0, default: 4000, help: 'supervised examples {prompt, completion}' },
  pairs: { type: 'int', min: 0, default: 4000, help: 'preference pairs {prompt, chosen, rejected}' },
  rlPrompts: { type: 'int', min: 0, default: 2000, help: 'prompts for PPO rollouts' },
  evalPrompts: { type: 'int', min: 0, default: 200, help: 'evaluation prompts per split (in- and out-of-distribution)' },
} as const satisfies OptionSchema;

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export const dataMakeCommand: Command<typeof options> = defineCommand({
  name: 'data make',
  summary: "generate a testbed task's datasets, tokenizer and statistics",
  description: `Generates a task of the synthetic testbed into --out, the same for the same --seed:
  ${Object.values(DATA_FILES).join(', ')}
and the testbed's word-level tokenizer (${TOKENIZER_FILE}), which every stage then shares.
tasks:
${TASKS.map((t) => `  ${t.name.padEnd(11)}${t.description}`).join('\n')}`,
  examples: ['s2s data make --task summarize --out data/summarize', 's2s data make --task safety --out data/safety --pairs 8000 --seed 1'],
  options,
  async run({ values: o }) {
    const task = getTask(need(o.task, 'task', TASKS.map((t) => t.name).join('|')));
    const out = need(o.out, 'out', 'DIR');
    const { stats: s } = await makeTaskData(task, { seed: o.seed, sft: o.sft, pairs: o.pairs, rlPrompts: o.rlPrompts, evalPrompts: o.evalPrompts }, out);
    const c = s.counts;
    const p = s.pairs;
    console.log(`${task.name} data (seed ${s.seed}) written to ${out}`);
    console.log(`  examples: ${c.sft} sft, ${c.pairs} pairs, ${c.rlPrompts} rl prompts, ${c.evalId} + ${c.evalOod} eval prompts (in / out of distribution)`);
    console.log(`  pairs: chosen longer in ${pct(p.chosenLonger)} (same length ${pct(p.sameLength)}), gold judge agrees with the label in ${pct(p.goldAgrees)}`);
    console.log(`         mean length chosen ${p.meanChosenLength.toFixed(1)}, rejected ${p.meanRejectedLength.toFixed(1)} words`);
    console.log(`  refusals: ${pct(p.refusalShareChosen)} of chosen, ${pct(p.refusalShareRejected)} of rejected responses`);
    for (const [cls, b] of Object.entries(p.byClass ?? {}))
      console.log(`    ${cls} requests (${pct(b.share)} of pairs): refusal chosen in ${pct(b.refusalChosen)}, rejected in ${pct(b.refusalRejected)}`);
    console.log(
      `  vocabulary: ${s.vocabulary.size} words, ${pct(s.vocabulary.trainCoverage)} seen in training; ` +
        `unseen in eval prompts: ${s.vocabulary.unseenInEvalId} (in), ${s.vocabulary.unseenInEvalOod} (out of distribution); tokenizer ${testbedTokenizer().vocabSize} ids`,
    );
    console.log(`  sft: mean completion ${s.sft.meanCompletionLength.toFixed(1)} words, mean gold score ${s.sft.meanGold.toFixed(3)} (chance ${s.sft.chanceGold.toFixed(3)}), ${pct(s.sft.flawless)} without a flaw`);
    for (const [flaw, share] of Object.entries(s.sft.flaws)) console.log(`    with ${flaw}: ${pct(share)}`);
    console.log(`next: s2s sft --data ${path.join(out, DATA_FILES.sft)} --template testbed --out runs/${task.name}-sft`);
    return 0;
  },
});
