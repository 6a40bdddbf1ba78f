"""
Every CUDA path of this codebase checked, and GPT-2 124M's speed measured, in one command of under 8 minutes.

    python experiments/gpu_check.py           # on one H100/H200: no network; prepares the bundled Austen BPE itself
    python experiments/gpu_check.py --tiny    # every stage at toy size on the CPU (the test suite runs this)

1. correctness: CUDA float32 logits against the CPU's; a bf16-autocast loss against float32; a compiled training
   step against the eager one; the angular dispersion loss and its gradient against a float64 CPU reference; the
   fused AdamW step against the plain one; a one-process torchrun run over NCCL; save and resume on CUDA;
2. speed at GPT-2 124M (12 x 768, T = 1024, vocab 50304), compile + bf16, through train.py --bench: ms/step,
   tokens/s and MFU for micro-batches 8, 16, 32, 64, each also with --disp angular --disp_layers all (the ratio is
   the dispersion loss's overhead); measure.py's texts/s at N = 100, T = 512, float32 and bf16, with the time
   against the paper's within alone, with --erank and with --standardize; torch.profiler's top kernels wherever MFU < 45% or the
   overhead > 1.02x;
3. science sample: experiments/gpu_sweep.py's four MLP widths (64 / 256 / 1024 / 4096 at 12 x 768) trained for a
   fixed 150 steps of 16 x 1024 tokens on the bundled Austen novels, measured on its held-out chapters.

Writes <out>/<GPU name>.json and .md (out: experiments/results/gpu; --tiny writes into out_gpu_check_tiny) and
prints the tables. Exits 1 when a check fails. A stage that would run past the time budget is skipped, with the
reason in the results.
"""

import argparse
import contextlib
import copy
import datetime
import importlib.util
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "experiments"))

NEEDED = ("torch", "numpy", "tiktoken", "scipy", "matplotlib")  # what train.py and measure.py import
missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"error: missing packages {', '.join(missing)}: pip install -r requirements.txt (offline: "
             "pip install --no-index --find-links <folder of wheels> -r requirements.txt)")

import torch  # noqa: E402

from experiments import bench  # noqa: E402
import dispersion  # noqa: E402
import gpu_sweep  # noqa: E402
import train  # noqa: E402
from data import prepare as dataprep  # noqa: E402
from model import GPT, GPTConfig  # noqa: E402
from support.checks import check_writable  # noqa: E402

DATASET = "austen"  # bundled, GPT-2 BPE: travels with the repository, prepares in seconds
MFU_TARGET, OVERHEAD_TARGET = 0.45, 1.02  # the targets for a benchmark, not pass/fail checks
# Sizes of each form. "est" are the expected seconds per stage on an H100/H200 (compile dominates: about a minute
# for the first 124M graph, 30-40 s for each further micro-batch) or on 2 CPU cores for --tiny.
PROFILES = {
    "full": dict(model=dict(n_layer=12, n_head=12, n_embd=768, block_size=1024), dtype="bfloat16",
                 micro_batches=(8, 16, 32, 64), bench_iters=25, logits_shape=(2, 256), angular_shape=(3, 8, 256, 768),
                 small=dict(n_layer=2, n_head=2, n_embd=64, block_size=64, batch_size=4), measure=(100, 512),
                 sweep=dict(max_iters=150, batch_size=16, n_texts=100, seq_len=512, flags=""),
                 budget_s=480, est=(100, 200, 80), bench_est=50, profile_always=False),
    # --tiny's model and micro-batch are those of tests/test_compile.py: the test suite compiles that graph once
    "tiny": dict(model=dict(n_layer=2, n_head=2, n_embd=32, block_size=32), dtype="float32",
                 micro_batches=(4,), bench_iters=8, logits_shape=(2, 32), angular_shape=(2, 2, 32, 16),
                 small=dict(n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=2), measure=(8, 64),
                 sweep=dict(max_iters=4, batch_size=2, n_texts=8, seq_len=64,
                            flags="--n_layer 2 --n_head 2 --n_embd 32 --block_size 64 --eval_iters 2 --cond_texts 2"),
                 budget_s=300, est=(30, 30, 20), bench_est=0, profile_always=True),
}


# ------------------------------------------------------------------------------------------------ bookkeeping

class Run:
    """The results of one invocation, filled in stage by stage, and the clock against the time budget."""

    def __init__(self, p, device, work):
        self.p, self.device, self.work, self.t0 = p, device, work, time.perf_counter()
        self.checks, self.speed, self.profiles, self.science, self.stages = [], {}, {}, None, {}
        self.log = io.StringIO()  # what train.py and measure.py print; kept in the results only when a check fails

    def elapsed(self):
        return time.perf_counter() - self.t0

    def left(self):
        return self.p["budget_s"] - self.elapsed()

    def say(self, msg):
        print(f"[{self.elapsed():5.0f} s] {msg}", flush=True)

    def quiet(self):  # the scripts' own progress lines go to the log, so that ours stay one per stage
        return contextlib.redirect_stdout(self.log)

    def check(self, stage, name, fn):
        """Run one check: fn() -> (ok or None for skipped, measured, tolerance, note)."""
        t = time.perf_counter()
        try:
            with self.quiet():
                ok, measured, tol, note = fn()
            status = "skip" if ok is None else "pass" if ok else "fail"
        except (Exception, SystemExit) as e:  # train.main stops with SystemExit("error: ...")
            status, measured, tol = "error", None, None
            note = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            self.log.write(traceback.format_exc())
        self.checks.append(dict(stage=stage, name=name, status=status, measured=measured, tolerance=tol, note=note,
                                seconds=round(time.perf_counter() - t, 1)))
        self.say(f"stage {stage} {name}: {status.upper()} ({fmt(measured)}{f' vs {tol}' if tol else ''}"
                 f"{'; ' + note if note else ''})")
        free_memory()


def fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}"
    return "-" if v is None else str(v)


def free_memory():
    import gc
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def gpu_name(device):
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def slug(name):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")


def small_flags(run, out_dir, **over):
    """train.py flags of a small model on the bundled data, for the checks of whole runs."""
    s = {**run.p["small"], **over}
    return ["--dataset", DATASET, "--out_dir", str(out_dir), *[f"--{k}={v}" for k, v in s.items()],
            "--eval_iters", "2", "--cond_texts", "2", "--log_interval", "1", "--warmup_iters", "2",
            "--device", str(run.device), "--no-compile"]


def read_log(out_dir):
    with open(os.path.join(out_dir, "log.jsonl")) as f:
        return {r["iter"]: r["loss"] for r in map(json.loads, f) if r["split"] == "train"}


def max_diff(a, b):
    return max(abs(a[i] - b[i]) for i in a) if set(a) == set(b) else math.inf


# ------------------------------------------------------------------------------------------------ 1. correctness

def random_gpt(run, **over):
    torch.manual_seed(0)
    return GPT(GPTConfig(**{**run.p["model"], "vocab_size": 50304, **over}))


def check_logits(run):
    """Our GPT-2's float32 logits on the GPU against the CPU's (TF32 is off by default, so both are float32)."""
    net = random_gpt(run).eval()
    B, T = run.p["logits_shape"]
    idx = torch.randint(0, 50257, (B, T), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = net(idx)[0]
        got = net.to(run.device)(idx.to(run.device))[0].cpu()
    diff = (got - ref).abs().max().item()
    if run.device.type != "cuda":
        return None, diff, 1e-4, "no CUDA GPU: the CPU was compared with itself"
    return diff <= 1e-4, diff, 1e-4, f"{B} x {T} tokens, logits up to {ref.abs().max().item():.2f}"


def autocast(run):
    return torch.autocast(run.device.type, dtype=torch.bfloat16)


def check_bf16_loss(run):
    net = random_gpt(run).to(run.device).eval()
    B, T = run.p["logits_shape"]
    gen = torch.Generator().manual_seed(2)
    x, y = (torch.randint(0, 50257, (B, T), generator=gen).to(run.device) for _ in range(2))
    with torch.no_grad():
        fp32 = net(x, y)[1].item()
        with autocast(run):
            bf16 = net(x, y)[1].item()
    return abs(bf16 - fp32) <= 1e-2, abs(bf16 - fp32), 1e-2, f"float32 loss {fp32:.4f}, bf16 {bf16:.4f}"


def training_step(net, params, x, y, layers, ctx):
    """One forward and backward of train.py's loss (CE + 0.1 x angular dispersion on every block) -> loss, grads."""
    for p in params:
        p.grad = None
    with ctx:
        _, ce, hidden = net(x, y, return_hidden=True)  # the call train.py makes, so the compiled graph is shared
        gen = torch.Generator(device=x.device).manual_seed(0)
        loss = ce + 0.1 * dispersion.layer_dispersion(hidden, layers, kind="angular", generator=gen)
    loss.backward()
    return loss.item(), [p.grad.detach().float().clone() for p in params]


def check_compiled_step(run):
    """A compiled step against the eager one on the same weights and batch, at the first micro-batch of stage 2."""
    raw = random_gpt(run).to(run.device)
    params = list(raw.parameters())
    B, T = run.p["micro_batches"][0], run.p["model"]["block_size"]
    gen = torch.Generator().manual_seed(3)
    x, y = (torch.randint(0, 50257, (B, T), generator=gen).to(run.device) for _ in range(2))
    layers = list(range(raw.config.n_layer))
    ctx = autocast(run) if run.p["dtype"] == "bfloat16" else contextlib.nullcontext()
    loss_e, g_e = training_step(raw, params, x, y, layers, ctx)
    t = time.perf_counter()
    loss_c, g_c = training_step(torch.compile(raw), params, x, y, layers, ctx)
    compile_s = time.perf_counter() - t
    flat_e, flat_c = torch.cat([g.flatten() for g in g_e]), torch.cat([g.flatten() for g in g_c])
    rel = ((flat_c - flat_e).norm() / flat_e.norm()).item()
    worst_cos = min(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()
                    for a, b in zip(g_e, g_c) if a.norm() > 0)
    ok = abs(loss_c - loss_e) <= 1e-2 and rel <= 2e-2 and worst_cos >= 0.99
    return ok, rel, 2e-2, (f"gradient relative error; loss {loss_e:.4f} eager, {loss_c:.4f} compiled; lowest "
                           f"per-tensor gradient cosine {worst_cos:.4f}; {run.p['dtype']}; first compiled step "
                           f"{compile_s:.0f} s")


def angular_reference(h, tau, clamp):
    """The paper's angular loss in float64 with plain autograd: log mean_{i!=j} exp(-D_ij / tau),
    D_ij = arccos(cos_ij) / pi, cos clamped in value only (straight-through), mean over sequences."""
    T, C = h.shape[-2:]
    z = h.reshape(-1, T, C)
    u = z / z.norm(dim=-1, keepdim=True)
    cos = u @ u.transpose(-1, -2)
    cos = cos + (cos.clamp(-1 + clamp, 1 - clamp) - cos).detach()
    D = torch.arccos(cos) / math.pi
    off = ~torch.eye(T, dtype=torch.bool)
    return (torch.logsumexp((-D / tau)[:, off], dim=-1) - math.log(T * (T - 1))).mean()


def check_angular(run):
    h = torch.randn(*run.p["angular_shape"], generator=torch.Generator().manual_seed(4))
    h[..., 1, :] = h[..., 0, :] + 1e-6  # a nearly collapsed pair: the clamp and straight-through path
    ref_in = h.double().requires_grad_()
    ref = angular_reference(ref_in, 0.5, dispersion.DEFAULT_CLAMP)
    ref.backward()
    got_in = h.to(run.device).requires_grad_()
    got = dispersion.dispersion_loss(got_in, kind="angular", tau=0.5, max_tokens=None)
    got.backward()
    d_loss = abs(got.item() - ref.item())
    rel = ((got_in.grad.cpu().double() - ref_in.grad).norm() / ref_in.grad.norm()).item()
    ok = d_loss <= 1e-5 and rel <= 1e-4
    note = f"gradient relative error; loss {got.item():.6f} against {ref.item():.6f} (float64 CPU)"
    return ok, rel, 1e-4, note + ("" if run.device.type == "cuda" else "; no CUDA GPU: float32 CPU instead")


def check_fused_adamw(run):
    """train.py's optimizer (fused on CUDA) against plain AdamW, three steps from the same weights and gradients."""
    a = train.build_parser().parse_args(["--learning_rate", "1e-3"])
    net = random_gpt(run, n_layer=2).to(run.device)
    twin, start = copy.deepcopy(net), [p.detach().clone() for p in net.parameters()]
    opt = train.configure_optimizer(net, a, run.device)
    fused = bool(opt.defaults.get("fused"))
    groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in opt.param_groups]
    if not fused:  # train.py fuses only on CUDA: on a CPU the fused kernel is built here from the same groups
        opt = torch.optim.AdamW(groups, lr=a.learning_rate, betas=(a.beta1, a.beta2), fused=True)
    index, twins = {id(p): i for i, p in enumerate(net.parameters())}, list(twin.parameters())
    plain = torch.optim.AdamW([{**g, "params": [twins[index[id(p)]] for p in g["params"]]} for g in groups],
                              lr=a.learning_rate, betas=(a.beta1, a.beta2), fused=False, foreach=False)
    gen = torch.Generator().manual_seed(5)
    for _ in range(3):
        for p, q in zip(net.parameters(), twin.parameters()):
            g = torch.randn(p.shape, generator=gen).to(run.device)
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        plain.step()
    diff = max((p - q).abs().max().item() for p, q in zip(net.parameters(), twin.parameters()))
    moved = max((p - p0).abs().max().item() for p, p0 in zip(net.parameters(), start))
    note = f"train.py's optimizer fused={fused}; the weights moved by up to {moved:.2g}"
    return diff <= 1e-6 and moved > 1e-4, diff, 1e-6, note


def check_torchrun(run):
    """train.py under torchrun with one process: NCCL on CUDA (gloo on a CPU). Its losses are those of the same run
    without torchrun (from the resume check), up to that check's run-to-run noise or 1e-5."""
    out = os.path.join(run.work, "ddp")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "train.py",
           *small_flags(run, out), *RESUME_FLAGS]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    run.log.write(proc.stdout + proc.stderr)
    backend = "nccl" if run.device.type == "cuda" else "gloo"
    if proc.returncode != 0:
        lines = [l for l in proc.stderr.splitlines() if l.strip()]
        return False, None, None, f"exit {proc.returncode}: {lines[-1][:200] if lines else ''}"
    got = read_log(out)
    if run.resume_reference is None:
        return sorted(got) == list(range(1, 9)), None, None, f"backend {backend}; ran 8 steps (no reference run)"
    ref, noise = run.resume_reference
    tol = max(noise, 1e-5)
    diff = max_diff(got, ref)
    return diff <= tol, diff, tol, f"backend {backend}; losses against the same run without torchrun"


RESUME_FLAGS = ["--max_iters", "8", "--lr_decay_iters", "8", "--eval_interval", "4", "--dropout", "0.1"]


def check_resume(run):
    """Stopped at step 4 and resumed, a run reaches step 8 with the losses of an uninterrupted run (dropout on, so
    the restored RNG state matters). An uninterrupted run done twice gives the GPU's own run-to-run noise."""
    common = RESUME_FLAGS
    w = run.work
    train.main(small_flags(run, os.path.join(w, "full")) + list(common))
    train.main(small_flags(run, os.path.join(w, "again")) + list(common))
    split = small_flags(run, os.path.join(w, "split")) + list(common)
    train.main(split[:] + ["--max_iters", "4"])
    train.main(split + ["--init_from", "resume"])
    full, again, resumed = (read_log(os.path.join(w, d)) for d in ("full", "again", "split"))
    noise = max_diff(full, again)
    diff = max_diff({i: resumed[i] for i in range(5, 9)}, {i: full[i] for i in range(5, 9)})
    run.resume_reference = (full, noise)
    note = "bit-exact" if diff == 0 else f"uninterrupted runs differ by {noise:.2g} between themselves"
    return diff <= noise, diff, noise, note


def stage_correctness(run):
    run.check(1, "fp32 logits, GPU vs CPU", lambda: check_logits(run))
    run.check(1, "bf16 autocast loss vs fp32", lambda: check_bf16_loss(run))
    run.check(1, "compiled step vs eager (loss, grads)", lambda: check_compiled_step(run))
    run.check(1, "angular loss and gradient vs float64", lambda: check_angular(run))
    run.check(1, "fused AdamW vs plain", lambda: check_fused_adamw(run))
    run.resume_reference = None
    run.check(1, "save + resume continues the loss curve", lambda: check_resume(run))
    backend = "NCCL" if run.device.type == "cuda" else "gloo"
    run.check(1, f"torchrun, 1 process, {backend}", lambda: check_torchrun(run))


# ------------------------------------------------------------------------------------------------ 2. speed

def speed_flags(run, compiled):
    m = run.p["model"]
    return ["--dataset", DATASET, *[f"--{k}={v}" for k, v in m.items()], "--dtype", run.p["dtype"],
            "--compile" if compiled else "--no-compile"]


def profile_step(run, flags, label):
    """torch.profiler over steady --bench steps of a graph compiled before: what the step spends its time on. An
    optimizer hook marks the step boundaries, so setup and the first two steps stay out of the profile."""
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from torch.profiler import ProfilerActivity, profile, schedule
    cuda, active = run.device.type == "cuda", 3
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    steps = schedule(wait=1, warmup=1, active=active, repeat=1)
    with run.quiet(), profile(activities=activities, schedule=steps) as prof:
        hook = register_optimizer_step_post_hook(lambda *args: prof.step())
        try:
            result = train.main(["--bench", "--max_iters", str(active + 3), "--log_interval", "100", *flags])
        finally:
            hook.remove()
    if cuda:  # the kernels themselves (a CPU op's device time would count its kernels a second time)
        value = lambda e: getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0) or 0
        events = [e for e in prof.key_averages() if "CUDA" in str(getattr(e, "device_type", "")) and value(e) > 0]
        events = events or [e for e in prof.key_averages() if value(e) > 0]
    else:
        value = lambda e: e.self_cpu_time_total
        events = [e for e in prof.key_averages() if value(e) > 0]
    total = sum(value(e) for e in events) or 1  # microseconds over the profiled steps
    run.profiles[label] = {
        "steps": active, "clock": "device" if cuda else "cpu", "busy_ms_per_step": total / 1000 / active,
        "ms_per_step": result["ms_per_iter"],
        "top": [{"op": e.key[:90], "calls": e.count / active, "ms_per_step": value(e) / 1000 / active,
                 "share": value(e) / total} for e in sorted(events, key=value, reverse=True)[:12]]}


def stage_speed(run, compiled):
    flags = speed_flags(run, compiled) + ["--device", str(run.device)]
    rows, reserve = [], run.p["est"][2]  # keep the science sample's time
    for B in run.p["micro_batches"]:
        if rows and run.left() - reserve < run.p["bench_est"]:
            rows.append({"batch_size": B, "skipped": f"time budget ({run.left():.0f} s left)"})
            run.say(f"stage 2 micro-batch {B}: SKIPPED (time budget)")
            continue
        t = time.perf_counter()
        try:
            with run.quiet():
                best, ratio = bench.bench_train(flags + ["--batch_size", str(B)], run.p["bench_iters"], 1)
            rows.append({"batch_size": B, **{f"{k}_{kind}": v for kind, r in best.items() for k, v in r.items()},
                         "disp_ratio": ratio, "wall_s": time.perf_counter() - t})
            r = rows[-1]
            mfu = f", MFU {100 * r['mfu_none']:.1f}%" if r["mfu_none"] else ""
            run.say(f"stage 2 micro-batch {B}: {r['ms_per_iter_none']:.1f} ms/step, {r['tokens_per_s_none']:,.0f} "
                    f"tokens/s{mfu}; angular on every layer {ratio:.3f}x ({r['wall_s']:.0f} s with compile)")
        except torch.cuda.OutOfMemoryError:
            rows.append({"batch_size": B, "skipped": "out of GPU memory"})
            run.say(f"stage 2 micro-batch {B}: out of memory")
            free_memory()
            break
        except (Exception, SystemExit) as e:
            run.log.write(traceback.format_exc())
            rows.append({"batch_size": B, "skipped": f"error: {(str(e).strip().splitlines() or [''])[0][:200]}"})
            run.say(f"stage 2 micro-batch {B}: ERROR {rows[-1]['skipped']}")
        free_memory()
    done = [r for r in rows if "skipped" not in r]
    run.speed["train"] = rows
    run.speed["compiled"] = compiled
    if done:
        best = max(done, key=lambda r: r["tokens_per_s_none"])
        run.speed["best"] = {"batch_size": best["batch_size"], "ms_per_iter": best["ms_per_iter_none"],
                             "tokens_per_s": best["tokens_per_s_none"], "mfu": best["mfu_none"],
                             "disp_ratio": best["disp_ratio"], "peak_flops": best["peak_flops_none"]}
    # measure.py's speed: the 124M shape at the paper's N and T, float32 and bf16
    N, T = run.p["measure"]
    shape = {} if run.p is PROFILES["full"] else {**run.p["model"], "block_size": max(T, run.p["model"]["block_size"])}
    run.speed["measure"] = []
    for name, dtype in (("float32", torch.float32), ("bf16", torch.bfloat16)):
        try:
            # the paper's within alone, with the one-pass measures (measure.py's default), with --erank, --standardize
            cost = bench.bench_measure(N, T, run.device, dtype=dtype, modes=bench.MEASURE_MODES, **shape)
            paper = cost["paper"]["texts_per_s"]
            m = {**cost["one_pass"], "paper_texts_per_s": paper,
                 **{f"{mode}_ratio": paper / cost[mode]["texts_per_s"] for mode in bench.MEASURE_MODES[1:]}}
            run.speed["measure"].append({"dtype": name, "seq_len": T, **m})
            run.say(f"stage 2 measure.py {name}: {m['texts_per_s']:.1f} texts/s at N = {N}, T = {T}, "
                    f"{m['one_pass_ratio']:.3f}x the paper's within alone, --erank {m['erank_ratio']:.3f}x, "
                    f"--standardize {m['standardize_ratio']:.3f}x")
        except (Exception, SystemExit) as e:
            run.log.write(traceback.format_exc())
            run.speed["measure"].append({"dtype": name, "skipped": f"error: {str(e).strip()[:200]}"})
            run.say(f"stage 2 measure.py {name}: ERROR {str(e).strip()[:200]}")
        free_memory()
    # where a target is missed, what the step spends its time on
    if done:
        b = run.speed["best"]
        wanted = [("none", [], run.p["profile_always"] or (b["mfu"] or 0) < MFU_TARGET),
                  ("angular", ["--disp", "angular", "--disp_layers", "all"],
                   run.p["profile_always"] or b["disp_ratio"] > OVERHEAD_TARGET)]
        for label, extra, want in wanted:
            if not want:
                continue
            if run.left() - reserve < 20:
                run.profiles[label] = {"skipped": f"time budget ({run.left():.0f} s left)"}
                continue
            try:
                profile_step(run, flags + ["--batch_size", str(b["batch_size"]), *extra], label)
                top = run.profiles[label]["top"][0]
                run.say(f"stage 2 profile ({label}, micro-batch {b['batch_size']}): top op {top['op'][:50]} "
                        f"{100 * top['share']:.0f}%")
            except (Exception, SystemExit) as e:
                run.log.write(traceback.format_exc())
                run.profiles[label] = {"skipped": f"error: {str(e).strip()[:200]}"}
            free_memory()


# ------------------------------------------------------------------------------------------------ 3. science

def stage_science(run):
    s = run.p["sweep"]
    if run.left() < run.p["est"][2] * 0.75:
        run.science = {"skipped": f"time budget ({run.left():.0f} s left)"}
        run.say("stage 3 science sample: SKIPPED (time budget)")
        return
    runs, out = os.path.join(run.work, "sweep_runs"), os.path.join(run.work, "sweep")
    flags = f"--no-compile --device {run.device} --dtype {run.p['dtype']} --eval_interval {s['max_iters']} " \
            f"--log_interval 50 {s['flags']}"
    argv = ["--dataset", DATASET, "--max_iters", str(s["max_iters"]), "--batch_size", str(s["batch_size"]),
            "--n_texts", str(s["n_texts"]), "--seq_len", str(s["seq_len"]), "--no-snapshots", "--train_flags", flags,
            "--runs", runs, "--out", out]
    t = time.perf_counter()
    try:
        with run.quiet():
            gpu_sweep.main(argv)
    except (Exception, SystemExit) as e:
        run.log.write(traceback.format_exc())
        run.science = {"skipped": f"error: {str(e).strip()[:200]}"}
        run.say(f"stage 3 science sample: ERROR {run.science['skipped']}")
        return
    report = json.load(open(os.path.join(out, "condensation.json")))
    with open(os.path.join(runs, f"mlp{gpu_sweep.WIDTHS[0]}", "config.json")) as f:
        config = json.load(f)
    table = []
    for w, m in zip(gpu_sweep.WIDTHS, report["models"]):
        with open(os.path.join(runs, f"mlp{w}", "log.jsonl")) as f:
            evals = [r for r in map(json.loads, f) if r["split"] == "eval"]
        table.append({"n_inner": w, "n_params": m["n_params"], "val_loss": evals[-1]["val"],
                      "spearman": m["spearman"], "kendall": m["kendall"], "last_layer_mean": m["last_layer_mean"],
                      "spearman_ci": m.get("spearman_ci")})
    trend = report["size_trend"]["n_params"] if report.get("size_trend") else None
    run.science = {"shape": f"{config['n_layer']} x {config['n_embd']}", "dataset": DATASET,
                   "measured_on": report["settings"]["data"], "steps": s["max_iters"],
                   "tokens_per_step": s["batch_size"] * config["block_size"], "n_texts": s["n_texts"],
                   "seq_len": s["seq_len"], "seconds": time.perf_counter() - t, "command": "python experiments/"
                   "gpu_sweep.py " + " ".join(a if " " not in a else repr(a) for a in argv[:-4]),
                   "table": table, "size_trend": trend}
    run.say("stage 3 science sample: " + ", ".join(f"MLP {r['n_inner']}: rho {r['spearman']:+.2f}, val "
                                                   f"{r['val_loss']:.2f}" for r in table))


# ------------------------------------------------------------------------------------------------ output

def markdown(res):
    L = [f"# GPU check: {res['gpu']}", "",
         f"`python experiments/gpu_check.py{' --tiny' if res['tiny'] else ''}` on {res['date']}: torch "
         f"{res['torch']}, CUDA {res['cuda'] or '-'}, {res['total_s']:.0f} s in all (stages: "
         + ", ".join(f"{k} {v:.0f} s" for k, v in res["stage_seconds"].items()) + ").", "",
         "## 1. Correctness", "", "| check | result | measured | tolerance | note |", "|---|---|---|---|---|"]
    L += [f"| {c['name']} | {c['status']} | {fmt(c['measured'])} | {fmt(c['tolerance'])} | {c['note']} |"
          for c in res["checks"]]
    sp = res["speed"]
    L += ["", f"## 2. Speed: {res['model']} (train.py --bench, {'compile' if sp.get('compiled') else 'eager'} + "
          f"{res['dtype']})", "",
          "| micro-batch | ms/step | tokens/s | MFU | ms/step, angular on every layer | dispersion overhead |",
          "|---|---|---|---|---|---|"]
    for r in sp.get("train", []):
        if "skipped" in r:
            L.append(f"| {r['batch_size']} | {r['skipped']} | | | | |")
        else:
            mfu = f"{100 * r['mfu_none']:.1f}%" if r["mfu_none"] else "-"
            L.append(f"| {r['batch_size']} | {r['ms_per_iter_none']:.1f} | {r['tokens_per_s_none']:,.0f} | {mfu} | "
                     f"{r['ms_per_iter_angular']:.1f} | {r['disp_ratio']:.3f}x |")
    if "best" in sp:
        b = sp["best"]
        mfu = f"MFU {100 * b['mfu']:.1f}% of {b['peak_flops'] / 1e12:.3g} TFLOP/s" if b["mfu"] else "no known peak"
        L += ["", f"Best: micro-batch {b['batch_size']}, {b['tokens_per_s']:,.0f} tokens/s, {mfu}; the angular "
              f"dispersion loss on every layer costs {b['disp_ratio']:.3f}x (targets: MFU >= {100 * MFU_TARGET:.0f}%, "
              f"overhead <= {OVERHEAD_TARGET}x)."]
    L += ["", "| measure.py | texts/s | time against the paper's within alone | with --erank | with --standardize | N | "
          "T | peak GPU memory |", "|---|---|---|---|---|---|---|---|"]
    for m in sp.get("measure", []):
        if "skipped" in m:
            L.append(f"| {m['dtype']} | {m['skipped']} | | | | | | |")
        else:
            gpu = f"{m['peak_gpu_mib']:,.0f} MiB" if m.get("peak_gpu_mib") is not None else "-"
            L.append(f"| {m['dtype']} | {m['texts_per_s']:.1f} | {m['one_pass_ratio']:.3f}x (goal <= 1.05x) | "
                     f"{m['erank_ratio']:.3f}x | {m['standardize_ratio']:.3f}x (goal about 2x) | {m['n_texts']} | {m['seq_len']} | {gpu} |")
    for label, prof in res["profiles"].items():
        L += ["", f"Profile of the training step, dispersion {label}: "]
        if "skipped" in prof:
            L[-1] += prof["skipped"]
            continue
        L[-1] += (f"{prof['busy_ms_per_step']:.1f} ms of {prof['clock']} time per step ({prof['steps']} steady steps "
                  f"profiled), against a median step of {prof['ms_per_step']:.1f} ms")
        L += ["", "| op | calls/step | ms/step | share |", "|---|---|---|---|"]
        L += [f"| `{t['op']}` | {t['calls']:g} | {t['ms_per_step']:.2f} | {100 * t['share']:.1f}% |"
              for t in prof["top"]]
    sc = res["science"] or {}
    L += ["", "## 3. Science sample: the MLP-width sweep", ""]
    if "skipped" in sc:
        L.append(sc["skipped"])
    elif sc:
        L += [f"{sc['shape']} models, trained {sc['steps']} steps of {sc['tokens_per_step']:,} tokens on "
              f"{sc['dataset']} (GPT-2 BPE), measured on {sc['n_texts']} texts of {sc['seq_len']} tokens of "
              f"{sc['measured_on']} in {sc['seconds']:.0f} s: `{sc['command']}`", "",
              "| n_inner | params | val loss | Spearman rho | Kendall tau | last-layer cos |",
              "|---|---|---|---|---|---|"]
        L += [f"| {r['n_inner']} | {r['n_params'] / 1e6:.1f}M | {r['val_loss']:.3f} | {r['spearman']:+.3f} | "
              f"{r['kendall']:+.3f} | {r['last_layer_mean']:.3f} |" for r in sc["table"]]
        if sc["size_trend"]:
            t = sc["size_trend"]
            rho = "undefined (the same rho at every width)" if t["spearman"] is None else f"{t['spearman']:+.2f}"
            L += ["", f"Spearman(parameters, rho) = {rho} over {t['n']} models."]
    return "\n".join(L) + "\n"


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------ main

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="every stage at toy size on the CPU, in a minute or two")
    p.add_argument("--out", default=None, help="results folder (default experiments/results/gpu; --tiny: "
                   "out_gpu_check_tiny)")
    p.add_argument("--device", default=None, help="default cuda, or cpu for --tiny")
    a = p.parse_args(argv)
    form = "tiny" if a.tiny else "full"
    device = torch.device(a.device or ("cpu" if a.tiny else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("error: no CUDA GPU here (python experiments/gpu_check.py --tiny runs every stage on the CPU)")
    out = a.out or ("out_gpu_check_tiny" if a.tiny else os.path.join(ROOT, "experiments", "results", "gpu"))
    if unwritable := check_writable(out, "--out"):
        sys.exit(f"error: {unwritable}")
    prof = PROFILES[form]
    # every micro-batch compiles its own static graph, as a training run of that micro-batch would
    torch._dynamo.config.automatic_dynamic_shapes = False
    for limit in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, limit):
            setattr(torch._dynamo.config, limit, 32)
    name = gpu_name(device)
    est = prof["est"]
    print(f"GPU check ({form}) on {name}: estimated {sum(est) / 60:.1f} min (correctness ~{est[0]} s, speed "
          f"~{est[1]} s with its compiles, science sample ~{est[2]} s); budget {prof['budget_s'] / 60:.0f} min",
          flush=True)
    work = tempfile.mkdtemp(prefix="gpu_check_")
    run = Run(prof, device, work)
    try:
        if not dataprep.is_prepared(DATASET):
            with run.quiet():
                dataprep.prepare_source(DATASET)
        run.say(f"data: {DATASET} prepared ({dataprep.load_meta(DATASET)['n_train_tokens']:,} train tokens)")
        for i, (stage, fn) in enumerate((("correctness", stage_correctness), ("speed", None),
                                         ("science", stage_science)), 1):
            t = time.perf_counter()
            if stage == "speed":  # eager if compiling failed in stage 1: the speed is still worth having
                compiled_ok = any(c["name"].startswith("compiled") and c["status"] in ("pass", "fail")
                                  for c in run.checks)
                stage_speed(run, compiled_ok)
            else:
                fn(run)
            run.stages[stage] = time.perf_counter() - t
            run.say(f"stage {i}/3 {stage} done in {run.stages[stage]:.0f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res = {"gpu": name, "tiny": a.tiny, "device": str(device), "date": datetime.datetime.now(datetime.timezone.utc)
           .strftime("%Y-%m-%d %H:%M UTC"), "torch": torch.__version__, "cuda": torch.version.cuda,
           "model": " x ".join(str(prof["model"][k]) for k in ("n_layer", "n_embd")) + f", T = "
           f"{prof['model']['block_size']}, vocab 50304", "dtype": prof["dtype"], "total_s": run.elapsed(),
           "stage_seconds": run.stages, "checks": run.checks, "speed": run.speed, "profiles": run.profiles,
           "science": run.science}
    failed = [c["name"] for c in res["checks"] if c["status"] in ("fail", "error")]
    if failed:
        res["log"] = run.log.getvalue()[-20000:]  # what the scripts printed, for the failure's cause
    os.makedirs(out, exist_ok=True)
    base = os.path.join(out, slug(name) + ("-tiny" if a.tiny else ""))
    md = markdown(res)
    write_atomic(base + ".json", json.dumps(res, indent=1) + "\n")
    write_atomic(base + ".md", md)
    print("\n" + md)
    print(f"wrote {base}.json and {base}.md in {run.elapsed():.0f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else "; every check passed or was skipped with its reason"))
    return res


if __name__ == "__main__":
    sys.exit(1 if any(c["status"] in ("fail", "error") for c in main()["checks"]) else 0)
