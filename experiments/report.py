"""
summary.md: the suite's tables in Markdown, written from summary.json alone (so that every cell can be checked
against the file it comes from).
"""

import os

TITLES = {"val": "val loss", "spearman": "rho", "kendall": "Kendall", "last_layer_mean": "last-layer cos",
          "excess_spearman": "excess rho", "within_std_spearman": "standardised rho",
          "last_layer_excess": "last-layer excess", "last_layer_across": "last-layer across"}
INTRO = ("Each row: mean ± std over seeds. rho and Kendall: rank correlation of the per-layer mean token cosine "
         "with depth (higher: the cosine rises more with depth); last-layer cos: the mean cosine of two tokens of "
         "one text at the last hidden state; excess: the mean cosine of two different tokens of one text minus that "
         "of two tokens of different texts at different positions; standardised rho: rho after standardising every "
         "channel. Measured on 100 held-out Austen paragraphs of 128 characters. Rank correlations over 7 layers "
         "move in steps of 1/28 (0.036): a difference of that size is one swapped pair of layers.\n")


def num(x, spec="+.3f"):
    return "n/a" if x is None else format(x, spec)  # None: a statistic that is undefined, e.g. on constant input


def table(groups, first="run"):
    """One row per setting: mean ± std over seeds of each measured number."""
    keys = [k for k in TITLES if all(k in r for r in groups.values())]
    lines = [f"| {first} | params | seeds | " + " | ".join(TITLES[k] for k in keys) + " |",
             "|---" * (3 + len(keys)) + "|"]
    for g, r in groups.items():
        cells = " | ".join(f"{num(r[k][0], '.3f')} ± {num(r[k][1], '.3f')}" for k in keys)
        lines.append(f"| {g} | {r['n_params'] / 1e6:.3f}M | {r['n']} | {cells} |")
    return "\n".join(lines) + "\n"


def paired_table(paired, base):
    """Each setting minus base on the same seeds: mean difference ± std, and the p-values of the paired t-test
    and of Wilcoxon's signed-rank test."""
    keys = [k for k in TITLES if any(k in p for p in paired.values())]
    lines = [f"| minus {base} | seeds | " + " | ".join(TITLES[k] for k in keys) + " |",
             "|---" * (2 + len(keys)) + "|"]
    for g, p in paired.items():
        cells = [f"{d['mean']:+.4f} ± {d['std']:.4f} (t p {num(d['t_p'], '.2g')}, W p "
                 f"{num(d['wilcoxon_p'], '.2g')}; {d['positive']}/{d['n']} up)" if (d := p.get(k)) else "-"
                 for k in keys]
        lines.append(f"| {g} | {len(p['seeds'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def trend_line(t):
    t = (t or {}).get("n_params")
    if not t:
        return ""
    return (f"Trend of rho with parameters over all {t['n']} runs: Spearman {num(t['spearman'])} "
            f"(p {num(t['spearman_p'], '.2g')}), Kendall {num(t['kendall'])} (p {num(t['kendall_p'], '.2g')}).\n")


def training_table(runs):
    lines = ["| run | rho at step 0 | rho at the end | last-layer cos at step 0 | at the end | erank / C: step 0, "
             "min, end | trend of rho with tokens |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        t, e = r["trend"], r.get("erank_ratio") or [None]
        erank = f"{num(e[0], '.2f')}, {num(min(x for x in e if x is not None), '.2f')}, {num(e[-1], '.2f')}" \
            if e[0] is not None else "-"
        lines.append(f"| {r['run']} | {num(r['rho'][0])} | {num(r['rho'][-1])} | {r['cos'][0]:.3f} | "
                     f"{r['cos'][-1]:.3f} | {erank} | "
                     + (f"Spearman {num(t['spearman'])} (p {num(t['spearman_p'], '.2g')})" if t else "-") + " |")
    return "\n".join(lines) + "\n"


def by_text_table(by_text):
    """Experiment 4's models on the text they were trained on (held out) and on Wikipedia text."""
    keys = ("last_layer_mean", "last_layer_across", "last_layer_excess", "spearman")
    lines = ["| variant | " + " | ".join(f"{TITLES[k]}: {t}" for k in keys for t in ("Austen", "wiki")) + " |",
             "|---" * (1 + 2 * len(keys)) + "|"]
    for g in by_text["austen"]:
        cells = [num(by_text[t][g][k][0], '.3f') for k in keys for t in ("austen", "wiki")]
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def width_tables(s):
    """Experiment 6: condensation by width at matched steps and at matched val loss, and the pooled fit."""
    out = []
    for what, part in (("step", "steps"), ("val loss", "levels")):
        lines = [f"| {what} | key | " + " | ".join(f"n_inner {w}" for w in
                                                   next(iter(s['compare'][part].values()))["spearman"]["by_width"])
                 + " | Spearman(width, key), p |", None]
        for at, keys in s["compare"][part].items():
            for key in ("val", "spearman", "last_layer_excess", "last_layer_mean"):
                if key not in keys:
                    continue
                c = keys[key]
                cells = [f"{num(m, '.3f')} ± {num(sd, '.3f')}" for m, sd in c["by_width"].values()]
                lines.append(f"| {at} | {TITLES[key]} | " + " | ".join(cells)
                             + f" | {num(c['spearman'], '+.2f')}, {num(c['spearman_p'], '.2g')} |")
        lines[1] = "|---" * (len(lines[0].split("|")) - 2) + "|"
        out.append("\n".join(lines) + "\n")
    f = s["fit"]
    out.append(f"Pooled over the {f['n']} snapshots after step 0, least squares: rho = {f['intercept']:+.2f} "
               f"+ b log2(n_inner) + c (val loss), b = {f['per_doubling']:+.3f} ± {f['per_doubling_se']:.3f} "
               f"per doubling of n_inner (p {f['per_doubling_p']:.2g}), c = {f['per_nat']:+.2f} ± "
               f"{f['per_nat_se']:.2f} per nat (p {f['per_nat_p']:.2g}); b is the width effect at equal loss. "
               "The snapshots of one run are not independent: the p-values are a guide only.\n")
    return out


def markdown(summary):
    out = [f"# Laptop-scale results ({summary['scale']} scale: {summary['n_runs']} runs, "
           f"{summary['train_seconds'] / 60:.0f} minutes of training in all)\n", INTRO]
    if "1_width" in summary:
        s = summary["1_width"]
        out += ["## 1. MLP width (n_inner), all else fixed\n", table(s["table"], "n_inner"),
                trend_line(s["size_trend"])]
    if "2_training" in summary:
        out += ["## 2. Through training (snapshots of the plain runs)\n", training_table(summary["2_training"])]
    if "3_distillation" in summary:
        s = summary["3_distillation"]
        out += ["## 3. Distillation from the widest model\n", table(s["table"], "student")]
        for p in s["pairs"]:
            out.append(f"- {os.path.basename(p['other'])} - {os.path.basename(p['base'])}: d rho "
                       f"{p['d_spearman']:+.3f}, d last-layer cos {p['d_last_layer_mean']:+.4f}, d last-layer "
                       f"excess {p['d_last_layer_excess']:+.4f} (95% CI over texts "
                       f"{p['d_last_layer_excess_ci'][0]:+.4f} .. {p['d_last_layer_excess_ci'][1]:+.4f})"
                       if p.get("d_last_layer_excess_ci") else "")
        out.append("")
    if "4_pretraining" in summary:
        s = summary["4_pretraining"]
        out += ["## 4. Dispersion and baselines in pre-training\n", table(s["table"], "variant"),
                "Paired by seed, each variant minus no dispersion:\n", paired_table(s["paired"], "none")]
        if "by_text" in s:
            out += ["The same models (seeds 0-2) on held-out Austen and on Wikipedia text, which none trained on:\n",
                    by_text_table(s["by_text"])]
    if "5_midtraining" in summary:
        s = summary["5_midtraining"]
        out += ["## 5. Dispersion in mid-training (continuing the plain runs of 4)\n", table(s["table"], "variant")]
        if s["paired"]:
            out += ["Paired by seed, continued with angular dispersion minus continued plain:\n",
                    paired_table(s["paired"], "mid_none")]
    if "6_width_training" in summary:
        out += ["## 6. Width against training progress\n"] + width_tables(summary["6_width_training"])
    return "\n".join(out) + "\n"
