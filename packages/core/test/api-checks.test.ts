// The engine's API refuses bad input instead of computing with it: non-finite weights and
// optimizer state, arrays changed or transferred after the call, ids that Int32Array would
// coerce, an empty gradient, and option keys it does not know.
import { describe, expect, it } from 'vitest';

import { type GPTConfigInput, Model } from '@s2s/core';

import { native } from '../src/native.js';

const tiny: GPTConfigInput = { vocabSize: 61, maxSeqLen: 24, numLayers: 2, numHeads: 2, channels: 16 };

async function withModel(fn: (m: Model) => Promise<void>, config: GPTConfigInput = tiny): Promise<void> {
  const m = await Model.create(config, { seed: 5 });
  try {
    await fn(m);
  } finally {
    m.dispose();
  }
}

const B = 2, T = 6;
const tokens = Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 3) % 61);

/** Detaches `a`'s ArrayBuffer, as a postMessage transfer does. */
function detach(a: Float32Array | Int32Array): void {
  structuredClone(a.buffer, { transfer: [a.buffer] });
  expect(a.buffer.byteLength).toBe(0);
}

describe('non-finite weights and optimizer state', () => {
  it('writeBuffer refuses NaN/Inf in params, adam_m and adam_v, and a negative adam_v, naming the offset and tensor', async () => {
    await withModel(async (m) => {
      const t = m.layout()[2];
      const before = await m.readBuffer('params');
      const data = new Float32Array(4).fill(0.5);
      data[3] = NaN;
      const at = `the value at offset ${t.offset + 3} (tensor '${t.name}', index 3)`;
      await expect(m.writeBuffer('params', data, t.offset)).rejects.toThrow(`writeBuffer(params): ${at} is not finite (nan)`);
      expect(await m.readBuffer('params')).toEqual(before); // nothing written
      data[3] = Infinity;
      await expect(m.writeBuffer('adam_m', data, t.offset)).rejects.toThrow(`writeBuffer(adam_m): ${at} is not finite (inf)`);
      await expect(m.writeBuffer('adam_v', data, t.offset)).rejects.toThrow(`writeBuffer(adam_v): ${at} is not finite`);
      data[3] = -1;
      await expect(m.writeBuffer('adam_v', data, t.offset)).rejects.toThrow(`writeBuffer(adam_v): ${at} is negative (-1)`);
      await m.writeBuffer('adam_m', data, t.offset); // a first moment may be negative
      // the model is still usable, and its weights unchanged
      expect((await m.generate([[1, 2]], { maxNewTokens: 2, temperature: 0 }))[0].tokens).toHaveLength(2);
    });
  });

  it('a NaN checkpoint tensor is refused at load (writeTensor), so no engine call ever sees it', async () => {
    await withModel(async (m) => {
      const t = m.layout()[5];
      const w = await m.readTensor(t.name);
      w[1] = NaN;
      await expect(m.writeTensor(t.name, w)).rejects.toThrow(`tensor '${t.name}', index 1) is not finite`);
      await expect(m.greedyMatch({ tokens, B, T }, [[1, 3], [2, 6]])).resolves.toBeDefined();
    });
  });
});

describe('every engine call that reads the weights refuses non-finite parameters', () => {
  it('after a step that overflows them, forward, generate, greedyMatch and divergence refuse, naming the tensor', async () => {
    await withModel(async (m) => {
      // lr * weightDecay overflows float: decay turns every decayed weight into +-Inf (NaN for a 0)
      await m.step({ lr: 1e30, weightDecay: 1e30 });
      const bad = /refused: the model's parameters are not finite \(tensor 'transformer\.wte\.weight', index \d+ is -?(inf|nan)\)/;
      await expect(m.generate([[1, 2]], { maxNewTokens: 2 })).rejects.toThrow(bad);
      await expect(m.greedyMatch({ tokens, B, T }, [[1, 3], [2, 6]])).rejects.toThrow(bad);
      await expect(m.divergence({ tokens, B, T }, [[1, 3], [2, 6]])).rejects.toThrow(bad);
      await expect(m.forward({ tokens, targets: tokens, B, T })).rejects.toThrow(bad);
      await expect(m.generate([[1, 2]], { maxNewTokens: 2 })).rejects.toThrow(/^generate refused/);
    });
  });
});

describe('arrays are read when the call is made', () => {
  it('the binding itself copies forward, backward and writeBuffer arguments at call time', async () => {
    const nat = new native.NativeModel({ ...tiny, device: 'cpu' });
    try {
      await nat.initWeights(3);
      const want = (await nat.forward(tokens, tokens, B, T)).logprob;
      const tok = tokens.slice();
      const p = nat.forward(tok, tok, B, T);
      tok.fill(0);
      expect((await p).logprob).toEqual(want);
      const dl = new Float32Array(B * T).fill(1);
      await nat.backward(dl.slice());
      const g1 = await nat.readBuffer('grads');
      await nat.zeroGrad();
      await nat.forward(tokens, tokens, B, T);
      const q = nat.backward(dl);
      dl.fill(0);
      await q;
      expect(await nat.readBuffer('grads')).toEqual(g1);
      const data = new Float32Array(16).fill(0.25);
      const w = nat.writeBuffer('params', data, 0);
      data.fill(7);
      await w;
      expect(Array.from(await nat.readBuffer('params', 0, 16))).toEqual(new Array(16).fill(0.25));
      // a detached array: a TypeError at the call, not an empty write
      const before = await nat.readBuffer('params');
      const gone = new Float32Array(16).fill(1);
      detach(gone);
      expect(() => nat.writeBuffer('params', gone, 0)).toThrow("data's ArrayBuffer is detached");
      const goneTokens = tokens.slice();
      detach(goneTokens);
      expect(() => nat.forward(goneTokens, null, B, T)).toThrow("tokens's ArrayBuffer is detached");
      expect(await nat.readBuffer('params')).toEqual(before);
    } finally {
      nat.dispose();
    }
  });


  it('forward, backward and writeBuffer copy their arrays: changing them right after the call changes nothing', async () => {
    await withModel(async (m) => {
      const want = (await m.forward({ tokens, targets: tokens, B, T })).logprob;
      const tok = tokens.slice();
      const p = m.forward({ tokens: tok, targets: tok, B, T });
      tok.fill(0);
      expect((await p).logprob).toEqual(want);

      // backward: the gradient of the array as it was at the call
      const dl = new Float32Array(B * T).fill(1);
      await m.backward({ dlogprob: dl });
      const g1 = await m.readBuffer('grads');
      await m.zeroGrad();
      await m.forward({ tokens, targets: tokens, B, T });
      const dl2 = new Float32Array(B * T).fill(1);
      const q = m.backward({ dlogprob: dl2 });
      dl2.fill(0);
      await q;
      expect(await m.readBuffer('grads')).toEqual(g1);

      // writeBuffer
      const t = m.layout()[1];
      const data = new Float32Array(t.numel).fill(0.25);
      const w = m.writeBuffer('params', data, t.offset);
      data.fill(7);
      await w;
      expect(Array.from(await m.readTensor(t.name)).every((x) => x === 0.25)).toBe(true);
    });
  });

  it('a detached (transferred) ArrayBuffer is a TypeError, not an empty write', async () => {
    await withModel(async (m) => {
      const before = await m.readBuffer('params');
      const data = new Float32Array(8).fill(1);
      detach(data);
      await expect(m.writeBuffer('params', data, 0)).rejects.toThrow(TypeError);
      await expect(m.writeBuffer('params', data, 0)).rejects.toThrow("data's ArrayBuffer is detached");
      expect(await m.readBuffer('params')).toEqual(before);

      const tok = tokens.slice();
      detach(tok);
      await expect(m.forward({ tokens: tok, B, T })).rejects.toThrow("tokens's ArrayBuffer is detached");
      await m.forward({ tokens, targets: tokens, B, T });
      const dl = new Float32Array(B * T);
      detach(dl);
      await expect(m.backward({ dlogprob: dl })).rejects.toThrow(TypeError);
    });
  });
});

describe('values are refused, not coerced', () => {
  it('generate refuses prompt ids and eos ids that are not integers in [0, vocabSize), naming where', async () => {
    await withModel(async (m) => {
      const o = { maxNewTokens: 2, temperature: 0 };
      await expect(m.generate([[1, 2], [3, NaN]], o)).rejects.toThrow('token id NaN at prompt 1, position 1 is not an integer in [0, 61)');
      await expect(m.generate([[2 ** 32 + 3]], o)).rejects.toThrow('token id 4294967299 at prompt 0, position 0');
      await expect(m.generate([[1.5]], o)).rejects.toThrow('token id 1.5 at prompt 0');
      await expect(m.generate([[61]], o)).rejects.toThrow(RangeError);
      await expect(m.generate([[-1]], o)).rejects.toThrow(RangeError);
      await expect(m.generate([[1]], { ...o, eos: NaN })).rejects.toThrow('token id NaN at eos is not an integer');
      await expect(m.generate([[1]], { ...o, eos: [4, 2 ** 32 + 3] })).rejects.toThrow('token id 4294967299 at eos[1]');
      await expect(m.generate([[1]], { ...o, eos: [60] })).resolves.toHaveLength(1);
    });
  });

  it('backward refuses an empty dlogprob or dvalue (it must have B*T values) and a call with neither', async () => {
    await withModel(
      async (m) => {
        await m.forward({ tokens, targets: tokens, B, T }, { values: true });
        await expect(m.backward({ dlogprob: new Float32Array(0) })).rejects.toThrow('dlogprob has 0 elements; the last forward had B*T = 12');
        await expect(m.backward({ dvalue: new Float32Array(0) })).rejects.toThrow('dvalue has 0 elements');
        await expect(m.backward({})).rejects.toThrow('backward needs dlogprob or dvalue');
        await m.backward({ dlogprob: new Float32Array(B * T).fill(1) });
      },
      { ...tiny, valueHead: true },
    );
  });

  it('step refuses a missing lr and unknown keys, listing the known ones', async () => {
    await withModel(async (m) => {
      const known = '(known: lr, beta1, beta2, eps, weightDecay, maxGradNorm)';
      await expect(m.step({ learningRate: 1e-2 } as never)).rejects.toThrow(`step options: unknown key 'learningRate' ${known}`);
      await expect(m.step({ lr: 1e-2, weight_decay: 0.1 } as never)).rejects.toThrow("unknown key 'weight_decay'");
      await expect(m.step({} as never)).rejects.toThrow('step options: lr is required');
      await expect(m.step(undefined as never)).rejects.toThrow('needs an options object with lr');
      expect(m.optimizerStep).toBe(0);
      await expect(m.step({ lr: 1e-2, maxGradNorm: 1 })).resolves.toBeTypeOf('number');
      expect(m.optimizerStep).toBe(1);
    });
  });

  it('forward, generate and divergence refuse unknown option keys', async () => {
    await withModel(async (m) => {
      await expect(m.forward({ tokens, B, T }, { temprature: 2 } as never)).rejects.toThrow(
        "forward options: unknown key 'temprature' (known: logprob, values, entropy, temperature)",
      );
      await expect(m.generate([[1]], { maxNewTokens: 1, top_k: 5 } as never)).rejects.toThrow(
        'generate options: unknown key "top_k" (known: maxNewTokens, temperature, topK, topP, eos, seed, firstRow)',
      );
      await expect(m.divergence({ tokens, B, T }, [[1, 2], [1, 2]], { postive: 2 } as never)).rejects.toThrow("divergence scores: unknown key 'postive'");
    });
  });
});
