// The testbed's tasks by name.
import { safety } from './safety.js';
import { summarize } from './summarize.js';
import type { Task } from './types.js';

export const TASKS: readonly Task[] = [summarize, safety];

export function getTask(name: string): Task {
  const t = TASKS.find((x) => x.name === name);
  if (!t) throw new Error(`unknown task ${JSON.stringify(name)}; the testbed has ${TASKS.map((x) => x.name).join(', ')}`);
  return t;
}
