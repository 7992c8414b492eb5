// oneDNN's bf16 matmul on a step's shapes with the weight operand B in each layout the engine
// could hand it: plain [K, N] (GPT-2's Conv1D weights, and what the engine gives it today), [N, K]
// read transposed (Llama's nn.Linear weights), and oneDNN's own blocked layout (format_tag::any,
// reordered once beforehand, as a weight cache could hold it between updates). Best of 6 rounds
// of each, GFLOP/s, operands filled with data (untouched buffers read the zero page and look fast).
//   g++ -O2 -std=c++17 benchmarks/profile/onednn_layouts.cc -ldnnl -o /tmp/onednn_layouts && /tmp/onednn_layouts [MxNxK ...]
#include <dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

enum class Layout { plain, transposed, blocked };

double gflops(engine& eng, stream& s, int64_t M, int64_t N, int64_t K, Layout layout, int iters) {
  memory::desc a({M, K}, dt::bf16, tag::ab), c({M, N}, dt::f32, tag::ab);
  memory::desc b_given({K, N}, dt::bf16, layout == Layout::transposed ? tag::ba : tag::ab);
  memory::desc b_asked = layout == Layout::blocked ? memory::desc({K, N}, dt::bf16, tag::any) : b_given;
  matmul::primitive_desc pd(matmul::desc(a, b_asked, c), eng);
  memory A(a, eng), B_given(b_given, eng), C(c, eng);
  for (memory* m : {&A, &B_given}) {
    auto* p = static_cast<uint16_t*>(m->get_data_handle());
    const size_t n = m->get_desc().get_size() / sizeof(uint16_t);
    for (size_t i = 0; i < n; i++) p[i] = (uint16_t)(0x3c00 + (i * 7919) % 256);  // bf16 in [2^-7, 2^-6)
  }
  std::fill_n(static_cast<float*>(C.get_data_handle()), M * N, 0.0f);
  memory B = B_given;
  if (layout == Layout::blocked) {
    B = memory(pd.weights_desc(), eng);
    reorder(B_given, B).execute(s, B_given, B);
  }
  matmul mm(pd);
  auto once = [&] { mm.execute(s, {{DNNL_ARG_SRC, A}, {DNNL_ARG_WEIGHTS, B}, {DNNL_ARG_DST, C}}); };
  for (int i = 0; i < 2; i++) once();
  s.wait();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; i++) once();
  s.wait();
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * M * N * K * iters / sec / 1e9;
}

int main(int argc, char** argv) {
  std::vector<std::vector<int64_t>> shapes;
  for (int i = 1; i < argc; i++) {
    long long m, n, k;
    if (std::sscanf(argv[i], "%lldx%lldx%lld", &m, &n, &k) == 3) shapes.push_back({m, n, k});
  }
  if (shapes.empty())  // the 2048^3 peak, GPT-2 124M's linear layers at B=2 T=256, the 10m config's, its LM head
    shapes = {{2048, 2048, 2048}, {512, 2304, 768}, {512, 3072, 768}, {512, 768, 3072}, {512, 768, 768},
              {2048, 1536, 384}, {2048, 384, 1536}, {512, 50257, 768}};
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  std::printf("bf16 matmul, GFLOP/s, best of 6: B plain [K, N] / transposed [N, K] / oneDNN's blocked layout\n");
  for (const auto& sh : shapes) {
    const int iters = (int)(1e10 / (2.0 * sh[0] * sh[1] * sh[2])) + 3;
    double best[3] = {0, 0, 0};
    for (int r = 0; r < 6; r++)
      for (int l = 0; l < 3; l++) best[l] = std::max(best[l], gflops(eng, s, sh[0], sh[1], sh[2], (Layout)l, iters));
    std::printf("%lldx%lldx%lld: %.0f / %.0f / %.0f\n", (long long)sh[0], (long long)sh[1], (long long)sh[2], best[0],
                best[1], best[2]);
  }
}
