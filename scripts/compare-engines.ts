// Runs the same seeded workload on two builds of the engine and prints how far their results are
// apart: the check that a refactor of native/ changed no numbers (or only by float rounding where
// a summation order legitimately changed).
//
//   node --import tsx scripts/compare-engines.ts OLD.node NEW.node [--device cpu|cuda]
//
// The workload: a GPT-2 shaped model (2 layers, width 64, 97 words, a value head) initialised
// from a seed; forward (log-probs, values, entropy), backward, three AdamW steps, greedy and
// sampled generation, greedy match and divergence scores. Each build runs in its own process.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface Outputs {
  [name: string]: number[];
}

async function workload(device: string): Promise<Outputs> {
  const require = createRequire(import.meta.url);
  const native = require('@s2s/native');
  const m = new native.NativeModel({ vocabSize: 97, maxSeqLen: 32, numLayers: 2, numHeads: 4, channels: 64, valueHead: true, device });
  await m.initWeights(7);
  const B = 3, T = 17, N = B * T;
  const tokens = Int32Array.from({ length: N }, (_, i) => (i * 31 + 5) % 97);
  const targets = Int32Array.from({ length: N }, (_, i) => (i % 5 === 0 ? -1 : (i * 13 + 2) % 97));
  const out: Outputs = {};
  for (let s = 0; s < 3; s++) {
    const f = await m.forward(tokens, targets, B, T, { values: true, entropy: true });
    if (s === 0) Object.assign(out, { logprob: [...f.logprob], values: [...f.values], entropy: [...f.entropy] });
    await m.backward(Float32Array.from({ length: N }, (_, i) => -((i % 7) + 1) / N), Float32Array.from({ length: N }, (_, i) => ((i % 3) - 1) / N));
    if (s === 0) out.grads = [...(await m.readBuffer('grads'))];
    out[`norm${s}`] = [await m.step({ lr: 1e-3, weightDecay: 0.1, maxGradNorm: 1.0 })];
  }
  out.params = [...(await m.readBuffer('params'))];
  out.adam_v = [...(await m.readBuffer('adam_v'))];
  const prompts = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  const lens = Int32Array.from([3, 5, 2]);
  for (const [name, temperature] of [['greedy', 0], ['sampled', 1]] as const) {
    const g = await m.generate(prompts, lens, { maxNewTokens: 12, temperature, seed: 11 });
    out[`${name}_tokens`] = [...g.tokens];
    out[`${name}_logprobs`] = [...g.logprobs];
  }
  const spans = Int32Array.from([2, 17, 1, 9, 5, 5]);
  const gm = await m.greedyMatch(tokens, B, T, spans);
  out.greedy_match_argmax = [...gm.argmax];
  const d = await m.divergence(tokens, B, T, spans);
  out.divergence_scores = [...d.scores];
  out.first_divergence = [...d.firstDivergence];
  m.dispose();
  return out;
}

const args = process.argv.slice(2);
if (args[0] === '--child') {
  workload(args[1]).then((o) => process.stdout.write(JSON.stringify(o)));
} else {
  const [oldAddon, newAddon] = args.filter((a) => !a.startsWith('--') && a !== 'cpu' && a !== 'cuda').map((p) => path.resolve(p));
  const device = args.includes('--device') ? args[args.indexOf('--device') + 1] : 'cpu';
  if (!oldAddon || !newAddon) throw new Error('usage: compare-engines.ts OLD.node NEW.node [--device cpu|cuda]');
  const run = (addon: string): Outputs =>
    JSON.parse(
      execFileSync(process.execPath, ['--conditions=source', '--import', 'tsx', fileURLToPath(import.meta.url), '--child', device], {
        env: { ...process.env, S2S_NATIVE_ADDON: addon },
        maxBuffer: 1 << 28,
        stdio: ['ignore', 'pipe', 'inherit'],
      }).toString(),
    );
  const a = run(oldAddon), b = run(newAddon);
  console.log('| output | values | identical | max abs diff | max relative diff (to the largest value) |');
  console.log('|---|---:|---:|---:|---:|');
  for (const k of Object.keys(a)) {
    const x = a[k], y = b[k];
    let same = 0, maxAbs = 0, scale = 0;
    for (let i = 0; i < x.length; i++) {
      if (x[i] === y[i]) same++;
      maxAbs = Math.max(maxAbs, Math.abs(x[i] - y[i]));
      scale = Math.max(scale, Math.abs(x[i]));
    }
    console.log(`| ${k} | ${x.length} | ${same} | ${maxAbs.toExponential(2)} | ${(maxAbs / (scale || 1)).toExponential(2)} |`);
  }
}
