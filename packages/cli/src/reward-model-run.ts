// What `rm train` has resolved before either kind of reward model trains: the run, its data, the
// tokenizer and template, and where its files go.
import { type Distributed, type Model, type Template, type Tokenizer, type TrainConfig, type TrainerOptions, type WeightDType, templateFiles } from '@s2s/core';

import type { DataRowOf } from './datasets.js';

import { padIdOf, specialTokenIds } from './model-inputs.js';
import type { Progress } from './progress.js';
import type { ResumePoint } from './run-dir.js';

export interface RewardModelRun {
  out: string;
  resume?: ResumePoint;
  train: TrainConfig;
  tok: Tokenizer;
  template: Template;
  maxLength: number;
  overflow: 'truncate' | 'skip';
  /** text pairs, or (chat mode) conversational ones */
  trainRows: DataRowOf<'preference'>[];
  evalRows: DataRowOf<'preference'>[];
  /** the SFT model, or the checkpoint a resumed run continues */
  from: string;
  /** for the final folder: the options and the reward model's kind */
  finalFiles: Record<string, string>;
  /** the final model's weights dtype (--save-dtype; default: the SFT model's) */
  saveDtype?: WeightDType;
  signal: AbortSignal;
  /** the data-parallel ranks (rank 0 writes the files) */
  dist: Distributed;
  /** writes the run's options into its folder (once all input has been checked) */
  saveConfig(): Promise<string>;
  /** writes eval_results.json into the run folder */
  saveResults(results: object): Promise<void>;
}

/** What both reward-model trainers take from the run: output, tokenizer, files, Ctrl-C, progress. */
export function rewardTrainerOptions(run: RewardModelRun, model: Model, progress: Progress): TrainerOptions<TrainConfig> & { padId: number } {
  return {
    model,
    config: run.train,
    padId: padIdOf(run.tok),
    outputDir: run.out,
    tokenizer: run.tok,
    hfConfig: specialTokenIds(run.tok, model),
    files: { ...templateFiles(run.template), ...run.finalFiles },
    saveDtype: run.saveDtype,
    signal: run.signal,
    dist: run.dist,
    onEvent: (e) => progress.onEvent(e),
  };
}
