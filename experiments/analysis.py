"""
The suite's statistics over runs, beyond means over seeds: every run's own numbers, paired tests between settings
trained on the same seeds, and condensation compared at matched training tokens and at matched val loss.
"""

import os
import statistics

import numpy as np
from scipy import stats

import measure  # the suite puts the repository's root on the path before importing this
from support import plots

# the numbers kept for every run, when measure.py gave them (val is the run's final val loss, from its log)
RUN_KEYS = ("spearman", "kendall", "last_layer_mean", "excess_spearman", "last_layer_excess", "last_layer_across",
            "within_std_spearman", "last_layer_erank_ratio")


def seed_of(name):
    return int(os.path.basename(name.rstrip("/")).rsplit("_seed", 1)[1])


def run_rows(models, setting_of):
    """One row per run of measure.py's models: its setting, seed, final val loss and every RUN_KEYS number."""
    return [{"run": os.path.basename(m["name"]), "setting": setting_of(m["name"]), "seed": seed_of(m["name"]),
             "n_params": m["n_params"], "val": plots.read_log(m["name"])["eval"][-1]["val"],
             **{k: m[k] for k in RUN_KEYS if k in m}} for m in models]


def mean_std(xs):
    """Mean and std over seeds, leaving out undefined statistics (None: e.g. rho of a flat curve)."""
    xs = [x for x in xs if x is not None]
    return [statistics.fmean(xs) if xs else None, statistics.stdev(xs) if len(xs) > 1 else 0.0 if xs else None]


def group(rows, keys):
    """Mean and std over seeds of each of keys, by setting, in first-seen order."""
    groups = {}
    for row in rows:
        groups.setdefault(row["setting"], []).append(row)
    return {g: {"n": len(rs), "n_params": rs[0]["n_params"],
                **{k: mean_std([r.get(k) for r in rs]) for k in keys if any(k in r for r in rs)}}
            for g, rs in groups.items()}


def paired(rows, base, keys):
    """Each setting against `base` on the seeds both have: per key the mean difference, its std, and two-sided
    p-values of the paired t-test and of Wilcoxon's signed-rank test (exact at these sizes)."""
    by = {(r["setting"], r["seed"]): r for r in rows}
    out = {}
    for setting in dict.fromkeys(r["setting"] for r in rows):
        seeds = sorted(s for (g, s) in by if g == setting and (base, s) in by)
        if setting == base or len(seeds) < 2:
            continue
        out[setting] = {"seeds": seeds}
        for k in keys:
            d = np.array([by[setting, s][k] - by[base, s][k] for s in seeds
                          if by[setting, s].get(k) is not None and by[base, s].get(k) is not None])
            if len(d) < 2:
                continue
            t_p = float(stats.ttest_rel(d, np.zeros_like(d)).pvalue) if d.std() > 0 else None
            w_p = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else None
            out[setting][k] = {"n": len(d), "mean": float(d.mean()), "std": float(d.std(ddof=1)),
                               "t_p": t_p, "wilcoxon_p": w_p, "positive": int((d > 0).sum())}
    return out


# ------------------------------------------------------------------------------------------------ width vs training

TRAJECTORY_KEYS = ("spearman", "last_layer_excess", "last_layer_mean", "excess_spearman")


def trajectories(models):
    """The snapshots of each run, in order of steps, each with the val loss its run logged at that step.
    -> {run folder: [{"step", "tokens", "val", TRAJECTORY_KEYS...}]}"""
    runs = {}
    for m in models:
        runs.setdefault(os.path.dirname(m["name"]), []).append(m)
    out = {}
    for run, ms in runs.items():
        val = {r["iter"]: r["val"] for r in plots.read_log(run)["eval"]}
        points = []
        for m in sorted(ms, key=lambda m: m["tokens_seen"]):
            step = int(os.path.basename(m["name"]).removeprefix("ckpt_").removesuffix(".pt"))
            points.append({"step": step, "tokens": m["tokens_seen"], "val": val[step],
                           **{k: m[k] for k in TRAJECTORY_KEYS}})
        out[run] = points
    return out


def at_loss(points, level, key):
    """key where the run first reaches val loss `level`, interpolated linearly between the two snapshots around
    that moment; None if it never does."""
    for a, b in zip(points, points[1:]):
        if a["val"] >= level >= b["val"] and a[key] is not None and b[key] is not None:
            w = (a["val"] - level) / (a["val"] - b["val"]) if a["val"] != b["val"] else 0.0
            return a[key] + w * (b[key] - a[key])
    return None


def loss_levels(runs, n=6):
    """n val losses every run passes through after its first snapshot of training (step 0's loss is that of a
    random model): evenly spaced from the highest loss all runs have reached by their second snapshot down to the
    lowest that every run reaches."""
    high = min(points[1]["val"] for points in runs.values())
    low = max(min(p["val"] for p in points) for points in runs.values())
    return [float(x) for x in np.linspace(high, low, n)] if high > low else []


def rank_correlation(x, y):
    """Spearman's rho of y against x and its p-value; (None, None) where undefined (a constant, fewer than 3)."""
    r = measure.rank_correlations(x, y) if len(x) >= 3 else None
    if r is None or not np.isfinite(r["spearman"]):
        return None, None
    return r["spearman"], r["spearman_p"]


def compare_widths(runs, width_of, steps):
    """Condensation against MLP width, at matched training steps and at matched val loss: per step or loss level,
    each width's mean and std over seeds of each TRAJECTORY_KEYS number, and Spearman(width, number) over all
    runs with its p-value."""
    def compare(value_of):
        got = [(width_of(run), value_of(points)) for run, points in runs.items()]
        got = [(w, v) for w, v in got if v is not None]
        widths = sorted({w for w, _ in got})
        by_width = {str(w): mean_std([v for x, v in got if x == w]) for w in widths}
        r = rank_correlation([w for w, _ in got], [v for _, v in got])
        return {"by_width": by_width, "n": len(got), "spearman": r[0], "spearman_p": r[1]}

    tokens = {"steps": {}, "levels": {}}
    for step in steps:
        tokens["steps"][str(step)] = {k: compare(lambda ps: next((p[k] for p in ps if p["step"] == step), None))
                                      for k in ("val", *TRAJECTORY_KEYS)}
    for level in loss_levels(runs):
        tokens["levels"][f"{level:.4f}"] = {k: compare(lambda ps: at_loss(ps, level, k)) for k in TRAJECTORY_KEYS}
    return tokens


def pooled_fit(runs, width_of):
    """rho = a + b log2(width) + c val + noise over every snapshot after step 0, by least squares: b is the width
    effect at equal loss (with its t-statistic's two-sided p-value, the snapshots taken as independent, which
    they are not: a guide, not a test)."""
    rows = [(np.log2(width_of(run)), p["val"], p["spearman"]) for run, points in runs.items() for p in points[1:]
            if p["spearman"] is not None]
    x = np.array([[1.0, w, v] for w, v, _ in rows])
    y = np.array([r for *_, r in rows])
    coef, res, *_ = np.linalg.lstsq(x, y, rcond=None)
    dof = len(y) - 3
    sigma2 = float(((y - x @ coef) ** 2).sum()) / dof
    se = np.sqrt(np.diag(sigma2 * np.linalg.inv(x.T @ x)))
    p = [float(2 * stats.t.sf(abs(c / s), dof)) for c, s in zip(coef, se)]
    return {"n": len(y), "intercept": float(coef[0]), "per_doubling": float(coef[1]), "per_doubling_se": float(se[1]),
            "per_doubling_p": p[1], "per_nat": float(coef[2]), "per_nat_se": float(se[2]), "per_nat_p": p[2]}
