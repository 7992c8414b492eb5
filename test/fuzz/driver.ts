// The input fuzz's child: loads one case's input as a user's run would (loadModel, Tokenizer.load,
// the JSONL readers), uses what loaded, and prints one result line. A refusal is a normal outcome
// (exit 0); only a crash, a hang or a broken driver ends otherwise.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import { loadConversationalJsonl, loadJsonl, loadModel, saveModel, Tokenizer, type Model } from '@s2s/core';

import { RESULT_MARK, type ChildResult, type LoadSpec } from './types.js';

const finite = (a: ArrayLike<number>) => Array.prototype.every.call(a, (x: number) => Number.isFinite(x));

/** Small deterministic token ids in [0, V). */
function ids(n: number, V: number, seed: number): Int32Array {
  let s = seed >>> 0;
  return Int32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s % V));
}

/** What is wrong with a loaded model's results: forward, divergence, generate, and a training step. */
async function useModel(m: Model, train: boolean): Promise<string[]> {
  const problems: string[] = [];
  const V = m.config.vocabSize;
  const T = Math.min(8, m.config.maxSeqLen);
  const B = 2;
  const tokens = ids(B * T, V, 1);
  const targets = ids(B * T, V, 2);
  const valueHead = m.config.valueHead;
  const step = async (what: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (e) {
      problems.push(`${what} threw after the load was accepted: ${(e as Error).message}`);
    }
  };
  await step('forward', async () => {
    const r = await m.forward({ tokens, targets, B, T }, { values: valueHead });
    if (!finite(r.logprob) || r.logprob.some((x) => x > 1e-4)) problems.push(`forward: log-probs not finite and <= 0: ${Array.from(r.logprob.slice(0, 4))}`);
    if (valueHead && !finite(r.values!)) problems.push('forward: values not finite');
  });
  await step('divergence', async () => {
    const r = await m.divergence({ tokens, B, T }, [
      [1, T],
      [1, T],
    ]);
    if (!finite(r.scores)) problems.push('divergence: scores not finite');
    if (r.argmax.some((a, i) => i % T >= 1 && (a < 0 || a >= V))) problems.push('divergence: argmax outside the vocabulary');
  });
  await step('generate', async () => {
    const gen = await m.generate([Array.from(ids(3, V, 3)), [Number(ids(1, V, 4)[0])]], { maxNewTokens: 4, temperature: 1, seed: 7 });
    for (const g of gen) {
      if (g.tokens.some((t) => !Number.isInteger(t) || t < 0 || t >= V)) problems.push(`generate: token outside [0, ${V}): ${g.tokens}`);
      if (!finite(g.logprobs) || g.logprobs.some((x) => x > 1e-4)) problems.push(`generate: log-probs not finite and <= 0: ${g.logprobs}`);
    }
  });
  if (train)
    await step('training step', async () => {
      await m.forward({ tokens, targets, B, T }, { values: valueHead });
      await m.backward({ dlogprob: new Float32Array(B * T).fill(-1 / (B * T)), dvalue: valueHead ? new Float32Array(B * T).fill(0.01) : null });
      const norm = await m.step({ lr: 1e-3, weightDecay: 0.01 });
      if (!Number.isFinite(norm)) problems.push(`step: gradient norm ${norm}`);
      if (!finite(await m.readBuffer('params'))) problems.push('step: non-finite weights after one AdamW step');
      const v = await m.readBuffer('adam_v');
      if (!finite(v) || v.some((x) => x < 0)) problems.push('step: second moment not finite and >= 0 after one AdamW step');
    });
  return problems;
}

/** What is wrong with a loaded tokenizer's encodings of `texts`. */
function useTokenizer(tok: Tokenizer, texts: string[]): string[] {
  const problems: string[] = [];
  const isId = (id: unknown) => typeof id === 'number' && Number.isInteger(id) && id >= 0 && id < tok.vocabSize && tok.idToToken(id) !== undefined;
  for (const [k, id] of Object.entries({ bos: tok.bosId, eos: tok.eosId, pad: tok.padId, unk: tok.unkId }))
    if (id !== undefined && !isId(id)) problems.push(`${k} id ${JSON.stringify(id)} is not a token of the vocabulary`);
  for (const text of texts) {
    let got: number[];
    try {
      got = tok.encode(text);
    } catch (e) {
      // an unknown word with no unk token is refused by design
      if (!(e as Error).message.includes('unknown word')) problems.push(`encode(${JSON.stringify(text)}) threw: ${(e as Error).message}`);
      continue;
    }
    const bad = got.filter((id) => !isId(id));
    if (bad.length) problems.push(`encode(${JSON.stringify(text)}) gave ids outside the vocabulary: ${JSON.stringify(bad.slice(0, 5))}`);
    else
      try {
        if (typeof tok.decode(got) !== 'string') problems.push('decode did not give a string');
      } catch (e) {
        problems.push(`decode(encode(${JSON.stringify(text)})) threw: ${(e as Error).message}`);
      }
  }
  return problems;
}

/** What is wrong with rows a JSONL reader returned. */
function checkRows(rows: object[], format: 'text' | 'conversational'): string[] {
  const problems: string[] = [];
  const text = (v: unknown) => typeof v === 'string' && v.trim() !== '';
  rows.forEach((row, i) => {
    for (const [k, v] of Object.entries(row)) {
      const ok =
        format === 'text'
          ? text(v)
          : Array.isArray(v) && v.length > 0 && v.every((m) => typeof m === 'object' && m !== null && text(m.role) && typeof m.content === 'string');
      if (!ok) problems.push(`row ${i + 1}: field ${JSON.stringify(k)} is ${JSON.stringify(v)}`);
    }
  });
  return problems;
}

async function run(load: LoadSpec, dir: string): Promise<{ problems: string[]; info: string }> {
  switch (load.op) {
    case 'model': {
      const m = await loadModel(path.join(dir, load.dir), { optimizer: load.optimizer, device: 'cpu' });
      try {
        const problems = await useModel(m, load.train);
        if (load.save) {
          // what loadModel kept of the folder (config.json's other fields, generation_config.json) is written back
          const saved = path.join(dir, 'saved');
          try {
            await saveModel(m, saved);
            (await loadModel(saved, { device: 'cpu' })).dispose();
          } catch (e) {
            problems.push(`saving the loaded model and loading it again threw: ${(e as Error).message}`);
          }
        }
        return { problems, info: `${m.numParams} parameters, optimizer step ${m.optimizerStep}` };
      } finally {
        m.dispose();
      }
    }
    case 'tokenizer': {
      const tok = await Tokenizer.load(path.join(dir, load.dir));
      const problems = useTokenizer(tok, load.texts);
      try {
        // as a checkpoint carries it: files() written, then read back
        const files = tok.files();
        const back = Tokenizer.fromJSON(JSON.parse(files['tokenizer.json']), { tokenizerConfig: JSON.parse(files['tokenizer_config.json']) }, 'saved');
        if (back.vocabSize !== tok.vocabSize) problems.push(`files() read back has ${back.vocabSize} ids, not ${tok.vocabSize}`);
      } catch (e) {
        problems.push(`files() and reading them back threw: ${(e as Error).message}`);
      }
      return { problems, info: `${tok.vocabSize} ids` };
    }
    case 'jsonl': {
      const file = path.join(dir, load.file);
      const { rows } = load.format === 'text' ? await loadJsonl(file, load.kind) : await loadConversationalJsonl(file, load.kind);
      return { problems: checkRows(rows, load.format), info: `${rows.length} rows` };
    }
  }
}

const specFile = process.argv[2];
const spec = JSON.parse(readFileSync(specFile, 'utf8')) as { load: LoadSpec };
let result: ChildResult;
try {
  const { problems, info } = await run(spec.load, path.dirname(specFile));
  result = { outcome: 'accepted', problems, info };
} catch (e) {
  const err = e instanceof Error ? e : new Error(`a non-Error was thrown: ${String(e)}`);
  result = { outcome: 'refused', error: err.name, message: err.message };
}
// Pipes are written synchronously on POSIX: the line is out before the process ends on its own.
process.stdout.write(RESULT_MARK + JSON.stringify(result) + '\n');
