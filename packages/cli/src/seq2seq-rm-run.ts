// `rm train --seq2seq`: the SFT model learns the correction mapping (prompt, rejected) -> chosen
// and the identity mapping (prompt, chosen) -> chosen by sequence MLE, and is judged at the end by
// its greedy rewrites of held-out pairs.
import { type Model, type SupervisedExample, SupervisedTrainer, loadModel } from '@s2s/core';
import { evaluateRewrites, rewriteExamples } from '@s2s/rm';

import { type DataRowOf, reportLengths } from './datasets.js';
import { EXIT_INTERRUPTED } from './interrupt.js';
import { Progress } from './progress.js';
import { type RewardModelRun, rewardTrainerOptions } from './reward-model-run.js';
import { ranksText, reportEnd } from './training-run.js';

export interface Seq2SeqOptions {
  correctionWeight: number;
  identityWeight: number;
  /** held-out pairs to rewrite at the end */
  evalRewrites: number;
}

/** Both mappings of each pair, under the length rule. */
function encode(run: RewardModelRun, rows: DataRowOf<'preference'>[], o: Seq2SeqOptions, what: string, required: boolean): SupervisedExample[] {
  const r = rewriteExamples(run.tok, run.template, rows, {
    correctionWeight: o.correctionWeight,
    identityWeight: o.identityWeight,
    maxLength: run.maxLength,
    overflow: run.overflow,
  });
  reportLengths(what, r.report, run.maxLength, required ? r.examples.length : 1);
  return r.examples;
}

async function startingModel(run: RewardModelRun): Promise<Model> {
  if (run.resume) return loadModel(run.resume.checkpoint);
  const sft = await loadModel(run.from, { optimizer: false });
  if (!sft.config.valueHead) return sft;
  try {
    return await sft.clone({ valueHead: false });
  } finally {
    sft.dispose();
  }
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export async function trainSeq2SeqRM(run: RewardModelRun, o: Seq2SeqOptions): Promise<number> {
  const train = encode(run, run.trainRows, o, 'training examples (correction + identity)', true);
  const evalSet = run.evalRows.length ? encode(run, run.evalRows, o, 'held-out examples', false) : [];
  const model = await startingModel(run);
  try {
    const configFile = await run.saveConfig();
    const progress = new Progress({ unit: 'tok' });
    const trainer = new SupervisedTrainer({ ...rewardTrainerOptions(run, model, progress), train, eval: evalSet });
    if (run.resume) trainer.restore(run.resume.state, run.resume.checkpoint);
    console.log(
      `rm train --seq2seq (correction weight ${o.correctionWeight}, identity weight ${o.identityWeight}): ` +
        `${run.resume ? `resuming ${run.resume.checkpoint} at step ${trainer.currentStep}` : `from ${run.from}`} on ${model.device}; ` +
        `${trainer.totalSteps} steps of ${run.train.batchSize * run.train.gradAccumulation * run.dist.worldSize} examples${ranksText(run.dist)}; ${train.length} training and ${evalSet.length} held-out examples; options saved to ${configFile}`,
    );
    const result = await trainer.train().finally(() => progress.done());
    const code = reportEnd(result, trainer.totalSteps, 'rm train', run.out);
    // the evaluation after training is rank 0's (the others hold the same model)
    if (code !== 0 || !run.dist.isMain) return code;
    if (result.eval) console.log(`held-out rewrite loss: ${result.eval.evalLoss.toFixed(4)}`);
    const pairs = run.evalRows.slice(0, o.evalRewrites);
    if (pairs.length === 0) {
      console.log('rewrite accuracy: no held-out pairs to rewrite (--eval-split 0 or --eval-rewrites 0)');
      return 0;
    }
    if (run.signal.aborted) {
      console.error(`interrupted: the rewrite evaluation is skipped (the model is saved in ${result.savedTo})`);
      return EXIT_INTERRUPTED;
    }
    console.log(`rewriting ${pairs.length} held-out pairs greedily...`);
    let acc;
    try {
      acc = await evaluateRewrites(model, run.tok, run.template, pairs);
    } catch (e) {
      console.error(`warning: the rewrite evaluation failed: ${(e as Error).message}`);
      return 0;
    }
    for (const m of ['correction', 'identity'] as const)
      console.log(`${m.padEnd(10)} (${m === 'correction' ? 'rejected' : 'chosen  '} -> chosen): exact match ${pct(acc[m].exactMatch)}, token accuracy ${pct(acc[m].tokenAccuracy)} over ${acc[m].n} pairs`);
    await run.saveResults({ kind: 'seq2seq', evalLoss: result.eval?.evalLoss, correction: acc.correction, identity: acc.identity });
    return 0;
  } finally {
    model.dispose();
  }
}
