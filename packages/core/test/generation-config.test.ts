// generation_config.json: token ids read as transformers reads them (eos an id or a list), the
// fallback to config.json, and refusals naming the file and key.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { checkGenerationTokenIds, ConfigError, eosTokenIds, parseGenerationConfig, readEosTokenIds, readGenerationConfig } from '../src/index.js';

let root: string;
let n = 0;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 's2s-gencfg-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

async function folder(files: Record<string, unknown>): Promise<string> {
  const dir = path.join(root, `m${n++}`);
  await fs.mkdir(dir);
  for (const [name, v] of Object.entries(files)) await fs.writeFile(path.join(dir, name), typeof v === 'string' ? v : JSON.stringify(v));
  return dir;
}

// Llama-3.2-1B-Instruct's generation_config.json
const LLAMA32_INSTRUCT = { bos_token_id: 128000, do_sample: true, eos_token_id: [128001, 128008, 128009], temperature: 0.6, top_p: 0.9, transformers_version: '4.45.0.dev0' };

describe('generation_config.json', () => {
  it('reads a list of eos ids, keeping the other keys', async () => {
    const dir = await folder({ 'generation_config.json': LLAMA32_INSTRUCT, 'config.json': { eos_token_id: 128001 } });
    const g = await readGenerationConfig(dir);
    expect(g).toEqual(LLAMA32_INSTRUCT);
    expect(eosTokenIds(g)).toEqual([128001, 128008, 128009]);
    expect(await readEosTokenIds(dir)).toEqual([128001, 128008, 128009]);
  });

  it("takes config.json's eos_token_id when generation_config has none; none when neither has", async () => {
    expect(await readGenerationConfig(await folder({}))).toBeUndefined();
    expect(await readEosTokenIds(await folder({ 'config.json': { eos_token_id: 2 } }))).toEqual([2]);
    expect(await readEosTokenIds(await folder({ 'config.json': { eos_token_id: [2, 7, 2] } }))).toEqual([2, 7]);
    expect(await readEosTokenIds(await folder({ 'generation_config.json': { bos_token_id: 1 }, 'config.json': { eos_token_id: 2 } }))).toEqual([2]);
    expect(await readEosTokenIds(await folder({ 'generation_config.json': { eos_token_id: 151645 }, 'config.json': { eos_token_id: 151643 } }))).toEqual([151645]);
    expect(await readEosTokenIds(await folder({}))).toEqual([]);
    expect(eosTokenIds(undefined, { eos_token_id: null })).toEqual([]);
    expect(eosTokenIds({ eos_token_id: null, pad_token_id: null })).toEqual([]);
  });

  it('refuses token ids that are not ids, naming the file and key', async () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ eos_token_id: 'x' }, /eos_token_id must be a token id, a list of them, or null, got "x"/],
      [{ eos_token_id: [1, -2] }, /eos_token_id must be/],
      [{ bos_token_id: 1.5 }, /bos_token_id must be a token id/],
      [{ pad_token_id: [0] }, /pad_token_id must be a token id/],
      [[1], /not a JSON object/],
    ];
    for (const [g, msg] of bad) {
      expect(() => parseGenerationConfig(g, 'm/generation_config.json')).toThrow(ConfigError);
      expect(() => parseGenerationConfig(g, 'm/generation_config.json')).toThrow(msg);
    }
    const dir = await folder({ 'generation_config.json': '{"eos_token_id": 1,' });
    await expect(readGenerationConfig(dir)).rejects.toThrow(`${path.join(dir, 'generation_config.json')}: not valid JSON`);
    const dir2 = await folder({ 'generation_config.json': { eos_token_id: true } });
    await expect(readGenerationConfig(dir2)).rejects.toThrow(`${path.join(dir2, 'generation_config.json')}: eos_token_id must be`);
  });

  it("refuses ids outside the model's vocabulary (generation could never end on such an EOS), naming the file, key and id", () => {
    const file = 'm/generation_config.json';
    expect(() => checkGenerationTokenIds(LLAMA32_INSTRUCT, 128256, file)).not.toThrow();
    expect(() => checkGenerationTokenIds({ eos_token_id: [1, 64] }, 64, file)).toThrow(
      "m/generation_config.json: eos_token_id [1,64] names token id 64, outside the model's vocabulary of 64 ids (config.json's vocab_size)",
    );
    expect(() => checkGenerationTokenIds({ pad_token_id: 2 ** 40 }, 64, file)).toThrow(/pad_token_id 1099511627776 names token id 1099511627776/);
    expect(() => checkGenerationTokenIds({ bos_token_id: 63, eos_token_id: null, pad_token_id: null }, 64, file)).not.toThrow();
  });

  it('refuses JSON nested deeper than 128 (it is kept and written back), naming the file', async () => {
    const deep = (n: number) => `{"eos_token_id": 1, "x": ${'['.repeat(n)}${']'.repeat(n)}}`;
    expect((await readGenerationConfig(await folder({ 'generation_config.json': deep(127) })))?.eos_token_id).toBe(1);
    const dir = await folder({ 'generation_config.json': deep(100_000) });
    await expect(readGenerationConfig(dir)).rejects.toThrow(`${path.join(dir, 'generation_config.json')}: nests objects and arrays more than 128 deep`);
  });
});
