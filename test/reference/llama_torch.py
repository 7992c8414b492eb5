#!/usr/bin/env python3
"""The Llama family's forward, gradients and greedy generation in torch, transcribed from Hugging
Face's modeling_llama.py / modeling_qwen2.py and modeling_rope_utils.py (no transformers needed):
an opt-in cross-check of test/reference/tfjs-llama.ts, driven by test/llama-vs-reference.test.ts
when S2S_LLAMA_TORCH=1.

usage: llama_torch.py IN.json OUT.json [float32|float64]

IN.json: {config (the reference's resolved config), params {name: flat list}, shapes {name: shape},
tokens, targets (-1: none), B, T, dlogprob, dvalue, temperature, prompts, maxNewTokens}
OUT.json: {logprob, entropy, values, grads {name: flat list}, greedy [[new tokens] per prompt]}
"""
import json
import math
import sys

import torch
from torch import nn


def compute_default_rope_parameters(base, dim):
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def compute_llama3_parameters(base, dim, factor, low_freq_factor, high_freq_factor, old_context_len):
    inv_freq = compute_default_rope_parameters(base, dim)

    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor

    wavelen = 2 * math.pi / inv_freq
    # wavelen < high_freq_wavelen: do nothing
    # wavelen > low_freq_wavelen: divide by factor
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    # otherwise: interpolate between the two, using a smooth factor
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    inv_freq_llama = torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
    return inv_freq_llama


class RMSNorm(nn.Module):
    def __init__(self, weight, eps):
        super().__init__()
        self.weight = weight
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)
    q_embed = (q * cos) + (rotate_half(q) * sin)
    k_embed = (k * cos) + (rotate_half(k) * sin)
    return q_embed, k_embed


def repeat_kv(hidden_states, n_rep):
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


class Llama:
    def __init__(self, cfg, params, dtype):
        self.cfg = cfg
        self.dtype = dtype
        self.p = {k: v.to(dtype).requires_grad_(True) for k, v in params.items()}
        hd = cfg["headDim"]
        if cfg["ropeScaling"] == "llama3":
            inv = compute_llama3_parameters(
                cfg["ropeTheta"], hd, cfg["ropeFactor"], cfg["ropeLowFreqFactor"],
                cfg["ropeHighFreqFactor"], cfg["ropeOriginalMaxPos"])
        else:
            inv = compute_default_rope_parameters(cfg["ropeTheta"], hd)
        self.inv_freq = inv  # float32, as Hugging Face keeps it

    def rotary(self, position_ids):
        # LlamaRotaryEmbedding.forward: float32 freqs, cat(freqs, freqs), cos/sin (attention_scaling 1)
        inv_freq_expanded = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
        position_ids_expanded = position_ids[:, None, :].float()
        freqs = (inv_freq_expanded @ position_ids_expanded).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(self.dtype), emb.sin().to(self.dtype)

    def linear(self, x, name, bias=False):
        w = self.p[name + ".weight"]
        return nn.functional.linear(x, w, self.p[name + ".bias"] if bias else None)

    def hidden(self, input_ids):
        cfg, p = self.cfg, self.p
        B, T = input_ids.shape
        NH, KVH, hd, eps = cfg["numHeads"], cfg["numKvHeads"], cfg["headDim"], cfg["normEps"]
        x = nn.functional.embedding(input_ids, p["model.embed_tokens.weight"])
        position_ids = torch.arange(T)[None, :].expand(B, T)
        cos, sin = self.rotary(position_ids)
        min_value = torch.finfo(self.dtype).min
        mask = torch.triu(torch.full((T, T), min_value, dtype=self.dtype), diagonal=1)[None, None]
        for l in range(cfg["numLayers"]):
            pre = f"model.layers.{l}."
            residual = x
            h = RMSNorm(p[pre + "input_layernorm.weight"], eps)(x)
            bias = cfg["qkvBias"]
            q = self.linear(h, pre + "self_attn.q_proj", bias).view(B, T, -1, hd).transpose(1, 2)
            k = self.linear(h, pre + "self_attn.k_proj", bias).view(B, T, -1, hd).transpose(1, 2)
            v = self.linear(h, pre + "self_attn.v_proj", bias).view(B, T, -1, hd).transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            # eager_attention_forward
            k = repeat_kv(k, NH // KVH)
            v = repeat_kv(v, NH // KVH)
            attn_weights = torch.matmul(q, k.transpose(2, 3)) * hd ** -0.5
            attn_weights = attn_weights + mask
            attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(q.dtype)
            attn_output = torch.matmul(attn_weights, v).transpose(1, 2).contiguous()
            attn_output = attn_output.reshape(B, T, -1)
            x = residual + self.linear(attn_output, pre + "self_attn.o_proj")
            residual = x
            h = RMSNorm(p[pre + "post_attention_layernorm.weight"], eps)(x)
            mlp = self.linear(
                nn.functional.silu(self.linear(h, pre + "mlp.gate_proj")) * self.linear(h, pre + "mlp.up_proj"),
                pre + "mlp.down_proj")
            x = residual + mlp
        return RMSNorm(p["model.norm.weight"], eps)(x)

    def logits(self, h):
        head = "model.embed_tokens.weight" if self.cfg["tieEmbeddings"] else "lm_head.weight"
        return nn.functional.linear(h, self.p[head])


def main():
    src, dst = sys.argv[1], sys.argv[2]
    dtype = torch.float64 if len(sys.argv) > 3 and sys.argv[3] == "float64" else torch.float32
    d = json.load(open(src))
    cfg = d["config"]
    params = {k: torch.tensor(v, dtype=torch.float32).reshape(d["shapes"][k]) for k, v in d["params"].items()}
    model = Llama(cfg, params, dtype)
    B, T = d["B"], d["T"]
    tokens = torch.tensor(d["tokens"], dtype=torch.int64).reshape(B, T)
    targets = torch.tensor(d["targets"], dtype=torch.int64).reshape(B * T)
    temperature = d["temperature"]

    h = model.hidden(tokens).reshape(B * T, -1)
    logp = torch.log_softmax(model.logits(h) / temperature, dim=-1)
    valid = targets >= 0
    picked = logp.gather(1, targets.clamp(min=0)[:, None])[:, 0]
    logprob = torch.where(valid, picked, torch.zeros_like(picked))
    entropy = -(logp.exp() * logp).sum(-1)
    values = nn.functional.linear(h, model.p["score.weight"])[:, 0] if cfg["valueHead"] else torch.zeros(B * T, dtype=dtype)
    loss = (logprob * torch.tensor(d["dlogprob"], dtype=dtype)).sum()
    if cfg["valueHead"]:
        loss = loss + (values * torch.tensor(d["dvalue"], dtype=dtype)).sum()
    names = list(model.p.keys())
    grads = torch.autograd.grad(loss, [model.p[n] for n in names], allow_unused=True)

    greedy = []
    with torch.no_grad():
        for prompt in d["prompts"]:
            seq = list(prompt)
            for _ in range(d["maxNewTokens"]):
                hh = model.hidden(torch.tensor([seq], dtype=torch.int64))
                seq.append(int(torch.argmax(model.logits(hh)[0, -1])))
            greedy.append(seq[len(prompt):])

    out = {
        "logprob": logprob.detach().double().tolist(),
        "entropy": entropy.detach().double().tolist(),
        "values": values.detach().double().tolist(),
        "grads": {n: (g if g is not None else torch.zeros_like(model.p[n])).detach().double().reshape(-1).tolist()
                  for n, g in zip(names, grads)},
        "greedy": greedy,
    }
    json.dump(out, open(dst, "w"))


if __name__ == "__main__":
    main()
