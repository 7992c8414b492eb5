// Loads the engine's Node-API addon, with a message that says how to build it when it is missing.
'use strict';
const path = require('node:path');
const fs = require('node:fs');

const candidates = [
  process.env.S2S_NATIVE_ADDON,
  path.join(__dirname, 'build', 'Release', 's2s.node'),
  path.join(__dirname, 'build', 'Debug', 's2s.node'),
].filter(Boolean);

const found = candidates.find((p) => fs.existsSync(p));
if (!found) {
  throw new Error(
    `the s2s engine is not built (looked for ${candidates.join(', ')}): ` +
      'run `pnpm build:native` from the repository root, or scripts/setup.sh, which installs what it needs',
  );
}
module.exports = require(found);
