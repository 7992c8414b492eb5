// Hugging Face chat-model folders (Qwen2.5 and Llama 3.2 as the Hub lays them out, random weights
// at a tiny size) through every command as a user runs them -- SFT on conversations with the
// model's own chat template, both reward models, PPO-T, generate, eval, rm score and rm explain --
// and PPO from Node on a sharded Llama folder. Every folder saved keeps the source's config.json
// fields, its generation_config.json and its bfloat16 weights, and loads back.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  type ChatMessage,
  Tokenizer,
  chatModeTemplate,
  checkpointSource,
  encodePrompt,
  loadChatTemplate,
  loadModel,
  readSafetensors,
  saveModel,
  stopTokenIds,
} from '@s2s/core';
import { type PPOStep, PPOTrainer } from '@s2s/ppo';
import { decodeGenerated, encodeRewriteOfGenerated, extractRewards, generationStopIds, loadRewardModel } from '@s2s/rm';

import { type MakeHFModelResult, makeHFModel } from '../../../scripts/make-hf-model.js';
import { readJson, readJsonl, s2s } from './cli-harness.js';

const root = mkdtempSync(path.join(tmpdir(), 's2s-cli-hf-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

// 2 layers, width 64, 4 heads of 16 (2 key/value heads); room for the seq2seq RM's conversation
const TINY = { layers: 2, width: 64, heads: 4, kvHeads: 2, ffn: 96, maxPos: 256 };
const CPU = ['--device', 'cpu'];
const at = (...p: string[]) => path.join(root, ...p);
const file = (name: string, rows: object[]) => {
  writeFileSync(at(name), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return at(name);
};
const user = (content: string): ChatMessage => ({ role: 'user', content });
const assistant = (content: string): ChatMessage => ({ role: 'assistant', content });

async function run(args: string[]): Promise<string> {
  const r = await s2s([...args, ...CPU]);
  if (r.code !== 0) throw new Error(`s2s ${args.join(' ')} failed (${r.code}):\n${r.err}\n${r.out}`);
  return r.out;
}

let qwen: MakeHFModelResult;
let llama: MakeHFModelResult;
const facts = ['jack sold a lamp', 'ann fixed the door', 'tom baked bread', 'sue lost a key'];

beforeAll(async () => {
  qwen = await makeHFModel({ family: 'qwen2.5', out: at('qwen'), ...TINY, seed: 1 });
  // the embedding (128256 x 64 bf16, 16 MB) in a shard of its own, the rest in another
  llama = await makeHFModel({ family: 'llama3.2', out: at('llama'), ...TINY, seed: 2, shardSize: 4_000_000 });
  // TRL's conversational rows: {messages} with a system turn, {prompt, completion} lists, and text
  file('sft.jsonl', [
    ...facts.map((f) => ({ messages: [{ role: 'system', content: 'Answer in one line.' }, user(`summarize : ${f}`), assistant(f)] })),
    ...facts.map((f) => ({ prompt: [user(`what happened ? ${f}`)], completion: [assistant(`${f} .`)] })),
    { prompt: 'say hi', completion: 'hi' },
  ]);
  file('pairs.jsonl', [
    ...facts.map((f) => ({ prompt: [user(`summarize : ${f}`)], chosen: [assistant(f)], rejected: [assistant(`${f} and more and more`)] })),
    // TRL's implicit prompt: whole conversations that share all but the last turn
    ...facts.map((f) => ({ chosen: [user(`tell me : ${f}`), assistant(f)], rejected: [user(`tell me : ${f}`), assistant('no')] })),
  ]);
  file('prompts.jsonl', [...facts.map((f) => ({ prompt: [user(`summarize : ${f}`)] })), { prompt: 'summarize : bob read a book' }]);
  file('responses.jsonl', [
    { prompt: [user('summarize : jack sold a lamp')], response: 'jack sold a lamp' },
    { prompt: 'summarize : ann fixed the door', response: 'the door' },
  ]);
});

/** The checks every saved folder passes: the source's family, config fields, generation config and dtype, and it loads. */
async function expectKeptSource(dir: string, src: MakeHFModelResult, opts: { valueHead?: boolean } = {}): Promise<void> {
  const cfg = readJson(path.join(dir, 'config.json'));
  const own = src.config;
  expect(cfg.model_type).toBe(own.model_type);
  expect(cfg.torch_dtype).toBe('bfloat16');
  expect(cfg.architectures).toEqual([`${own.model_type === 'qwen2' ? 'Qwen2' : 'Llama'}${opts.valueHead ? 'ForSequenceClassification' : 'ForCausalLM'}`]);
  // fields the engine does not determine come back as the source had them (token ids included)
  for (const k of ['transformers_version', 'bos_token_id', 'eos_token_id', 'rope_theta', 'rope_scaling', 'max_window_layers', 'sliding_window', 'pretraining_tp', 'initializer_range'])
    if (k in own) expect(cfg[k], k).toEqual(own[k]);
  const srcGen = readJson(path.join(src.dir, 'generation_config.json'));
  expect(readJson(path.join(dir, 'generation_config.json'))).toEqual(srcGen);
  const weightFiles = readdirSync(dir).filter((f) => /^model(-\d+-of-\d+)?\.safetensors$/.test(f));
  expect(weightFiles.length).toBeGreaterThan(0);
  for (const f of weightFiles) for (const t of (await readSafetensors(path.join(dir, f))).tensors.values()) expect(t.dtype, `${f} ${t.name}`).toBe('BF16');
  const m = await loadModel(dir, { optimizer: false, device: 'cpu' });
  try {
    expect(Boolean(m.config.valueHead)).toBe(Boolean(opts.valueHead));
    expect(checkpointSource(m)?.dtype).toBe('bfloat16');
  } finally {
    m.dispose();
  }
}

describe('a Qwen2.5 folder through the command line, with its chat template', () => {
  const sft = at('runs', 'sft');
  const s2sRm = at('runs', 's2s-rm');
  const scalarRm = at('runs', 'rm');
  const ppo = at('runs', 'ppo-t');

  it('sft --template chat trains on conversational rows and saves a Qwen2 folder like the source', async () => {
    const out = await run(['sft', '--model', qwen.dir, '--template', 'chat', '--data', at('sft.jsonl'), '--out', sft, '--max-steps', '2', '--batch-size', '3', '--eval-split', '0.2']);
    expect(out).toContain(`template chat (${qwen.dir})`);
    expect(out).toMatch(/eval loss: \d+\.\d{4}/);
    const final = path.join(sft, 'final');
    await expectKeptSource(final, qwen);
    // the chat template is saved beside it; the tokenizer's config keeps the Jinja source too
    const tpl = readJson(path.join(final, 's2s_template.json'));
    expect(tpl.chat.endOfTurn).toBe('<|im_end|>');
    expect(readJson(path.join(final, 'tokenizer_config.json')).chat_template).toBe(readJson(path.join(qwen.dir, 'tokenizer_config.json')).chat_template);
    expect(readJson(path.join(final, 'config.json')).eos_token_id).toBe(151645);
  });

  it('rm train --seq2seq learns both mappings from conversational pairs and rewrites held-out ones', async () => {
    const out = await run(['rm', 'train', '--seq2seq', '--model', path.join(sft, 'final'), '--data', at('pairs.jsonl'), '--out', s2sRm, '--max-steps', '2', '--batch-size', '4', '--eval-split', '0.25', '--eval-rewrites', '1']);
    expect(out).toMatch(/correction \(rejected -> chosen\): exact match \d+\.\d%, token accuracy \d+\.\d% over 1 pairs/);
    await expectKeptSource(path.join(s2sRm, 'final'), qwen);
    expect(readJson(path.join(s2sRm, 'final', 's2s_template.json')).chat.endOfTurn).toBe('<|im_end|>');
  });

  it('rm train (scalar) starts a value head from the SFT model and saves a Qwen2ForSequenceClassification', async () => {
    const out = await run(['rm', 'train', '--model', path.join(sft, 'final'), '--data', at('pairs.jsonl'), '--out', scalarRm, '--max-steps', '2', '--batch-size', '4', '--eval-split', '0.25']);
    expect(out).toMatch(/held-out pair accuracy: \d+\.\d% of 2 pairs/);
    await expectKeptSource(path.join(scalarRm, 'final'), qwen, { valueHead: true });
  });

  it('ppo --reward token runs on conversational prompts and saves the policy and critic as Qwen2 folders', async () => {
    const out = await run([
      'ppo', '--policy', path.join(sft, 'final'), '--reward', 'token', '--reward-model', path.join(s2sRm, 'final'), '--prompts', at('prompts.jsonl'), '--out', ppo,
      '--steps', '1', '--batch-size', '2', '--mini-batch-size', '2', '--ppo-epochs', '1', '--max-new-tokens', '6', '--sample-every', '1', '--samples', '2',
    ]);
    expect(out).toContain('trained 1 PPO steps');
    const [step] = readJsonl(path.join(ppo, 'log.jsonl'));
    for (const k of ['objective/scores', 'objective/kl', 'response_length/mean']) expect(Number.isFinite(step[k]), k).toBe(true);
    const samples = readJsonl(path.join(ppo, 'samples.jsonl'));
    expect(samples).toHaveLength(2);
    await expectKeptSource(path.join(ppo, 'final'), qwen);
    await expectKeptSource(path.join(ppo, 'final-critic'), qwen, { valueHead: true });
  });

  it('generate and eval --model use the chat template; rm score and rm explain read conversational rows', async () => {
    const gen = at('gen.jsonl');
    await run(['generate', '--model', path.join(ppo, 'final'), '--prompts', at('prompts.jsonl'), '--out', gen, '--max-new-tokens', '6']);
    const rows = readJsonl(gen);
    expect(rows).toHaveLength(5);
    // a conversation of one user turn is written as its text
    expect(rows[0].prompt).toBe(`summarize : ${facts[0]}`);
    for (const r of rows) expect(r.response).not.toContain('<|im_end|>');

    // these prompts are not the testbed's: the user's own judge scores them
    const judge = at('length-judge.mjs');
    writeFileSync(judge, 'export const score = (prompt, response) => response.length;\n');
    const evalOut = await run(['eval', '--judge', judge, '--model', path.join(sft, 'final'), '--prompts', at('prompts.jsonl'), '--max-new-tokens', '6']);
    expect(evalOut).toMatch(/^5 responses from .*, judged by length-judge\.mjs/m);

    const scored = at('scored.jsonl');
    await run(['rm', 'score', '--model', path.join(s2sRm, 'final'), '--data', at('responses.jsonl'), '--out', scored]);
    const s = readJsonl(scored);
    expect(s).toHaveLength(2);
    // one score per token of the response as the policy writes it: its text, then <|im_end|>
    expect(s[0].tokens.at(-1)).toBe('<|im_end|>');
    expect(s[0].scores).toHaveLength(s[0].tokens.length);
    const scalarScored = at('scalar-scored.jsonl');
    await run(['rm', 'score', '--model', path.join(scalarRm, 'final'), '--data', at('responses.jsonl'), '--out', scalarScored]);
    expect(readJsonl(scalarScored).every((r) => Number.isFinite(r.reward))).toBe(true);

    const explained = await run(['rm', 'explain', '--model', path.join(s2sRm, 'final'), '--data', at('responses.jsonl'), '--color', 'never']);
    expect(explained).toContain('prompt     user: summarize : jack sold a lamp');
    expect(explained).toMatch(/rewrite {4}/);
  });

  it('generate on the Hub folder itself takes --template chat, a saved s2s_template.json or a .jinja file', async () => {
    const gen = (name: string, template: string) =>
      run(['generate', '--model', qwen.dir, '--template', template, '--prompts', at('prompts.jsonl'), '--out', at(name), '--max-new-tokens', '4']).then(() => readJsonl(at(name)));
    const chat = await gen('gen-chat.jsonl', 'chat');
    // the template the SFT run saved is the folder's own
    expect(await gen('gen-saved.jsonl', path.join(sft, 'final', 's2s_template.json'))).toEqual(chat);
    writeFileSync(
      at('chatml.jinja'),
      "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    );
    expect(await gen('gen-jinja.jsonl', at('chatml.jinja'))).toHaveLength(5);
  });

  it("the seq2seq RM scores a response holding an id past the tokenizer's (Qwen's padded vocabulary), as PPO may sample one", async () => {
    const rm = await loadRewardModel(path.join(s2sRm, 'final'), { device: 'cpu' });
    try {
      const tok = rm.tokenizer;
      expect(tok.vocabSize).toBeLessThan(rm.config.vocabSize);
      const prompt = [user('summarize : jack sold a lamp')];
      const [eot] = stopTokenIds(tok, rm.template);
      const response = [...tok.encode('jack'), 151700, eot];
      const e = encodeRewriteOfGenerated(tok, rm.template, prompt, response, response)!;
      // the reward model reads the policy's own ids, at their places in the source and the target
      expect(e.ids.slice(e.sourceSpan![0], e.sourceSpan![1])).toEqual(response);
      expect(e.ids.slice(e.targetSpan[0], e.targetSpan[1])).toEqual(response);
      const [r] = await extractRewards(rm.model, tok, rm.template, [{ prompt, response }]);
      expect(r.scores).toHaveLength(response.length);
      expect(r.scores.every(Number.isFinite)).toBe(true);
    } finally {
      rm.model.dispose();
    }
  });
});

describe('a sharded Llama 3.2 folder', () => {
  it('sft --template chat keeps its list of eos ids, and its saved template', async () => {
    const out = at('runs', 'llama-sft');
    await run(['sft', '--model', llama.dir, '--template', 'chat', '--data', at('sft.jsonl'), '--out', out, '--max-steps', '1', '--batch-size', '2', '--eval-split', '0']);
    await expectKeptSource(path.join(out, 'final'), llama);
    expect(readJson(path.join(out, 'final', 'config.json')).eos_token_id).toEqual([128001, 128008, 128009]);
    expect(readJson(path.join(out, 'final', 's2s_template.json')).chat.endOfTurn).toBe('<|eot_id|>');
  });

  it('--save-dtype writes the final model in another dtype than the source', async () => {
    const out = at('runs', 'llama-sft-f32');
    await run(['sft', '--model', llama.dir, '--template', 'chat', '--data', at('sft.jsonl'), '--out', out, '--max-steps', '1', '--batch-size', '2', '--eval-split', '0', '--save-dtype', 'float32']);
    const final = path.join(out, 'final');
    expect(readJson(path.join(final, 'config.json')).torch_dtype).toBe('float32');
    const files = readdirSync(final).filter((f) => f.endsWith('.safetensors'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) for (const t of (await readSafetensors(path.join(final, f))).tensors.values()) expect(t.dtype, `${f} ${t.name}`).toBe('F32');
    const bad = await s2s(['sft', '--model', llama.dir, '--data', at('sft.jsonl'), '--out', at('runs', 'x'), '--save-dtype', 'int8', ...CPU]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--save-dtype');
  });

  it('from Node: loads, and PPO with a custom reward runs an iteration and saves a Llama folder like the source', async () => {
    const tok = await Tokenizer.load(llama.dir);
    const template = chatModeTemplate(await loadChatTemplate(llama.dir, tok));
    const policy = await loadModel(llama.dir, { device: 'cpu' });
    expect(policy.config.numLayers).toBe(2);
    const ref = await policy.clone();
    const critic = await policy.clone({ valueHead: true, seed: 1 });
    // clones keep where the model came from, for saving
    expect(checkpointSource(critic)?.dir).toBe(llama.dir);
    // Llama 3.2 stops on <|eot_id|> (its end of turn and eos_token) and on generation_config's other two
    expect(stopTokenIds(tok, template)).toEqual([128009]);
    expect(generationStopIds(policy, tok, template)).toEqual([128009, 128001, 128008]);

    const prompts: Array<string | ChatMessage[]> = ['summarize : jack sold a lamp', [{ role: 'system', content: 'Be brief.' }, user('summarize : ann fixed the door')]];
    const query = encodePrompt(tok, template, prompts[0])!;
    expect(tok.decode(query)).toContain('<|start_header_id|>assistant<|end_header_id|>');
    const steps: PPOStep[] = [];
    const out = at('llama-ppo');
    const trainer = new PPOTrainer({
      policy,
      ref,
      critic,
      tokenizer: tok,
      template,
      reward: { type: 'custom', fn: (_p, response) => response.length / 10 },
      config: { steps: 1, batchSize: 2, miniBatchSize: 1, ppoEpochs: 1, maxNewTokens: 5, lr: 1e-4, criticLr: 1e-4, sampleEvery: 0 },
      outputDir: out,
      onEvent: (e) => void (e.type === 'step' && steps.push(e.data)),
    });
    try {
      const result = await trainer.train(prompts);
      expect(result.steps).toBe(1);
      const [s] = steps;
      expect(s.prompts).toHaveLength(2);
      // a response that stopped ends with one of the stop ids (and has no other); the length statistics leave it out
      const stops = generationStopIds(policy, tok, template);
      const stopped = s.responseIds.map((ids) => stops.includes(ids[ids.length - 1]));
      s.responseIds.forEach((ids) => expect(ids.length).toBeLessThanOrEqual(5));
      expect(s.metrics['val/num_eos_tokens']).toBe(stopped.filter(Boolean).length);
      expect(s.metrics['response_length/mean']).toBeCloseTo((s.responseIds[0].length + s.responseIds[1].length - stopped.filter(Boolean).length) / 2, 10);
      expect(s.responses.every((r, i) => r === decodeGenerated(tok, s.responseIds[i], { skipSpecialTokens: true }))).toBe(true);
    } finally {
      for (const m of [policy, ref, critic]) m.dispose();
    }
    await expectKeptSource(path.join(out, 'final'), llama);
    await expectKeptSource(path.join(out, 'final-critic'), llama, { valueHead: true });
    expect(readJson(path.join(out, 'final', 'config.json')).eos_token_id).toEqual([128001, 128008, 128009]);
  });

  it('saves the source sharded as it came when asked, and a Qwen id past the tokenizer decodes without it', async () => {
    const m = await loadModel(llama.dir, { device: 'cpu' });
    try {
      const dir = at('llama-resaved');
      await saveModel(m, dir, { maxShardSize: 4_000_000 });
      expect(existsSync(path.join(dir, 'model.safetensors.index.json'))).toBe(true);
      await expectKeptSource(dir, llama);
    } finally {
      m.dispose();
    }
    // Qwen pads its embedding past the tokenizer's ids; a generated padding id is left out of the text
    const tok = await Tokenizer.load(qwen.dir);
    expect(tok.vocabSize).toBe(151665);
    const hi = tok.encode('hi');
    const dropped: number[][] = [];
    expect(decodeGenerated(tok, [...hi, 151700], { onDropped: (ids) => dropped.push(ids) })).toBe('hi');
    expect(dropped).toEqual([[151700]]);
    expect(readFileSync(path.join(qwen.dir, 'config.json'), 'utf8')).toContain('"vocab_size": 151936');
  });
});
