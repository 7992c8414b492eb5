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
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
