// Hugging Face config.json in and out: GPT-2's published config reads as GPT-2 small, ours reads
// back to itself, and the variants the engine does not compute are refused by name.
import { describe, expect, it } from 'vitest';

import { fromHFConfig, toHFConfig } from '@s2s/core';

// config.json of the original gpt2 checkpoint on the Hugging Face hub
const GPT2_SMALL = {
  activation_function: 'gelu_new',
  architectures: ['GPT2LMHeadModel'],
  attn_pdrop: 0.1,
  bos_token_id: 50256,
  embd_pdrop: 0.1,
  eos_token_id: 50256,
  initializer_range: 0.02,
  layer_norm_epsilon: 1e-5,
  model_type: 'gpt2',
  n_ctx: 1024,
  n_embd: 768,
  n_head: 12,
  n_layer: 12,
  n_positions: 1024,
  resid_pdrop: 0.1,
  summary_activation: null,
  summary_first_dropout: 0.1,
  summary_proj_to_labels: true,
  summary_type: 'cls_index',
  summary_use_proj: true,
  task_specific_params: { 'text-generation': { do_sample: true, max_length: 50 } },
  vocab_size: 50257,
};

describe('config.json', () => {
  it("reads GPT-2's published config", () => {
    expect(fromHFConfig(GPT2_SMALL)).toEqual({
      vocabSize: 50257,
      maxSeqLen: 1024,
      numLayers: 12,
      numHeads: 12,
      channels: 768,
      valueHead: false,
    });
  });

  it('round-trips ours, with and without a value head', () => {
    for (const valueHead of [false, true]) {
      const cfg = { vocabSize: 300, maxSeqLen: 64, numLayers: 3, numHeads: 4, channels: 32, valueHead };
      const hf = JSON.parse(JSON.stringify(toHFConfig(cfg)));
      expect(hf.architectures).toEqual([valueHead ? 'GPT2ForSequenceClassification' : 'GPT2LMHeadModel']);
      expect(fromHFConfig(hf)).toEqual(cfg);
    }
  });

  it('refuses what the engine would compute differently, naming the field', () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ model_type: 'llama' }, /model_type is "llama"/],
      [{ activation_function: 'relu' }, /activation_function "relu"/],
      [{ layer_norm_epsilon: 1e-6 }, /layer_norm_epsilon/],
      [{ n_inner: 1000 }, /n_inner must be 4 \* n_embd/],
      [{ scale_attn_weights: false }, /scale_attn_weights/],
      [{ scale_attn_by_inverse_layer_idx: true }, /scale_attn_by_inverse_layer_idx/],
      [{ n_head: 7 }, /n_embd \(768\) must be divisible by n_head \(7\)/],
      [{ vocab_size: undefined }, /vocab_size must be a positive integer, got nothing/],
    ];
    for (const [patch, msg] of bad) expect(() => fromHFConfig({ ...GPT2_SMALL, ...patch }, 'ck/config.json')).toThrow(msg);
    expect(() => fromHFConfig({ ...GPT2_SMALL, n_embd: -1 }, 'ck/config.json')).toThrow(/^ck\/config.json: n_embd/);
  });
});
