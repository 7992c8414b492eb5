// Where a PPO run goes and whether it continues one: a fresh output folder, or a checkpoint with
// the run's saved options beneath the ones given now.
import { readFile, readdir } from 'node:fs/promises';
import * as path from 'node:path';

import { Distributed } from '@s2s/core';
import { PPO_LOG_FILES, type PPOConfig } from '@s2s/ppo';

import { exists } from './model-inputs.js';
import { type OptionSchema, UsageError, type Values, flagName } from './options.js';
import { type ParsedOptions, type PartialValues, withBase } from './parse-options.js';
import { checkResumedPPOConfig, pickPPOConfig } from './ppo-options.js';
import { type ResumePoint, checkFreshOutput, checkResumable, findResumePoint, savedRunConfig } from './run-dir.js';

export const PPO_CONFIG_FILE = 'ppo_config.json';
/** what PPOTrainer appends to in its output folder, one JSON line per step */

export interface PPORunSetup<S extends OptionSchema> {
  values: Values<S>;
  explicit: PartialValues;
  out: string;
  resume?: ResumePoint;
  config: PPOConfig;
}

/** `locked`: options a resumed run may not change (its reward type). */
export async function setUpPPORun<S extends OptionSchema>(
  schema: S,
  parsed: ParsedOptions<S>,
  locked: readonly string[] = [],
  dist: Distributed = Distributed.single,
): Promise<PPORunSetup<S>> {
  const first = parsed.values as Record<string, unknown>;
  const resumeFlag = first.resume as string | undefined;
  if (resumeFlag === undefined) {
    const out = first.out as string | undefined;
    if (out === undefined) throw new UsageError('--out DIR is required');
    // (rank 0's check only: the others would see the files it starts writing)
    if (!dist.isMain) return { values: parsed.values, explicit: parsed.explicit, out, config: pickPPOConfig(parsed.values) };
    await checkFreshOutput(out);
    // a run killed before its first checkpoint leaves only its logs, which a new run would append to
    const names = await readdir(out).catch(() => [] as string[]);
    const logs = PPO_LOG_FILES.filter((f) => names.includes(f));
    if (logs.length) throw new UsageError(`${out} already holds the ${logs.join(' and ')} of another PPO run; choose another --out, or delete them`);
    return { values: parsed.values, explicit: parsed.explicit, out, config: pickPPOConfig(parsed.values) };
  }
  const resume = await findResumePoint(resumeFlag, first.out as string | undefined);
  const kind = (resume.state as { kind?: unknown }).kind;
  if (kind !== 'ppo') throw new Error(`--resume ${resume.checkpoint}: it holds ${kind === undefined ? 'no trainer state of a known kind' : `a ${String(kind)} run`}, not a PPO one`);
  // a finished run's final/ has a trainer state too, but only the policy: nothing to continue from
  if (!(await exists(path.join(resume.checkpoint, 'policy'))))
    throw new Error(`--resume ${resume.checkpoint}: not a PPO checkpoint (it has no policy/ and critic/ folders); resume from a checkpoint-N folder`);
  await checkResumable(resume, ['policy', 'critic']);
  const base = await savedRunConfig(schema, resume.checkpoint, PPO_CONFIG_FILE, 'ppo');
  // the reward is what the run optimises: another one would make it a different run
  for (const key of locked)
    if (parsed.explicit[key] !== undefined && base[key] !== undefined && parsed.explicit[key] !== base[key])
      throw new UsageError(`--${flagName(key)} ${parsed.explicit[key]} differs from the run in ${resume.checkpoint} (${base[key]}); start a new run to change it`);
  const values = withBase(schema, parsed, base).values;
  const saved = (resume.state as unknown as { config: PPOConfig }).config;
  checkResumedPPOConfig(saved, parsed.explicit, resume.checkpoint);
  const out = ((values as Record<string, unknown>).out as string | undefined) ?? path.dirname(resume.checkpoint);
  return { values, explicit: parsed.explicit, out, resume, config: pickPPOConfig(parsed.explicit, saved) };
}

/** The per-step metrics in the run's log.jsonl (every step since the run began, resumed or not). */
export async function readStepLog(out: string): Promise<Array<Record<string, number>>> {
  const text = await readFile(path.join(out, PPO_LOG_FILES[0]), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, number>];
      } catch {
        return [];
      }
    });
}
