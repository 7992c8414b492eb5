// The model's configuration and its one schema: the keys the binding reads and reports
// (src/napi/model_wrap.cc loops over config_fields()), which native/index.d.ts and @s2s/core's
// config are checked against (test/config-schema.test.ts, through the addon's configSchema()).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace s2s {

struct ModelConfig {
  int vocab_size = 0;         // V
  int max_seq_len = 0;        // maxT (GPT-2's n_positions, Llama's max_position_embeddings)
  int num_layers = 0;         // L
  int num_heads = 0;          // NH (query heads)
  int channels = 0;           // C (the residual stream's width)
  bool value_head = false;    // a scalar head on the final hidden state (HF ...ForSequenceClassification's score)
  std::string arch = "gpt2";  // the architecture (src/arch/<arch>.h): "gpt2" or "llama"
  // Llama family (GPT-2 allows only the values these resolve to for it). 0 means "derive":
  int num_kv_heads = 0;  // KVH (grouped-query attention): 0 -> NH
  int head_dim = 0;      // hd: 0 -> C / NH
  int ffn_size = 0;      // the MLP's hidden width: 0 -> 4 C (GPT-2); Llama's intermediate_size
  double norm_eps = 1e-5;       // LayerNorm / RMSNorm epsilon
  double rope_theta = 10000.0;  // RoPE base
  std::string rope_scaling = "none";  // "none" or "llama3"
  double rope_factor = 8.0, rope_low_freq_factor = 1.0, rope_high_freq_factor = 4.0;  // llama3 scaling
  int rope_original_max_pos = 8192;                                                  // llama3 scaling
  bool qkv_bias = false;       // biases on the q/k/v projections (Qwen2)
  bool tie_embeddings = true;  // the LM head is the token embedding

  // The derived defaults filled in (0 -> their values); what a model reports as its config.
  ModelConfig resolved() const;
};
using GPTConfig = ModelConfig;

// One key of the config as JavaScript spells it.
struct ConfigField {
  const char* key;
  enum Kind { integer, boolean, number, string } kind;
  using IntMember = int ModelConfig::*;
  using BoolMember = bool ModelConfig::*;
  using NumberMember = double ModelConfig::*;
  using StringMember = std::string ModelConfig::*;
  IntMember int_member = nullptr;
  BoolMember bool_member = nullptr;
  NumberMember number_member = nullptr;
  StringMember string_member = nullptr;
  int64_t min = 0, max = 0;     // integers: the accepted range
  bool required = false;        // else the ModelConfig default applies
  const char* doc = "";
  const char* choices = nullptr;  // strings: the accepted values, separated by '|'
};
const std::vector<ConfigField>& config_fields();

}  // namespace s2s
