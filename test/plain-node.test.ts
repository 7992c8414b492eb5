// The packages as a user without tsx gets them: `pnpm build` (run here when a dist/ is missing or
// older than its sources), then the PPO example and the `s2s` bin on plain Node, with no loader
// and no `source` condition. About 2 s when dist/ is fresh, 5 s when it builds.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const PACKAGES = ['core', 'tasks', 'rm', 'ppo', 'cli'];

/** Newest modification time of the files under `dir` (recursively). */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** A package whose dist/ is missing or older than its sources or build settings. */
function stale(pkg: string): boolean {
  const dir = path.join(root, 'packages', pkg);
  const built = statSync(path.join(dir, 'dist', 'index.js'), { throwIfNoEntry: false })?.mtimeMs;
  if (built === undefined) return true;
  const inputs = [newest(path.join(dir, 'src')), ...['package.json', 'tsconfig.build.json'].map((f) => statSync(path.join(dir, f)).mtimeMs), statSync(path.join(root, 'tsconfig.base.json')).mtimeMs];
  return Math.max(...inputs) > built;
}

/** Plain Node: this node binary, with no NODE_OPTIONS (no --import tsx, no --conditions). */
function node(args: string[], timeout = 60_000) {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  // the example picks one engine thread when this is unset: fast whatever else the machine runs
  delete env.S2S_NUM_THREADS;
  const r = spawnSync(process.execPath, args, { cwd: root, env, encoding: 'utf8', timeout });
  if (r.error) throw r.error;
  return r;
}

beforeAll(() => {
  if (!PACKAGES.some(stale)) return;
  const r = spawnSync('pnpm', ['build'], { cwd: root, encoding: 'utf8', timeout: 110_000 });
  if (r.error) throw r.error;
  expect(r.status, `pnpm build failed:\n${r.stdout}\n${r.stderr}`).toBe(0);
  for (const pkg of PACKAGES) expect(stale(pkg), `${pkg}/dist after pnpm build`).toBe(false);
});

describe('plain Node, after pnpm build', () => {
  it('imports every package by name from the repository root', () => {
    const code = `for (const p of ${JSON.stringify(PACKAGES)}) { const m = await import('@s2s/' + p); if (!Object.keys(m).length) throw new Error(p + ' is empty'); }
const { PPOTrainer } = await import('@s2s/ppo');
console.log(typeof PPOTrainer);`;
    const r = node(['--input-type=module', '-e', code]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('function');
  });

  it('runs the PPO example, whose score rises', () => {
    const r = node(['packages/ppo/examples/toy.mjs']);
    expect(r.status, r.stderr).toBe(0);
    const scores = [...r.stdout.matchAll(/^step +(\d+) +score ([\d.]+)/gm)].map((m) => Number(m[2]));
    expect(scores).toHaveLength(20);
    expect(scores[0]).toBeLessThan(0.15);
    expect(scores[19]).toBeGreaterThan(0.4);
    expect(r.stdout).toMatch(/^score [\d.]+ -> [\d.]+ in [\d.]+ s$/m);
  });

  it('runs the s2s bin: --help once, the exit statuses of main()', () => {
    const help = node(['packages/cli/bin/s2s.js', '--help']);
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^usage: s2s <command> \[flags\]$/m);
    // dist/main.js runs main() itself only as the entry script: the bin must not run it twice
    expect(help.stdout.match(/usage: s2s <command>/g)).toHaveLength(1);

    const sft = node(['packages/cli/bin/s2s.js', 'sft', '--help']);
    expect(sft.status).toBe(0);
    expect(sft.stdout.match(/usage: s2s sft /g)).toHaveLength(1);

    const bad = node(['packages/cli/bin/s2s.js', 'no-such-command']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/s2s: unknown command "no-such-command"/);
  });

  it('says to run pnpm build when the CLI is not built', () => {
    // a copy of the bin with no dist/ beside it
    const dir = mkdtempSync(path.join(tmpdir(), 's2s-bin-'));
    try {
      mkdirSync(path.join(dir, 'bin'));
      writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }\n');
      copyFileSync(path.join(root, 'packages/cli/bin/s2s.js'), path.join(dir, 'bin/s2s.js'));
      const r = node([path.join(dir, 'bin/s2s.js'), '--help']);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/dist[\\/]main\.js is missing: .*run `pnpm build`/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
