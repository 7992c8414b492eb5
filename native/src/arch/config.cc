// The config schema's one table.
#include "arch/config.h"

#include <limits>

namespace s2s {

ModelConfig ModelConfig::resolved() const {
  ModelConfig c = *this;
  if (c.num_kv_heads == 0) c.num_kv_heads = c.num_heads;
  if (c.head_dim == 0 && c.num_heads > 0) c.head_dim = c.channels / c.num_heads;
  if (c.ffn_size == 0) c.ffn_size = 4 * c.channels;
  return c;
}

const std::vector<ConfigField>& config_fields() {
  using F = ConfigField;
  using M = ModelConfig;
  const int64_t imax = std::numeric_limits<int>::max();
  auto integer = [](const char* key, int M::*m, int64_t min, int64_t max, bool required, const char* doc) {
    F f{key, F::integer};
    f.int_member = m;
    f.min = min;
    f.max = max;
    f.required = required;
    f.doc = doc;
    return f;
  };
  auto boolean = [](const char* key, bool M::*m, const char* doc) {
    F f{key, F::boolean};
    f.bool_member = m;
    f.doc = doc;
    return f;
  };
  auto number = [](const char* key, double M::*m, const char* doc) {
    F f{key, F::number};
    f.number_member = m;
    f.doc = doc;
    return f;
  };
  auto string = [](const char* key, std::string M::*m, const char* choices, const char* doc) {
    F f{key, F::string};
    f.string_member = m;
    f.choices = choices;
    f.doc = doc;
    return f;
  };
  static const std::vector<ConfigField> fields = {
      string("arch", &M::arch, "gpt2|llama", "the architecture: GPT-2, or the Llama family (Llama, Qwen2, Mistral, SmolLM2)"),
      integer("vocabSize", &M::vocab_size, 1, imax, true, "number of token ids (V)"),
      integer("maxSeqLen", &M::max_seq_len, 1, 1 << 20, true, "context length (n_positions, max_position_embeddings)"),
      integer("numLayers", &M::num_layers, 1, 1 << 12, true, "transformer blocks (L)"),
      integer("numHeads", &M::num_heads, 1, 1 << 12, true, "attention (query) heads (NH)"),
      integer("channels", &M::channels, 1, 1 << 20, true, "model width (n_embd, hidden_size)"),
      boolean("valueHead", &M::value_head, "a scalar head on the final hidden state (...ForSequenceClassification's score)"),
      integer("numKvHeads", &M::num_kv_heads, 1, 1 << 12, false,
              "key/value heads (grouped-query attention; default numHeads)"),
      integer("headDim", &M::head_dim, 1, 1 << 12, false, "channels per head (default channels / numHeads)"),
      integer("ffnSize", &M::ffn_size, 1, 1 << 22, false, "the MLP's hidden width (default 4 * channels)"),
      number("normEps", &M::norm_eps, "LayerNorm / RMSNorm epsilon (default 1e-5)"),
      number("ropeTheta", &M::rope_theta, "rotary embedding base (default 10000)"),
      string("ropeScaling", &M::rope_scaling, "none|llama3", "rotary frequency scaling (default none)"),
      number("ropeFactor", &M::rope_factor, "llama3 scaling: factor (default 8)"),
      number("ropeLowFreqFactor", &M::rope_low_freq_factor, "llama3 scaling: low_freq_factor (default 1)"),
      number("ropeHighFreqFactor", &M::rope_high_freq_factor, "llama3 scaling: high_freq_factor (default 4)"),
      integer("ropeOriginalMaxPos", &M::rope_original_max_pos, 1, 1 << 24, false,
              "llama3 scaling: original_max_position_embeddings (default 8192)"),
      boolean("qkvBias", &M::qkv_bias, "biases on the query, key and value projections (Qwen2)"),
      boolean("tieEmbeddings", &M::tie_embeddings, "the LM head is the token embedding (default true)"),
  };
  return fields;
}

}  // namespace s2s
