// `s2s demo --quick` end to end, as CI runs it: every table of results.json filled with finite
// numbers, and the HTML report opened in headless Chromium without errors, its plots on screen.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { chromium } from 'playwright-core';
import { afterAll, describe, expect, it, vi } from 'vitest';

import { main } from '@s2s/cli';

const CHROMIUM = process.env.S2S_CHROMIUM ?? '/usr/bin/chromium';
const root = await mkdtemp(path.join(tmpdir(), 's2s-demo-'));
afterAll(() => rm(root, { recursive: true, force: true }));

/** Every number in a JSON value, with where it is (JSON writes NaN and Infinity as null: NaN here). */
function numbers(x: unknown, at = '$'): Array<[string, number]> {
  if (typeof x === 'number') return [[at, x]];
  if (x === null) return [[at, Number.NaN]];
  if (Array.isArray(x)) return x.flatMap((v, i) => numbers(v, `${at}[${i}]`));
  if (x && typeof x === 'object') return Object.entries(x).flatMap(([k, v]) => numbers(v, `${at}.${k}`));
  return [];
}

/** Every interval ({mean, ci95, n, values}) in a JSON value, with where it is and its seed count. */
function intervals(x: unknown, at = '$'): Array<[string, number]> {
  if (Array.isArray(x)) return x.flatMap((v, i) => intervals(v, `${at}[${i}]`));
  if (!x || typeof x !== 'object') return [];
  if ('ci95' in x && 'n' in x) return [[at, Number((x as { n: unknown }).n)]];
  return Object.entries(x).flatMap(([k, v]) => intervals(v, `${at}.${k}`));
}

describe('s2s demo --quick', () => {
  const out = path.join(root, 'demo');
  const report = path.join(out, 'report');

  it('runs the whole pipeline and fills every table with finite numbers', async () => {
    expect(await main(['demo', '--quick', '--out', out])).toBe(0);
    const results = JSON.parse(await readFile(path.join(report, 'results.json'), 'utf8'));
    const t = results.tables;
    // 2 tasks x 2 splits x 4 methods; 5 policies; 2 tasks x 5 policies
    expect(t.winRates).toHaveLength(16);
    expect(t.lengths).toHaveLength(5);
    expect(t.safety).toHaveLength(5);
    expect(t.empty).toHaveLength(10);
    expect(t.findings.map((f: { id: string }) => f.id)).toEqual(['win-rate', 'ordering', 'length-bias', 'refusal-collapse', 'positive-only', 'ood']);
    for (const f of t.findings) expect(['reproduced', 'not reproduced', 'reversed']).toContain(f.verdict);
    // every mean is a finite number (a 95% interval is NaN only with a single seed, and quick has two)
    const bad = numbers(t).filter(([, v]) => !Number.isFinite(v));
    expect(bad).toEqual([]);
    // and no seed was dropped from any of them (a non-finite per-seed value is left out of its interval)
    const sizes = intervals(t).filter(([, n]) => n !== results.config.seeds.length);
    expect(sizes).toEqual([]);
    expect(results.runs).toHaveLength(4);
    for (const f of ['report.md', 'report.html', 'plots/summarize-gold.svg', 'plots/safety-utility.svg']) expect(existsSync(path.join(report, f)), f).toBe(true);
  });

  it("leaves every stage's model ready for the other commands: rm explain, rm score, generate", async () => {
    const results = JSON.parse(await readFile(path.join(report, 'results.json'), 'utf8'));
    const run = results.runs.find((r: { task: string }) => r.task === 'summarize');
    const rows = path.join(root, 'demo-rows.jsonl');
    const prompt = run.evals.sft.id[0].prompt;
    await writeFile(rows, JSON.stringify({ prompt, response: run.evals.token.id[0].response }) + '\n');
    const quiet = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      expect(await main(['rm', 'explain', '--model', run.models.seq2seqRM, '--data', rows, '--color', 'never'])).toBe(0);
      const scored = path.join(root, 'demo-scored.jsonl');
      expect(await main(['rm', 'score', '--model', run.models.scalarRM, '--data', rows, '--out', scored])).toBe(0);
      // normalised by the reward statistics saved with it
      expect(Number.isFinite(JSON.parse(await readFile(scored, 'utf8')).normalizedReward)).toBe(true);
      const prompts = path.join(root, 'demo-prompts.jsonl');
      await writeFile(prompts, JSON.stringify({ prompt }) + '\n');
      expect(await main(['generate', '--model', run.models.ppo.token, '--prompts', prompts, '--out', path.join(root, 'demo-gen.jsonl')])).toBe(0);
    } finally {
      quiet.mockRestore();
    }
  });

  it('reuses every cached stage on a second run', async () => {
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (lines.push(String(s)), true)) as typeof process.stderr.write;
    try {
      expect(await main(['demo', '--quick', '--out', out])).toBe(0);
    } finally {
      process.stderr.write = write;
    }
    const stages = lines.join('').split('\n').filter((l) => /\[\s*\d+\/\d+\]/.test(l));
    expect(stages.length).toBe(34); // 2 tasks x 2 seeds x 8 stages, and the RM length probe of summarize's 2 seeds
    expect(stages.every((l) => l.includes('(cached)'))).toBe(true);
  });

  it('stops on Ctrl-C (exit 130), keeping the finished stages for the rerun and no half-written one', async () => {
    const dir = path.join(root, 'stopped');
    const stop = new AbortController();
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => {
      lines.push(String(s));
      // stop while the third stage (the seq2seq RM) runs
      if (String(s).includes('[ 3/34]') && String(s).includes('...')) stop.abort();
      return true;
    }) as typeof process.stderr.write;
    const said: string[] = [];
    const errors = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void said.push(a.join(' ')));
    let code: number;
    try {
      code = await main(['demo', '--quick', '--out', dir], { signal: stop.signal });
    } finally {
      process.stderr.write = write;
      errors.mockRestore();
    }
    expect(code).toBe(130);
    expect(said.join('\n')).toContain('run the same command again to continue');
    const { readdir } = await import('node:fs/promises');
    // two stages finished and were cached; the interrupted one left nothing behind
    const cached = (await readdir(path.join(dir, 'cache'))).filter((n) => !n.startsWith('.'));
    expect(cached.map((n) => n.replace(/-[0-9a-f]{12}$/, '')).sort()).toEqual(['summarize-seed-1-scalar-rm', 'summarize-seed-1-sft']);
    expect((await readdir(path.join(dir, 'cache'))).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(existsSync(path.join(dir, 'report'))).toBe(false);

    // the same command again finishes the run, taking the two finished stages from the cache
    const again: string[] = [];
    process.stderr.write = ((s: string) => (again.push(String(s)), true)) as typeof process.stderr.write;
    try {
      expect(await main(['demo', '--quick', '--out', dir])).toBe(0);
    } finally {
      process.stderr.write = write;
    }
    const stages = again.join('').split('\n').filter((l) => /\[\s*\d+\/\d+\]/.test(l) && !l.includes('...'));
    expect(stages.filter((l) => l.includes('(cached)')).map((l) => l.replace(/^.*\] /, '').replace(/\s+\(cached\).*$/, ''))).toEqual(['summarize seed 1: sft', 'summarize seed 1: scalar RM']);
    expect(stages).toHaveLength(34);
    expect(existsSync(path.join(dir, 'report', 'results.json'))).toBe(true);
  });

  it('opens in headless Chromium without errors, with its plots on screen', async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: scripts/test.sh installs Debian's chromium package (or set S2S_CHROMIUM)`);
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
      page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}`));
      await page.goto(`file://${path.join(report, 'report.html')}`);
      const plots = await page.$$eval('figure svg', (svgs) => svgs.map((s) => s.getBoundingClientRect()).map((r) => [r.width, r.height]));
      expect(plots).toHaveLength(7);
      for (const [w, h] of plots) expect(w * h).toBeGreaterThan(100 * 100);
      // each line plot draws one path per method
      expect(await page.$$eval('figure svg path', (p) => p.length)).toBeGreaterThanOrEqual(6 * 4);
      expect(await page.$$eval('.s2s-explanation span', (s) => s.length)).toBeGreaterThan(10);
      const shot = path.join(root, 'report.png');
      await page.screenshot({ path: shot, fullPage: true });
      expect((await stat(shot)).size).toBeGreaterThan(50_000);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});
