// The model's configuration and its one schema: the keys the binding reads and reports
// (src/napi/model_wrap.cc loops over config_fields()), which native/index.d.ts and @s2s/core's
// config are checked against (test/config-schema.test.ts, through the addon's configSchema()).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace s2s {

struct ModelConfig {
  int vocab_size = 0;       // V
  int max_seq_len = 0;      // maxT (GPT-2's n_positions)
  int num_layers = 0;       // L
  int num_heads = 0;        // NH
  int channels = 0;         // C
  bool value_head = false;  // a scalar head on the final hidden state (HF ...ForSequenceClassification's score)
  std::string arch = "gpt2";  // the architecture (src/arch/<arch>.h); set by the factory's caller, not by JS yet
};
using GPTConfig = ModelConfig;

// One key of the config as JavaScript spells it.
struct ConfigField {
  const char* key;
  enum Kind { integer, boolean } kind;
  using IntMember = int ModelConfig::*;
  using BoolMember = bool ModelConfig::*;
  IntMember int_member;
  BoolMember bool_member;
  int64_t min, max;     // integers: the accepted range
  bool required;        // else the ModelConfig default applies
  const char* doc;
};
const std::vector<ConfigField>& config_fields();

}  // namespace s2s
