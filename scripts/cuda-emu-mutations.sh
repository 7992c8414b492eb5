#!/usr/bin/env bash
# Do the emulated CUDA tests (test_ops_emu and test_cuda_emu, what CI runs in place of a GPU)
# catch real kernel bugs? Plants one deliberate bug at a time in a copy of native/ (a missing barrier, a wrong
# reduction width, an off-by-one mask, a wrong cuBLAS operand mapping, ...), rebuilds, and expects
# one of the two to fail. Prints a line per mutation and exits non-zero when one goes unnoticed.
# Takes about 10 minutes on 2 cores (the tests run under AddressSanitizer, as in CI). The working
# tree is never modified.
#   scripts/cuda-emu-mutations.sh
set -uo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/native"
cp -r native/CMakeLists.txt native/src native/tests "$work/native/"
cp -r "$work/native/src" "$work/pristine"
build="$work/build"
echo "== building the emulated CUDA tests"
cmake -S "$work/native" -B "$build" -DS2S_BUILD_TESTS=ON -DS2S_CUDA=off -DCMAKE_BUILD_TYPE=Release >/dev/null &&
  cmake --build "$build" --target test_cuda_emu test_ops_emu -j"$(nproc)" >/dev/null || { echo "build failed"; exit 1; }
for t in test_ops_emu test_cuda_emu; do
  "$build/$t" >/dev/null || { echo "$t fails without any mutation"; exit 1; }
done

missed=0
# mutate FILE PERL-SUBSTITUTION DESCRIPTION [ENV=VALUE ...]
mutate() {
  local file=$1 sub=$2 what=$3
  shift 3
  local f="$work/native/src/cuda/$file"
  perl -0pi -e "$sub" "$f"
  if cmp -s "$f" "$work/pristine/cuda/$file"; then
    echo "?? the mutation did not apply: $what"
    missed=$((missed + 1))
    return
  fi
  local verdict
  if ! cmake --build "$build" --target test_cuda_emu test_ops_emu -j"$(nproc)" >"$work/build.log" 2>&1; then
    verdict="(does not compile)"
  elif env "$@" timeout 300 "$build/test_ops_emu" >"$work/run.log" 2>&1 &&
    env "$@" timeout 300 "$build/test_cuda_emu" >>"$work/run.log" 2>&1; then
    verdict="MISSED"
    missed=$((missed + 1))
  else
    verdict="caught: $(grep -m1 -E 'FAIL|ERROR: AddressSanitizer' "$work/run.log" | sed 's/^ *//; s/^==[0-9]*==//' | cut -c1-110)"
  fi
  printf '%-62s %s\n' "$what" "$verdict"
  cp "$work/pristine/cuda/$file" "$f"
}

mutate common.cuh 's/for \(int o = 16; o > 0; o >>= 1\) v \+= /for (int o = 8; o > 0; o >>= 1) v += /' \
  "warp_sum over 16 lanes instead of 32"
mutate common.cuh 's/v = warp_sum\(v\);\n  __syncthreads\(\);  \/\/ scratch may still be read by a previous call/v = warp_sum(v);/' \
  "block_sum without its first barrier (scratch reused too early)"
mutate layernorm.cu 's/(shared\[c\] = 0.0f;\n)  __syncthreads\(\);/$1/' \
  "layernorm backward: no barrier after zeroing shared sums"
mutate layernorm.cu 's/(atomicAdd\(&db\[c\], d\[c\]\);\n    \}\n  \}\n)  __syncthreads\(\);/$1/' \
  "layernorm backward: no barrier before the global adds"
mutate attention.cu 's/a\[j\] = j <= i \? a\[j\] \* inv : 0.0f;/a[j] = j < i ? a[j] * inv : 0.0f;/' \
  "causal softmax masks the diagonal"
mutate attention.cu 's/for \(int j = warp; j < n; j \+= warps\)/for (int j = warp; j < n - 1; j += warps)/' \
  "decoding attention skips the newest position"
mutate matmul.cu 's/(wmma::mma_sync\(acc\[i\]\[j\], fa\[i\], fb\[j\], acc\[i\]\[j\]\);\n    \}\n)    __syncthreads\(\);/$1/' \
  "bf16 GEMM: no barrier before restaging the tiles" S2S_CUBLAS=off
mutate matmul.cu 's/&As\[wm \* 64 \+ i \* 16\]\[kk\]/&As[wm * 64 + i * 16][kk + (lane % 2) * 16]/' \
  "bf16 GEMM: lanes load different WMMA tiles" S2S_CUBLAS=off
mutate matmul.cu 's/kBK = 32, kPadA = 8, kPadB = 8;/kBK = 32, kPadA = 4, kPadB = 8;/' \
  "bf16 GEMM: A tile padded to a stride WMMA cannot load" S2S_CUBLAS=off
mutate matmul.cu 's/k0 < g.K; k0 \+= kSK\)/k0 < g.K - 1; k0 += kSK)/' \
  "fp32 GEMM drops the last K step when K = 1 mod 16" S2S_CUBLAS=off
mutate matmul.cu 's/Strides\{sb.batch0, sb.batch1, sb.col, sb.row\}/Strides{sb.batch0, sb.batch1, sb.row, sb.col}/' \
  "cuBLAS: B's strides not transposed for a row-major C"
mutate matmul.cu 's/stx = sx.batch1, sty = sy.batch1, stc = sc.batch1;\n  \} else \{/stx = sx.batch0, sty = sy.batch1, stc = sc.batch1;\n  } else {/' \
  "cuBLAS: folded batches stepped by the outer stride"
mutate divergence.cu 's/t < f \? rule.positive/t <= f ? rule.positive/' \
  "divergence: the first diverging token scored as matching"
mutate divergence.cu 's/    counters\[b\] = 0;.*\n//' \
  "divergence: counters not reset for the next call"
mutate sampling.cu 's/pick = chosen != INT_MAX \? chosen : V - 1;/pick = chosen != INT_MAX ? chosen + 1 : V - 1;/' \
  "sampling picks the token after the drawn one"
mutate adamw.cu 's/\(mi \/ bc1\) \/ \(sqrtf\(vi \/ bc2\) \+ eps\)/(mi \/ bc2) \/ (sqrtf(vi \/ bc1) + eps)/' \
  "AdamW swaps its bias corrections"
mutate embedding.cu 's/atomicAdd\(&dwpe\[\(n % T\) \* C \+ c\], d\);/atomicAdd(\&dwpe[(n % T) * C + c], d * (c > 0));/' \
  "embedding backward drops channel 0 of the position gradient"
mutate layernorm.cu 's/c < 2 \* C; c \+= blockDim.x\) shared\[c\] = 0.0f;/c <= 2 * C; c += blockDim.x) shared[c] = 0.0f;/' \
  "layernorm backward writes one float past its dynamic shared memory"
mutate sampling.cu 's/(Scan\(scan\).InclusiveSum\(p, incl, total\);\n      float base = carry;\n)      __syncthreads\(\);/$1/' \
  "sampling reuses the scan's storage without a barrier"
mutate residual.cu 's/if \(i < N\) out\[i\] = a\[i\] \+ b\[i\];/if (i <= N) out[i] = a[i] + b[i];/' \
  "residual add reads and writes one element past its buffers"

echo
if [ $missed -eq 0 ]; then echo "every mutation was caught"; else echo "$missed mutation(s) missed"; fi
[ $missed -eq 0 ]
