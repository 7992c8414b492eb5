import { fileURLToPath } from 'node:url';

import { defineConfig } from 'vitest/config';

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

export default defineConfig({
  // Tests run against the packages' TypeScript sources, as `--conditions=source` does for tsx.
  resolve: {
    alias: { '@s2s/core': src('core'), '@s2s/rm': src('rm'), '@s2s/ppo': src('ppo'), '@s2s/cli': src('cli'), '@s2s/tasks': src('tasks') },
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    // Engine tests allocate real models; one file at a time keeps two cores from thrashing.
    fileParallelism: false,
    // Models multiply in fp32 on the CPU in the tests, whatever the processor: auto would pick bf16
    // on one with AMX or AVX512-BF16, and most checks hold the engine to fp32 references at fp32
    // tolerances. The tests of bf16 on the CPU set S2S_CPU_PRECISION themselves.
    env: { S2S_CPU_PRECISION: 'fp32' },
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
