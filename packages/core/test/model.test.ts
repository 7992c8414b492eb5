// Model as a user calls it: promises off the JavaScript thread, call ordering, generation,
// greedy match, parameter access and the errors bad input gets.
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { type GPTConfigInput, Model, cudaStatus, getDefaultDevice, getNumThreads, resolveDevice, setDefaultDevice, setNumThreads } from '@s2s/core';

const tiny: GPTConfigInput = { vocabSize: 61, maxSeqLen: 24, numLayers: 2, numHeads: 2, channels: 16 };

function randomTokens(n: number, V: number, seed: number): Int32Array {
  let s = seed >>> 0 || 1;
  return Int32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % V;
  });
}

afterEach(() => setNumThreads(0));

describe('Model', () => {
  it('reports its size the way GPT-2 counts it', async () => {
    const m = Model.empty({ vocabSize: 50257, maxSeqLen: 1024, numLayers: 12, numHeads: 12, channels: 768 });
    expect(m.numParams).toBe(124_439_808);
    // 6 * (matmul params incl. the tied LM head) + 6 * L * C * T
    const matmul = 12 * 12 * 768 * 768 + 50257 * 768;
    expect(m.flopsPerToken(1024)).toBe(6 * matmul + 6 * 12 * 768 * 1024);
    expect(m.layout()[0]).toMatchObject({ name: 'transformer.wte.weight', shape: [50257, 768], offset: 0 });
    m.dispose();
  });

  it('keeps the event loop free while the engine works', async () => {
    const m = await Model.create({ vocabSize: 2048, maxSeqLen: 256, numLayers: 4, numHeads: 4, channels: 256 }, { seed: 1 });
    const B = 8, T = 256;
    const tokens = randomTokens(B * T, 2048, 3);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const started = performance.now();
    // several steps so that the work clearly outlasts a few timer periods
    for (let i = 0; i < 3; i++) {
      const p = m.forward({ tokens, targets: tokens, B, T });
      expect(p).toBeInstanceOf(Promise);
      await p;
      await m.backward({ dlogprob: new Float32Array(B * T).fill(-1e-3) });
    }
    const elapsed = performance.now() - started;
    clearInterval(timer);
    // had the calls blocked the thread, no timer could have fired until the end
    expect(ticks).toBeGreaterThan(Math.min(10, elapsed / 20));
    m.dispose();
  });

  it('runs calls in the order they were made, awaited or not', async () => {
    const make = () => Model.create(tiny, { seed: 5 });
    const [a, b] = await Promise.all([make(), make()]);
    const B = 2, T = 8;
    const tokens = randomTokens(B * T, 61, 7);
    const dlogprob = new Float32Array(B * T).fill(-0.1);
    // a: every call awaited; b: all queued at once
    await a.forward({ tokens, targets: tokens, B, T });
    await a.backward({ dlogprob });
    await a.step({ lr: 0.01 });
    const ra = await a.forward({ tokens, targets: tokens, B, T });
    const queued = [
      b.forward({ tokens, targets: tokens, B, T }),
      b.backward({ dlogprob }),
      b.step({ lr: 0.01 }),
      b.forward({ tokens, targets: tokens, B, T }),
    ] as const;
    const rb = (await Promise.all(queued))[3];
    expect(Array.from(rb.logprob)).toEqual(Array.from(ra.logprob));
    a.dispose();
    b.dispose();
  });

  it('generates reproducibly by seed, stops rows at EOS and reports why each row ended', async () => {
    const m = await Model.create(tiny, { seed: 2 });
    const prompts = [[1, 2, 3], [4], [5, 6, 7, 8, 9, 10]];
    const opts = { maxNewTokens: 10, temperature: 1.0, seed: 11 };
    const g1 = await m.generate(prompts, opts);
    const g2 = await m.generate(prompts, opts);
    expect(g2).toEqual(g1);
    const g3 = await m.generate(prompts, { ...opts, seed: 12 });
    expect(g3.map((g) => g.tokens)).not.toEqual(g1.map((g) => g.tokens));
    for (const g of g1) {
      expect(g.tokens).toHaveLength(10);
      expect(g.finishReason).toBe('length');
      expect(g.logprobs.every((lp) => lp <= 0 && Number.isFinite(lp))).toBe(true);
    }
    // make row 0's fourth sampled token the EOS: row 0 must end right there, with it
    const eos = g1[0].tokens[3];
    const stop = g1[0].tokens.indexOf(eos) + 1;
    const ge = await m.generate(prompts, { ...opts, eos });
    expect(ge[0].tokens).toEqual(g1[0].tokens.slice(0, stop));
    expect(ge[0].finishReason).toBe('eos');
    // topK = 1 is greedy
    const greedy = await m.generate(prompts, { maxNewTokens: 6, temperature: 0 });
    const top1 = await m.generate(prompts, { maxNewTokens: 6, temperature: 1, topK: 1, seed: 99 });
    expect(top1.map((g) => g.tokens)).toEqual(greedy.map((g) => g.tokens));
    // a batch split in two (a data-parallel rank's share) samples what the whole batch does when
    // each part says where its rows start; without it, the second part repeats the first's streams
    const head = await m.generate(prompts.slice(0, 1), opts);
    const tail = await m.generate(prompts.slice(1), { ...opts, firstRow: 1 });
    expect([...head, ...tail].map((g) => g.tokens)).toEqual(g1.map((g) => g.tokens));
    const unshifted = await m.generate(prompts.slice(1), opts);
    expect(unshifted.map((g) => g.tokens)).not.toEqual(g1.slice(1).map((g) => g.tokens));
    await expect(m.generate(prompts, { ...opts, firstRow: -1 })).rejects.toThrow(/firstRow/);
    m.dispose();
  });

  it('greedyMatch agrees with greedy generation and flags the substituted token', async () => {
    const m = await Model.create(tiny, { seed: 3 });
    const prompt = [7, 8, 9];
    const [g] = await m.generate([prompt], { maxNewTokens: 8, temperature: 0 });
    const seq = [...prompt, ...g.tokens];
    const T = seq.length;
    const tokens = Int32Array.from(seq);
    const r = await m.greedyMatch({ tokens, B: 1, T }, [[prompt.length, T]]);
    expect(Array.from(r.match.subarray(prompt.length))).toEqual(new Array(8).fill(1));
    expect(Array.from(r.argmax.subarray(prompt.length))).toEqual(g.tokens);
    expect(Array.from(r.argmax.subarray(0, prompt.length))).toEqual([-1, -1, -1]);
    const changed = tokens.slice();
    const k = prompt.length + 2;
    changed[k] = (changed[k] + 1) % 61;
    const r2 = await m.greedyMatch({ tokens: changed, B: 1, T }, [[prompt.length, T]]);
    expect(r2.match[k]).toBe(0);
    expect(Array.from(r2.match.subarray(prompt.length, k))).toEqual([1, 1]);
    m.dispose();
  });

  it('reads and writes named tensors and the flat buffers', async () => {
    const m = await Model.create({ ...tiny, valueHead: true }, { seed: 4 });
    const info = m.tensorInfo('score.weight');
    expect(info.shape).toEqual([1, 16]);
    const w = Float32Array.from({ length: 16 }, (_, i) => i / 10);
    await m.writeTensor('score.weight', w);
    expect(Array.from(await m.readTensor('score.weight'))).toEqual(Array.from(w));
    const all = await m.readBuffer('params');
    expect(all.length).toBe(m.numParams);
    expect(Array.from(all.subarray(info.offset, info.offset + 16))).toEqual(Array.from(w));
    // before any backward the gradients read as zeros
    expect((await m.readBuffer('grads', 0, 5)).every((x) => x === 0)).toBe(true);
    await expect(m.writeTensor('score.weight', new Float32Array(3))).rejects.toThrow('score.weight has 16 elements');
    expect(() => m.tensorInfo('lm_head.weight')).toThrow('no tensor named "lm_head.weight"');
    m.dispose();
  });

  it('clones with or without a value head, keeping every shared tensor', async () => {
    const src = await Model.create(tiny, { seed: 12 });
    const withHead = await src.clone({ valueHead: true, seed: 3 });
    expect(withHead.config.valueHead).toBe(true);
    for (const t of src.layout()) expect(await withHead.readTensor(t.name)).toEqual(await src.readTensor(t.name));
    const head = await withHead.readTensor('score.weight');
    expect(head.some((x) => x !== 0)).toBe(true);
    const back = await withHead.clone({ valueHead: false });
    expect(await back.readBuffer('params')).toEqual(await src.readBuffer('params'));
    for (const m of [src, withHead, back]) m.dispose();
  });

  it('rejects bad input with messages that name the problem', async () => {
    const m = await Model.create({ ...tiny, valueHead: false }, { seed: 6 });
    const ok = Int32Array.from({ length: 8 }, (_, i) => i);
    await expect(m.forward({ tokens: Int32Array.from([1, 2, 61, 3]), B: 1, T: 4 })).rejects.toThrow(
      'token id 61 at row 0, position 2 is outside the vocabulary (0..60)',
    );
    await expect(m.forward({ tokens: new Int32Array(30), B: 1, T: 30 })).rejects.toThrow(
      "sequence length 30 exceeds the model's context length (24)",
    );
    await expect(m.forward({ tokens: ok, B: 2, T: 5 })).rejects.toThrow('tokens has 8 elements; expected 10');
    await expect(m.forward({ tokens: ok, B: 1, T: 8 }, { values: true })).rejects.toThrow('no value head');
    await expect(m.backward({ dlogprob: new Float32Array(8) })).rejects.toThrow('call forward() first');
    await m.forward({ tokens: ok, targets: ok, B: 1, T: 8 });
    await expect(m.backward({ dlogprob: new Float32Array(4) })).rejects.toThrow('dlogprob has 4 elements');
    const nan = new Float32Array(8);
    nan[5] = Number.NaN;
    await expect(m.backward({ dlogprob: nan })).rejects.toThrow('dlogprob at row 0, position 5 is not finite');
    await expect(m.step({ lr: -1 })).rejects.toThrow('lr must be a finite number >= 0');
    await expect(m.generate([[1, 2]], { maxNewTokens: 30 })).rejects.toThrow("exceeds the model's context length");
    await expect(m.generate([[]], { maxNewTokens: 3 })).rejects.toThrow('prompt 0 is empty');
    await expect(m.generate([[1]], { maxNewTokens: 3, topP: 0 })).rejects.toThrow('topP must be in (0, 1]');
    await expect(m.greedyMatch({ tokens: ok, B: 1, T: 8 }, [[0, 4]])).rejects.toThrow('1 <= start <= end <= T');
    // the model is still usable after all of that
    const r = await m.forward({ tokens: ok, targets: ok, B: 1, T: 8 });
    expect(r.logprob.every(Number.isFinite)).toBe(true);
    m.dispose();
    await expect(async () => m.forward({ tokens: ok, B: 1, T: 8 })).rejects.toThrow('disposed');
    await expect(Model.create({ ...tiny, numHeads: 3 })).rejects.toThrow('channels (16) must be divisible by numHeads (3)');
    await expect(Model.create({ ...tiny, vocabSize: 0 })).rejects.toThrow('vocabSize must be a positive integer');
  });

  it('a non-finite gradient skips the step and leaves the parameters alone', async () => {
    const m = await Model.create(tiny, { seed: 8 });
    const before = await m.readBuffer('params');
    const g = new Float32Array(m.numParams);
    g[123] = Number.POSITIVE_INFINITY;
    await m.writeBuffer('grads', g);
    await expect(m.step({ lr: 0.1 })).rejects.toThrow('step skipped: the gradient norm is not finite');
    expect(await m.readBuffer('params')).toEqual(before);
    expect(m.optimizerStep).toBe(0);
    // gradients were zeroed, so the next step is an ordinary one
    await m.step({ lr: 0.1 });
    expect(m.optimizerStep).toBe(1);
    m.dispose();
  });

  it('takes a thread count and reports the CUDA backend as a state, not a failure', async () => {
    setNumThreads(1);
    expect(getNumThreads()).toBe(1);
    const m = await Model.create(tiny, { seed: 9 });
    const tokens = randomTokens(2 * 8, 61, 1);
    const one = await m.forward({ tokens, targets: tokens, B: 2, T: 8 });
    setNumThreads(2);
    const two = await m.forward({ tokens, targets: tokens, B: 2, T: 8 });
    for (let i = 0; i < one.logprob.length; i++) expect(two.logprob[i]).toBeCloseTo(one.logprob[i], 5);
    expect(m.device).toBe('cpu');
    m.dispose();
  });

  it('takes its default thread count from S2S_NUM_THREADS, else every core', () => {
    const addon = path.resolve(import.meta.dirname, '../../../native/index.cjs');
    const threads = (env: Record<string, string>) => {
      const script = `const n = require(${JSON.stringify(addon)}); const a = n.getNumThreads(); n.setNumThreads(1); n.setNumThreads(0); console.log(a, n.getNumThreads())`;
      const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout.trim();
    };
    // 0 restores the default, which is the variable's again
    expect(threads({ S2S_NUM_THREADS: '3' })).toBe('3 3');
    expect(threads({ S2S_NUM_THREADS: '1' })).toBe('1 1');
    const cores = String(availableParallelism());
    expect(threads({ S2S_NUM_THREADS: '' })).toBe(`${cores} ${cores}`);
    expect(threads({ S2S_NUM_THREADS: 'lots' })).toBe(`${cores} ${cores}`);
  });

  it('runs where it is told, and reports a missing CUDA backend as a reason, not a crash', async () => {
    const cuda = cudaStatus();
    // on a machine with a GPU and a CUDA build this test has nothing to refuse
    if (cuda.available) return;
    expect(cuda.reason).toMatch(/CUDA|GPU|driver/);
    await expect(Model.create(tiny, { device: 'cuda' })).rejects.toThrow(`the CUDA backend is unavailable: ${cuda.reason}`);
    const auto = await Model.create(tiny, { device: 'auto' });
    expect(auto.device).toBe('cpu');
    auto.dispose();
    await expect(Model.create(tiny, { device: 'tpu' as never })).rejects.toThrow("device must be 'auto', 'cpu' or 'cuda'");
  });

  it('takes the default device from setDefaultDevice, else S2S_DEVICE, else auto', async () => {
    const previous = process.env.S2S_DEVICE;
    try {
      delete process.env.S2S_DEVICE;
      expect(getDefaultDevice()).toBe('auto');
      process.env.S2S_DEVICE = 'cpu';
      expect(getDefaultDevice()).toBe('cpu');
      process.env.S2S_DEVICE = 'tpu';
      await expect(Model.create(tiny)).rejects.toThrow(`S2S_DEVICE must be 'auto', 'cpu' or 'cuda', got "tpu"`);
      expect(() => Model.empty(tiny)).toThrow('S2S_DEVICE must be');
      setDefaultDevice('cpu'); // wins over the environment
      const m = await Model.create(tiny);
      expect(m.device).toBe('cpu');
      m.dispose();
      expect(() => setDefaultDevice('gpu' as never)).toThrow(`device must be 'auto', 'cpu' or 'cuda', got "gpu"`);
      if (!cudaStatus().available) {
        setDefaultDevice('cuda');
        await expect(Model.create(tiny)).rejects.toThrow('the CUDA backend is unavailable');
        // an explicit device still wins over the default
        const c = await Model.create(tiny, { device: 'cpu' });
        expect(c.device).toBe('cpu');
        c.dispose();
      }
      expect(resolveDevice('cpu')).toBe('cpu');
      expect(resolveDevice('auto')).toBe(cudaStatus().available ? 'cuda' : 'cpu');
      setDefaultDevice('cpu');
      expect(resolveDevice()).toBe('cpu'); // the default's
      setDefaultDevice(undefined);
      expect(() => getDefaultDevice()).toThrow('S2S_DEVICE must be'); // back to the environment's (bad) value
    } finally {
      setDefaultDevice(undefined);
      if (previous === undefined) delete process.env.S2S_DEVICE;
      else process.env.S2S_DEVICE = previous;
    }
  });
});
