// Run by test/cuda-emulated.test.ts in a child process whose addon is the emulated-CUDA build:
// PPO-T end to end (policy, reference, critic and a sequence-to-sequence reward model, all on the
// device given as argv[2]), then a few single calls. Prints one JSON object.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { Model, Tokenizer, cudaStatus, loadModel, resolveTemplate, saveModel, wordLevelTokenizerJSON } from '@s2s/core';
import { PPOTrainer } from '@s2s/ppo';

const device = process.argv[2] as 'cpu' | 'cuda';
const words = Array.from({ length: 10 }, (_, i) => `w${i}`);
const tokenizer = Tokenizer.fromJSON(wordLevelTokenizerJSON(words, ['<pad>', '<unk>', '<bos>', '<eos>', '<sep>']), {
  tokenizerConfig: { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>', unk_token: '<unk>' },
});
const template = resolveTemplate({ promptPrefix: '', responsePrefix: ' <sep>', rewritePrefix: ' <sep>', addBos: true, addEos: true });
const config = { vocabSize: tokenizer.vocabSize, maxSeqLen: 32, numLayers: 2, numHeads: 2, channels: 32 };

const policy = await Model.create(config, { seed: 1, device });
const ref = await policy.clone();
const critic = await policy.clone({ valueHead: true, seed: 2 });
const rm = await Model.create(config, { seed: 3, device }); // an untrained rewriter: arbitrary, but fixed, token scores
const prompts = Array.from({ length: 32 }, (_, i) => `w${i % 10} w${(i * 3) % 10}`);
const trainer = new PPOTrainer({
  policy,
  ref,
  critic,
  tokenizer,
  template,
  reward: { type: 'token', model: rm },
  config: { steps: 3, batchSize: 8, miniBatchSize: 4, lr: 1e-3, criticLr: 1e-3, lrSchedule: 'constant', maxNewTokens: 6, temperature: 1, seed: 1 },
});
const steps: { responses: string[]; scores: number[]; loss: number; kl: number }[] = [];
for await (const s of trainer.steps(prompts)) {
  steps.push({ responses: s.responses, scores: s.scores, loss: s.metrics['loss/policy_avg'], kl: s.metrics['objective/kl'] });
}
const params = Array.from(await policy.readBuffer('params'));
const criticParams = Array.from(await critic.readBuffer('params'));

// The trained policy's checkpoint (weights and AdamW state), loaded on the CPU and saved again:
// the same bytes, and the same numbers as the device held.
const tmp = mkdtempSync(path.join(tmpdir(), 's2s-device-ckpt-'));
await saveModel(policy, path.join(tmp, 'a'), { optimizer: true });
const onCpu = await loadModel(path.join(tmp, 'a'), { device: 'cpu' });
await saveModel(onCpu, path.join(tmp, 'b'), { optimizer: true });
const bytes = (dir: string, f: string) => readFileSync(path.join(tmp, dir, f));
const checkpoint = {
  sameWeightFiles: bytes('a', 'model.safetensors').equals(bytes('b', 'model.safetensors')),
  sameOptimizerFiles: bytes('a', 'optimizer.safetensors').equals(bytes('b', 'optimizer.safetensors')),
  sameParams: (await onCpu.readBuffer('params')).every((x, i) => Object.is(x, params[i])),
  step: onCpu.optimizerStep,
};
onCpu.dispose();
rmSync(tmp, { recursive: true, force: true });

// a bad token id gets the same rejection on either device
let badInput = '';
await policy.forward({ tokens: Int32Array.from([1, 2, 99]), B: 1, T: 3 }).catch((e: Error) => (badInput = e.message));

console.log(JSON.stringify({ device: policy.device, status: cudaStatus(), steps, params, criticParams, checkpoint, badInput }));
for (const m of [policy, ref, critic, rm]) m.dispose();
