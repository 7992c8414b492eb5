// A user's judge for `s2s eval --judge FILE`: an ES module (or CommonJS) exporting, as TRL's judges
// and reward functions do, a pointwise and/or a pairwise function:
//
//   export function score(prompt, response) -> number | {score, parts?} (may be async)
//   export function compare(prompt, a, b)   -> 0 (a is better) | 1 (b is better) | 0.5 (a tie)
//
// (a default export of a function is taken as score; a default export of an object, for its
// score and compare). What the module throws or returns wrong is refused, naming the file, the
// function and the row.
import { access } from 'node:fs/promises';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

import type { Judgement } from '@s2s/tasks';

import type { Judge } from './judging.js';

type Fn = (...args: unknown[]) => unknown;
const isFn = (x: unknown): x is Fn => typeof x === 'function';

function show(x: unknown): string {
  if (typeof x === 'number' || typeof x === 'bigint' || typeof x === 'boolean' || x === undefined) return String(x);
  try {
    const s = JSON.stringify(x);
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return Object.prototype.toString.call(x);
  }
}

const where = (row: number, prompt: string) => `row ${row + 1} (prompt ${show(prompt.length > 60 ? prompt.slice(0, 57) + '...' : prompt)})`;

/** A score() result as a Judgement, or what is wrong with it. */
function asJudgement(x: unknown): Judgement | string {
  if (typeof x === 'number') return Number.isFinite(x) ? { score: x, parts: {} } : `${x}, not a finite number`;
  if (x !== null && typeof x === 'object' && !Array.isArray(x)) {
    const o = x as { score?: unknown; parts?: unknown };
    if (typeof o.score !== 'number' || !Number.isFinite(o.score)) return `an object whose score is ${show(o.score)}, not a finite number`;
    if (o.parts === undefined) return { score: o.score, parts: {} };
    if (o.parts === null || typeof o.parts !== 'object' || Array.isArray(o.parts)) return `parts ${show(o.parts)}, not an object of numbers and booleans`;
    for (const [k, v] of Object.entries(o.parts))
      if (typeof v !== 'boolean' && !(typeof v === 'number' && Number.isFinite(v))) return `parts.${k} = ${show(v)}, not a finite number or a boolean`;
    return { score: o.score, parts: o.parts as Record<string, number | boolean> };
  }
  return `${show(x)} (${x === null ? 'null' : Array.isArray(x) ? 'an array' : typeof x})`;
}

/** Loads the module and checks its exports; the judge it returns checks every call's result. */
export async function loadUserJudge(file: string): Promise<Judge> {
  const full = path.resolve(file);
  if (!(await access(full).then(() => true, () => false))) throw new Error(`--judge ${file}: no such file`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(full).href)) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`--judge ${file}: the module could not be loaded: ${(e as Error).message}`);
  }
  const def = mod.default as Record<string, unknown> | Fn | undefined;
  const pick = (name: 'score' | 'compare'): Fn | undefined => {
    if (isFn(mod[name])) return mod[name] as Fn;
    if (def && typeof def === 'object' && isFn(def[name])) return (def[name] as Fn).bind(def);
    if (name === 'score' && isFn(def)) return def;
    return undefined;
  };
  const score = pick('score');
  const compare = pick('compare');
  if (!score && !compare)
    throw new Error(
      `--judge ${file}: the module exports neither score(prompt, response) nor compare(prompt, a, b) ` +
        `(its exports: ${Object.keys(mod).join(', ') || 'none'})`,
    );
  const name = path.basename(file);
  const call = async (fn: Fn, what: string, row: number, prompt: string, args: unknown[]) => {
    try {
      return await fn(...args);
    } catch (e) {
      throw new Error(`--judge ${file}: ${what} threw on ${where(row, prompt)}: ${(e as Error)?.message ?? show(e)}`);
    }
  };
  return {
    name,
    score: score
      ? async (prompt, response, row) => {
          const got = asJudgement(await call(score, 'score()', row, prompt, [prompt, response]));
          if (typeof got === 'string') throw new Error(`--judge ${file}: score() returned ${got} on ${where(row, prompt)}; expected a finite number or {score, parts}`);
          return got;
        }
      : undefined,
    compare: compare
      ? async (prompt, a, b, row) => {
          const got = await call(compare, 'compare()', row, prompt, [prompt, a, b]);
          if (got !== 0 && got !== 1 && got !== 0.5)
            throw new Error(`--judge ${file}: compare() returned ${show(got)} on ${where(row, prompt)}; expected 0 (the first response is better), 1 (the second) or 0.5 (a tie)`);
          return got;
        }
      : undefined,
  };
}
