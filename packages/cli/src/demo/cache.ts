// Stages of the demo cached by the hash of everything they depend on (their settings and their
// inputs' hashes): a second run redoes only what changed, and a stage interrupted half-way leaves
// nothing behind (its folder is written to a temporary name and renamed when complete).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';

import { cpuPrecision, cudaPrecision, resolveDevice, writeDirAtomic, writeFileDurable } from '@s2s/core';

const RESULT_FILE = 'result.json';

/** JSON with sorted keys, so that equal settings give equal hashes. */
function canonical(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(canonical).join(',')}]`;
  if (x && typeof x === 'object')
    return `{${Object.keys(x)
      .sort()
      .filter((k) => (x as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((x as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(x);
}

/**
 * Part of every key: raise it when a change to the code makes a stage produce something else from
 * the same settings (a new result field, another training rule), so that no run reuses the old.
 */
export const STAGE_FORMAT = 3; // 3: reward models saved with s2s_reward_model.json (and reward_stats.json)

/**
 * The engine's part of the stages' keys: models trained on the GPU differ from the CPU's (bf16
 * matmuls, other summation orders), and so do the CPU's in bf16, so they get keys of their own;
 * the CPU's part in fp32 is empty, so its keys are what they were before either was counted.
 */
export function engineKey(): { engine?: { device: 'cuda' | 'cpu'; precision: string } } {
  if (resolveDevice() === 'cuda') return { engine: { device: 'cuda', precision: cudaPrecision() } };
  const precision = cpuPrecision();
  return precision === 'fp32' ? {} : { engine: { device: 'cpu', precision } };
}

export function stageKey(parts: unknown): string {
  return createHash('sha256').update(canonical({ format: STAGE_FORMAT, parts })).digest('hex').slice(0, 12);
}

export class StageCache {
  constructor(readonly root: string) {}

  dir(name: string, key: string): string {
    return path.join(this.root, `${name}-${key}`);
  }

  /** The stage's result when it completed before, else undefined. */
  async get<T>(name: string, key: string): Promise<T | undefined> {
    const text = await readFile(path.join(this.dir(name, key), RESULT_FILE), 'utf8').catch(() => undefined);
    return text === undefined ? undefined : (JSON.parse(text) as T);
  }

  /** Runs a stage into a fresh folder (models and files it writes there) and records its result. */
  async put<T>(name: string, key: string, run: (dir: string) => Promise<T>): Promise<T> {
    let result: T | undefined;
    await writeDirAtomic(this.dir(name, key), async (tmp) => {
      result = await run(tmp);
      await writeFileDurable(path.join(tmp, RESULT_FILE), JSON.stringify(result, null, 2) + '\n');
    });
    return result!;
  }
}
