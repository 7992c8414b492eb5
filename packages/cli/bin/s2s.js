#!/usr/bin/env node
// The `s2s` command for plain Node: runs the compiled CLI (dist/main.js), which `pnpm build` makes.
// main() is imported and called here; dist/main.js only runs itself when it is the entry script.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/main.js', import.meta.url);
const notBuilt = (file) => {
  console.error(`s2s: ${file} is missing: the packages are not built; run \`pnpm build\` at the repository root (scripts/setup.sh does it too)`);
  process.exitCode = 1;
};

if (!existsSync(entry)) {
  notBuilt(fileURLToPath(entry));
} else {
  let main;
  try {
    ({ main } = await import(entry.href));
  } catch (e) {
    // a package the CLI imports (@s2s/core, rm, ppo, tasks) has no dist/ yet
    if (e?.code === 'ERR_MODULE_NOT_FOUND' && /[\\/]dist[\\/]/.test(e.message)) notBuilt(/'([^']+)'/.exec(e.message)?.[1] ?? e.message);
    else {
      if (process.env.S2S_DEBUG) console.error(e?.stack);
      console.error(`s2s: ${e?.message ?? e}`);
      process.exitCode = 1;
    }
  }
  if (main) process.exitCode = await main(process.argv.slice(2));
}
