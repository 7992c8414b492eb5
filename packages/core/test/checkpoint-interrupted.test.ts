// Checkpoint writes killed midway (SIGKILL at every rename of writeDirAtomic and writeDirsAtomic, in a
// child process): what stays on disk is complete, a unit's head never stands beside another unit's
// member, and the next successful write into the same folder removes the leftovers, and only those
// whose writer is gone.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, Model, removeInterruptedWrites, saveModel, writeDirAtomic, writeDirsAtomic } from '../src/index.js';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const FSUTIL = fileURLToPath(new URL('../src/fsutil.ts', import.meta.url));

let root: string;
let n = 0;
const fresh = () => path.join(root, `case${n++}`);
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 's2s-interrupted-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

/** A pid no process has now: a child's, after it exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '']);
  return r.pid!;
}

// The child: writes generation GEN of a directory (writeDirAtomic) or of a unit (writeDirsAtomic),
// and at its STOP_AT-th rename says so and waits to be killed.
const CHILD = `
import { createRequire, syncBuiltinESMExports } from 'node:module';
const require = createRequire(import.meta.url);
const fsp = require('node:fs/promises');
const real = fsp.rename;
let count = 0;
const stopAt = Number(process.env.STOP_AT);
fsp.rename = (a, b) => {
  if (++count === stopAt) {
    process.stdout.write('stopped\\n');
    setInterval(() => {}, 1 << 30);
    return new Promise(() => {});
  }
  return real(a, b);
};
syncBuiltinESMExports();
const fs = await import('node:fs/promises');
const path = await import('node:path');
const { writeDirAtomic, writeDirsAtomic } = await import(${JSON.stringify(FSUTIL)});
const [mode, parent, gen] = process.argv.slice(2);
const member = async (dir) => {
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'gen'), gen);
  await fs.writeFile(path.join(dir, 'big'), Buffer.alloc(4096));
};
if (mode === 'dir') await writeDirAtomic(path.join(parent, 'ck'), (tmp) => member(tmp));
else await writeDirsAtomic(parent, ['final', 'final-critic'], async (tmp) => {
  await member(path.join(tmp, 'final'));
  await member(path.join(tmp, 'final-critic'));
});
process.stdout.write('done\\n');
`;

/** Runs the child until it stops at rename `stopAt` (then kills it) or finishes; says which. */
async function writeKilledAt(script: string, mode: 'dir' | 'unit', parent: string, gen: string, stopAt: number): Promise<'stopped' | 'done'> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, mode, parent, gen], { cwd: REPO, env: { ...process.env, STOP_AT: String(stopAt) } });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const result = await new Promise<'stopped' | 'done'>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('stopped')) {
        child.kill('SIGKILL');
        resolve('stopped');
      }
    });
    child.on('exit', (code) => (out.includes('done') && code === 0 ? resolve('done') : out.includes('stopped') ? undefined : reject(new Error(`child exited ${code}: ${err}`))));
  });
  if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.on('exit', r));
  return result;
}

const gen = (dir: string) => fs.readFile(path.join(dir, 'gen'), 'utf8').catch(() => undefined);
const hidden = async (dir: string) => (await fs.readdir(dir)).filter((f) => f.startsWith('.')).sort();

describe('a write killed at any rename', () => {
  let script: string;
  beforeAll(async () => {
    script = path.join(root, 'child.mjs');
    await fs.writeFile(script, CHILD);
  });

  it('writeDirAtomic: the directory is the old or the new one, or absent with the old set aside; the next write removes the leftovers', async () => {
    for (let stopAt = 1; ; stopAt++) {
      const parent = fresh();
      const dir = path.join(parent, 'ck');
      await writeDirAtomic(dir, async (tmp) => fs.writeFile(path.join(tmp, 'gen'), 'A'));
      const how = await writeKilledAt(script, 'dir', parent, 'B', stopAt);
      const now = await gen(dir);
      if (now === undefined) {
        // killed between the two renames: the old one is complete beside it, and stays until ck exists again
        const [aside] = (await hidden(parent)).filter((f) => f.startsWith('.ck.old-'));
        expect(await gen(path.join(parent, aside))).toBe('A');
        await writeDirAtomic(path.join(parent, 'other'), async (tmp) => fs.writeFile(path.join(tmp, 'gen'), 'X'));
        expect(await hidden(parent)).toContain(aside);
        expect(await hidden(parent)).not.toContainEqual(expect.stringMatching(/^\.ck\.tmp-/));
      } else expect(['A', 'B']).toContain(now);
      if (how === 'stopped') expect(await hidden(parent)).not.toEqual([]);
      await writeDirAtomic(dir, async (tmp) => fs.writeFile(path.join(tmp, 'gen'), 'C'));
      expect(await gen(dir)).toBe('C');
      expect(await hidden(parent), `killed at rename ${stopAt}`).toEqual([]);
      if (how === 'done') break;
    }
  });

  it('writeDirsAtomic: final/ exists only beside the final-critic/ written with it; the next write removes the leftovers', async () => {
    const seen = new Set<string>();
    for (let stopAt = 1; ; stopAt++) {
      const parent = fresh();
      const fill = (g: string) => async (tmp: string) => {
        for (const m of ['final', 'final-critic']) {
          await fs.mkdir(path.join(tmp, m));
          await fs.writeFile(path.join(tmp, m, 'gen'), g);
        }
      };
      await writeDirsAtomic(parent, ['final', 'final-critic'], fill('A'));
      const how = await writeKilledAt(script, 'unit', parent, 'B', stopAt);
      const head = await gen(path.join(parent, 'final'));
      const critic = await gen(path.join(parent, 'final-critic'));
      seen.add(`${head}/${critic}`);
      if (head !== undefined) expect(critic, `killed at rename ${stopAt}`).toBe(head);
      else {
        // no head: the former one is set aside, complete
        const [aside] = (await hidden(parent)).filter((f) => f.startsWith('.final.old-'));
        expect(await gen(path.join(parent, aside))).toBe('A');
      }
      await writeDirsAtomic(parent, ['final', 'final-critic'], fill('C'));
      expect([await gen(path.join(parent, 'final')), await gen(path.join(parent, 'final-critic'))]).toEqual(['C', 'C']);
      expect(await hidden(parent), `killed at rename ${stopAt}`).toEqual([]);
      if (how === 'done') break;
    }
    // the kills did land between the renames: with no head, and with each critic
    expect(seen).toEqual(new Set(['A/A', 'undefined/A', 'undefined/undefined', 'undefined/B', 'B/B']));
  });
});

describe('removeInterruptedWrites', () => {
  it('removes only leftovers of writers that are gone, and keeps a set-aside directory that is the only copy', async () => {
    const parent = fresh();
    await fs.mkdir(parent);
    const dead = deadPid();
    const make = async (name: string) => {
      await fs.mkdir(path.join(parent, name));
      await fs.writeFile(path.join(parent, name, 'model.safetensors'), Buffer.alloc(1024));
      return name;
    };
    await make('ck');
    const gone = [await make(`.ck.tmp-${dead}-0123abcd`), await make(`.ck.old-${dead}-89abcdef`), await make(`.lost.tmp-${dead}-00000000`)];
    await fs.writeFile(path.join(parent, `.log.jsonl.tmp-${dead}-11111111`), 'x');
    gone.push(`.log.jsonl.tmp-${dead}-11111111`);
    const kept = [
      await make(`.missing.old-${dead}-22222222`), // missing/ does not exist: this is its only copy
      await make(`.ck.tmp-${process.pid}-33333333`), // this process: maybe a write in progress
      await make(`.ck.tmp-${process.ppid}-44444444`), // a running process
      await make(`.ck.tmp-${dead}-nothex00`), // not a name these functions make
      await make('.ck.tmp'),
      await make('.hidden'),
    ];
    // a successful save into the same folder cleans up
    const m = await Model.create({ vocabSize: 11, maxSeqLen: 8, numLayers: 1, numHeads: 1, channels: 8 }, { seed: 1 });
    await saveModel(m, path.join(parent, 'ck2'));
    m.dispose();
    expect(await hidden(parent)).toEqual([...kept].sort());
    for (const g of gone) expect(await hidden(parent)).not.toContain(g);
    expect(await removeInterruptedWrites(parent)).toEqual([]);
    // once missing/ exists again its set-aside copy goes too
    await fs.mkdir(path.join(parent, 'missing'));
    expect(await removeInterruptedWrites(parent)).toEqual([path.join(parent, kept[0])]);
  });

  it('a checkpoint killed mid-save is still loadable as the old one, and the next save leaves nothing behind', async () => {
    const parent = fresh();
    const dir = path.join(parent, 'checkpoint-1');
    const m = await Model.create({ vocabSize: 11, maxSeqLen: 8, numLayers: 1, numHeads: 1, channels: 8 }, { seed: 2 });
    await saveModel(m, dir);
    // what a kill during the next save's fill leaves: a partial temporary directory of a dead writer
    const tmp = path.join(parent, `.checkpoint-1.tmp-${deadPid()}-deadbeef`);
    await fs.mkdir(tmp);
    await fs.writeFile(path.join(tmp, 'model.safetensors'), Buffer.alloc(4096));
    (await loadModel(dir)).dispose();
    await saveModel(m, path.join(parent, 'checkpoint-2'));
    expect(await hidden(parent)).toEqual([]);
    m.dispose();
  });
});
