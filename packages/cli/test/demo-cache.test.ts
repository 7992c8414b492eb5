// The demo's stage keys: equal settings give equal keys whatever their order, any change gives
// another, and models trained on the GPU never share keys with the CPU's.
import { afterEach, describe, expect, it } from 'vitest';

import { setDefaultDevice } from '@s2s/core';

import { engineKey, stageKey } from '../src/demo/cache.js';

afterEach(() => {
  setDefaultDevice(undefined);
  delete process.env.S2S_CUDA_PRECISION;
  process.env.S2S_CPU_PRECISION = 'fp32';
});

describe('demo stage keys', () => {
  it('depend on the settings, not on the order of their keys', () => {
    const a = stageKey({ stage: 'sft', seed: 1, model: { numLayers: 2, channels: 64 } });
    expect(stageKey({ model: { channels: 64, numLayers: 2 }, seed: 1, stage: 'sft' })).toBe(a);
    expect(stageKey({ stage: 'sft', seed: 2, model: { numLayers: 2, channels: 64 } })).not.toBe(a);
    expect(a).toMatch(/^[0-9a-f]{12}$/);
  });

  it('leave fp32 CPU keys as they were and give each GPU precision and CPU bf16 its own', () => {
    setDefaultDevice('cpu');
    expect(process.env.S2S_CPU_PRECISION).toBe('fp32'); // the suite's setting (vitest.config.ts)
    expect(engineKey()).toEqual({});
    const parts = { stage: 'sft', seed: 1 };
    const cpu = stageKey({ ...parts, ...engineKey() });
    expect(cpu).toBe(stageKey(parts));
    setDefaultDevice('cuda'); // resolving an explicit device needs no GPU
    expect(engineKey()).toEqual({ engine: { device: 'cuda', precision: 'bf16' } });
    const bf16 = stageKey({ ...parts, ...engineKey() });
    process.env.S2S_CUDA_PRECISION = 'fp32';
    const fp32 = stageKey({ ...parts, ...engineKey() });
    setDefaultDevice('cpu');
    process.env.S2S_CPU_PRECISION = 'bf16-emulated'; // bf16's numbers on any processor
    expect(engineKey()).toEqual({ engine: { device: 'cpu', precision: 'bf16-emulated' } });
    const cpuBf16 = stageKey({ ...parts, ...engineKey() });
    expect(new Set([cpu, bf16, fp32, cpuBf16]).size).toBe(4);
  });
});
