// Runs `s2s` in-process with its console captured, and builds the toy testbed run (data, SFT
// model, both reward models) that the command-line tests share.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { vi } from 'vitest';

import { type MainOptions, main } from '@s2s/cli';

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

/** `s2s args...`; `onErr` sees each stderr line as it is printed (to stop a run at a given step). */
export async function s2s(args: string[], opts: MainOptions & { onErr?: (line: string) => void } = {}): Promise<CliRun> {
  const err: string[] = [];
  const out: string[] = [];
  const e = vi.spyOn(console, 'error').mockImplementation((...m: unknown[]) => {
    const line = m.map(String).join(' ');
    err.push(line);
    opts.onErr?.(line);
  });
  const o = vi.spyOn(console, 'log').mockImplementation((...m: unknown[]) => void out.push(m.map(String).join(' ')));
  try {
    const code = await main(args, { signal: opts.signal });
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    e.mockRestore();
    o.mockRestore();
  }
}

/** A tiny model: fast enough that the whole pipeline runs in seconds on two cores. */
export const TINY = ['--layers', '1', '--heads', '2', '--channels', '32', '--context', '128'];

export const readJson = (file: string): any => JSON.parse(readFileSync(file, 'utf8'));
export const readJsonl = (file: string): any[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));

/** `dir` (or a file), and every file under it, with its size and modification time: to check that a failed command left it as it was. */
export function snapshot(dir: string): string {
  if (!existsSync(dir)) return '(absent)';
  if (!statSync(dir).isDirectory()) return `${dir} ${statSync(dir).size} ${statSync(dir).mtimeMs}`;
  const walk = (d: string): string[] =>
    readdirSync(d, { withFileTypes: true }).flatMap((e) => {
      const p = path.join(d, e.name);
      if (e.isDirectory()) return [p + '/', ...walk(p)];
      const s = statSync(p);
      return [`${p} ${s.size} ${s.mtimeMs}`];
    });
  return walk(dir).sort().join('\n');
}

export interface Fixtures {
  data: string;
  sft: string;
  scalar: string;
  seq2seq: string;
}

/** data make -> sft -> rm train (scalar) -> rm train --seq2seq, at toy size, under `root`. */
export async function buildFixtures(root: string): Promise<Fixtures> {
  const f = { data: path.join(root, 'data'), sft: path.join(root, 'sft'), scalar: path.join(root, 'rm'), seq2seq: path.join(root, 's2s-rm') };
  const steps: string[][] = [
    ['data', 'make', '--task', 'summarize', '--out', f.data, '--sft', '48', '--pairs', '48', '--rl-prompts', '4', '--eval-prompts', '4', '--seed', '1'],
    ['sft', '--data', path.join(f.data, 'sft.jsonl'), '--template', 'testbed', '--out', f.sft, ...TINY, '--max-steps', '3', '--batch-size', '8', '--eval-split', '0.1'],
    ['rm', 'train', '--data', path.join(f.data, 'pairs.jsonl'), '--model', path.join(f.sft, 'final'), '--out', f.scalar, '--max-steps', '2', '--batch-size', '8', '--eval-split', '0.1'],
    ['rm', 'train', '--seq2seq', '--data', path.join(f.data, 'pairs.jsonl'), '--model', path.join(f.sft, 'final'), '--out', f.seq2seq, '--max-steps', '2', '--batch-size', '8', '--eval-split', '0.1', '--eval-rewrites', '2'],
  ];
  for (const args of steps) {
    const r = await s2s(args);
    if (r.code !== 0) throw new Error(`s2s ${args.join(' ')} failed (${r.code}):\n${r.err}`);
  }
  return f;
}

/**
 * A copy of the tokenizer saved in `from` with two ordinary tokens' ids swapped: the same size and
 * the same words, but ids that mean other tokens (what loading a model with the wrong one does).
 */
export function swappedTokenizer(from: string, to: string): string {
  mkdirSync(to, { recursive: true });
  for (const name of readdirSync(from)) if (name.startsWith('tokenizer') || name === 'special_tokens_map.json') copyFileSync(path.join(from, name), path.join(to, name));
  const json = JSON.parse(readFileSync(path.join(to, 'tokenizer.json'), 'utf8'));
  const vocab: Record<string, number> = json.model.vocab;
  const [a, b] = Object.keys(vocab).filter((w) => /^[a-z]+$/.test(w));
  [vocab[a], vocab[b]] = [vocab[b], vocab[a]];
  writeFileSync(path.join(to, 'tokenizer.json'), JSON.stringify(json));
  return to;
}
