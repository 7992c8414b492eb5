// One named tensor inside a model's flat parameter buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace s2s {

struct TensorInfo {
  std::string name;  // the Hugging Face name (a checkpoint made here loads in transformers)
  std::vector<int64_t> shape;
  size_t offset;
  size_t numel;
  bool decay;  // weight decay applies (matrices and embeddings, not biases and norms)
};

// Appends tensors to a layout, each right after the previous one.
struct LayoutBuilder {
  std::vector<TensorInfo> tensors;
  size_t size = 0;
  void add(const std::string& name, std::vector<int64_t> shape, bool decay) {
    size_t n = 1;
    for (int64_t d : shape) n *= (size_t)d;
    tensors.push_back({name, std::move(shape), size, n, decay});
    size += n;
  }
};

// The tensor called `name` inside `base` laid out by `layout`; throws s2s::Error when there is none.
float* tensor_at(const std::vector<TensorInfo>& layout, float* base, const std::string& name);

}  // namespace s2s
