"""
The paper's controlled size experiment at its own scale, for one GPU in about 10 minutes: GPT-2-shaped models
(12 layers, width 768) that differ only in the MLP width, 64 / 256 / 1024 / 4096 (about 69M, 73M, 87M and 143M
parameters), trained the same way, then measured on the val split of the training data (text none of them saw).

    python data/prepare.py fineweb_edu --max_tokens 100000000    # once, with network access and `datasets`
    python experiments/gpu_sweep.py                               # train the four models, then measure them
    python experiments/gpu_sweep.py --dataset austen --max_iters 300   # offline: the bundled corpus (it overfits),
                                                                  # measured on paragraphs of its 27 held-out chapters
    python experiments/gpu_sweep.py --dry_run                     # print the commands only

The measurement's texts are checked before any training: a sweep never trains for minutes and then finds that
its val split is too short for --n_texts texts of --seq_len tokens.
"""

import argparse
import os
import shlex
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import measure  # noqa: E402
import train  # noqa: E402
from data import prepare as dataprep  # noqa: E402
from data.texts import load_documents, select_texts  # noqa: E402
from data.tokenizer import get_tokenizer  # noqa: E402
from support.checks import at_least, check_writable  # noqa: E402

WIDTHS = (64, 256, 1024, 4096)
MODEL = dict(n_layer=12, n_head=12, n_embd=768, block_size=1024)  # GPT-2 small but for n_inner
SCRIPTS = {"train.py": train.main, "measure.py": measure.main}  # run in this process: no interpreter start per step


def val_split(dataset):
    """measure.py's --data for the val split of the training set: the dataset's name, which measure.py reads as its
    held-out documents (a bundled corpus's held-out chapters cut into paragraphs, so that they give enough texts)."""
    return dataset


def commands(a):
    runs = [os.path.join(a.runs, f"mlp{w}") for w in WIDTHS]
    every = max(1, a.max_iters // 4)
    snapshot_flags = ["--save_every", str(every)] if a.snapshots else []
    train_cmds = [[sys.executable, "train.py", "--dataset", a.dataset, "--out_dir", run, "--n_inner", str(w),
                   *[f"--{k}={v}" for k, v in MODEL.items()], "--batch_size", str(a.batch_size),
                   "--gradient_accumulation_steps", "1", "--max_iters", str(a.max_iters), "--warmup_iters",
                   str(a.max_iters // 10), "--learning_rate", "6e-4", "--eval_interval", str(every), *snapshot_flags,
                   "--log_interval", "50", "--compile", "--seed", "0", *shlex.split(a.train_flags)]
                  for w, run in zip(WIDTHS, runs)]
    texts = ["--data", a.measure_data, "--n_texts", str(a.n_texts), "--seq_len", str(a.seq_len)]
    cmds = train_cmds + [[sys.executable, "measure.py", *runs, *texts, "--out", a.out]]
    if a.snapshots:
        cmds.append([sys.executable, "measure.py", *runs, "--snapshots", *texts, "--n_boot", "0",
                     "--out", a.out + "_training"])
    return cmds


def check_texts(a):
    """Prepare a bundled training set if needed (as train.py would), then select the measurement's texts with the
    models' tokenizer, exactly as measure.py will: any shortfall stops the sweep now, in one line."""
    if a.dataset.removesuffix("_char") in dataprep.BUNDLED_SOURCES and not dataprep.is_prepared(a.dataset):
        dataprep.prepare_source(a.dataset)
    encode, _ = get_tokenizer(dataprep.load_meta(a.dataset)["tokenizer"])
    docs, described = load_documents(a.measure_data)
    select_texts(docs, encode, a.n_texts, a.seq_len, 0, f" in {described}")


def main(argv=None):
    p = argparse.ArgumentParser(description="the MLP-width sweep at GPT-2 scale on one GPU")
    p.add_argument("--dataset", default="fineweb_edu", help="a prepared GPT-2-tokenized dataset")
    p.add_argument("--measure_data", default=None, help="measure.py --data; default: the val split of --dataset")
    p.add_argument("--n_texts", type=int, default=100, help="texts measured per model (the paper: 100)")
    p.add_argument("--seq_len", type=int, default=512, help="tokens per measured text (the paper: 512)")
    p.add_argument("--max_iters", type=int, default=1000, help="steps per model")
    p.add_argument("--batch_size", type=int, default=32, help="sequences of 1024 tokens per step")
    p.add_argument("--snapshots", action=argparse.BooleanOptionalAction, default=True,
                   help="keep 5 snapshots per model and measure condensation through training")
    p.add_argument("--train_flags", default="", help="more train.py flags for every run; they override the sweep's")
    p.add_argument("--runs", default="experiments/runs/gpu_sweep")
    p.add_argument("--out", default="experiments/results/gpu_sweep")
    p.add_argument("--dry_run", action="store_true")
    a = p.parse_args(argv)
    a.measure_data = a.measure_data or val_split(a.dataset)
    os.chdir(ROOT)
    at_least(a, dict(n_texts=1, max_iters=1, batch_size=1, seq_len=2))
    for flag, folder in (("--runs", a.runs), ("--out", a.out)):
        if unwritable := check_writable(folder, flag):
            sys.exit(f"error: {unwritable}")
    if not a.dry_run:
        try:
            check_texts(a)
        except (dataprep.DataError, measure.MeasureError, OSError) as e:
            sys.exit(f"error: {e}")
    for cmd in commands(a):
        print("python " + shlex.join(cmd[1:]), flush=True)
        if not a.dry_run:
            SCRIPTS[cmd[1]](cmd[2:])


if __name__ == "__main__":
    main()
