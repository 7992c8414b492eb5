// The engine's addon, loaded once for the whole process.
import { createRequire } from 'node:module';
import type * as Native from '@s2s/native';

const require = createRequire(import.meta.url);
export const native: typeof Native = require('@s2s/native');
export type * from '@s2s/native';
