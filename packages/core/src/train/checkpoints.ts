// Training checkpoints as Hugging Face's Trainer lays them out: output/checkpoint-<step>/ holds the
// model with its optimizer state, the tokenizer and trainer_state.json (step, data position, log),
// so a run can resume exactly; older checkpoints beyond a limit are removed (rotateCheckpoints).
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

import { OPTIMIZER_FILE, loadModel, saveModel } from '../checkpoint.js';
import type { FileData } from '../fsutil.js';
import type { Model } from '../model.js';
import { Tokenizer } from '../tokenizer.js';

export const TRAINER_STATE_FILE = 'trainer_state.json';
const CHECKPOINT_PREFIX = 'checkpoint-';

export function checkpointDir(outputDir: string, step: number): string {
  return path.join(outputDir, `${CHECKPOINT_PREFIX}${step}`);
}

/** The checkpoints in outputDir, oldest first, as [step, dir]. */
export async function listCheckpoints(outputDir: string): Promise<Array<[number, string]>> {
  const names = await fs.readdir(outputDir).catch(() => [] as string[]);
  return names
    .filter((n) => n.startsWith(CHECKPOINT_PREFIX) && /^\d+$/.test(n.slice(CHECKPOINT_PREFIX.length)))
    .map((n) => [Number(n.slice(CHECKPOINT_PREFIX.length)), path.join(outputDir, n)] as [number, string])
    .sort((a, b) => a[0] - b[0]);
}

export async function latestCheckpoint(outputDir: string): Promise<string | undefined> {
  return (await listCheckpoints(outputDir)).at(-1)?.[1];
}

/**
 * saveTotalLimit, for every trainer (SFT, the reward models, PPO), as Hugging Face's Trainer and TRL
 * mean save_total_limit: after a checkpoint is written, at most `limit` checkpoint-<step> folders
 * stay in `outputDir`, the oldest (lowest step) deleted first; 0 keeps them all. The checkpoint just
 * written (`current`) is always among those kept, even when a run resumed from an earlier
 * checkpoint left higher-numbered ones behind. The trained model's folder (final/, and PPO's
 * final-critic/) is not a checkpoint: never counted, never deleted. Returns the folders deleted.
 */
export async function rotateCheckpoints(outputDir: string, limit: number, current?: string): Promise<string[]> {
  if (!(limit > 0)) return [];
  const keepCurrent = current !== undefined ? path.resolve(current) : undefined;
  const others = (await listCheckpoints(outputDir)).map(([, dir]) => dir).filter((dir) => path.resolve(dir) !== keepCurrent);
  const room = keepCurrent !== undefined ? limit - 1 : limit;
  const gone = others.slice(0, Math.max(0, others.length - room));
  for (const dir of gone) await fs.rm(dir, { recursive: true, force: true });
  return gone;
}

/**
 * Saves model (with optimizer state), tokenizer and the trainer's state into `dir` in one atomic
 * step; then keeps `keep` checkpoints in dir's parent (rotateCheckpoints; 0 or absent: all).
 */
export async function saveTrainingCheckpoint(
  dir: string,
  model: Model,
  state: object,
  opts: { tokenizer?: Tokenizer; config?: Record<string, unknown>; files?: Record<string, FileData>; keep?: number } = {},
): Promise<void> {
  await saveModel(model, dir, {
    optimizer: true,
    config: opts.config,
    files: { ...(opts.tokenizer?.files() ?? {}), ...opts.files, [TRAINER_STATE_FILE]: JSON.stringify(state, null, 2) + '\n' },
  });
  if (opts.keep) await rotateCheckpoints(path.dirname(dir), opts.keep, dir);
}

/** The model (with its optimizer state), the trainer state and the tokenizer of a checkpoint. */
export async function loadTrainingCheckpoint<S>(dir: string): Promise<{ model: Model; state: S; tokenizer?: Tokenizer }> {
  const file = path.join(dir, TRAINER_STATE_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    throw new Error(`${dir} is not a training checkpoint: it has no ${TRAINER_STATE_FILE}`);
  }
  let state: S;
  try {
    state = JSON.parse(text) as S;
  } catch (e) {
    throw new Error(`${file}: invalid JSON (${(e as Error).message})`);
  }
  checkTrainerState(state, file);
  await requireOptimizerState(dir);
  const model = await loadModel(dir);
  const hasTokenizer = await fs.access(path.join(dir, 'tokenizer.json')).then(() => true, () => false);
  return { model, state, tokenizer: hasTokenizer ? await Tokenizer.load(dir) : undefined };
}

/**
 * A resume continues AdamW where it stopped: a checkpoint without optimizer.safetensors would
 * restart its moments and step count, and the run would go on as another run. Refused, saying what
 * to do instead.
 */
export async function requireOptimizerState(dir: string): Promise<void> {
  const file = path.join(dir, OPTIMIZER_FILE);
  const present = await fs.access(file).then(() => true, () => false);
  if (!present)
    throw new Error(
      `${dir} has no ${OPTIMIZER_FILE}: resuming from it would restart the optimizer (AdamW's moments and step count), ` +
        'so the run would not continue; to train further from these weights, start a new run from the folder as the model',
    );
}

/** trainer_state.json is an object whose `step` is a non-negative integer; anything else names the file and field. */
export function checkTrainerState(state: unknown, file: string): void {
  if (state === null || typeof state !== 'object' || Array.isArray(state))
    throw new Error(`${file}: expected a JSON object, got ${Array.isArray(state) ? 'an array' : state === null ? 'null' : typeof state}`);
  const step = (state as { step?: unknown }).step;
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0)
    throw new Error(`${file}: "step" must be a non-negative integer, got ${JSON.stringify(step)}`);
}
