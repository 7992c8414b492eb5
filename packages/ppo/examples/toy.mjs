// A runnable PPO example for plain Node (after `pnpm build`): a tiny policy learns to say one word
// more often, from a custom reward. Run: node packages/ppo/examples/toy.mjs
import { Model, Tokenizer, resolveTemplate, wordLevelTokenizerJSON } from '@s2s/core';
import { PPOTrainer } from '@s2s/ppo';

// a ten-word language, and the special tokens PPO needs (an EOS ends each response)
const words = Array.from({ length: 10 }, (_, i) => `w${i}`);
const tokenizer = Tokenizer.fromJSON(wordLevelTokenizerJSON(words, ['<pad>', '<unk>', '<bos>', '<eos>', '<sep>']), {
  tokenizerConfig: { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>', unk_token: '<unk>' },
});
// the policy sees "<bos> prompt <sep>" and writes its response after it
const template = resolveTemplate({ promptPrefix: '', responsePrefix: ' <sep>', rewritePrefix: '', addBos: true, addEos: true });

// the policy; the reference is a frozen copy of it (the KL penalty's anchor); the critic is a copy with a value head
const policy = await Model.create({ vocabSize: tokenizer.vocabSize, maxSeqLen: 24, numLayers: 1, numHeads: 2, channels: 32 }, { seed: 1 });
const ref = await policy.clone();
const critic = await policy.clone({ valueHead: true, seed: 2 });

// the reward: how often the response says "w3" (one number per response, put on its last token)
const target = tokenizer.tokenToId('w3');
const frequency = (_prompt, _response, tokens) => tokens.filter((t) => t === target).length / tokens.length;

const prompts = Array.from({ length: 64 }, (_, i) => `w${i % 10} w${(i * 3) % 10}`);
const trainer = new PPOTrainer({
  policy,
  ref,
  critic,
  tokenizer,
  template,
  reward: { type: 'custom', fn: frequency },
  config: { steps: 20, batchSize: 16, miniBatchSize: 8, lr: 1e-3, criticLr: 1e-3, lrSchedule: 'constant', maxNewTokens: 8, temperature: 1, seed: 1 },
});

// steps() yields each step's statistics as it finishes; trainer.train(prompts) runs them all at once
const started = performance.now();
let first;
let last;
for await (const { step, metrics, responses } of trainer.steps(prompts)) {
  const score = metrics['objective/scores'];
  first ??= score;
  last = score;
  console.log(`step ${String(step).padStart(2)}  score ${score.toFixed(3)}  kl ${metrics['objective/kl'].toFixed(3)}  e.g. ${JSON.stringify(responses[0])}`);
}
console.log(`score ${first.toFixed(3)} -> ${last.toFixed(3)} in ${((performance.now() - started) / 1000).toFixed(1)} s`);

for (const m of [policy, ref, critic]) m.dispose();
