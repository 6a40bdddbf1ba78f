"""
Speed and memory, measured (the numbers in docs/speed.md come from this script).

    python experiments/bench.py                          # the default training config, on this machine
    python experiments/bench.py --train_flags "--n_layer 12 --n_head 12 --n_embd 768 --block_size 1024 --batch_size 16 \
        --dataset austen"                    # GPT-2 124M (bf16 and torch.compile by default on a GPU)

1. one training step: ms, tokens/s and MFU (against a known GPU peak, or on a CPU against a float32 matmul
   measured in the same process), and the step-time ratio of the angular dispersion loss on every layer;
2. measure.py on a randomly initialised GPT-2-124M-shaped model at T = 512, as it measures one model (the passes
   over the texts and the summary): texts/s of the paper's within alone, with the one-pass measures (across,
   excess, rogue: measure.py's default), with --erank too and with --standardize's second pass, at measure.py's
   default of N = 100 texts (about 12 minutes on 2 CPU cores); and peak memory at N = 100 and N = 10, which must
   be the same: the measurement keeps running sums, not N matrices.
"""

import argparse
import re
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as python experiments/bench.py
import measure  # noqa: E402
import train  # noqa: E402
from model import GPT, GPTConfig  # noqa: E402
from support import checks  # noqa: E402
from support.load import ours  # noqa: E402


def memory_mib(reset_peak=False):
    """(resident, peak resident) memory of this process in MiB, from Linux's /proc; clear_refs 5 resets the peak."""
    if reset_peak:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:  # not permitted in some containers: the peak is then the process's since it started
            pass
    status = Path("/proc/self/status").read_text()
    return [int(re.search(rf"{key}:\s+(\d+)", status).group(1)) / 1024 for key in ("VmRSS", "VmHWM")]


def bench_train(flags, iters, rounds):
    """Median step time without and with `--disp angular --disp_layers all`, alternating `rounds` times so that
    a slow spell of the machine hits both alike; the best round of each is kept."""
    runs = {"none": [], "angular": []}
    for _ in range(rounds):
        for kind in runs:
            extra = ["--disp", kind, "--disp_layers", "all"] if kind != "none" else []
            runs[kind].append(train.main(["--bench", "--max_iters", str(iters), "--log_interval", str(iters), *flags,
                                          *extra]))
    best = {kind: min(rs, key=lambda r: r["ms_per_iter"]) for kind, rs in runs.items()}
    ratio = best["angular"]["ms_per_iter"] / best["none"]["ms_per_iter"]
    return best, ratio


# what measure.py computes per model: the paper's within only; with the one-pass measures (across, excess, rogue:
# measure.py's default); with --erank's C x C second moments too; and with --standardize's second pass for within_std
MEASURE_MODES = ("paper", "one_pass", "erank", "standardize")
MODE_NAMES = {"paper": "paper's within", "one_pass": "one-pass", "erank": "+ --erank", "standardize": "+ --standardize"}


def run_measure(hidden_fn, tokens, mode, batch_size, device, boot_idx):
    """One model's measurement as measure.py makes it: the passes over the texts, then summarize (bootstrap and
    erank's eigenvalues included), which costs per model, not per text."""
    st = measure.layer_stats(hidden_fn, tokens, batch_size, device=device, extra=mode != "paper",
                             erank=mode == "erank")
    if mode == "standardize":
        st["within_std"] = measure.standardized_within(hidden_fn, tokens, *measure.channel_moments(st, tokens.numel()),
                                                       batch_size, device=device)
    measure.summarize(st, boot_idx=boot_idx)


@torch.no_grad()
def bench_measure(n_texts, seq_len, device, batch_size=4, modes=("one_pass",), rounds=1, dtype=torch.float32,
                  **model_args):
    """texts/s and peak memory of measure.py's passes on a random GPT-2-124M-shaped model (or model_args'), for
    each of modes, alternating them `rounds` times so that a slow spell of the machine hits all alike (the best
    round is kept). The forward passes are timed apart: they are the same work in every mode, so "steady_s", each
    mode's time with its passes at the fastest seen in any round and its own work at its fastest, compares the
    modes without the machine's slow spells (on a shared CPU they move a pass by several percent)."""
    device = str(device)  # a torch.device or its name
    torch.manual_seed(0)
    model_fn = ours(GPT(GPTConfig(**{"vocab_size": 50257, **model_args})), device, dtype)["hidden"]
    forward = []

    def hidden_fn(idx):
        t = time.perf_counter()
        hidden = model_fn(idx)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        forward.append(time.perf_counter() - t)
        return hidden
    tokens = torch.randint(0, 50257, (n_texts, seq_len))
    boot_idx = np.random.default_rng(0).integers(0, n_texts, (measure.N_BOOT, n_texts))
    for mode in ("erank", "standardize"):  # warm-up
        run_measure(hidden_fn, tokens[:2], mode, 1, device, boot_idx[:, :2] % 2)
    best, rest, pass_s = {}, {}, float("inf")
    for _ in range(rounds):
        for mode in modes:
            before, _ = memory_mib(reset_peak=True)
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            forward.clear()
            t0 = time.perf_counter()
            run_measure(hidden_fn, tokens, mode, batch_size, device, boot_idx)
            seconds, passes = time.perf_counter() - t0, 2 if mode == "standardize" else 1
            pass_s, rest[mode] = min(pass_s, sum(forward) / passes), min(rest.get(mode, seconds), seconds - sum(forward))
            r = {"n_texts": n_texts, "texts_per_s": n_texts / seconds, "passes": passes, "rss_before_mib": before,
                 "peak_rss_mib": memory_mib()[1],
                 "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None}
            if mode not in best or r["texts_per_s"] > best[mode]["texts_per_s"]:
                best[mode] = r
    for mode, r in best.items():
        r.update(forward_s=pass_s * r["passes"], rest_s=rest[mode], steady_s=pass_s * r["passes"] + rest[mode])
    return best if len(modes) > 1 else best[modes[0]]


def measure_lines(a):
    """The measurement's cost: time of each mode against the paper's alone at N = the first of --measure_texts,
    then the peak memory of the default mode at every N, which must not grow with N beyond C-vectors per text."""
    ns = [int(n) for n in filter(None, a.measure_texts.split(","))]
    if not ns:
        return []
    shape = f"GPT-2-124M shape, T = {a.seq_len}, {a.device}, {torch.get_num_threads()} threads"
    cost = bench_measure(ns[0], a.seq_len, a.device, modes=MEASURE_MODES, rounds=a.measure_rounds)
    paper = cost["paper"]["texts_per_s"]
    lines = [f"measure.py, {shape}, N = {ns[0]} (best of {a.measure_rounds}):"]
    for mode, r in cost.items():
        gpu = f", peak GPU memory {r['peak_gpu_mib']:.0f} MiB" if r["peak_gpu_mib"] is not None else ""
        lines.append(f"  {MODE_NAMES[mode]:16s}: {r['texts_per_s']:.2f} texts/s, time {paper / r['texts_per_s']:.3f}x the paper's "
                     f"within alone ({r['steady_s'] / cost['paper']['steady_s']:.3f}x steady: forward passes "
                     f"{r['forward_s']:.1f} s + the rest {r['rest_s']:.1f} s), peak memory {r['peak_rss_mib']:.0f} MiB{gpu}")
    for n in ns:
        m = cost["one_pass"] if n == ns[0] else bench_measure(n, a.seq_len, a.device)
        lines.append(f"measure.py (one-pass measures), {shape}, N = {m['n_texts']}: {m['texts_per_s']:.2f} texts/s, "
                     f"peak memory {m['peak_rss_mib']:.0f} MiB ({m['rss_before_mib']:.0f} MiB before)")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--train_flags", default="", help="train.py flags of the config to time (empty: its defaults)")
    p.add_argument("--iters", type=int, default=30, help="steps per timing (the first 5 are left out as warm-up)")
    p.add_argument("--rounds", type=int, default=2, help="alternations of the runs without and with dispersion")
    p.add_argument("--measure_texts", default="100,10",
                   help="N for the measurement: its cost at the first, its peak memory at each; empty skips it")
    p.add_argument("--measure_rounds", type=int, default=2, help="alternations of the measurement's modes")
    p.add_argument("--seq_len", type=int, default=512, help="tokens per text in the measurement")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu, cuda, cuda:N")
    checks.one_line(p, "experiments/bench.py")
    a = p.parse_args(argv)
    # checked here: train.py would name its own flags, not these
    checks.at_least(a, dict(iters=1, rounds=1, seq_len=1, measure_rounds=1))
    texts = a.measure_texts.split(",") if a.measure_texts else []
    if not all(n.strip().isdigit() and int(n) > 0 for n in texts):
        sys.exit(f"error: --measure_texts must be a comma list of positive numbers, got {a.measure_texts!r}")
    best, ratio = bench_train(shlex.split(a.train_flags) + ["--device", a.device], a.iters, a.rounds)
    lines = [f"training step ({a.train_flags or 'train.py defaults'}, {a.device}, {torch.get_num_threads()} threads):"]
    for kind, r in best.items():
        mfu = f", MFU {100 * r['mfu']:.1f}% of {r['peak_flops'] / 1e12:.3f} TFLOP/s" if r["mfu"] else ""
        lines.append(f"  dispersion {kind:8s}: {r['ms_per_iter']:.1f} ms/iter, {r['tokens_per_s']:,.0f} tokens/s{mfu}")
    lines.append(f"  step-time ratio, angular on every layer / none: {ratio:.3f}x")
    lines += measure_lines(a)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
