// PPO's final/ and final-critic/ are one unit: a run stopped (killed) at any rename of the final save
// never leaves a final/ policy beside a missing critic or one from another save.
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { Model, Tokenizer, resolveTemplate, wordLevelTokenizerJSON } from '@s2s/core';
import { type CustomReward, type PPOConfig, PPOTrainer } from '@s2s/ppo';

const WORDS = Array.from({ length: 10 }, (_, i) => `w${i}`);
const tok = Tokenizer.fromJSON(wordLevelTokenizerJSON(WORDS, ['<pad>', '<unk>', '<bos>', '<eos>', '<sep>']), {
  tokenizerConfig: { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>', unk_token: '<unk>' },
});
const tpl = resolveTemplate({ promptPrefix: '', responsePrefix: ' <sep>', rewritePrefix: '', addBos: true, addEos: true });
const MODEL = { vocabSize: tok.vocabSize, maxSeqLen: 24, numLayers: 1, numHeads: 2, channels: 16 };
const PROMPTS = Array.from({ length: 16 }, (_, i) => `w${i % 10} w${(i * 3) % 10}`);
const reward: CustomReward = (_p, _r, tokens) => tokens.length / 8;
const CONFIG: Partial<PPOConfig> = { batchSize: 4, miniBatchSize: 4, ppoEpochs: 1, maxNewTokens: 4, lrSchedule: 'constant', seed: 1 };
const root = await mkdtemp(path.join(tmpdir(), 's2s-ppo-final-'));
afterAll(() => rm(root, { recursive: true, force: true }));

// fs.rename, as the library's `import * as fs from 'node:fs/promises'` sees it, replaced for one test
const fsp = createRequire(import.meta.url)('node:fs/promises') as typeof import('node:fs/promises');
const realRename = fsp.rename;
afterEach(() => {
  fsp.rename = realRename;
  syncBuiltinESMExports();
});

/** Runs `steps` PPO steps into `out`, stopping the process's progress for good at the `stopAt`-th rename into `out` (a kill there). */
async function run(out: string, steps: number, seed: number, stopAt = Infinity): Promise<'stopped' | 'done'> {
  const policy = await Model.create(MODEL, { seed });
  const models = { policy, ref: await policy.clone(), critic: await policy.clone({ valueHead: true, seed: seed + 1 }) };
  let count = 0;
  let stopped!: () => void;
  const hang = new Promise<'stopped'>((resolve) => (stopped = () => resolve('stopped')));
  fsp.rename = ((from: string, to: string) => {
    if (path.dirname(path.resolve(to)) === path.resolve(out) && ++count === stopAt) {
      stopped();
      return new Promise(() => undefined);
    }
    return realRename(from, to);
  }) as typeof fsp.rename;
  syncBuiltinESMExports();
  const trainer = new PPOTrainer({ ...models, tokenizer: tok, template: tpl, reward: { type: 'custom', fn: reward }, outputDir: out, config: { ...CONFIG, steps, seed } });
  const result = await Promise.race([trainer.train(PROMPTS).then(() => 'done' as const), hang]);
  fsp.rename = realRename;
  syncBuiltinESMExports();
  if (result === 'done') for (const m of Object.values(models)) m.dispose();
  return result;
}

/** A folder's model weights' bytes, or undefined when it has none. */
const weights = (dir: string) => readFile(path.join(dir, 'model.safetensors')).catch(() => undefined);

describe('PPO final save', () => {
  it('final/ is written last: a stop at any rename leaves no final/, or final/ beside the critic saved with it', async () => {
    const outcomes = new Set<string>();
    for (let stopAt = 1; ; stopAt++) {
      const out = path.join(root, `fresh-${stopAt}`);
      const how = await run(out, 1, 3, stopAt);
      const names = await readdir(out);
      if (names.includes('final')) {
        expect(names, `stopped at rename ${stopAt}`).toContain('final-critic');
        // the critic has a value head; the policy does not
        expect(JSON.parse(await readFile(path.join(out, 'final-critic', 'config.json'), 'utf8')).architectures).toEqual(['GPT2ForSequenceClassification']);
        expect(JSON.parse(await readFile(path.join(out, 'final', 'config.json'), 'utf8')).architectures).toEqual(['GPT2LMHeadModel']);
      }
      outcomes.add(`${names.includes('final')}/${names.includes('final-critic')}`);
      if (how === 'done') break;
    }
    expect(outcomes).toEqual(new Set(['false/false', 'false/true', 'true/true']));
  });

  it('a second run into the same folder never pairs its final/ with the first run\'s critic, nor the first final/ with its critic', async () => {
    const out = path.join(root, 'again');
    await run(out, 1, 5);
    const first = { policy: await weights(path.join(out, 'final')), critic: await weights(path.join(out, 'final-critic')) };
    let pairs = 0;
    for (let stopAt = 1; ; stopAt++) {
      // the second run: other seeds, so other weights
      const how = await run(out, 1, 7, stopAt);
      const policy = await weights(path.join(out, 'final'));
      const critic = await weights(path.join(out, 'final-critic'));
      if (policy !== undefined) {
        expect(critic, `stopped at rename ${stopAt}`).toBeDefined();
        const policyIsFirst = Buffer.compare(policy, first.policy!) === 0;
        const criticIsFirst = Buffer.compare(critic!, first.critic!) === 0;
        expect(criticIsFirst, `stopped at rename ${stopAt}`).toBe(policyIsFirst);
        pairs++;
      }
      if (how === 'done') {
        expect(policy && Buffer.compare(policy, first.policy!)).not.toBe(0);
        break;
      }
      // put the first run's unit back for the next stop point
      await rm(out, { recursive: true, force: true });
      await run(out, 1, 5);
    }
    expect(pairs).toBeGreaterThan(1);
  });
});
