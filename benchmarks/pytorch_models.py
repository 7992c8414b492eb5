"""PyTorch (CPU) peer of the engine's benchmark rows: GPT-2 and Llama written from their published
definitions.

Run by benchmarks/pytorch.ts, one child process per job (like the engine's and tfjs's rows):

    python3 benchmarks/pytorch_models.py --probe        what torch this is: version, BLAS, oneDNN ISA, threads
    python3 benchmarks/pytorch_models.py --job JSON     one training-step or generation measurement
    python3 benchmarks/pytorch_models.py --params JSON  parameter count of that model config (the engine's
                                                        resolved config; or V,CTX,L,NH,C for GPT-2)
    python3 benchmarks/pytorch_models.py --parity DIR   this model against the engine's weights and step

The last line of stdout is `S2S_RESULT <json>`. The model config's `arch` picks the model.

arch 'gpt2' is Hugging Face's GPT2LMHeadModel, written out here because `transformers` is not
installed: learned token (wte) and position (wpe) embeddings, pre-LayerNorm blocks (eps 1e-5),
c_attn / c_proj / c_fc in GPT-2's Conv1D layout (weight [in, out], y = x @ W + b), GELU with the
tanh approximation, causal attention, final LayerNorm, LM head tied to wte, no dropout.

arch 'llama' is Hugging Face's LlamaForCausalLM (modeling_llama.py), likewise written out, with the
same parameter names (model.embed_tokens, model.layers.l.{input_layernorm, self_attn.{q,k,v,o}_proj,
post_attention_layernorm, mlp.{gate,up,down}_proj}, model.norm, lm_head when untied): LlamaRMSNorm
(computed in fp32, cast back), rotary embeddings by rotate_half with HF's inv_freq ('default' or
'llama3' scaling; cos/sin in fp32, cast to the hidden state's dtype), grouped-query attention by
repeat_kv, F.scaled_dot_product_attention where torch has it (HF's "sdpa") else HF's eager attention
(matmul, softmax in fp32), SwiGLU MLP (down(silu(gate(x)) * up(x))), q/k/v biases when qkvBias
(Qwen2), LM head tied to embed_tokens unless tieEmbeddings is false; HF's initialisation (normal
0.02, norms 1).

The training step is what the engine's benchmark step does: forward over B x T tokens, mean
cross-entropy against the next tokens (the engine's loss: backward of dlogprob = -1/(B*T)),
backward, clipping of the global gradient norm at 1.0, AdamW (lr 1e-4, betas 0.9/0.999, eps 1e-8,
weight decay 0.1 on matrices and embeddings, none on biases and norm weights, as the engine).
Generation: one batched prefill over the prompt (LM head on the last position only), then one
decoding step per new token against a preallocated KV cache (Llama: of the key/value heads, as
HF's cache), sampling at temperature 1; every row generates exactly the requested number of tokens
(no EOS), as the engine's generation rows.

`pytorch-bf16` runs the forward (and the loss) under torch.autocast('cpu', dtype=torch.bfloat16);
weights, gradients and optimizer state stay fp32, backward runs outside the autocast region as
PyTorch recommends.
"""

import contextlib
import ctypes
import json
import math
import os
import re
import resource
import subprocess
import sys
import time

RESULT_MARK = "S2S_RESULT "


def emit(obj):
    sys.stdout.write(RESULT_MARK + json.dumps(obj) + "\n")
    sys.stdout.flush()


# --- what torch runs on ------------------------------------------------------------------------


def loaded_libraries():
    try:
        with open("/proc/self/maps") as f:
            paths = {fields[-1] for fields in (line.split() for line in f) if len(fields) >= 6 and fields[-1].startswith("/")}
        return sorted(p for p in paths if p.endswith(".so") or ".so." in p)
    except OSError:
        return []


def openblas_info():
    """OpenBLAS's config string, core and thread count when torch's BLAS is OpenBLAS (Debian's
    torch links the generic libblas.so.3, which update-alternatives points at a BLAS)."""
    libs = [p for p in loaded_libraries() if "blas" in os.path.basename(p).lower()]
    info = {"libraries": libs}
    for p in libs:
        try:
            lib = ctypes.CDLL(p)
            lib.openblas_get_config.restype = ctypes.c_char_p
            lib.openblas_get_corename.restype = ctypes.c_char_p
            info["openblas"] = {
                "config": lib.openblas_get_config().decode(),
                "core": lib.openblas_get_corename().decode(),
                "threads": int(lib.openblas_get_num_threads()),
            }
            info["_lib"] = lib
            break
        except (OSError, AttributeError):
            continue
    if "openblas" not in info:
        if any(os.path.basename(p).startswith("libblas.so") and "openblas" not in p for p in libs):
            info["warning"] = "torch's BLAS is not OpenBLAS (the reference BLAS is ~30x slower: apt-get install libopenblas0-pthread)"
    return info


def set_threads(torch, n):
    torch.set_num_threads(n)
    info = openblas_info()
    lib = info.pop("_lib", None)
    if lib is not None:
        try:
            lib.openblas_set_num_threads(ctypes.c_int(n))
            info["openblas"]["threads"] = int(lib.openblas_get_num_threads())
        except AttributeError:
            pass
    return info


def onednn_isa():
    """The ISA oneDNN dispatches to, from its verbose line (in a child: the verbose flag is read once)."""
    code = (
        "import torch\n"
        "a = torch.randn(64, 64)\n"
        "with torch.autocast('cpu', dtype=torch.bfloat16):\n"
        "    (a @ a).sum()\n"
    )
    env = dict(os.environ, ONEDNN_VERBOSE="1", DNNL_VERBOSE="1")
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    isa, kernel = None, None
    for line in out.splitlines():
        if ",isa:" in line and isa is None:
            isa = line.split(",isa:", 1)[1].strip()
        if ",exec,cpu,matmul," in line and kernel is None:
            kernel = line.split(",")[4]
    return {"isa": isa, "bf16MatmulKernel": kernel}


def probe():
    import torch

    blas = openblas_info()
    blas.pop("_lib", None)
    config = torch.__config__.show()
    found = re.search(r"BLAS_INFO=([^,\s]+)", config)
    blas_info = found.group(1) if found else None
    emit(
        {
            "python": sys.executable,
            "pythonVersion": sys.version.split()[0],
            "torch": torch.__version__,
            "buildBlasInfo": blas_info,
            "blas": blas,
            "mkldnn": bool(torch.backends.mkldnn.is_available()),
            "mkl": bool(torch.backends.mkl.is_available()),
            "onednn": onednn_isa(),
            "cpuCapability": next((l.split(":", 1)[1].strip() for l in config.splitlines() if "CPU capability usage" in l), None),
            "defaultThreads": torch.get_num_threads(),
            "importRssMB": max_rss_mb(),  # what a Python that imported torch holds before any model
            "sdpa": hasattr(torch.nn.functional, "scaled_dot_product_attention"),
            "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
            "config": config,
        }
    )


# --- the model ---------------------------------------------------------------------------------


def build_model(torch, m):
    """The model of an engine config (resolved: every field present; `arch` absent means GPT-2)."""
    if m.get("arch", "gpt2") == "llama":
        return build_llama(torch, m)
    if m.get("valueHead"):
        raise SystemExit("the benchmark models have no value head")
    return build_gpt2(torch, m["vocabSize"], m["maxSeqLen"], m["numLayers"], m["numHeads"], m["channels"])


def build_gpt2(torch, V, CTX, L, NH, C):
    nn = torch.nn
    F = torch.nn.functional
    sdpa = getattr(F, "scaled_dot_product_attention", None)

    class Conv1D(nn.Module):
        """GPT-2's Conv1D: a linear layer with its weight stored [in, out]."""

        def __init__(self, nx, nf):
            super().__init__()
            self.weight = nn.Parameter(torch.empty(nx, nf))
            self.bias = nn.Parameter(torch.zeros(nf))
            nn.init.normal_(self.weight, std=0.02)

        def forward(self, x):
            shape = x.shape[:-1] + (self.weight.shape[1],)
            return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(shape)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = Conv1D(C, 3 * C)
            self.c_proj = Conv1D(C, C)
            nn.init.normal_(self.c_proj.weight, std=0.02 / math.sqrt(2 * L))
            # HF keeps this as a non-persistent buffer; not a parameter.
            self.register_buffer("bias", torch.tril(torch.ones(CTX, CTX, dtype=torch.bool)), persistent=False)

        def forward(self, x, cache=None, pos=0):
            B, T, _ = x.shape
            hd = C // NH
            q, k, v = self.c_attn(x).split(C, dim=2)
            q = q.view(B, T, NH, hd).transpose(1, 2)
            k = k.view(B, T, NH, hd).transpose(1, 2)
            v = v.view(B, T, NH, hd).transpose(1, 2)
            if cache is not None:
                kc, vc = cache  # [B, NH, maxT, hd], written in place
                kc[:, :, pos : pos + T] = k.to(kc.dtype)
                vc[:, :, pos : pos + T] = v.to(vc.dtype)
                k = kc[:, :, : pos + T].to(q.dtype)
                v = vc[:, :, : pos + T].to(q.dtype)
            S = k.shape[2]
            causal = T > 1  # one new query attends every cached key
            if sdpa is not None:
                if causal and pos == 0:
                    y = sdpa(q, k, v, is_causal=True)
                else:
                    y = sdpa(q, k, v, attn_mask=self.bias[pos : pos + T, :S] if causal else None)
            else:
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
                if causal:
                    att = att.masked_fill(~self.bias[pos : pos + T, :S], float("-inf"))
                att = F.softmax(att, dim=-1)
                y = att.to(v.dtype) @ v
            y = y.transpose(1, 2).reshape(B, T, C)
            return self.c_proj(y)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = Conv1D(C, 4 * C)
            self.c_proj = Conv1D(4 * C, C)
            nn.init.normal_(self.c_proj.weight, std=0.02 / math.sqrt(2 * L))

        def forward(self, x):
            return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(C, eps=1e-5)
            self.attn = Attention()
            self.ln_2 = nn.LayerNorm(C, eps=1e-5)
            self.mlp = MLP()

        def forward(self, x, cache=None, pos=0):
            x = x + self.attn(self.ln_1(x), cache, pos)
            return x + self.mlp(self.ln_2(x))

    class GPT2LMHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(V, C)
            self.wpe = nn.Embedding(CTX, C)
            nn.init.normal_(self.wte.weight, std=0.02)
            nn.init.normal_(self.wpe.weight, std=0.02)
            self.h = nn.ModuleList([Block() for _ in range(L)])
            self.ln_f = nn.LayerNorm(C, eps=1e-5)
            self.kv_heads, self.head_dim = NH, C // NH  # the KV cache's shape per layer

        def forward(self, idx, caches=None, pos=0, last_only=False):
            T = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(pos, pos + T, device=idx.device))
            for l, block in enumerate(self.h):
                x = block(x, caches[l] if caches is not None else None, pos)
            x = self.ln_f(x)
            if last_only:
                x = x[:, -1:, :]
            return F.linear(x, self.wte.weight)  # LM head tied to wte

    return GPT2LMHead()


def rope_inv_freq(torch, m):
    """HF's modeling_rope_utils: _compute_default_rope_parameters, or _compute_llama3_parameters."""
    hd = m["headDim"]
    inv_freq = 1.0 / (m["ropeTheta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    if m.get("ropeScaling", "none") == "none":
        return inv_freq
    factor, low, high, old = m["ropeFactor"], m["ropeLowFreqFactor"], m["ropeHighFreqFactor"], m["ropeOriginalMaxPos"]
    low_freq_wavelen, high_freq_wavelen = old / low, old / high
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old / wavelen - low) / (high - low)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)


def build_llama(torch, m):
    nn = torch.nn
    F = torch.nn.functional
    sdpa = getattr(F, "scaled_dot_product_attention", None)
    V, CTX, L, NH, C = m["vocabSize"], m["maxSeqLen"], m["numLayers"], m["numHeads"], m["channels"]
    KVH, hd, FF, eps = m["numKvHeads"], m["headDim"], m["ffnSize"], m["normEps"]
    qkv_bias, tied = bool(m.get("qkvBias", False)), bool(m.get("tieEmbeddings", True))
    if m.get("valueHead"):
        raise SystemExit("the benchmark models have no value head")
    n_rep = NH // KVH

    def linear(n_in, n_out, bias=False):
        layer = nn.Linear(n_in, n_out, bias=bias)
        nn.init.normal_(layer.weight, std=0.02)  # LlamaPreTrainedModel._init_weights
        if bias:
            nn.init.zeros_(layer.bias)
        return layer

    class RMSNorm(nn.Module):
        """LlamaRMSNorm."""

        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(C))

        def forward(self, x):
            input_dtype = x.dtype
            x = x.to(torch.float32)
            variance = x.pow(2).mean(-1, keepdim=True)
            x = x * torch.rsqrt(variance + eps)
            return self.weight * x.to(input_dtype)

    def rotate_half(x):
        x1 = x[..., : x.shape[-1] // 2]
        x2 = x[..., x.shape[-1] // 2 :]
        return torch.cat((-x2, x1), dim=-1)

    def repeat_kv(x):
        if n_rep == 1:
            return x
        b, h, s, d = x.shape
        return x[:, :, None, :, :].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = linear(C, NH * hd, qkv_bias)
            self.k_proj = linear(C, KVH * hd, qkv_bias)
            self.v_proj = linear(C, KVH * hd, qkv_bias)
            self.o_proj = linear(NH * hd, C)

        def forward(self, x, cos, sin, mask, cache=None, pos=0):
            B, T, _ = x.shape
            q = self.q_proj(x).view(B, T, NH, hd).transpose(1, 2)
            k = self.k_proj(x).view(B, T, KVH, hd).transpose(1, 2)
            v = self.v_proj(x).view(B, T, KVH, hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin  # apply_rotary_pos_emb (cos, sin: [T, hd])
            k = k * cos + rotate_half(k) * sin
            if cache is not None:
                kc, vc = cache  # [B, KVH, maxT, hd], written in place
                kc[:, :, pos : pos + T] = k.to(kc.dtype)
                vc[:, :, pos : pos + T] = v.to(vc.dtype)
                k = kc[:, :, : pos + T].to(q.dtype)
                v = vc[:, :, : pos + T].to(q.dtype)
            S = k.shape[2]
            k, v = repeat_kv(k), repeat_kv(v)
            causal = T > 1  # one new query attends every cached key
            if sdpa is not None:
                if torch.is_autocast_cpu_enabled():  # what autocast does to sdpa where it lists it
                    dt = torch.get_autocast_cpu_dtype()
                    q, k, v = q.to(dt), k.to(dt), v.to(dt)
                else:
                    k, v = k.to(q.dtype), v.to(q.dtype)
                if causal and pos == 0:
                    y = sdpa(q, k, v, is_causal=True)
                else:
                    y = sdpa(q, k, v, attn_mask=mask[pos : pos + T, :S] if causal else None)
            else:  # eager_attention_forward
                att = torch.matmul(q, k.transpose(2, 3)) * hd**-0.5
                if causal:
                    att = att.masked_fill(~mask[pos : pos + T, :S], float("-inf"))
                att = F.softmax(att, dim=-1, dtype=torch.float32).to(q.dtype)
                y = torch.matmul(att, v)
            y = y.transpose(1, 2).reshape(B, T, NH * hd)
            return self.o_proj(y)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate_proj = linear(C, FF)
            self.up_proj = linear(C, FF)
            self.down_proj = linear(FF, C)

        def forward(self, x):
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))

    class DecoderLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm = RMSNorm()
            self.self_attn = Attention()
            self.post_attention_layernorm = RMSNorm()
            self.mlp = MLP()

        def forward(self, x, cos, sin, mask, cache=None, pos=0):
            x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, pos)
            return x + self.mlp(self.post_attention_layernorm(x))

    class LlamaModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(V, C)
            nn.init.normal_(self.embed_tokens.weight, std=0.02)
            self.layers = nn.ModuleList([DecoderLayer() for _ in range(L)])
            self.norm = RMSNorm()

    class LlamaForCausalLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = LlamaModel()
            if not tied:
                self.lm_head = linear(C, V)
            # LlamaRotaryEmbedding's tables for every position (fp32), and the causal mask: buffers, not parameters.
            freqs = torch.outer(torch.arange(CTX, dtype=torch.float32), rope_inv_freq(torch, m).float())
            emb = torch.cat((freqs, freqs), dim=-1)
            self.register_buffer("rope_cos", emb.cos(), persistent=False)
            self.register_buffer("rope_sin", emb.sin(), persistent=False)
            self.register_buffer("causal", torch.tril(torch.ones(CTX, CTX, dtype=torch.bool)), persistent=False)
            self.kv_heads, self.head_dim = KVH, hd  # the KV cache's shape per layer

        def forward(self, idx, caches=None, pos=0, last_only=False):
            T = idx.shape[1]
            x = self.model.embed_tokens(idx)
            cos = self.rope_cos[pos : pos + T].to(x.dtype)
            sin = self.rope_sin[pos : pos + T].to(x.dtype)
            for l, layer in enumerate(self.model.layers):
                x = layer(x, cos, sin, self.causal, caches[l] if caches is not None else None, pos)
            x = self.model.norm(x)
            if last_only:
                x = x[:, -1:, :]
            return F.linear(x, self.model.embed_tokens.weight if tied else self.lm_head.weight)

    return LlamaForCausalLM()


def num_params(model):
    return sum(p.numel() for p in model.parameters())


# --- timing (Benchmark.js's statistics) --------------------------------------------------------

T_TABLE = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
           11: 2.201, 12: 2.179, 13: 2.16, 14: 2.145, 15: 2.131, 16: 2.12, 17: 2.11, 18: 2.101, 19: 2.093,
           20: 2.086, 21: 2.08, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.06, 26: 2.056, 27: 2.052, 28: 2.048,
           29: 2.045, 30: 2.042}


def bench(fn, min_samples, max_time, first_seconds):
    """Samples of whole calls until there are min_samples and max_time seconds have passed, as
    Benchmark.js samples; calls shorter than 50 ms are repeated within a sample, as its minTime."""
    count = max(1, math.ceil(0.05 / max(first_seconds, 1e-6)))
    samples, elapsed = [], 0.0
    while len(samples) < min_samples or elapsed <= max_time:
        t0 = time.perf_counter()
        for _ in range(count):
            fn()
        dt = time.perf_counter() - t0
        elapsed += dt
        samples.append(dt / count)
    n = len(samples)
    mean = sum(samples) / n
    variance = sum((s - mean) ** 2 for s in samples) / (n - 1) if n > 1 else 0.0
    sem = math.sqrt(variance) / math.sqrt(n)
    critical = T_TABLE.get(max(n - 1, 1), 1.96)
    return {"mean": mean, "rme": (sem * critical / mean) * 100 if mean > 0 else 0.0, "samples": n}


def make_batch(V, B, T):
    """benchmarks/train-step.ts's makeBatch: the same tokens the engine and tfjs get."""
    s = 12345
    ids = []
    for _ in range(B * T + 1):
        s = (s * 1103515245 + 12345) & 0xFFFFFFFF
        ids.append((s >> 8) % V)
    return ids[: B * T], ids[1 : B * T + 1]


def max_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, as Node's maxRSS


# --- jobs --------------------------------------------------------------------------------------


def run_job(job):
    import torch

    threads = int(job["threads"])
    blas = set_threads(torch, threads)
    torch.manual_seed(1)
    m = job["model"]
    V, CTX, L = m["vocabSize"], m["maxSeqLen"], m["numLayers"]
    model = build_model(torch, m)
    params = num_params(model)
    if job.get("expectedParams") is not None and params != job["expectedParams"]:
        raise SystemExit(f"parameter count {params} differs from the engine's {job['expectedParams']}: not the same model")
    bf16 = job["backend"] == "pytorch-bf16"
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    effort = job["effort"]
    notes = [blas["warning"]] if "warning" in blas else []  # the rest is in the probe's header line
    ob = blas.get("openblas")
    common = {
        "config": job["config"],
        "backend": job["backend"],
        "params": params,
        "threads": torch.get_num_threads(),
        "blasThreads": ob["threads"] if ob else None,
    }

    if job["kind"] == "train":
        B, T = job["B"], job["T"]
        tok, tgt = make_batch(V, B, T)
        tokens = torch.tensor(tok, dtype=torch.long).view(B, T)
        targets = torch.tensor(tgt, dtype=torch.long).view(B * T)
        opt = make_optimizer(torch, model, 1e-4)
        params_list = list(model.parameters())
        loss_box = [0.0]

        def step():
            with autocast():
                logits = model(tokens)
                loss = torch.nn.functional.cross_entropy(logits.view(B * T, V).float(), targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params_list, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss_box[0] = float(loss.detach())

        t0 = time.perf_counter()
        step()
        first = time.perf_counter() - t0
        loss_first = loss_box[0]
        timing = bench(step, effort["minSamples"], effort["maxTime"], first)
        emit(dict(common, kind="train", tokensPerStep=B * T, step=timing, firstStepSeconds=first,
                  lossFirst=loss_first, lossLast=loss_box[0], maxRssMB=max_rss_mb(), notes=notes))
        return

    # generation
    P, N = job["promptLen"], job["newTokens"]
    maxT = P + N
    if maxT > CTX:
        raise SystemExit(f"prompt {P} + {N} new tokens exceeds the context {CTX}")
    model.eval()
    KVH, hd = model.kv_heads, model.head_dim
    cache_dtype = torch.bfloat16 if bf16 else torch.float32
    runs = []
    with torch.inference_mode():
        for Bg in job["batches"]:
            ids, _ = make_batch(V, Bg, P)
            prompts = torch.tensor(ids, dtype=torch.long).view(Bg, P)
            caches = [(torch.empty(Bg, KVH, maxT, hd, dtype=cache_dtype), torch.empty(Bg, KVH, maxT, hd, dtype=cache_dtype)) for _ in range(L)]
            gen = torch.Generator().manual_seed(7)

            def generate():
                out = torch.empty(Bg, N, dtype=torch.long)
                with autocast():
                    logits = model(prompts, caches, 0, last_only=True)  # prefill
                    for s in range(N):
                        probs = torch.softmax(logits[:, -1, :].float(), dim=-1)  # temperature 1
                        nxt = torch.multinomial(probs, 1, generator=gen)
                        out[:, s] = nxt[:, 0]
                        if s == N - 1:
                            break
                        logits = model(nxt, caches, P + s)
                return out

            t0 = time.perf_counter()
            generate()
            first = time.perf_counter() - t0
            timing = bench(generate, effort["minSamples"], effort["maxTime"], first)
            runs.append({"batch": Bg, "timing": timing, "tokensPerSec": Bg * N / timing["mean"]})
    emit(dict(common, kind="generate", promptLen=P, newTokens=N, runs=runs, maxRssMB=max_rss_mb(), notes=notes))


def make_optimizer(torch, model, lr):
    """AdamW as the engine's: weight decay 0.1 on matrices and embeddings, none on biases and norm weights."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.999), eps=1e-8,
    )


def parity(directory):
    """The engine's weights, batch, log-probabilities and post-step weights (written by
    benchmarks/pytorch.ts) against this model's: forward, loss, gradient norm and one AdamW step."""
    import torch

    F = torch.nn.functional
    with open(os.path.join(directory, "meta.json")) as f:
        meta = json.load(f)

    def read(name):
        with open(os.path.join(directory, name), "rb") as f:
            return torch.frombuffer(bytearray(f.read()), dtype=torch.float32)

    m = meta["model"]
    V = m["vocabSize"]
    B, T = meta["B"], meta["T"]
    model = build_model(torch, m)
    named = dict(model.named_parameters())
    p0, p1, engine_logprob = read("params0.f32"), read("params1.f32"), read("logprob.f32")

    def engine_name(name):
        # GPT-2's engine names carry HF's "transformer." prefix; Llama's match HF's (and this model's) as they are.
        return name[len("transformer."):] if name.startswith("transformer.") else name

    seen = set()
    with torch.no_grad():
        for t in meta["layout"]:
            name = engine_name(t["name"])
            if name not in named or list(named[name].shape) != t["shape"]:
                raise SystemExit(f"engine tensor {t['name']} {t['shape']} has no counterpart here")
            named[name].copy_(p0[t["offset"] : t["offset"] + t["numel"]].view(t["shape"]))
            seen.add(name)
    if seen != set(named):
        raise SystemExit(f"parameters the engine does not have: {sorted(set(named) - seen)}")

    tokens = torch.tensor(meta["tokens"], dtype=torch.long).view(B, T)
    targets = torch.tensor(meta["targets"], dtype=torch.long)
    logprob = -F.cross_entropy(model(tokens).view(B * T, V), targets, reduction="none")
    loss = -logprob.mean()
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(list(model.parameters()), meta["maxGradNorm"])
    make_optimizer(torch, model, meta["lr"]).step()
    with torch.no_grad():
        after = torch.empty_like(p1)
        for t in meta["layout"]:
            after[t["offset"] : t["offset"] + t["numel"]] = named[engine_name(t["name"])].reshape(-1)
        diff = (after - p1).abs()
    emit(
        {
            "config": meta["config"],
            "logprobMaxAbsDiff": float((logprob.detach() - engine_logprob).abs().max()),
            "lossEngine": float(-engine_logprob.mean()),
            "lossTorch": float(loss.detach()),
            "gradNormEngine": meta["gradNorm"],
            "gradNormTorch": float(norm),
            "paramMaxAbsDiff": float(diff.max()),
            "paramsOffByOver1PctLr": int((diff > 0.01 * meta["lr"]).sum()),
            "lr": meta["lr"],
            "numParams": int(p1.numel()),
        }
    )


def main(argv):
    if len(argv) >= 1 and argv[0] == "--probe":
        return probe()
    if len(argv) >= 2 and argv[0] == "--params":
        import torch

        if argv[1].lstrip().startswith("{"):
            return emit({"params": num_params(build_model(torch, json.loads(argv[1])))})
        V, CTX, L, NH, C = (int(x) for x in argv[1].split(","))
        return emit({"params": num_params(build_gpt2(torch, V, CTX, L, NH, C))})
    if len(argv) >= 2 and argv[0] == "--parity":
        return parity(argv[1])
    if len(argv) >= 2 and argv[0] == "--job":
        return run_job(json.loads(argv[1]))
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]) or 0)
