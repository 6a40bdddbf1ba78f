"""
The paper's controlled size experiment at its own scale, for one GPU in about 10 minutes: GPT-2-shaped models
(12 layers, width 768) that differ only in the MLP width, 64 / 256 / 1024 / 4096 (about 69M, 73M, 87M and 143M
parameters), trained the same way, then measured.

    python data/prepare.py fineweb_edu --max_tokens 100000000    # once, with network access and `datasets`
    python experiments/gpu_sweep.py                               # train the four models, then measure them
    python experiments/gpu_sweep.py --dataset austen --max_iters 300   # offline: the bundled corpus (it overfits)
    python experiments/gpu_sweep.py --dry_run                     # print the commands only
"""

import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDTHS = (64, 256, 1024, 4096)
MODEL = dict(n_layer=12, n_head=12, n_embd=768, block_size=1024)  # GPT-2 small but for n_inner


def commands(a):
    runs = [os.path.join(a.runs, f"mlp{w}") for w in WIDTHS]
    train = [[sys.executable, "train.py", "--dataset", a.dataset, "--out_dir", run, "--n_inner", str(w),
              *[f"--{k}={v}" for k, v in MODEL.items()], "--batch_size", "32", "--gradient_accumulation_steps", "1",
              "--max_iters", str(a.max_iters), "--warmup_iters", str(a.max_iters // 10), "--learning_rate", "6e-4",
              "--eval_interval", str(a.max_iters // 4), "--save_every", str(a.max_iters // 4), "--log_interval", "50",
              "--compile", "--seed", "0"] for w, run in zip(WIDTHS, runs)]
    measure = [sys.executable, "measure.py", *runs, "--data", a.measure_data, "--n_texts", "100", "--seq_len", "512",
               "--out", a.out]
    snapshots = [sys.executable, "measure.py", *runs, "--snapshots", "--data", a.measure_data, "--n_texts", "100",
                 "--seq_len", "512", "--n_boot", "0", "--out", a.out + "_training"]
    return train + [measure, snapshots]


def main(argv=None):
    p = argparse.ArgumentParser(description="the MLP-width sweep at GPT-2 scale on one GPU")
    p.add_argument("--dataset", default="fineweb_edu", help="a prepared GPT-2-tokenized dataset")
    p.add_argument("--measure_data", default="wiki", help="texts to measure on (bundled Wikipedia articles)")
    p.add_argument("--max_iters", type=int, default=1000, help="steps per model, 32 x 1024 tokens each")
    p.add_argument("--runs", default="experiments/runs/gpu_sweep")
    p.add_argument("--out", default="experiments/results/gpu_sweep")
    p.add_argument("--dry_run", action="store_true")
    a = p.parse_args(argv)
    os.chdir(ROOT)
    for cmd in commands(a):
        print("python " + " ".join(cmd[1:]), flush=True)
        if not a.dry_run:
            subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
