"""
measure.py's outputs, out of the reader's way: condensation.json, the two CSVs, a README.md of the
columns, the figures (support/plots.py) and the table measure.py prints. The measures' names and
one-sentence definitions come with the report (report["definitions"]).
"""

import csv
import json
import re

import numpy as np

from support import plots

FIGURES = ("heatmaps.png", "layer_means.png", "layer_measures.png", "size_trend.png")
RANKS = ("spearman", "spearman_p", "spearman_ci", "kendall", "kendall_p", "kendall_ci")
# condensation_layers.csv's measure columns
LAYER_KEYS = ("across", "excess", "rogue", "erank", "erank_ratio", "within_std")


def csv_keys(measures):
    """condensation.csv's columns; measures: those beyond the paper's, in the tables' order."""
    return ("name", "n_params", "n_params_non_embedding", "tokens_seen", "n_hidden", *RANKS,
            "last_layer_mean", "last_n_mean", *(f"{m}_{k}" for m in measures for k in RANKS),
            *(f"last_layer_{m}" for m in (*measures, "erank_ratio")), "load_seconds",
            "measure_seconds", "seconds")


def output_files(out):
    """Every file write_outputs may write into the folder out."""
    return [*out.glob("condensation*.*"), *out.glob("training*.png"), out / "README.md",
            *(out / f for f in FIGURES)]


def write_outputs(results, report, folder, size_by="n_params", figures=True):
    """condensation.json (the report), the CSVs, README.md and, with figures, the figures."""
    # NaN and Infinity become null (e.g. rho of a flat curve)
    text = re.sub(r"(?<=[\s\[])-?(NaN|Infinity)\b", "null", json.dumps(report, indent=1))
    text = re.sub(r"\[\s+([^\[\]{}\"]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]",
                  text)
    (folder / "condensation.json").write_text(text + "\n")
    # a confidence interval as "lo hi"
    cell = lambda v: " ".join(map(str, v)) if isinstance(v, list) else v
    keys = csv_keys([m for m in report["definitions"] if m != "within"])
    layer_rows = [[r["name"], layer, layer / (r["n_hidden"] - 1), r["layer_mean"][layer],
                   r["layer_std"][layer],
                   *(r["layer_" + k][layer] if "layer_" + k in r else None for k in LAYER_KEYS)]
                  for r in results for layer in range(r["n_hidden"])]
    tables = {"condensation.csv":
                  [keys] + [[cell(r.get(k)) for k in keys] for r in results],
              "condensation_layers.csv":
                  [("name", "layer", "layer_fraction", "mean", "std", *LAYER_KEYS)] + layer_rows}
    for name, rows in tables.items():
        with open(folder / name, "w", newline="") as f:
            csv.writer(f).writerows(rows)
    (folder / "README.md").write_text(columns_readme(report["definitions"]))
    if figures:
        plots.draw_all(results, snapshot_runs(results), folder, size_by)


def columns_readme(definitions):
    """README.md of a results folder: what its files and columns are."""
    lines = ["# measure.py's results", "",
             "- `condensation.json`: the settings, every number of every model, "
             "the size trend, paired differences and trends over training snapshots.",
             "- `condensation.csv`: one row per model; `condensation_layers.csv`: one row per "
             "model and layer (`mean` is within, `std` its spread over texts).",
             "- `X_spearman`, `X_kendall`: rank correlation of measure X with depth (no prefix: "
             "within), with p-values and bootstrap intervals over texts (`lo hi`); `last_layer_X`: "
             "the last layer's value.", "",
             "The measures, per layer:", ""]
    return "\n".join(lines + [f"- `{k}`: {v}." for k, v in definitions.items()]) + "\n"


def interval(value, ci):
    """value [lo, hi] with the digits that tell lo, value and hi apart (three decimals at least)."""
    if not ci:
        return f"{value:+.3f}"
    spread = max(abs(ci[1] - ci[0]), abs(value - ci[0]), abs(ci[1] - value))
    if spread < 1e-9:  # a zero-width interval (rounding aside): three decimals say it as it is
        return f"{value:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]"
    digits = max(3, min(5, 1 - int(np.floor(np.log10(spread)))))
    return f"{value:+.{digits}f} [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]"


def print_table(results, report, last_n, size_by="n_params"):
    fmt = lambda r, k: interval(r[k], r.get(k + "_ci"))
    std, erank = "within_std_spearman" in results[0], "last_layer_erank_ratio" in results[0]
    print(f"{'model':32s} {'params':>8s} {'non-emb':>8s} {'L+1':>4s} {'rho [CI]':>26s} "
          f"{'excess rho [CI]':>26s} "
          + (f"{'std rho [CI]':>26s} " if std else "") + f"{'Kendall [CI]':>26s} {'last':>6s} "
          f"{f'last{last_n}':>6s}" + (f" {'erank/C':>7s}" if erank else ""))
    for r in sorted(results, key=lambda r: r["n_params"]):
        print(f"{plots.short(r['name'], 32):32s} {r['n_params'] / 1e6:7.2f}M "
              f"{r['n_params_non_embedding'] / 1e6:7.2f}M"
              f" {r['n_hidden']:4d} {fmt(r, 'spearman'):>26s} {fmt(r, 'excess_spearman'):>26s} "
              + (f"{fmt(r, 'within_std_spearman'):>26s} " if std else "")
              + f"{fmt(r, 'kendall'):>26s} "
              f"{r['last_layer_mean']:6.3f} {r['last_n_mean']:6.3f}"
              + (f" {r['last_layer_erank_ratio']:7.3f}" if erank else ""))
    if report["size_trend"]:
        t = report["size_trend"][size_by]
        print(f"size trend over {t['n']} models "
              f"({'non-embedding ' * (size_by != 'n_params')}parameters): "
              f"Spearman(size, rho) {t['spearman']:+.3f} (p {t['spearman_p']:.3g}), "
              f"Kendall {t['kendall']:+.3f} (p {t['kendall_p']:.3g})")
        if len(families := report["size_trend"]["families"]) > 1:
            print(f"note: the size trend mixes model families ({', '.join(families)})")
    for p in report["pairs"]:
        print(f"{p['other']} - {p['base']}: d_rho {fmt(p, 'd_spearman')}, d_excess_rho "
              f"{fmt(p, 'd_excess_spearman')}, d_last {p['d_last_layer_mean']:+.4f}"
              + ("" if p["same_texts"] else " (texts differ)"))
    if report["pairs"]:
        print("intervals: a bootstrap over the texts, for these models: differences between "
              "training seeds are not in them, and a rank correlation over few layers moves in "
              "steps (1/28 over 7 layers)")


def snapshot_runs(results):
    """Checkpoints of one run directory (or revisions of one hf: model) that know their training
    tokens."""
    runs = {}
    for r in results:
        if r["tokens_seen"] is not None:
            runs.setdefault(r["run"], []).append(r)
    return {run: sorted(rs, key=lambda r: r["tokens_seen"]) for run, rs in runs.items()
            if len({r["tokens_seen"] for r in rs}) > 1}
