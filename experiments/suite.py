"""
The paper's experiments at laptop scale: every run is a train.py command, every measurement a measure.py command.

    python experiments/suite.py                # all five experiments, about an hour on 2 CPU cores
    python experiments/suite.py --only 1,3     # some of them (runs they share are trained once)
    python experiments/suite.py --quick        # the same pipeline on toy models in about 2 minutes (CI runs it)
    python experiments/suite.py --dry_run      # print every command, run nothing

1. size, controlled: only the MLP width n_inner changes (the paper's 64/256/1024/4096 at width 768, scaled to ours)
2. through training: snapshots from step 0 of the plain runs of 4; condensation against tokens seen
3. distillation: the narrowest model of 1 distilled from the widest, against the same model trained alone
4. dispersion in pre-training: none, the paper's four variants, and two baselines (noisy embeddings, forgetting)
5. dispersion in mid-training: the plain runs of 4 continued with and without the angular dispersion loss
Runs go to --runs (a finished run is not trained again, so an interrupted suite picks up where it stopped);
tables, JSON and figures to --out. Every setting here was fixed before any result was seen.
"""

import argparse
import contextlib
import json
import os
import re
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import measure  # noqa: E402
import train  # noqa: E402
from model import load_checkpoint  # noqa: E402

# laptop scale: a 6-layer char-level GPT on the bundled Austen novels, about a minute a run on 2 cores
FULL = dict(n_embd=96, n_layer=6, n_head=4, block_size=128, batch_size=16, iters=500, seeds=(0, 1, 2), n_texts=100)
QUICK = dict(n_embd=32, n_layer=3, n_head=2, block_size=32, batch_size=8, iters=20, seeds=(0,), n_texts=12)
DATASET = "austen_char"
VARIANTS = {  # experiment 4: name -> extra train.py flags; the dispersion kinds use train.py's defaults (lambda 0.1)
    "none": [],
    "angular": ["--disp", "angular"],
    "decorrelation": ["--disp", "decorrelation"],
    "l2_repel": ["--disp", "l2_repel"],
    "orthogonal": ["--disp", "orthogonal"],
    "embed_noise": ["--embed_noise", 5],  # NEFTune's usual alpha
    "forgetting": ["--forget_every", "ITERS/5"],  # four resets, the last one a fifth of the run before the end
}
METRICS = ("val", "spearman", "kendall", "last_layer_mean")


def final_val_loss(run_dir):
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["split"] == "eval"][-1]["val"]


def train_seconds(run_dir):
    """How long a run's training took, from the last line train.py printed into its train.txt."""
    with open(os.path.join(run_dir, "train.txt")) as f:
        found = re.search(r"done in (\d+) s", f.read())
    return int(found.group(1)) if found else 0


def mean_std(xs):
    return [statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0]


def group(report, key):
    """Mean and std over seeds of each metric, the runs grouped by key(run directory); in first-seen order."""
    groups = {}
    for m in report["models"]:
        row = {"val": final_val_loss(m["name"]), **{k: m[k] for k in METRICS[1:]}, "n_params": m["n_params"]}
        groups.setdefault(key(m["name"]), []).append(row)
    return {g: {"n": len(rows), "n_params": rows[0]["n_params"], **{k: mean_std([r[k] for r in rows]) for k in METRICS}}
            for g, rows in groups.items()}


def table(groups, first="run"):
    lines = [f"| {first} | params | seeds | val loss | Spearman rho | Kendall tau | last-layer cos |", "|---" * 7 + "|"]
    for g, r in groups.items():
        cells = " | ".join(f"{r[k][0]:.3f} ± {r[k][1]:.3f}" for k in METRICS)
        lines.append(f"| {g} | {r['n_params'] / 1e6:.3f}M | {r['n']} | {cells} |")
    return "\n".join(lines) + "\n"


def markdown(summary):
    out = [f"# Laptop-scale results ({summary['scale']} scale: {summary['n_runs']} runs, "
           f"{summary['train_seconds'] / 60:.0f} minutes of training in all)\n",
           "Each row: mean ± std over seeds. rho and tau: rank correlation of the per-layer mean token cosine "
           "with depth (higher = more condensation as depth grows); last-layer cos: mean token-token cosine "
           "of the last hidden state. Measured on held-out Austen chapters.\n"]
    if "1_width" in summary:
        s = summary["1_width"]
        out += ["## 1. MLP width (n_inner), all else fixed\n", table(s["table"], "n_inner"),
                trend_line(s["size_trend"])]
    if "2_training" in summary:
        out += ["## 2. Through training (snapshots of the plain runs)\n",
                "| run | rho at step 0 | rho at the end | last-layer cos at step 0 | at the end "
                "| trend of rho with tokens |",
                "|---|---|---|---|---|---|"]
        for r in summary["2_training"]:
            t = r["trend"]
            out.append(f"| {r['run']} | {r['rho'][0]:.3f} | {r['rho'][-1]:.3f} | {r['cos'][0]:.3f} "
                       f"| {r['cos'][-1]:.3f} | "
                       + (f"Spearman {num(t['spearman'])} (p {num(t['spearman_p'], '.2g')})" if t else "-") + " |")
        out.append("")
    if "3_distillation" in summary:
        s = summary["3_distillation"]
        out += ["## 3. Distillation from the widest model\n", table(s["table"], "student")]
        for p in s["pairs"]:
            ci = p.get("d_spearman_ci")
            out.append(f"- {os.path.basename(p['other'])} - {os.path.basename(p['base'])}: d rho {p['d_spearman']:+.3f}"
                       + (f" (95% CI {ci[0]:+.3f} .. {ci[1]:+.3f})" if ci else "")
                       + f", d last-layer cos {p['d_last_layer_mean']:+.3f}")
        out.append("")
    for key, title in (("4_pretraining", "4. Dispersion and baselines in pre-training"),
                       ("5_midtraining", "5. Dispersion in mid-training (continuing the plain runs of 4)")):
        if key in summary:
            out += [f"## {title}\n", table(summary[key]["table"], "variant")]
    return "\n".join(out) + "\n"


def num(x, spec="+.3f"):
    return "n/a" if x is None else format(x, spec)  # None: a statistic that is undefined, e.g. on constant input


def trend_line(t):
    t = t.get("n_params")
    if not t:
        return ""
    return (f"Trend of rho with parameters over all {t['n']} runs: Spearman {num(t['spearman'])} "
            f"(p {num(t['spearman_p'], '.2g')}), Kendall {num(t['kendall'])} (p {num(t['kendall_p'], '.2g')}).\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    p.add_argument("--quick", action="store_true", help="toy sizes: the whole pipeline in about 2 minutes")
    p.add_argument("--only", default="1,2,3,4,5", help="comma list of experiments")
    p.add_argument("--runs", default="experiments/runs", help="folder of the training runs")
    p.add_argument("--out", default="experiments/results", help="folder of tables and figures")
    p.add_argument("--device", default="auto")
    p.add_argument("--dry_run", action="store_true", help="print the commands instead of running them")
    args = p.parse_args(argv)
    os.chdir(ROOT)  # the printed commands are meant to be pasted in the repository's root
    only = {int(x) for x in args.only.split(",")}
    S = QUICK if args.quick else FULL
    n, iters, seeds = S["n_embd"], S["iters"], S["seeds"]
    base = ["--dataset", DATASET, "--n_layer", S["n_layer"], "--n_head", S["n_head"], "--n_embd", n,
            "--block_size", S["block_size"], "--batch_size", S["batch_size"], "--max_iters", iters,
            "--warmup_iters", iters // 10, "--eval_interval", iters // 2, "--log_interval", 50, "--device", args.device]
    widths = [n // 12, n // 3, 4 * n // 3, 16 * n // 3]  # the paper's 64, 256, 1024, 4096 at n_embd 768
    t_start = time.time()

    runs_used = set()

    def run(name, seed, *flags):
        """Train one run (later flags override the base ones) unless it is finished; -> its directory."""
        out = os.path.join(args.runs, name)
        runs_used.add(out)
        cmd = [str(x) for x in ("--out_dir", out, "--seed", seed, *base, *flags)]
        max_iters = int(cmd[len(cmd) - 1 - cmd[::-1].index("--max_iters") + 1])
        done = os.path.isfile(os.path.join(out, "ckpt.pt")) and load_checkpoint(out)["iter_num"] == max_iters
        print(("# already done: " if done else "") + "python train.py " + " ".join(cmd), flush=True)
        if not done and not args.dry_run:
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, "train.txt"), "w") as f, contextlib.redirect_stdout(f):
                train.main(cmd)
        return out

    def measure_runs(folder, runs, *flags):
        """measure.py on the runs' final checkpoints (or snapshots); -> its condensation.json, None in a dry run."""
        out = os.path.join(args.out, folder)
        cmd = [str(x) for x in (*runs, "--data", DATASET, "--n_texts", S["n_texts"], "--seq_len", S["block_size"],
                                "--out", out, *flags)]
        print("python measure.py " + " ".join(cmd), flush=True)
        if args.dry_run:
            return None
        with open(os.path.join(args.runs, f"measure_{folder}.txt"), "w") as f, contextlib.redirect_stdout(f):
            measure.main(cmd)
        with open(os.path.join(out, "condensation.json")) as f:
            return json.load(f)

    def width_run(w, s):
        return run(f"width{w}_seed{s}", s, "--n_inner", w)

    def variant_run(v, s):  # the plain runs keep ten snapshots from step 0 for experiment 2
        flags = [iters // 5 if f == "ITERS/5" else f for f in VARIANTS[v]]
        return run(f"{v}_seed{s}", s, *flags, *(["--save_every", iters // 10] if v == "none" else []))

    name_of = lambda d: os.path.basename(d).rsplit("_seed", 1)[0]
    summary = {"scale": "quick" if args.quick else "full", "settings": S, "widths": widths}
    if 1 in only:
        rep = measure_runs("1_width", [width_run(w, s) for w in widths for s in seeds])
        if rep:
            summary["1_width"] = {"size_trend": rep["size_trend"],
                                  "table": group(rep, lambda d: name_of(d).removeprefix("width"))}
    if 2 in only:
        rep = measure_runs("2_training", [variant_run("none", s) for s in seeds], "--snapshots", "--n_boot", 0)
        if rep:
            by_run = {}  # snapshots grouped by run, each run's in order of tokens seen (a stable sort keeps runs' order)
            for m in sorted(rep["models"], key=lambda m: m["tokens_seen"]):
                by_run.setdefault(os.path.dirname(m["name"]), []).append(m)
            summary["2_training"] = [{"run": os.path.basename(d), "trend": rep["runs"].get(d),
                                      "tokens": [m["tokens_seen"] for m in ms], "rho": [m["spearman"] for m in ms],
                                      "cos": [m["last_layer_mean"] for m in ms]} for d, ms in by_run.items()]
    if 3 in only:
        runs = []
        for s in seeds:
            teacher = width_run(widths[-1], s)
            runs += [width_run(widths[0], s),
                     run(f"kd{widths[0]}_seed{s}", s, "--n_inner", widths[0], "--teacher", teacher)]
        rep = measure_runs("3_distillation", runs, "--paired")
        if rep:
            summary["3_distillation"] = {"pairs": rep["pairs"], "table": group(
                rep, lambda d: f"n_inner {widths[0]}, " + ("distilled" if name_of(d).startswith("kd") else "alone"))}
    if 4 in only:
        rep = measure_runs("4_pretraining", [variant_run(v, s) for v in VARIANTS for s in seeds])
        if rep:
            summary["4_pretraining"] = {"table": group(rep, name_of)}
    if 5 in only:
        mid = ["--max_iters", iters * 3 // 10, "--warmup_iters", iters * 3 // 50, "--learning_rate", 5e-4,
               "--eval_interval", iters * 3 // 10]
        runs = []
        for s in seeds:
            start = variant_run("none", s)
            runs += [run(f"mid_none_seed{s}", s, "--init_from", start, *mid),
                     run(f"mid_angular_seed{s}", s, "--init_from", start, "--disp", "angular", *mid)]
        rep = measure_runs("5_midtraining", runs)
        if rep:
            summary["5_midtraining"] = {"table": group(rep, name_of)}
    if not args.dry_run:
        path = os.path.join(args.out, "summary.json")
        if os.path.isfile(path):  # with --only, the other experiments' results of the same scale stay
            with open(path) as f:
                old = json.load(f)
            if old["scale"] == summary["scale"]:
                runs_used.update(old["runs"])
                summary = old | summary
        summary["runs"] = sorted(runs_used)
        summary["n_runs"], summary["train_seconds"] = len(runs_used), sum(map(train_seconds, runs_used))
        with open(path, "w") as f:
            json.dump(summary, f, indent=1)
        with open(os.path.join(args.out, "summary.md"), "w") as f:
            f.write(markdown(summary))
        print(markdown(summary))
    print(f"suite finished in {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
