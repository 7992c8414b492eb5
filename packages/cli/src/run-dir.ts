// A training command's output folder: refusing to mix two runs in one, finding the checkpoint a
// --resume continues, and the run's options saved beside its checkpoints.
import { mkdir, readFile, readdir } from 'node:fs/promises';
import * as path from 'node:path';

import { TRAINER_STATE_FILE, type TrainerState, checkTrainerState, latestCheckpoint, requireOptimizerState, writeFileAtomic } from '@s2s/core';

import { type OptionSchema, UsageError } from './options.js';
import { type PartialValues, readConfigFile } from './parse-options.js';

export const FINAL_DIR = 'final';

/** Without --resume, `out` must not hold another run: its checkpoints would be mixed with the new ones. */
export async function checkFreshOutput(out: string): Promise<void> {
  const names = await readdir(out).catch(() => [] as string[]);
  const run = names.filter((n) => n === FINAL_DIR || /^checkpoint-\d+$/.test(n)).sort();
  if (run.length)
    throw new UsageError(`${out} already holds a run (${run.slice(0, 3).join(', ')}${run.length > 3 ? ', ...' : ''}); continue it with --resume, or choose another --out`);
}

export interface ResumePoint {
  checkpoint: string;
  state: TrainerState;
}

/** The checkpoint `--resume [DIR]` names: DIR (a checkpoint, or a run folder's latest), or the latest in `out`. */
export async function findResumePoint(resume: string, out: string | undefined): Promise<ResumePoint> {
  let dir = resume;
  if (dir === '') {
    if (out === undefined) throw new UsageError('--resume without a checkpoint folder needs --out, where it takes the latest checkpoint');
    const latest = await latestCheckpoint(out);
    if (!latest) throw new Error(`--resume: ${out} has no checkpoint to resume from (a run writes checkpoint-N when stopped, and every --save-every steps)`);
    dir = latest;
  }
  const file = path.join(dir, TRAINER_STATE_FILE);
  let text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) {
    // a run folder rather than one of its checkpoints
    const latest = await latestCheckpoint(dir);
    if (!latest) throw new Error(`--resume ${dir}: not a training checkpoint (it has no ${TRAINER_STATE_FILE}) and holds no checkpoint-N folder`);
    dir = latest;
    text = await readFile(path.join(dir, TRAINER_STATE_FILE), 'utf8');
  }
  let state: TrainerState;
  try {
    state = JSON.parse(text) as TrainerState;
  } catch (e) {
    throw new Error(`${path.join(dir, TRAINER_STATE_FILE)}: not valid JSON (${(e as Error).message})`);
  }
  checkTrainerState(state, path.join(dir, TRAINER_STATE_FILE));
  return { checkpoint: dir, state };
}

/**
 * The optimizer state of each model a resumed run trains (`models`: folders of the checkpoint;
 * PPO's policy and critic) must be there, or the run would not continue (requireOptimizerState).
 * Checked after the caller has made sure the checkpoint is of its kind, so that a wrong folder is
 * named as that first.
 */
export async function checkResumable(resume: ResumePoint, models: readonly string[] = ['']): Promise<void> {
  for (const m of models) await requireOptimizerState(path.join(resume.checkpoint, m));
}

/** Options that say where this run is, not what it is: they are not saved with it. */
const NOT_SAVED = new Set(['resume', 'out']);

/** The run's options as JSON that --config reads back (without where the run is: --out, --resume). */
export function runConfigText(values: object): string {
  const saved = Object.fromEntries(Object.entries(values).filter(([k, v]) => v !== undefined && !NOT_SAVED.has(k)));
  return JSON.stringify(saved, null, 2) + '\n';
}

/** Writes the run's options into `out`, atomically; returns the file. */
export async function saveRunConfig(out: string, file: string, text: string): Promise<string> {
  await mkdir(out, { recursive: true });
  const target = path.join(out, file);
  await writeFileAtomic(target, text);
  return target;
}

/** The options a resumed run was started with (its run folder's saved config), or none. */
export async function savedRunConfig(schema: OptionSchema, checkpoint: string, file: string, command: string): Promise<PartialValues> {
  const saved = path.join(path.dirname(checkpoint), file);
  const has = await readFile(saved).then(() => true, () => false);
  return has ? readConfigFile(schema, saved, command) : {};
}

