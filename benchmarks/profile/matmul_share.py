"""Where a training step's time goes: oneDNN's verbose log of the last step (ONEDNN_VERBOSE=1)
summed per matmul shape, against the step's phases as step.mjs times them.

    python3 benchmarks/profile/matmul_share.py [V,L,NH,C,B,T]     (default: the 10m config)
"""
import subprocess, sys, os, re, collections
cfg = sys.argv[1] if len(sys.argv) > 1 else '4096,6,6,384,8,256'
env = dict(os.environ, ONEDNN_VERBOSE='1', DNNL_VERBOSE='1')
out = subprocess.run(['node', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'step.mjs'), cfg], env=env, capture_output=True, text=True).stdout.splitlines()
# the last step only
idx = max(i for i, l in enumerate(out) if l.startswith('MARK step '))
ms = collections.defaultdict(float); flops = collections.defaultdict(float); times = {}
lines = out[idx:]
gemm_by_phase = collections.defaultdict(float); gemm_flops = collections.defaultdict(float)
cur = 'forward'
for l in lines:
    if l.startswith('MARK'):
        p = l.split()
        if p[1] in ('forward', 'backward', 'step_opt'):
            times[p[1]] = float(p[2]); cur = {'forward': 'backward', 'backward': 'step_opt', 'step_opt': 'end'}[p[1]]
        if p[1] == 'flops': total_flops = float(p[2])
        continue
    if ',exec,' in l and 'matmul' in l:
        f = l.split(',')
        t = float(f[-1])
        # shape like src_f32::blocked:ab:f0 ... last-but-one field: "2048x384:384x1152:2048x1152" or with batch dims
        dims = f[-2]
        parts = dims.split(':')
        a = [int(x) for x in parts[0].split('x')]; b = [int(x) for x in parts[1].split('x')]
        batch = 1
        for x in a[:-2]: batch *= x
        M, K = a[-2], a[-1]; Nn = b[-1]
        fl = 2.0 * batch * M * K * Nn
        gemm_by_phase[cur] += t; gemm_flops[cur] += fl
        key = f"{cur} {dims}"; ms[key] += t; flops[key] += fl
total = sum(times.values())
g = sum(gemm_by_phase.values()); gf = sum(gemm_flops.values())
print(f"step {total:.1f} ms (forward {times['forward']:.1f}, backward {times['backward']:.1f}, optimizer {times['step_opt']:.1f}); model FLOPs {total_flops/1e9:.2f} G -> {total_flops/total/1e6:.1f} GFLOP/s")
print(f"oneDNN matmuls: {g:.1f} ms ({100*g/total:.1f}% of the step), {gf/1e9:.2f} GFLOP -> {gf/g/1e6:.1f} GFLOP/s inside them")
for ph in ('forward', 'backward', 'step_opt'):
    print(f"  {ph}: matmuls {gemm_by_phase[ph]:.1f} ms of {times[ph]:.1f} ms; other {times[ph]-gemm_by_phase[ph]:.1f} ms")
print("largest matmul shapes:")
for k, v in sorted(ms.items(), key=lambda kv: -kv[1])[:int(os.environ.get("TOPN","14"))]:
    print(f"  {k}: {v:.2f} ms, {flops[k]/v/1e6:.0f} GFLOP/s")
