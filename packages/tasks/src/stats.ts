// The statistics report of a generated dataset, as the paper states its data's: sizes, the designed
// biases (how often the chosen response is the longer one, how often a refusal is chosen or
// rejected, per kind of request), label agreement with the gold judge, the SFT demonstrations'
// flaw rates and the score of chance, and vocabulary coverage of each split.
import { type Task, type TaskData, words } from './types.js';

export interface TaskDataStats {
  task: string;
  seed: number;
  counts: { sft: number; pairs: number; rlPrompts: number; evalId: number; evalOod: number };
  pairs: {
    /** share of pairs whose chosen response has more words than the rejected one */
    chosenLonger: number;
    /** share whose chosen and rejected have the same number of words */
    sameLength: number;
    /** share where the gold judge agrees with the label (1 - annotator noise, roughly) */
    goldAgrees: number;
    /** refusals among chosen and among rejected responses (0 for tasks without refusals) */
    refusalShareChosen: number;
    refusalShareRejected: number;
    meanChosenLength: number;
    meanRejectedLength: number;
    /**
     * Per kind of request (tasks with kinds: safety's benign, dual-use, harmful): the share of
     * pairs, and how often the chosen and the rejected response is a refusal.
     */
    byClass?: Record<string, { share: number; refusalChosen: number; refusalRejected: number }>;
  };
  sft: {
    meanCompletionLength: number;
    meanGold: number;
    /** share of demonstrations the gold judge finds no flaw in */
    flawless: number;
    /** share of demonstrations with each flaw the gold judge names (one may have several) */
    flaws: Record<string, number>;
    /**
     * The gold score of chance: each demonstration judged against the next row's prompt (a
     * response that does the task's form but not this prompt's), the floor a trained model must
     * clear for a comparison to mean anything.
     */
    chanceGold: number;
  };
  vocabulary: {
    size: number;
    /** share of the task's words that occur in the training data (SFT + pairs + RL prompts) */
    trainCoverage: number;
    /** words of the evaluation prompts never seen in training, per split */
    unseenInEvalId: number;
    unseenInEvalOod: number;
  };
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

export function datasetStats(task: Task, data: TaskData): TaskDataStats {
  const len = (s: string) => words(s).length;
  const refused = (prompt: string, response: string) => task.judge(prompt, response).parts.refused === true;
  const pairs = data.pairs;
  const train = new Set<string>();
  for (const r of data.sft) for (const w of words(`${r.prompt} ${r.completion}`)) train.add(w);
  for (const r of pairs) for (const w of words(`${r.prompt} ${r.chosen} ${r.rejected}`)) train.add(w);
  for (const r of data.rlPrompts) for (const w of words(r.prompt)) train.add(w);
  const unseen = (rows: { prompt: string }[]) => new Set(rows.flatMap((r) => words(r.prompt)).filter((w) => !train.has(w))).size;
  const vocab = task.words();
  const flaws: Record<string, number> = {};
  let flawless = 0;
  for (const r of data.sft) {
    const found = task.flaws(r.prompt, r.completion);
    if (!found.length) flawless++;
    for (const f of found) flaws[f] = (flaws[f] ?? 0) + 1 / data.sft.length;
  }
  const promptClass = task.promptClass?.bind(task);
  let byClass: NonNullable<TaskDataStats['pairs']['byClass']> | undefined;
  if (promptClass) {
    byClass = {};
    const groups = new Map<string, typeof pairs>();
    for (const p of pairs) {
      const c = promptClass(p.prompt);
      groups.set(c, [...(groups.get(c) ?? []), p]);
    }
    for (const [c, ps] of [...groups].sort(([a], [b]) => a.localeCompare(b)))
      byClass[c] = {
        share: ps.length / pairs.length,
        refusalChosen: mean(ps.map((p) => (refused(p.prompt, p.chosen) ? 1 : 0))),
        refusalRejected: mean(ps.map((p) => (refused(p.prompt, p.rejected) ? 1 : 0))),
      };
  }
  return {
    task: data.task,
    seed: data.seed,
    counts: { sft: data.sft.length, pairs: pairs.length, rlPrompts: data.rlPrompts.length, evalId: data.eval.id.length, evalOod: data.eval.ood.length },
    pairs: {
      chosenLonger: mean(pairs.map((p) => (len(p.chosen) > len(p.rejected) ? 1 : 0))),
      sameLength: mean(pairs.map((p) => (len(p.chosen) === len(p.rejected) ? 1 : 0))),
      goldAgrees: mean(pairs.map((p) => (task.judge(p.prompt, p.chosen).score > task.judge(p.prompt, p.rejected).score ? 1 : 0))),
      refusalShareChosen: mean(pairs.map((p) => (refused(p.prompt, p.chosen) ? 1 : 0))),
      refusalShareRejected: mean(pairs.map((p) => (refused(p.prompt, p.rejected) ? 1 : 0))),
      meanChosenLength: mean(pairs.map((p) => len(p.chosen))),
      meanRejectedLength: mean(pairs.map((p) => len(p.rejected))),
      ...(byClass && { byClass }),
    },
    sft: {
      meanCompletionLength: mean(data.sft.map((r) => len(r.completion))),
      meanGold: mean(data.sft.map((r) => task.judge(r.prompt, r.completion).score)),
      flawless: data.sft.length ? flawless / data.sft.length : 0,
      flaws,
      chanceGold: mean(data.sft.map((r, i) => task.judge(data.sft[(i + 1) % data.sft.length].prompt, r.completion).score)),
    },
    vocabulary: {
      size: vocab.length,
      trainCoverage: vocab.filter((w) => train.has(w)).length / vocab.length,
      unseenInEvalId: unseen(data.eval.id),
      unseenInEvalOod: unseen(data.eval.ood),
    },
  };
}
