// `rm train` for the scalar reward model: the SFT model with a value head, the Bradley-Terry loss,
// and held-out pair accuracy at the end.
import { type Model, loadModel } from '@s2s/core';
import { type EncodedPair, ScalarRewardTrainer, encodePairs } from '@s2s/rm';

import { type DataRowOf, reportLengths } from './datasets.js';
import { Progress } from './progress.js';
import { type RewardModelRun, rewardTrainerOptions } from './reward-model-run.js';
import { ranksText, reportEnd } from './training-run.js';

/** Both sequences of each pair; a pair is left out when either side does not fit. */
function encode(run: RewardModelRun, rows: DataRowOf<'preference'>[], what: string, required: boolean): EncodedPair[] {
  const { pairs, report } = encodePairs(run.tok, run.template, rows, { maxLength: run.maxLength, overflow: run.overflow });
  reportLengths(`${what} (chosen and rejected)`, report, run.maxLength, required ? pairs.length : 1);
  if (pairs.length < rows.length) console.log(`${what}: ${rows.length - pairs.length} of ${rows.length} pairs left out`);
  return pairs;
}

async function startingModel(run: RewardModelRun): Promise<Model> {
  if (run.resume) return loadModel(run.resume.checkpoint);
  const sft = await loadModel(run.from, { optimizer: false });
  if (sft.config.valueHead) return sft;
  try {
    return await sft.clone({ valueHead: true, seed: run.train.seed });
  } finally {
    sft.dispose();
  }
}

export async function trainScalarRM(run: RewardModelRun): Promise<number> {
  const train = encode(run, run.trainRows, 'training pairs', true);
  const evalPairs = run.evalRows.length ? encode(run, run.evalRows, 'held-out pairs', false) : [];
  const model = await startingModel(run);
  try {
    const configFile = await run.saveConfig();
    const progress = new Progress({ unit: 'pairs' });
    const trainer = new ScalarRewardTrainer({ ...rewardTrainerOptions(run, model, progress), train, eval: evalPairs });
    if (run.resume) trainer.restore(run.resume.state, run.resume.checkpoint);
    console.log(
      `rm train (scalar, Bradley-Terry): ${run.resume ? `resuming ${run.resume.checkpoint} at step ${trainer.currentStep}` : `from ${run.from}`} on ${model.device}; ` +
        `${trainer.totalSteps} steps of ${run.train.batchSize * run.train.gradAccumulation * run.dist.worldSize} pairs${ranksText(run.dist)}; ${train.length} training and ${evalPairs.length} held-out pairs; options saved to ${configFile}`,
    );
    const result = await trainer.train().finally(() => progress.done());
    const code = reportEnd(result, trainer.totalSteps, 'rm train', run.out);
    // the evaluation after training is rank 0's (the others hold the same model)
    if (code !== 0 || !run.dist.isMain) return code;
    const stats = trainer.rewardStats;
    if (stats) console.log(`reward over the training responses: mean ${stats.mean.toFixed(4)}, std ${stats.std.toFixed(4)} (saved as reward_stats.json)`);
    if (!result.eval) {
      console.log('held-out pair accuracy: no held-out pairs (--eval-split 0)');
      return 0;
    }
    const m = result.eval;
    console.log(`held-out pair accuracy: ${(100 * m.accuracy).toFixed(1)}% of ${evalPairs.length} pairs (loss ${m.evalLoss.toFixed(4)}, mean margin ${m.margin.toFixed(4)})`);
    await run.saveResults({ kind: 'scalar', pairs: evalPairs.length, accuracy: m.accuracy, evalLoss: m.evalLoss, margin: m.margin, rewardStats: stats });
    return 0;
  } finally {
    model.dispose();
  }
}
