"""
The paper's experiments at laptop scale: every run is a train.py command, every measurement a measure.py command.

    python experiments/suite.py                # all five experiments, about an hour on 2 CPU cores
    python experiments/suite.py --only 1,3     # some of them (runs they share are trained once)
    python experiments/suite.py --quick        # the same pipeline on toy models in about 20 s (CI runs it)
    python experiments/suite.py --dry_run      # print every command, run nothing

1. size, controlled: only the MLP width n_inner changes (the paper's 64/256/1024/4096 at width 768, scaled to ours)
2. through training: snapshots from step 0 of the plain runs of 4; condensation against tokens seen
3. distillation: the narrowest model of 1 distilled from the widest, against the same model trained alone
4. dispersion in pre-training: none, the paper's four variants, and two baselines (noisy embeddings, forgetting)
5. dispersion in mid-training: the plain runs of 4 continued with and without the angular dispersion loss
Runs go to --runs (a finished run is not trained again and an unfinished one is resumed, so an interrupted suite
picks up where it stopped); tables, JSON and figures to --out. --quick has its own folders, under
experiments/runs/quick/, so that the committed results in experiments/results/ change only by a full run.
The figures are drawn here, by setting (a width, a variant, student or teacher), from measure.py's results held in
memory. Every setting here was fixed before any result was seen.
"""

import argparse
import contextlib
import io
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import flags  # noqa: E402
from support import load  # noqa: E402
import measure  # noqa: E402
from support import plots  # noqa: E402
import train  # noqa: E402
from support.load import load_checkpoint  # noqa: E402
from support.progress import fmt_seconds  # noqa: E402

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
# measure.py's further measures, in the tables when its results have them: column title of each
EXTRA_METRICS = {"excess_spearman": "excess rho", "within_std_spearman": "standardised rho",
                 "last_layer_excess": "last-layer excess"}
LABELS = {"none": "no dispersion", "angular": "angular dispersion", "decorrelation": "decorrelation dispersion",
          "l2_repel": "l2_repel dispersion", "orthogonal": "orthogonal dispersion",
          "embed_noise": "noisy embeddings (NEFTune, alpha 5)", "forgetting": "active forgetting (every ITERS/5 steps)"}
# one colour per setting, the same in every figure: the widths narrow to wide along viridis (the narrowest is also
# the student trained alone, the widest the teacher), each variant its own hue, the plain model black
WIDTH_COLOURS = ("#440154", "#355f8d", "#22a884", "#9bd93c")
COLOURS = {"none": "black", "angular": "C0", "decorrelation": "C1", "l2_repel": "C2", "orthogonal": "C4",
           "embed_noise": "C5", "forgetting": "C6", "distilled": "C3"}
RUN_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e")  # experiment 2: the seeds of one setting
FIGURES = ("heatmaps.png", "layer_means.png", "layer_measures.png", "size_trend.png", "condensation_over_training.png",
           "loss_curves.png", "training.png")  # the last: the old name of condensation_over_training.png


def final_val_loss(run_dir):
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["split"] == "eval"][-1]["val"]


def train_seconds(run_dir):
    """How long a run's training took, from the lines train.py printed into its train.txt (one per resumed part)."""
    with open(os.path.join(run_dir, "train.txt")) as f:
        return sum(map(int, re.findall(r"done in (\d+) s", f.read())))


def mean_std(xs):
    """Mean and std over seeds, leaving out undefined statistics (None: e.g. rho of a flat curve)."""
    xs = [x for x in xs if x is not None]
    return [statistics.fmean(xs) if xs else None, statistics.stdev(xs) if len(xs) > 1 else 0.0 if xs else None]


def group(report, key):
    """Mean and std over seeds of each metric, the runs grouped by key(run directory); in first-seen order.
    measure.py's further measures (EXTRA_METRICS) are kept when every model has them."""
    extra = [k for k in EXTRA_METRICS if all(k in m for m in report["models"])]
    groups = {}
    for m in report["models"]:
        row = {"val": final_val_loss(m["name"]), **{k: m[k] for k in (*METRICS[1:], *extra)}, "n_params": m["n_params"]}
        groups.setdefault(key(m["name"]), []).append(row)
    return {g: {"n": len(rows), "n_params": rows[0]["n_params"],
                **{k: mean_std([r[k] for r in rows]) for k in (*METRICS, *extra)}} for g, rows in groups.items()}


def table(groups, first="run"):
    keys = [*METRICS, *(k for k in EXTRA_METRICS if all(k in r for r in groups.values()))]
    titles = ["val loss", "Spearman rho", "Kendall tau", "last-layer cos", *(EXTRA_METRICS[k] for k in keys[4:])]
    lines = [f"| {first} | params | seeds | " + " | ".join(titles) + " |", "|---" * (3 + len(keys)) + "|"]
    for g, r in groups.items():
        cells = " | ".join(f"{num(r[k][0], '.3f')} ± {num(r[k][1], '.3f')}" for k in keys)
        lines.append(f"| {g} | {r['n_params'] / 1e6:.3f}M | {r['n']} | {cells} |")
    return "\n".join(lines) + "\n"


def markdown(summary):
    out = [f"# Laptop-scale results ({summary['scale']} scale: {summary['n_runs']} runs, "
           f"{summary['train_seconds'] / 60:.0f} minutes of training in all)\n",
           "Each row: mean ± std over seeds. rho and tau: rank correlation of the per-layer mean token cosine "
           "with depth (higher = more condensation as depth grows); last-layer cos: mean token-token cosine "
           "of the last hidden state. Measured on held-out Austen chapters.\n"]
    tables = [s["table"] for k, s in summary.items() if isinstance(s, dict) and "table" in s]
    if any(k in row for t in tables for row in t.values() for k in EXTRA_METRICS):
        out.append("Where measured: excess rho, the rank correlation with depth of the within-text mean cosine minus "
                   "the across-text one (condensation beyond a direction all texts share); standardised rho, the same "
                   "for the within-text mean after standardising every channel; last-layer excess, within minus "
                   "across at the last layer.\n")
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
            out.append(f"| {r['run']} | {num(r['rho'][0], '.3f')} | {num(r['rho'][-1], '.3f')} | {r['cos'][0]:.3f} "
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


def fail(msg):
    sys.exit(f"error: {msg}")


def with_flag(cmd, flag, value):
    """cmd with flag set to value: its last occurrence replaced (train.py takes the last), or appended."""
    if flag not in cmd:
        return [*cmd, flag, str(value)]
    i = len(cmd) - 1 - cmd[::-1].index(flag)
    return [*cmd[:i + 1], str(value), *cmd[i + 2:]]


def run_state(out, max_iters):
    """'done' (its checkpoint is at the last step), 'unfinished' (a checkpoint before it: resume), 'partial' (the
    files of a run killed before its first checkpoint: nothing to resume, so it starts again) or 'new'."""
    if os.path.isfile(os.path.join(out, "ckpt.pt")):
        return "done" if load_checkpoint(out)["iter_num"] == max_iters else "unfinished"
    return "partial" if partial_files(out) else "new"


def partial_files(out):
    """What train.py writes into a run's folder before its first checkpoint (and the suite's train.txt)."""
    return [f for f in ("log.jsonl", "config.json", "train.txt") if os.path.isfile(os.path.join(out, f))] + [
        p.name for p in Path(out).glob("ckpt_[0-9]*.pt")]


def train_overwrites():
    """Whether train.py has --overwrite (a new run where an old one is stops without it)."""
    return not flags.build_parser().parse_known_args(["--overwrite"])[1]


def measure_supports(flag):
    """Whether measure.py has a flag (from its --help), so that the suite uses a newer measure when there is one."""
    with contextlib.redirect_stdout(io.StringIO()) as text, contextlib.suppress(SystemExit):
        measure.parse_args(["--help"])
    return flag in text.getvalue()


def measure_in_memory(argv):
    """measure.py's work in this process: its files into --out as `python measure.py argv` writes them, and its
    results kept in memory, for they hold the heatmaps' histograms that its JSON has not."""
    args = measure.parse_args(argv)
    results, report = measure.measure_all(args)
    # an earlier run's files that this one would not rewrite must not mix in
    load.write_results(args.out, lambda folder: measure.write_outputs(results, report, folder),
                       lambda out: [*out.glob("condensation*.*"), *(out / name for name in FIGURES)])
    return results, report


# ------------------------------------------------------------------------------------------------ figures

def settings_of(results, key, label, colour):
    """measure.py's results (one per run) grouped into settings by key(result), in first-seen order."""
    groups = {}
    for r in results:
        groups.setdefault(key(r), []).append(r)
    return [dict(key=k, label=label(k), colour=colour(k), runs=rs) for k, rs in groups.items()]


def draw_settings(folder, settings, what, losses=True):
    """The figures of one experiment by setting: heatmaps, per-layer means and the training curves of its runs."""
    plots.plot_setting_heatmaps(settings, folder / "heatmaps.png", what)
    plots.plot_setting_layer_means(settings, folder / "layer_means.png", what)
    if all("layer_across" in r for s in settings for r in s["runs"]):  # measure.py's further measures
        plots.plot_setting_layer_measures(settings, folder / "layer_measures.png", what)
    if losses:
        curves = [s | {"runs": [plots.read_log(r["name"]) for r in s["runs"]]} for s in settings]
        plots.plot_loss_curves(curves, folder / "loss_curves.png", what)


def draw_training(folder, results, trends):
    """Experiment 2: the snapshots of each plain run, one colour per run, and heatmaps at a few steps."""
    by_run = {}
    for r in sorted(results, key=lambda r: r["tokens_seen"]):  # a stable sort keeps the runs' order
        by_run.setdefault(os.path.dirname(r["name"]), []).append(r)
    runs = [dict(label=f"seed {d.rsplit('_seed', 1)[1]}, {LABELS['none']}", colour=RUN_COLOURS[i % len(RUN_COLOURS)],
                 snapshots=ms, trend=trends.get(d)) for i, (d, ms) in enumerate(by_run.items())]
    plots.plot_over_training(runs, folder / "condensation_over_training.png")
    plots.plot_snapshot_layer_means(runs, folder / "layer_means.png")
    steps = sorted({plots.snapshot_step(r["name"]) for r in results})
    shown = sorted({steps[round(i * (len(steps) - 1) / 5)] for i in range(6)})  # six, from first to last
    tokens = {plots.snapshot_step(r["name"]): r["tokens_seen"] for r in results}
    at = [dict(label=f"step {step} ({tokens[step] / 1e6:.2g}M tokens)" if step else "step 0 (initialisation)",
               colour=plots.step_colour(step, steps[-1]),
               runs=[r for r in results if plots.snapshot_step(r["name"]) == step]) for step in shown]
    plots.plot_setting_heatmaps(at, folder / "heatmaps.png", "2. Over training: ")
    if all("layer_across" in r for r in results):  # measure.py's further measures, at the same steps
        plots.plot_setting_layer_measures(at, folder / "layer_measures.png", "2. Over training: ")


# ------------------------------------------------------------------------------------------------ the suite

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    p.error = lambda msg: fail(f"{msg} (see python experiments/suite.py --help)")  # one line, no usage block
    p.add_argument("--quick", action="store_true", help="toy sizes: the whole pipeline in about 20 s")
    p.add_argument("--only", default="1,2,3,4,5", help="comma list of experiments")
    p.add_argument("--runs", help="folder of the training runs (default experiments/runs, with --quick "
                                  "experiments/runs/quick)")
    p.add_argument("--out", help="folder of tables and figures (default experiments/results, with --quick "
                                 "experiments/runs/quick/results)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dry_run", action="store_true", help="print the commands instead of running them")
    args = p.parse_args(argv)
    given, args.only = args.only, set()
    with contextlib.suppress(ValueError):
        args.only = {int(x) for x in given.split(",")}
    if not args.only or not args.only <= {1, 2, 3, 4, 5}:
        fail(f"--only {given}: give experiments 1 to 5 as a comma list, e.g. --only 1,3")
    quick = os.path.join("experiments", "runs", "quick")
    args.runs = args.runs or (quick if args.quick else os.path.join("experiments", "runs"))
    args.out = args.out or (os.path.join(quick, "results") if args.quick else os.path.join("experiments", "results"))
    return args


def main(argv=None):
    args = parse_args(argv)
    args.runs, args.out = os.path.abspath(args.runs), os.path.abspath(args.out)  # before the chdir below
    os.chdir(ROOT)  # the printed commands are meant to be pasted in the repository's root
    args.runs, args.out = (os.path.relpath(f) if f.startswith(ROOT + os.sep) else f for f in (args.runs, args.out))
    only = args.only
    S = QUICK if args.quick else FULL
    n, iters, seeds = S["n_embd"], S["iters"], S["seeds"]
    base = ["--dataset", DATASET, "--n_layer", S["n_layer"], "--n_head", S["n_head"], "--n_embd", n,
            "--block_size", S["block_size"], "--batch_size", S["batch_size"], "--max_iters", iters,
            "--warmup_iters", iters // 10, "--eval_interval", iters // 2, "--log_interval", 50, "--device", args.device]
    widths = [n // 12, n // 3, 4 * n // 3, 16 * n // 3]  # the paper's 64, 256, 1024, 4096 at n_embd 768
    standardize = [flag for flag in ("--standardize", "--erank") if measure_supports(flag)]  # measured too
    t_start = time.time()
    todo, trained = 0, 0  # runs left to train, for the progress line: counted by a dry pass of the same suite
    if not args.dry_run:
        with contextlib.redirect_stdout(io.StringIO()) as plan:
            main([*(sys.argv[1:] if argv is None else argv), "--dry_run"])
        todo = len({line.split("--out_dir ")[1].split()[0] for line in plan.getvalue().splitlines()  # a run that two
                    if line.startswith(("python train.py", "# resuming", "# starting again"))})  # experiments share: once

    runs_used = set()

    def run(name, seed, *flags):
        """Train one run (later flags override the base ones) unless it is finished, resuming an unfinished one
        from its checkpoint; -> its directory."""
        out = os.path.join(args.runs, name)
        runs_used.add(out)
        cmd = [str(x) for x in ("--out_dir", out, "--seed", seed, *base, *flags)]
        state = run_state(out, int(cmd[len(cmd) - 1 - cmd[::-1].index("--max_iters") + 1]))
        if state == "unfinished":
            cmd = with_flag(cmd, "--init_from", "resume")
        if state == "partial" and train_overwrites():
            cmd.append("--overwrite")  # train.py deletes the old files once it holds the folder's lock
        print({"done": "# already done: ", "unfinished": "# resuming: ", "partial": "# starting again (killed "
               "before its first checkpoint): ", "new": ""}[state] + "python train.py " + " ".join(cmd), flush=True)
        if state != "done" and not args.dry_run:
            nonlocal trained
            trained += 1
            spent = time.time() - t_start
            left = f", about {fmt_seconds(spent / (trained - 1) * (todo - trained + 1))} left" if trained > 1 else ""
            print(f"# run {trained}/{todo}, {fmt_seconds(spent)} so far{left}", flush=True)
            if state == "partial" and "--overwrite" not in cmd:
                for f in partial_files(out):  # they would mix into the new run's log and snapshots
                    os.remove(os.path.join(out, f))
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, "train.txt"), "a" if state == "unfinished" else "w") as f, \
                    contextlib.redirect_stdout(f):
                train.main(cmd)
        return out

    def measure_runs(folder, runs, *flags):
        """measure.py on the runs' final checkpoints (or snapshots); -> (its results in memory, its
        condensation.json), (None, None) in a dry run."""
        out = os.path.join(args.out, folder)
        cmd = [str(x) for x in (*runs, "--data", DATASET, "--n_texts", S["n_texts"], "--seq_len", S["block_size"],
                                "--out", out, *standardize, *flags)]
        print("python measure.py " + " ".join(cmd), flush=True)
        if args.dry_run:
            return None, None
        os.makedirs(args.runs, exist_ok=True)
        with open(os.path.join(args.runs, f"measure_{folder}.txt"), "w") as f, contextlib.redirect_stdout(f):
            return measure_in_memory(cmd)

    def width_run(w, s):
        return run(f"width{w}_seed{s}", s, "--n_inner", w)

    def variant_run(v, s):  # the plain runs keep ten snapshots from step 0 for experiment 2
        flags = [iters // 5 if f == "ITERS/5" else f for f in VARIANTS[v]]
        return run(f"{v}_seed{s}", s, *flags, *(["--save_every", iters // 10] if v == "none" else []))

    name_of = lambda d: os.path.basename(d).rsplit("_seed", 1)[0]
    label_of = lambda v: LABELS[v].replace("ITERS/5", str(iters // 5))
    width_label = lambda w: f"n_inner {w}"
    width_colour = lambda w: WIDTH_COLOURS[widths.index(w)]
    summary = {"scale": "quick" if args.quick else "full", "settings": S, "widths": widths}
    folder = lambda name: Path(args.out) / name
    teacher = None  # experiment 1's widest models, shown beside the students of 3 when 1 ran too
    if 1 in only:
        results, rep = measure_runs("1_width", [width_run(w, s) for w in widths for s in seeds])
        if rep:
            summary["1_width"] = {"size_trend": rep["size_trend"],
                                  "table": group(rep, lambda d: name_of(d).removeprefix("width"))}
            sets = settings_of(results, lambda r: int(name_of(r["name"]).removeprefix("width")), width_label,
                               width_colour)
            draw_settings(folder("1_width"), sets, "1. MLP width: ")
            plots.plot_setting_size(sets, (rep["size_trend"] or {}).get("n_params"),
                                    folder("1_width") / "size_trend.png", "1. MLP width: ")
            teacher = sets[-1] | {"label": f"n_inner {widths[-1]}: the teacher"}
    if 2 in only:
        results, rep = measure_runs("2_training", [variant_run("none", s) for s in seeds], "--snapshots",
                                    "--n_boot", 0)
        if rep:
            by_run = {}  # snapshots grouped by run, each run's in order of tokens seen (a stable sort keeps runs' order)
            for m in sorted(rep["models"], key=lambda m: m["tokens_seen"]):
                by_run.setdefault(os.path.dirname(m["name"]), []).append(m)
            summary["2_training"] = [{"run": os.path.basename(d), "trend": rep["runs"].get(d),
                                      "tokens": [m["tokens_seen"] for m in ms], "rho": [m["spearman"] for m in ms],
                                      "cos": [m["last_layer_mean"] for m in ms]} for d, ms in by_run.items()]
            draw_training(folder("2_training"), results, rep["runs"])
    if 3 in only:
        runs = []
        for s in seeds:
            big = width_run(widths[-1], s)
            runs += [width_run(widths[0], s),
                     run(f"kd{widths[0]}_seed{s}", s, "--n_inner", widths[0], "--teacher", big)]
        results, rep = measure_runs("3_distillation", runs, "--paired")
        if rep:
            summary["3_distillation"] = {"pairs": rep["pairs"], "table": group(
                rep, lambda d: f"n_inner {widths[0]}, " + ("distilled" if name_of(d).startswith("kd") else "alone"))}
            student = {"alone": (f"n_inner {widths[0]}, trained alone", width_colour(widths[0])),
                       "distilled": (f"n_inner {widths[0]}, distilled from n_inner {widths[-1]}", COLOURS["distilled"])}
            sets = settings_of(results, lambda r: "distilled" if name_of(r["name"]).startswith("kd") else "alone",
                               lambda k: student[k][0], lambda k: student[k][1])
            draw_settings(folder("3_distillation"), sets + ([teacher] if teacher else []), "3. Distillation: ")
    if 4 in only:
        results, rep = measure_runs("4_pretraining", [variant_run(v, s) for v in VARIANTS for s in seeds])
        if rep:
            summary["4_pretraining"] = {"table": group(rep, name_of)}
            sets = settings_of(results, lambda r: name_of(r["name"]), label_of, COLOURS.get)
            draw_settings(folder("4_pretraining"), sets, "4. Pre-training: ")
    if 5 in only:
        mid = ["--max_iters", iters * 3 // 10, "--warmup_iters", iters * 3 // 50, "--learning_rate", 5e-4,
               "--eval_interval", iters * 3 // 10]
        runs = []
        for s in seeds:
            start = variant_run("none", s)
            runs += [run(f"mid_none_seed{s}", s, "--init_from", start, *mid),
                     run(f"mid_angular_seed{s}", s, "--init_from", start, "--disp", "angular", *mid)]
        results, rep = measure_runs("5_midtraining", runs)
        if rep:
            summary["5_midtraining"] = {"table": group(rep, name_of)}
            sets = settings_of(results, lambda r: name_of(r["name"]).removeprefix("mid_"),
                               lambda v: "continued, " + label_of(v), COLOURS.get)
            draw_settings(folder("5_midtraining"), sets, "5. Mid-training: ")
    if not args.dry_run:
        path = os.path.join(args.out, "summary.json")
        if os.path.isfile(path):  # with --only, the other experiments' results of the same scale stay
            with open(path) as f:
                old = json.load(f)
            if old["scale"] == summary["scale"]:
                runs_used.update(r for r in old["runs"] if os.path.isdir(r))  # less any deleted since
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
