"""
The paper's experiments at laptop scale: every run is a train.py command, every measurement a measure.py command.

    python experiments/suite.py                # all six experiments, about two hours on 2 CPU cores
    python experiments/suite.py --only 1,3     # some of them (runs they share are trained once)
    python experiments/suite.py --quick        # the same pipeline on toy models in under a minute (CI runs it)
    python experiments/suite.py --dry_run      # print every command, run nothing

1. size, controlled: only the MLP width n_inner changes (the paper's 64/256/1024/4096 at width 768, scaled to ours)
2. through training: snapshots from step 0 of the plain runs of 4; condensation against tokens seen
3. distillation: the narrowest model of 1 distilled from the widest, against the same model trained alone
4. dispersion in pre-training: none, the paper's four variants and two baselines (noisy embeddings, forgetting);
   none, angular and decorrelation on five more seeds for paired tests; measured on held-out Austen and on
   Wikipedia text, which no model saw
5. dispersion in mid-training: the plain runs of 4 continued with and without the angular dispersion loss
6. width against training progress: the widths of 1 trained 4x longer with snapshots, compared at matched
   training steps and at matched val loss
Runs go to --runs (a finished run is not trained again and an unfinished one is resumed, so an interrupted suite
picks up where it stopped); tables, JSON and figures to --out. --quick has its own folders, under
experiments/runs/quick/, so that the committed results in experiments/results/ change only by a full run.
summary.json keeps every run's own numbers, so that every cell of every table can be recomputed from it.
"""

import argparse
import contextlib
import io
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import analysis  # noqa: E402
import measure  # noqa: E402
import report  # noqa: E402
import train  # noqa: E402
from support import load, outputs, plots  # noqa: E402
from support.checks import check_writable, fail, one_line  # noqa: E402
from support.load import load_checkpoint  # noqa: E402
from support.progress import fmt_seconds  # noqa: E402

# laptop scale: a 6-layer char-level GPT on the bundled Austen novels, about a minute a run on 2 cores;
# extra_seeds: more seeds of PAIRED_VARIANTS (experiment 4); long_iters, long_every: experiment 6's runs
FULL = dict(n_embd=96, n_layer=6, n_head=4, block_size=128, batch_size=16, iters=500, seeds=(0, 1, 2), n_texts=100,
            extra_seeds=(3, 4, 5, 6, 7), long_iters=2000, long_every=200)
QUICK = dict(n_embd=32, n_layer=3, n_head=2, block_size=32, batch_size=8, iters=20, seeds=(0,), n_texts=12,
             extra_seeds=(1,), long_iters=40, long_every=10)
DATASET = "austen_char"
OTHER_TEXT = ["--data", "wiki_char", "--split", "all"]  # experiment 4 again, on text no model trained on
OTHER_TEXTS = 89  # the bundled Wikipedia sample has 89 articles: one text from each
VARIANTS = {  # experiment 4: name -> extra train.py flags; the dispersion kinds use train.py's defaults (lambda 0.1)
    "none": [],
    "angular": ["--disp", "angular"],
    "decorrelation": ["--disp", "decorrelation"],
    "l2_repel": ["--disp", "l2_repel"],
    "orthogonal": ["--disp", "orthogonal"],
    "embed_noise": ["--embed_noise", 5],  # NEFTune's usual alpha
    "forgetting": ["--forget_every", "ITERS/5"],  # four resets, the last one a fifth of the run before the end
}
PAIRED_VARIANTS = ("none", "angular", "decorrelation")  # experiment 4's settings on the extra seeds
PAIRED_KEYS = ("val", "last_layer_mean", "last_layer_excess", "spearman", "excess_spearman")
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
           "loss_curves.png", "condensation_against_loss.png", "plain_vs_angular.png", "README.md")
TABLE_KEYS = ("val", "spearman", "kendall", "last_layer_mean", "excess_spearman", "within_std_spearman",
              "last_layer_excess")


def train_seconds(run_dir):
    """How long a run's training took, from the lines train.py printed into its train.txt (one per resumed part)."""
    with open(os.path.join(run_dir, "train.txt")) as f:
        return sum(map(int, re.findall(r"done in (\d+) s", f.read())))


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


def measure_in_memory(argv):
    """measure.py's work in this process: its files into --out as `python measure.py argv` writes them but for
    its figures (the suite draws its own, by setting), and its results kept in memory, for they hold the heatmaps'
    histograms that its JSON has not."""
    args = measure.parse_args(argv)
    results, rep = measure.measure_all(args)
    # an earlier run's files that this one would not rewrite must not mix in
    load.write_results(args.out, lambda folder: outputs.write_outputs(results, rep, folder, figures=False),
                       lambda out: [*out.glob("condensation*.*"), *(out / name for name in FIGURES)])
    return results, rep


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


def name_of(d):
    return os.path.basename(d.rstrip("/")).rsplit("_seed", 1)[0]


class Suite:
    """The six experiments over one folder of runs: each experiment trains what it lacks, measures, draws and
    adds its part to the summary."""

    def __init__(self, args):
        self.args, self.S = args, QUICK if args.quick else FULL
        S, iters = self.S, self.S["iters"]
        self.base = ["--dataset", DATASET, "--n_layer", S["n_layer"], "--n_head", S["n_head"], "--n_embd", S["n_embd"],
                     "--block_size", S["block_size"], "--batch_size", S["batch_size"], "--max_iters", iters,
                     "--warmup_iters", iters // 10, "--eval_interval", iters // 2, "--log_interval", 50,
                     "--device", args.device]
        n = S["n_embd"]
        self.widths = [n // 12, n // 3, 4 * n // 3, 16 * n // 3]  # the paper's 64, 256, 1024, 4096 at n_embd 768
        self.summary = {"scale": "quick" if args.quick else "full", "settings": S, "widths": self.widths}
        self.runs_used, self.trained, self.todo, self.teacher = set(), 0, 0, None
        self.t_start = time.time()

    def run(self, name, seed, *flags):
        """Train one run (flags override the base ones) unless it is finished, resuming an unfinished one from
        its checkpoint; -> its directory."""
        out = os.path.join(self.args.runs, name)
        self.runs_used.add(out)
        cmd = [str(x) for x in ("--out_dir", out, "--seed", seed, *self.base)]
        for flag, value in zip(flags[::2], flags[1::2]):  # every flag here takes a value: (flag, value) pairs
            cmd = with_flag(cmd, flag, value)
        state = run_state(out, int(cmd[cmd.index("--max_iters") + 1]))
        if state == "unfinished":
            cmd = with_flag(cmd, "--init_from", "resume")
        if state == "partial":
            cmd.append("--overwrite")  # train.py deletes the old files once it holds the folder's lock
        print({"done": "# already done: ", "unfinished": "# resuming: ", "partial": "# starting again (killed "
               "before its first checkpoint): ", "new": ""}[state] + "python train.py " + " ".join(cmd), flush=True)
        if state != "done" and not self.args.dry_run:
            self.trained += 1
            spent = time.time() - self.t_start
            left = (f", about {fmt_seconds(spent / (self.trained - 1) * (self.todo - self.trained + 1))} left"
                    if self.trained > 1 else "")
            print(f"# run {self.trained}/{self.todo}, {fmt_seconds(spent)} so far{left}", flush=True)
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, "train.txt"), "a" if state == "unfinished" else "w") as f, \
                    contextlib.redirect_stdout(f):
                train.main(cmd)
        return out

    def measure(self, folder, runs, *flags, data=("--data", DATASET)):
        """measure.py on the runs' final checkpoints (or snapshots); -> (its results in memory, its
        condensation.json), (None, None) in a dry run."""
        out = os.path.join(self.args.out, folder)
        cmd = [str(x) for x in (*runs, *data, "--n_texts", self.S["n_texts"], "--seq_len", self.S["block_size"],
                                "--out", out, "--standardize", "--erank", *flags)]
        print("python measure.py " + " ".join(cmd), flush=True)
        if self.args.dry_run:
            return None, None
        os.makedirs(self.args.runs, exist_ok=True)
        with open(os.path.join(self.args.runs, f"measure_{folder}.txt"), "w") as f, contextlib.redirect_stdout(f):
            return measure_in_memory(cmd)

    def width_run(self, w, s):
        return self.run(f"width{w}_seed{s}", s, "--n_inner", w)

    def variant_run(self, v, s):  # the plain runs keep ten snapshots from step 0 for experiment 2
        iters = self.S["iters"]
        flags = [iters // 5 if f == "ITERS/5" else f for f in VARIANTS[v]]
        return self.run(f"{v}_seed{s}", s, *flags, *(["--save_every", iters // 10] if v == "none" else []))

    def folder(self, name):
        return Path(self.args.out) / name

    def label_of(self, v):
        return LABELS[v].replace("ITERS/5", str(self.S["iters"] // 5))

    def width_colour(self, w):
        return WIDTH_COLOURS[self.widths.index(w)]

    def exp1(self):
        results, rep = self.measure("1_width", [self.width_run(w, s) for w in self.widths for s in self.S["seeds"]])
        if not rep:
            return
        rows = analysis.run_rows(rep["models"], lambda d: name_of(d).removeprefix("width"))
        self.summary["1_width"] = {"size_trend": rep["size_trend"], "runs": rows,
                                   "table": analysis.group(rows, TABLE_KEYS)}
        sets = settings_of(results, lambda r: int(name_of(r["name"]).removeprefix("width")),
                           lambda w: f"n_inner {w}", self.width_colour)
        draw_settings(self.folder("1_width"), sets, "1. MLP width: ")
        plots.plot_setting_size(sets, (rep["size_trend"] or {}).get("n_params"),
                                self.folder("1_width") / "size_trend.png", "1. MLP width: ")
        self.teacher = sets[-1] | {"label": f"n_inner {self.widths[-1]}: the teacher"}

    def exp2(self):
        runs = [self.variant_run("none", s) for s in self.S["seeds"]]
        results, rep = self.measure("2_training", runs, "--snapshots", "--n_boot", 0)
        if not rep:
            return
        by_run = {}  # snapshots grouped by run, each run's in order of tokens seen (a stable sort keeps runs' order)
        for m in sorted(rep["models"], key=lambda m: m["tokens_seen"]):
            by_run.setdefault(os.path.dirname(m["name"]), []).append(m)
        keys = {"rho": "spearman", "cos": "last_layer_mean", "excess": "last_layer_excess",
                "excess_rho": "excess_spearman", "erank_ratio": "last_layer_erank_ratio"}
        self.summary["2_training"] = [{"run": os.path.basename(d), "trend": rep["runs"].get(d),
                                       "tokens": [m["tokens_seen"] for m in ms],
                                       **{k: [m.get(v) for m in ms] for k, v in keys.items()}}
                                      for d, ms in by_run.items()]
        draw_training(self.folder("2_training"), results, rep["runs"])

    def exp3(self):
        runs, w0, w1 = [], self.widths[0], self.widths[-1]
        for s in self.S["seeds"]:
            big = self.width_run(w1, s)
            runs += [self.width_run(w0, s), self.run(f"kd{w0}_seed{s}", s, "--n_inner", w0, "--teacher", big)]
        results, rep = self.measure("3_distillation", runs, "--paired")
        if not rep:
            return
        kind = lambda d: "distilled" if name_of(d).startswith("kd") else "alone"
        rows = analysis.run_rows(rep["models"], lambda d: f"n_inner {w0}, {kind(d)}")
        self.summary["3_distillation"] = {"pairs": rep["pairs"], "runs": rows,
                                          "table": analysis.group(rows, TABLE_KEYS)}
        student = {"alone": (f"n_inner {w0}, trained alone", self.width_colour(w0)),
                   "distilled": (f"n_inner {w0}, distilled from n_inner {w1}", COLOURS["distilled"])}
        sets = settings_of(results, lambda r: kind(r["name"]), lambda k: student[k][0], lambda k: student[k][1])
        draw_settings(self.folder("3_distillation"), sets + ([self.teacher] if self.teacher else []),
                      "3. Distillation: ")

    def exp4(self):
        first = [self.variant_run(v, s) for v in VARIANTS for s in self.S["seeds"]]
        more = [self.variant_run(v, s) for v in PAIRED_VARIANTS for s in self.S["extra_seeds"]]
        results, rep = self.measure("4_pretraining", first + more)
        _, other = self.measure("4_pretraining_wiki", first, "--n_texts",
                                  min(OTHER_TEXTS, self.S["n_texts"]), data=OTHER_TEXT)
        if not rep:
            return
        rows = analysis.run_rows(rep["models"], name_of)
        self.summary["4_pretraining"] = {"runs": rows, "table": analysis.group(rows, TABLE_KEYS),
                                         "paired": analysis.paired(rows, "none", PAIRED_KEYS)}
        text_keys = ("last_layer_mean", "last_layer_across", "last_layer_excess", "spearman")
        by_text = {"austen": analysis.group([r for r in rows if r["seed"] in self.S["seeds"]], text_keys),
                   "wiki": analysis.group(analysis.run_rows(other["models"], name_of), text_keys)}
        self.summary["4_pretraining"]["by_text"] = by_text
        sets = settings_of(results, lambda r: name_of(r["name"]), self.label_of, COLOURS.get)
        draw_settings(self.folder("4_pretraining"), sets, "4. Pre-training: ")
        pair = [s for s in sets if s["key"] in ("none", "angular")]  # the README's figure
        plots.plot_setting_layer_means(pair, self.folder("4_pretraining") / "plain_vs_angular.png",
                                       "Plain against angular dispersion: ")

    def exp5(self):
        iters, runs = self.S["iters"], []
        mid = ["--max_iters", iters * 3 // 10, "--warmup_iters", iters * 3 // 50, "--learning_rate", 5e-4,
               "--eval_interval", iters * 3 // 10]
        for s in self.S["seeds"]:
            start = self.variant_run("none", s)
            runs += [self.run(f"mid_none_seed{s}", s, "--init_from", start, *mid),
                     self.run(f"mid_angular_seed{s}", s, "--init_from", start, "--disp", "angular", *mid)]
        results, rep = self.measure("5_midtraining", runs)
        if not rep:
            return
        rows = analysis.run_rows(rep["models"], name_of)
        self.summary["5_midtraining"] = {"runs": rows, "table": analysis.group(rows, TABLE_KEYS),
                                         "paired": analysis.paired(rows, "mid_none", PAIRED_KEYS)}
        sets = settings_of(results, lambda r: name_of(r["name"]).removeprefix("mid_"),
                           lambda v: "continued, " + self.label_of(v), COLOURS.get)
        draw_settings(self.folder("5_midtraining"), sets, "5. Mid-training: ")

    def exp6(self):
        S = self.S
        long = ["--max_iters", S["long_iters"], "--warmup_iters", S["long_iters"] // 10,
                "--eval_interval", S["long_every"], "--save_every", S["long_every"]]
        runs = [self.run(f"long_width{w}_seed{s}", s, "--n_inner", w, *long) for w in self.widths
                for s in S["seeds"]]
        _, rep = self.measure("6_width_training", runs, "--snapshots", "--n_boot", 0)
        if not rep:
            return
        width_of = lambda d: int(name_of(d).removeprefix("long_width"))
        runs = analysis.trajectories(rep["models"])
        every, end = S["long_every"], S["long_iters"]
        steps = sorted({every, 2 * every, 3 * every, end // 2, end})  # steps with a snapshot
        self.summary["6_width_training"] = {"runs": {os.path.basename(d): ps for d, ps in runs.items()},
                                            "compare": analysis.compare_widths(runs, width_of, steps),
                                            "fit": analysis.pooled_fit(runs, width_of)}
        curves = [dict(label=f"n_inner {w}", colour=self.width_colour(w),
                       runs=[ps for d, ps in runs.items() if width_of(d) == w]) for w in self.widths]
        plots.plot_against_loss(curves, self.folder("6_width_training") / "condensation_against_loss.png",
                                "6. Width through training: ")

    def finish(self):
        """summary.json (with --only, the other experiments' results of the same scale stay) and summary.md."""
        path = os.path.join(self.args.out, "summary.json")
        summary = self.summary
        if os.path.isfile(path):
            with open(path) as f:
                old = json.load(f)
            if old["scale"] == summary["scale"]:
                self.runs_used.update(r for r in old["runs"] if os.path.isdir(r))  # less any deleted since
                summary = old | summary
        summary["runs"] = sorted(self.runs_used)
        summary["n_runs"], summary["train_seconds"] = len(self.runs_used), sum(map(train_seconds, self.runs_used))
        with open(path, "w") as f:
            json.dump(summary, f, indent=1)
        text = report.markdown(summary)
        with open(os.path.join(self.args.out, "summary.md"), "w") as f:
            f.write(text)
        print(text)


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
    plots.plot_setting_layer_measures(at, folder / "layer_measures.png", "2. Over training: ")


# ------------------------------------------------------------------------------------------------ the suite

def parse_args(argv):
    p = one_line(argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip()), "experiments/suite.py")
    p.add_argument("--quick", action="store_true", help="toy sizes: the whole pipeline in under a minute")
    p.add_argument("--only", default="1,2,3,4,5,6", help="comma list of experiments")
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
    if not args.only or not args.only <= {1, 2, 3, 4, 5, 6}:
        fail(f"--only {given}: give experiments 1 to 6 as a comma list, e.g. --only 1,3")
    quick = os.path.join("experiments", "runs", "quick")
    args.runs = args.runs or (quick if args.quick else os.path.join("experiments", "runs"))
    args.out = args.out or (os.path.join(quick, "results") if args.quick else os.path.join("experiments", "results"))
    for flag, folder in (("--runs", args.runs), ("--out", args.out)):  # refused now, not after an hour of training
        if unwritable := check_writable(os.path.join(ROOT, folder), flag):
            fail(unwritable)
    return args


def main(argv=None):
    args = parse_args(argv)
    args.runs, args.out = os.path.abspath(args.runs), os.path.abspath(args.out)  # before the chdir below
    os.chdir(ROOT)  # the printed commands are meant to be pasted in the repository's root
    args.runs, args.out = (os.path.relpath(f) if f.startswith(ROOT + os.sep) else f for f in (args.runs, args.out))
    suite = Suite(args)
    if not args.dry_run:  # runs left to train, for the progress line: counted by a dry pass of the same suite
        with contextlib.redirect_stdout(io.StringIO()) as plan:
            main([*(sys.argv[1:] if argv is None else argv), "--dry_run"])
        suite.todo = len({line.split("--out_dir ")[1].split()[0] for line in plan.getvalue().splitlines()
                          if line.startswith(("python train.py", "# resuming", "# starting again"))})
    for k in sorted(args.only):
        getattr(suite, f"exp{k}")()
    if not args.dry_run:
        suite.finish()
    print(f"suite finished in {time.time() - suite.t_start:.0f} s")


if __name__ == "__main__":
    main()
