// The statistics report of a generated dataset: sizes, the designed biases (how often the chosen
// response is the longer one, how often a refusal is chosen or rejected), label agreement with the
// gold judge, and vocabulary coverage of each split.
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
  };
  sft: { meanCompletionLength: number; meanGold: number };
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
    },
    sft: {
      meanCompletionLength: mean(data.sft.map((r) => len(r.completion))),
      meanGold: mean(data.sft.map((r) => task.judge(r.prompt, r.completion).score)),
    },
    vocabulary: {
      size: vocab.length,
      trainCoverage: vocab.filter((w) => train.has(w)).length / vocab.length,
      unseenInEvalId: unseen(data.eval.id),
      unseenInEvalOod: unseen(data.eval.ood),
    },
  };
}
