// The steps every training command shares: where the run goes and whether it resumes one, the
// training config it uses, and what it says when it ends or is stopped.
import * as path from 'node:path';

import type { Distributed, TrainConfig, TrainResult } from '@s2s/core';

import { EXIT_INTERRUPTED } from './interrupt.js';
import { type OptionSchema, UsageError, type Values } from './options.js';
import { type ParsedOptions, type PartialValues, withBase } from './parse-options.js';
import { type ResumePoint, checkFreshOutput, checkResumable, findResumePoint, savedRunConfig } from './run-dir.js';
import { checkedTrainConfig, pickTrainConfig, resumedTrainConfig } from './train-options.js';

export interface RunSetup<S extends OptionSchema> {
  values: Values<S>;
  /** what this command line (and its --config) set */
  explicit: PartialValues;
  out: string;
  resume?: ResumePoint;
  train: TrainConfig;
}

/**
 * Resolves a training command's run: on --resume, the checkpoint, with the options the run was
 * started with (saved as `configFile` in its folder) under the ones given now; otherwise an
 * output folder that holds no other run.
 */
export async function setUpRun<S extends OptionSchema>(
  schema: S,
  parsed: ParsedOptions<S>,
  opts: { command: string; configFile: string; defaults: TrainConfig | ((values: Values<S>) => TrainConfig); dist: Distributed },
): Promise<RunSetup<S>> {
  const first = parsed.values as Record<string, unknown>;
  const resumeFlag = first.resume as string | undefined;
  let resume: ResumePoint | undefined;
  let values = parsed.values;
  if (resumeFlag !== undefined) {
    resume = await findResumePoint(resumeFlag, first.out as string | undefined);
    values = withBase(schema, parsed, await savedRunConfig(schema, resume.checkpoint, opts.configFile, opts.command)).values;
    await checkResumable(resume);
  }
  const v = values as Record<string, unknown>;
  // a checkpoint named by --resume DIR belongs to the run folder it is in
  const out = (v.out as string | undefined) ?? (resume ? path.dirname(resume.checkpoint) : undefined);
  if (out === undefined) throw new UsageError('--out DIR is required');
  // (rank 0's check only: the others would see the files it starts writing)
  if (!resume && opts.dist.isMain) await checkFreshOutput(out);
  const defaults = typeof opts.defaults === 'function' ? opts.defaults(values) : opts.defaults;
  // checked now, as the trainer would check it after the data and the model are read
  const picked = resume ? resumedTrainConfig(resume.state.config, parsed.explicit, resume.checkpoint) : pickTrainConfig(v, defaults);
  const train = checkedTrainConfig(picked, defaults, opts.command);
  return { values, explicit: parsed.explicit, out, resume, train };
}

/** Says how the run ended; the exit status (130 when it was stopped). */
export function reportEnd(result: TrainResult, totalSteps: number, command: string, out: string): number {
  if (result.stopped) {
    console.error(`stopped at step ${result.steps} of ${totalSteps}; checkpoint: ${result.savedTo ?? '(none: no output folder)'}`);
    console.error(`continue with: s2s ${command} --out ${out} --resume`);
    return EXIT_INTERRUPTED;
  }
  console.log(`trained ${result.steps} steps; final training loss ${result.loss.toFixed(4)}; model saved to ${result.savedTo}`);
  return 0;
}

/** " (2 ranks x 8)" after a step's example count in a data-parallel run; "" otherwise. */
export function ranksText(dist: Distributed, perRank?: number): string {
  return dist.worldSize > 1 ? ` (${dist.worldSize} data-parallel ranks${perRank ? ` x ${perRank}` : ''})` : '';
}
