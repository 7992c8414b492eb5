// The config schema's one table.
#include "arch/config.h"

#include <limits>

namespace s2s {

const std::vector<ConfigField>& config_fields() {
  using F = ConfigField;
  static const std::vector<ConfigField> fields = {
      {"vocabSize", F::integer, &ModelConfig::vocab_size, nullptr, 1, std::numeric_limits<int>::max(), true,
       "number of token ids (V)"},
      {"maxSeqLen", F::integer, &ModelConfig::max_seq_len, nullptr, 1, 1 << 20, true,
       "context length (GPT-2's n_positions)"},
      {"numLayers", F::integer, &ModelConfig::num_layers, nullptr, 1, 1 << 12, true, "transformer blocks (L)"},
      {"numHeads", F::integer, &ModelConfig::num_heads, nullptr, 1, 1 << 12, true, "attention heads (NH)"},
      {"channels", F::integer, &ModelConfig::channels, nullptr, 1, 1 << 20, true,
       "model width (GPT-2's n_embd)"},
      {"valueHead", F::boolean, nullptr, &ModelConfig::value_head, 0, 1, false,
       "a scalar head on the final hidden state (GPT2ForSequenceClassification's score)"},
  };
  return fields;
}

}  // namespace s2s
