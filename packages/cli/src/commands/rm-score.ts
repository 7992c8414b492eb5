// `s2s rm score`: rewards for a JSONL of responses -- one number per response from a scalar reward
// model, or per-token scores from a seq2seq one (the paper's reward extraction).
import { type Model, type Prompt, type Template, type Tokenizer, encodePrompt, encodeResponse, encodeSupervised, lengthReport, writeJsonl } from '@s2s/core';
import { REWARD_STATS_FILE, type RewardStats, aggregateScores, extractRewards, normalizeReward, sequenceRewards } from '@s2s/rm';

import { type Command, defineCommand, engineOptions, specialTextOptions } from '../command.js';
import { checkDataFile, compactPrompt } from '../datasets.js';
import { padIdOf } from '../model-inputs.js';
import { type OptionSchema, need } from '../options.js';
import { openRewardModel, readResponses, responseFieldOptions, rewardModelInputs, rewardModelOptions } from '../reward-model-inputs.js';

const options = {
  ...rewardModelOptions,
  data: {
    type: 'string',
    arg: 'FILE',
    required: true,
    group: 'data',
    help: 'responses to score: JSONL rows {prompt, response} (or {prompt, completion}; with a chat template the prompt may be a message list)',
  },
  out: { type: 'string', arg: 'FILE', required: true, group: 'data', help: 'where the scored rows go (JSONL, written atomically)' },
  ...responseFieldOptions,
  ...specialTextOptions,
  batchSize: { type: 'int', min: 1, default: 32, group: 'run', help: 'sequences per engine call' },
  ...engineOptions,
} as const satisfies OptionSchema;

type Row = { prompt: Prompt; response: string; finished: boolean };

async function scalarScores(model: Model, tok: Tokenizer, tpl: Template, rows: Row[], stats: RewardStats | undefined, dir: string, batchSize: number, data: string) {
  if (!stats) console.error(`warning: ${dir} has no ${REWARD_STATS_FILE}; normalizedReward is null`);
  const report = lengthReport();
  const seqs = rows.map((r, i) => {
    const tooLong = () => new Error(`${data}: row ${i + 1}: the response alone does not fit the reward model's context (${model.config.maxSeqLen} tokens)`);
    if (!r.finished) {
      // cut off at the token limit: scored as PPO scores it, the query then the tokens written (no EOS)
      const ids = encodeResponse(tok, tpl, r.prompt, r.response, { finished: false });
      const q = encodePrompt(tok, tpl, r.prompt, { maxLength: model.config.maxSeqLen - ids.length, report });
      if (!q) throw tooLong();
      return [...q, ...ids];
    }
    const e = encodeSupervised(tok, tpl, r.prompt, r.response, { maxLength: model.config.maxSeqLen, report });
    if (!e) throw tooLong();
    return e.ids;
  });
  if (report.truncated) console.error(`warning: ${report.truncated} prompts were cut from the left to fit the reward model's context (${model.config.maxSeqLen} tokens)`);
  const rewards = await sequenceRewards(model, seqs, padIdOf(tok), batchSize);
  const normalise = (r: number) => (stats ? normalizeReward(r, stats) : null);
  return rows.map((r, i) => ({ prompt: compactPrompt(r.prompt), response: r.response, reward: rewards[i], normalizedReward: normalise(rewards[i]) }));
}

async function tokenScores(model: Model, tok: Tokenizer, tpl: Template, rows: Row[], batchSize: number) {
  // each text response as the policy wrote it: a finished one with EOS (or a chat template's
  // end-of-turn), one cut off at the token limit (finishReason "length") without
  const items = rows.map((r) => ({ prompt: r.prompt, response: encodeResponse(tok, tpl, r.prompt, r.response, { finished: r.finished }) }));
  const extracted = await extractRewards(model, tok, tpl, items, { batchSize });
  return rows.map((r, i) => ({
    prompt: compactPrompt(r.prompt),
    response: r.response,
    tokens: items[i].response.map((id) => tok.decode([id])),
    scores: extracted[i].scores,
    firstDivergence: extracted[i].firstDivergence,
    sum: aggregateScores(extracted[i].scores, 'sum'),
  }));
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

export const rmScoreCommand: Command<typeof options> = defineCommand({
  name: 'rm score',
  summary: 'score {prompt, response} JSONL with a reward model (scalar rewards, or token scores)',
  description: `Scores each response with a reward model made by \`s2s rm train\`.
  scalar RM: writes {prompt, response, reward, normalizedReward}; normalizedReward is
    (reward - mean) / std with the statistics in the model's reward_stats.json.
  seq2seq RM: writes {prompt, response, tokens, scores, firstDivergence, sum}: one score per
    response token (EOS, or a chat template's end-of-turn, included when the template adds
    one): +1 before the first token the reward model would not have written, then -1 where the
    response differs from what it would write and 0 where it agrees.
  An empty response is scored (its only token is the EOS). A row with finishReason "length" (as
  \`s2s generate\` writes a response cut off at --max-new-tokens) is scored as PPO scores it: its
  own tokens, without the EOS it never wrote.`,
  examples: ['s2s rm score --model runs/s2s-rm/final --data samples.jsonl --out scored.jsonl'],
  options,
  async run({ values: o }) {
    const dir = need(o.model, 'model', 'RM_DIR');
    const data = need(o.data, 'data', 'FILE');
    const out = need(o.out, 'out', 'FILE');
    await checkDataFile(data, '--data');
    const inputs = await rewardModelInputs(dir, o);
    const rows = await readResponses(data, o, '--data', inputs.template, inputs.tokenizer);
    const rm = await openRewardModel(dir, inputs);
    const { kind, model, tokenizer: tok, template } = rm;
    try {
      const scored = rm.kind === 'scalar' ? await scalarScores(model, tok, template, rows, rm.stats, dir, o.batchSize, data) : await tokenScores(model, tok, template, rows, o.batchSize);
      await writeJsonl(out, scored);
      const summary =
        kind === 'scalar'
          ? `mean reward ${mean(scored.map((r) => (r as { reward: number }).reward)).toFixed(4)}`
          : `mean score sum ${mean(scored.map((r) => (r as { sum: number }).sum)).toFixed(3)}`;
      console.log(`scored ${rows.length} responses with the ${kind} reward model ${dir} (${summary}); written to ${out}`);
      return 0;
    } finally {
      model.dispose();
    }
  },
});
