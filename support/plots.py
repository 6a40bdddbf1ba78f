"""
The paper's figures, drawn from measure.py's results (matplotlib, files only):

  heatmaps.png     per model: x = layer, y = cosine similarity, colour = share of token pairs in each bin
                   of that layer's text-averaged cosine matrix; all models on one colour scale
  layer_means.png  the per-layer mean cosine of every model (x = layer fraction: models of any depth), with a
                   band of +-1 sd over texts
  layer_measures.png  per layer: within- and across-text mean cosine, excess, within after standardising
                   channels and the effective rank (when measured), one colour per model
  size_trend.png   Spearman's rho and Kendall's tau-b against parameters, on a log axis (from three models of different sizes)
  condensation_over_training.png   rho and Kendall of each run's snapshots against training tokens (when there are
                   snapshots)

The experiment suite's figures, by setting (each setting one colour, mean over seeds and a band over them), and
training curves from log.jsonl, several runs on one plot:

    python -m support.plots out_a out_b --out loss_curves.png
"""

import contextlib
import json
import math
import os
import re
from pathlib import Path

import numpy as np


def draw_all(results, runs, folder, size_by="n_params"):
    """Every figure that the results call for, into folder; runs: {run: its snapshots' results, by tokens};
    size_by: the size of the size trend's x-axis, n_params or n_params_non_embedding."""
    plot_heatmaps(results, folder / "heatmaps.png")
    plot_layer_means(results, folder / "layer_means.png")
    if "layer_across" in results[0]:
        plot_layer_measures(results, folder / "layer_measures.png")
    if len({r[size_by] for r in results}) > 2:  # a trend needs three sizes at least
        plot_size_trend(results, folder / "size_trend.png", size_by)
    if runs:
        plot_training(runs, folder / "condensation_over_training.png")


@contextlib.contextmanager
def figure(path, size=(6.4, 4), **kw):
    """(fig, axes) to draw on in a with block, saved to path at its end."""
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(figsize=size, layout="constrained", **kw)
    try:
        yield fig, axes
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)  # pyplot would keep it alive


def short(name, width):
    """A model's name for a figure or table: a run directory by its own name, a snapshot as run/ckpt_NNNNNN, an
    hf: model by its name without the organisation or by its directory's name (hf:Qwen/Qwen3-0.6B -> Qwen3-0.6B)."""
    if name.startswith("hf:"):
        name, at, revision = name[3:].partition("@")
        return (Path(name).name + at + revision)[-width:]
    path = Path(name)
    if path.suffix == ".pt":
        name = f"{path.parent.name}/{path.stem}"
    elif path.exists():
        name = path.resolve().name
    return name[-width:]


def family(r):
    """A model's family, for the size trend: our checkpoints, GPT-2, or an hf: model's name without its size
    and revision (hf:Qwen/Qwen3-0.6B and hf:Qwen/Qwen3-1.7B are both Qwen/Qwen3)."""
    if r["kind"] != "hf":
        return r["kind"]
    name = r["name"].removeprefix("hf:").partition("@")[0]
    name = Path(name).name if os.path.exists(name) else name
    return re.sub(r"[-_.]?\d+(\.\d+)?[mbk]\d*\b.*$", "", name, flags=re.IGNORECASE) or name


def plot_heatmaps(results, path):
    """The paper's figure: per model, x = layer, y = cosine similarity, colour = the share of token pairs in
    each of 128 bins of that layer's averaged cosine matrix; one (log) colour scale for all models."""
    from matplotlib import colormaps, colors
    cols = min(len(results), 6)
    rows = math.ceil(len(results) / cols)
    top = max(r["hist"].max() for r in results)
    # the log scale masks empty bins, and they are painted in its lowest colour, as the shares below its floor
    norm, cmap = colors.LogNorm(top * 1e-4, top), colormaps["viridis"].with_extremes(bad=colormaps["viridis"](0))
    with figure(path, (3 * cols + 1.2, 2.8 * rows), nrows=rows, ncols=cols, squeeze=False, sharey=True) as (fig, axes):
        for ax, r in zip(axes.flat, results):
            mesh = ax.pcolormesh(*layer_edges(r["hist"]), r["hist"].T, norm=norm, cmap=cmap)
            ax.set_title(short(r["name"], 40), fontsize=8)
            layer_ticks(ax, r["n_hidden"])
        for ax in axes.flat[len(results):]:
            ax.axis("off")
        axes[0, 0].set_ylabel("cosine similarity")
        fig.suptitle(HEATMAP_NOTE, fontsize=8)
        fig.colorbar(mesh, ax=axes, label="share of token pairs")


HEATMAP_NOTE = ("each column: one layer's cosines between two tokens of a text, pooled over texts;\nthe bright "
                "line at cosine 1 is each token with itself (a 1/T share)")


def layer_edges(hist):
    """The cells of a heatmap [L + 1, bins]: layer l spans l - 1/2 .. l + 1/2, the bins span -1 .. 1."""
    return np.arange(hist.shape[0] + 1) - 0.5, np.linspace(-1, 1, hist.shape[1] + 1)


def layer_ticks(ax, n_hidden, label="layer (0 = embeddings)"):
    """Layer indices on the x axis (at most about 8 of them named)."""
    step = max(1, math.ceil(n_hidden / 8))
    ax.set_xticks(range(0, n_hidden, step))
    ax.set_xlabel(label)


def plot_layer_means(results, path):
    """Every model's per-layer mean cosine; beyond 12 models (a run's snapshots, say) they are coloured in order
    along one colour map and only the first and the last are named, so the legend never buries the plot."""
    from matplotlib import colormaps
    many = len(results) > 12
    with figure(path) as (fig, ax):
        for i, r in enumerate(results):
            x, mu, sd = np.linspace(0, 1, r["n_hidden"]), np.array(r["layer_mean"]), np.array(r["layer_std"])
            named = not many or i in (0, len(results) - 1)
            ax.plot(x, mu, marker=".", color=colormaps["viridis"](i / (len(results) - 1)) if many else None,
                    label=f"{short(r['name'], 40)} (rho {r['spearman']:+.2f})" if named else None)
            ax.fill_between(x, mu - sd, mu + sd, alpha=0.05 if many else 0.15)  # +- 1 sd across texts
        ax.set(xlabel="layer fraction", ylabel="mean cosine similarity",
               title="per-layer mean (band: +-1 sd over texts)")
        ax.legend(fontsize=7)


def plot_size_trend(results, path, size_by="n_params"):
    """Spearman's rho and Kendall's tau-b against model size (log scale), with their bootstrap confidence intervals over texts; the title
    says so when the models are of different families (kinds, or hf: names without their sizes)."""
    rs = sorted(results, key=lambda r: r[size_by])
    x = np.array([r[size_by] for r in rs], dtype=float)
    families = sorted({family(r) for r in rs})
    with figure(path) as (fig, ax):
        for stat, marker in (("spearman", "o"), ("kendall", "s")):
            y = np.array([r[stat] for r in rs])
            err = np.abs(np.array([r.get(stat + "_ci") or [v, v] for r, v in zip(rs, y)]).T - y)
            ax.errorbar(x, y, yerr=err, marker=marker, capsize=3, label=f"{stat} (bootstrap CI)", linestyle="none")
        ax.set_xscale("log")
        for xi, r in zip(x, rs):
            ax.annotate(short(r["name"], 24), (xi, r["spearman"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
        ax.axhline(0, color="grey", lw=0.5)
        mixed = f"\nmodels of {len(families)} families: {', '.join(families)}" if len(families) > 1 else ""
        ax.set(xlabel=("non-embedding parameters" if size_by != "n_params" else "parameters") + " (log scale)",
               ylabel="rank correlation of mean cosine with depth", ylim=(-1.05, 1.05),
               title="condensation against model size" + mixed)
        ax.legend(fontsize=8)


def model_colours(n):
    """n colours that a reader tells apart: the 10 of tab10, then 20 of tab20, beyond that an ordered colour map
    (snapshots of a run, say, where the order is what matters)."""
    from matplotlib import colormaps
    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in (*range(0, 20, 2), *range(1, 20, 2))[:n]]  # dark ones first
    return [colormaps["viridis"](i / (n - 1)) for i in range(n)]


def measure_panels(runs):
    """The panels of a layer-measures figure: within and across, excess at its own scale, and within_std and
    erank when every run has them."""
    return ["within", "excess", *(["within_std"] if all("layer_within_std" in r for r in runs) else []),
            *(["erank"] if all("layer_erank_ratio" in r for r in runs) else [])]


def plot_layer_measures(results, path):
    """Per layer, one colour per model: within (solid) and across (dashed) mean cosine, excess, and within after
    standardising each channel and the effective rank over the width, when measured."""
    panels = measure_panels(results)
    colours = model_colours(len(results))
    # the legend sits to the right of the panels: room for it, and for the first title, even with one panel
    with figure(path, (4.2 * len(panels) + 1.8, 4.4), ncols=len(panels), squeeze=False) as (fig, axes):
        axes = dict(zip(panels, axes[0]))
        for r, colour in zip(results, colours):
            x = np.arange(r["n_hidden"])
            axes["within"].plot(x, r["layer_mean"], "-", color=colour, lw=1.2, label=short(r["name"], 32))
            axes["within"].plot(x, r["layer_across"], "--", color=colour, lw=1)
            for name, key in (("excess", "layer_excess"), ("within_std", "layer_within_std"),
                              ("erank", "layer_erank_ratio")):
                if name in axes:
                    axes[name].plot(x, r[key], "-", color=colour, lw=1.2)
        label_layer_measures(axes, results[0])
        fig.legend(*axes["within"].get_legend_handles_labels(), loc="outside right upper", fontsize=7,
                   ncols=1 + len(results) // 24)


def label_layer_measures(axes, r):
    """Titles, labels and marks of the layer-measure panels, for the per-model figure and the suite's. The line
    styles' key is grey, a colour no setting has; 1/T, within's floor (a text's tokens all orthogonal, each with
    itself alone), is marked where within is drawn."""
    for name in ("within", "within_std"):
        if name in axes and r.get("seq_len"):
            axes[name].axhline(1 / r["seq_len"], color="grey", lw=0.8, ls=":")
            axes[name].annotate(f"1/T = {1 / r['seq_len']:.3g}", (0, 1 / r["seq_len"]), fontsize=7, color="grey",
                                xytext=(2, 2), textcoords="offset points")
    axes["within"].plot([], [], "-", color="grey", label="within a text (solid)")
    axes["within"].plot([], [], "--", color="grey", label="across texts (dashed)")
    axes["within"].set(ylabel="mean cosine similarity", title="within (solid) and across (dashed) texts")
    axes["excess"].set(ylabel="mean cosine difference", title="excess: two tokens of a text minus across")
    if "within_std" in axes:
        axes["within_std"].set(ylabel="mean cosine similarity", title="within, channels standardised")
    if "erank" in axes:
        axes["erank"].set(ylabel="effective rank / width C", title="effective rank of the token cloud",
                          ylim=(0, None))
    for ax in axes.values():
        layer_ticks(ax, r["n_hidden"])
        ax.axhline(0, color="grey", lw=0.5)
        ax.title.set_fontsize(9)


def plot_training(runs, path):
    """The paper's third observation: rho (solid) and Kendall (dashed) of each run's snapshots against tokens."""
    with figure(path) as (fig, ax):
        for i, (run, rs) in enumerate(runs.items()):
            x = [r["tokens_seen"] for r in rs]
            ax.plot(x, [r["spearman"] for r in rs], "o-", color=f"C{i}", label=f"{short(run, 30)} rho")
            ax.plot(x, [r["kendall"] for r in rs], "s--", color=f"C{i}", alpha=0.6, label=f"{short(run, 30)} Kendall")
        ax.axhline(0, color="grey", lw=0.5)
        millions(ax.xaxis)
        ax.set(xlabel="training tokens", ylabel="rank correlation of mean cosine with depth", ylim=(-1.05, 1.05),
               title="condensation over training (step 0 = initialisation)")
        ax.legend(fontsize=7)


# ------------------------------------------------------------------------------------------------ by setting
# The experiment suite's figures. A setting is one thing an experiment varies (a width, a variant, student or
# teacher): a dict of label, colour and its runs, one per seed (measure.py's results, or log.jsonl records).
# Each setting keeps one colour, its mean over seeds is the line and the seeds' min..max the band.

Y_HEATMAP = (-0.25, 1)  # the paper's cosine axis in its heatmaps


def seeds_note(settings):
    n = sorted({len(s["runs"]) for s in settings})
    if n == [1]:
        return "one seed"
    return f"mean over {'/'.join(map(str, n))} seeds, band: min..max over seeds"


def mean_band(ax, x, ys, colour, label=None, band=True, **kw):
    """ys [seeds, points]: their mean as a line, their min..max as a band (none for one seed)."""
    ys = np.asarray(ys, dtype=float)
    ax.plot(x, np.nanmean(ys, 0), color=colour, label=label, **kw)
    if band and len(ys) > 1:
        ax.fill_between(x, np.nanmin(ys, 0), np.nanmax(ys, 0), color=colour, alpha=0.2, lw=0)


def millions(axis, nbins=None):
    """Tick labels of a token or parameter axis in millions: 0.5M, not 0.5 with 1e6 at the end; at most
    nbins + 1 ticks on a linear axis, so that the labels never run into each other."""
    from matplotlib import ticker
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v / 1e6:.3g}M" if v else "0"))
    if nbins:
        axis.set_major_locator(ticker.MaxNLocator(nbins))


def heatmap_axes(n):
    """Columns and rows for n panels: one row up to 4, then rows of 3 (5 or 6 panels) or 4."""
    cols = 3 if n in (5, 6) else min(n, 4)
    return cols, math.ceil(n / cols)


def heatmap_ylim(hists):
    """The paper's cosine axis, [-0.25, 1], reaching down (to a tenth) to the lowest bin that holds token pairs."""
    edges = np.linspace(-1, 1, hists[0].shape[1] + 1)
    lowest = min(edges[np.flatnonzero(h.sum(0) > 0)[0]] for h in hists)  # the lower edge of the lowest bin used
    return (Y_HEATMAP[0] if lowest >= Y_HEATMAP[0] else math.floor(lowest * 10) / 10), Y_HEATMAP[1]


def plot_setting_heatmaps(settings, path, what=""):
    """The paper's Fig. 2a / 3a, one panel per setting: x = layer, y = cosine similarity, colour = the
    share of token pairs in each bin of the layer's text-averaged cosine matrix, averaged over the seeds."""
    from matplotlib import colormaps, colors
    hists = [np.mean([r["hist"] for r in s["runs"]], 0) for s in settings]  # [L + 1, bins] each
    top = max(h.max() for h in hists)
    norm, cmap = colors.LogNorm(top * 1e-4, top), colormaps["viridis"].with_extremes(bad=colormaps["viridis"](0))
    cols, rows = heatmap_axes(len(settings))
    with figure(path, (2.9 * cols + 1.3, 2.7 * rows + 0.5), nrows=rows, ncols=cols, squeeze=False,
                sharey=True) as (fig, axes):
        for ax, s, h in zip(axes.flat, settings, hists):
            mesh = ax.pcolormesh(*layer_edges(h), h.T, norm=norm, cmap=cmap)
            # the title in black (a light setting colour would be hard to read) over a bar of the setting's colour,
            # as in the line figures, drawn on the white above the panel, where a dark colour shows too
            ax.set_title(s["label"], fontsize=9, pad=9)
            ax.plot([0, 1], [1.025, 1.025], transform=ax.transAxes, color=s["colour"], lw=4, clip_on=False,
                    solid_capstyle="butt")
            ax.set_ylim(*heatmap_ylim(hists))
            layer_ticks(ax, h.shape[0])
        for ax in axes.flat[len(settings):]:
            ax.axis("off")
        for ax in axes[:, 0]:
            ax.set_ylabel("cosine similarity")
        n = sorted({len(s["runs"]) for s in settings})
        seeds = "one seed" if n == [1] else f"averaged over {'/'.join(map(str, n))} seeds"
        fig.suptitle(f"{what}token-pair cosines by layer (text-averaged matrix, {seeds})\n{HEATMAP_NOTE}",
                     fontsize=9)
        fig.colorbar(mesh, ax=axes, label="share of token pairs")


def plot_setting_layer_means(settings, path, what=""):
    """Per-layer mean cosine (the paper's condensation curve) of each setting, with its mean rho in the legend."""
    with figure(path) as (fig, ax):
        for s in settings:
            L = s["runs"][0]["n_hidden"]
            rho = np.nanmean([np.nan if r["spearman"] is None else r["spearman"] for r in s["runs"]])
            mean_band(ax, np.arange(L), [r["layer_mean"] for r in s["runs"]], s["colour"],
                      f"{s['label']} (rho {rho:+.2f})", marker=".")
        layer_ticks(ax, L)
        ax.set(ylabel="mean token-token cosine in a text")
        ax.set_title(f"{what}condensation by depth\n({seeds_note(settings)})", fontsize=10)
        if len(settings) > 4:  # beside the plot, where it hides no curve
            fig.set_size_inches(9, 4)
            fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=8)
        else:
            ax.legend(fontsize=8)


def plot_setting_layer_measures(settings, path, what=""):
    """measure.py's further measures per layer, by setting: the mean cosine within a text (solid) and across texts
    (dashed, without a band), excess at its own scale, within after standardising the channels and the effective
    rank (each when measured). The legend sits below the panels, off the curves."""
    runs = [r for s in settings for r in s["runs"]]
    panels = measure_panels(runs)
    rows = math.ceil(len(settings) / 4)
    with figure(path, (4.2 * len(panels), 4.2 + 0.25 * rows), ncols=len(panels), squeeze=False) as (fig, axes):
        axes = dict(zip(panels, axes[0]))
        for s in settings:
            x = np.arange(s["runs"][0]["n_hidden"])
            mean_band(axes["within"], x, [r["layer_mean"] for r in s["runs"]], s["colour"], s["label"])
            mean_band(axes["within"], x, [r["layer_across"] for r in s["runs"]], s["colour"], band=False, ls="--")
            for name, key in (("excess", "layer_excess"), ("within_std", "layer_within_std"),
                              ("erank", "layer_erank_ratio")):
                if name in axes:
                    mean_band(axes[name], x, [r[key] for r in s["runs"]], s["colour"])
        label_layer_measures(axes, runs[0])
        fig.legend(*axes["within"].get_legend_handles_labels(), loc="outside lower center", fontsize=8,
                   ncols=min(len(settings) + 2, 4))
        fig.suptitle(f"{what}condensation beside anisotropy and effective rank ({seeds_note(settings)})",
                     fontsize=10)


def plot_setting_size(settings, trend, path, what=""):
    """rho against parameters: each seed a dot, each setting's mean a larger marker with a min..max bar; the trend
    statistic (Spearman of parameters against rho over all runs) in the title."""
    with figure(path) as (fig, ax):
        for s in settings:
            x = np.array([r["n_params"] for r in s["runs"]], dtype=float)
            y = np.array([np.nan if r["spearman"] is None else r["spearman"] for r in s["runs"]])
            spread = np.exp(0.02 * (np.arange(len(x)) - (len(x) - 1) / 2))  # the seeds side by side, not hidden
            ax.plot(x * spread, y, ".", color=s["colour"], alpha=0.6)
            m = np.nanmean(y)
            ax.errorbar(x.mean(), m, yerr=[[m - np.nanmin(y)], [np.nanmax(y) - m]], marker="o", color=s["colour"],
                        capsize=4, label=f"{s['label']} ({x.mean() / 1e6:.3g}M parameters)")
        ax.set_xscale("log")
        millions(ax.xaxis)
        ax.xaxis.set_minor_formatter(ax.xaxis.get_major_formatter())  # a short range has only minor ticks
        ax.axhline(0, color="grey", lw=0.5)
        ax.set(xlabel="parameters (log scale)", ylabel="Spearman rho of mean cosine with depth", ylim=(-1.05, 1.05))
        title = f"{what}condensation against size (dots: seeds; bar: min..max)"
        if trend:
            title += (f"\nSpearman(parameters, rho) over {trend['n']} runs = {trend['spearman']:+.2f} "
                      f"(p {trend['spearman_p']:.2g})")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)


def plot_against_loss(settings, path, what=""):
    """Condensation against val loss as training goes (loss falling to the right), one colour per setting, each
    run's snapshots joined in order: rho, the last layer's excess and its mean cosine. Step 0 (a random model,
    its loss far to the left) is left out."""
    panels = (("spearman", "Spearman rho of mean cosine with depth"), ("last_layer_excess", "last layer's excess"),
              ("last_layer_mean", "last layer's mean cosine"))
    with figure(path, (13, 4.3), ncols=3) as (fig, axes):
        for s in settings:
            for i, points in enumerate(s["runs"]):
                points = [p for p in points if p["step"] > 0]
                for ax, (key, _) in zip(axes, panels):
                    ax.plot([p["val"] for p in points], [p[key] for p in points], ".-", color=s["colour"],
                            lw=1, alpha=0.8, label=s["label"] if i == 0 else None)
        for ax, (key, label) in zip(axes, panels):
            ax.invert_xaxis()
            ax.set(xlabel="val loss (nats per token; training goes to the right)", ylabel=label)
            if key != "last_layer_mean":
                ax.axhline(0, color="grey", lw=0.5)
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=len(settings),
                   fontsize=8)
        n = sorted({len(s["runs"]) for s in settings})
        fig.suptitle(f"{what}condensation against val loss ({'/'.join(map(str, n))} seeds per setting, each a line "
                     "through its snapshots; step 0 not shown)", fontsize=10)


def snapshot_step(name):
    """The training step of a snapshot, from its file name ckpt_NNNNNN.pt."""
    return int(Path(name).stem.rsplit("_", 1)[1])


def step_colour(step, last):
    """A snapshot's colour: its step along plasma (to 0.9 of it: the map's end is too pale on white)."""
    from matplotlib import colormaps
    return colormaps["plasma"](0.9 * step / last)


def plot_snapshot_layer_means(runs, path):
    """Per-layer mean cosine of each snapshot, one panel per run, the training step on a colour bar."""
    from matplotlib import cm, colormaps, colors
    last = max(snapshot_step(r["name"]) for run in runs for r in run["snapshots"])
    with figure(path, (3.4 * len(runs) + 1, 3.4), ncols=len(runs), squeeze=False, sharey=True) as (fig, axes):
        for ax, run in zip(axes.flat, runs):
            for r in run["snapshots"]:
                ax.plot(np.arange(r["n_hidden"]), r["layer_mean"], ".-", lw=1,
                        color=step_colour(snapshot_step(r["name"]), last))
            ax.set_title(run["label"], fontsize=9, color=run["colour"])
            layer_ticks(ax, run["snapshots"][0]["n_hidden"])
        axes[0, 0].set_ylabel("mean token-token cosine in a text")
        fig.suptitle("condensation by depth at each snapshot of training", fontsize=10)
        sm = cm.ScalarMappable(colors.Normalize(0, last / 0.9), colormaps["plasma"])  # as step_colour
        fig.colorbar(sm, ax=axes, label="training step").ax.set_ylim(0, last)


def plot_over_training(runs, path):
    """The paper's third observation: rho (left) and the last layer's mean cosine (right) against tokens seen,
    one colour per run; the legend gives each run's trend (Spearman of tokens against rho)."""
    with figure(path, (10, 3.8), ncols=2) as (fig, (left, right)):
        for run in runs:
            x = [r["tokens_seen"] for r in run["snapshots"]]
            t = run.get("trend")
            trend = f": trend {t['spearman']:+.2f} (p {t['spearman_p']:.2g})" if t and t["spearman"] is not None else ""
            left.plot(x, [r["spearman"] for r in run["snapshots"]], "o-", color=run["colour"],
                      label=run["label"] + trend)
            right.plot(x, [r["last_layer_mean"] for r in run["snapshots"]], "o-", color=run["colour"],
                       label=run["label"])
        millions(left.xaxis)
        millions(right.xaxis)
        left.axhline(0, color="grey", lw=0.5)
        left.set(xlabel="training tokens", ylabel="Spearman rho of mean cosine with depth", ylim=(-1.05, 1.05),
                 title="rise of the cosine with depth")
        right.set(xlabel="training tokens", ylabel="last layer's mean token-token cosine",
                  title="level of the cosine at the last layer")
        left.legend(fontsize=7, title="run: Spearman(tokens, rho)", title_fontsize=7)
        fig.suptitle("condensation over training (step 0 = initialisation)", fontsize=10)


# ------------------------------------------------------------------------------------------------ loss curves

OLD_NAMES = {"rho": "spearman", "tau": "kendall", "last_cos": "last_layer_mean", "kd": "kl",  # older logs
             **{f"cond_{k}": k for k in ("spearman", "kendall", "last_layer_mean", "last_layer_excess",
                                         "last_layer_erank")},
             "cond_rho": "spearman", "cond_tau": "kendall", "cond_last_cos": "last_layer_mean"}
CONDENSATION = {"spearman", "kendall", "last_layer_mean", "last_layer_excess", "last_layer_erank", "cond_windows"}
NOT_METRICS = {"split", "iter", "tokens", "train", "val", "ppl_val"} | CONDENSATION  # the estimate is not drawn


def metric_label(key):
    """A panel's title for an eval metric of log.jsonl."""
    if key.startswith("bench_"):  # train.py --eval_tasks: bench_<task> (accuracy), bench_<task>_acc_norm
        task, norm = key.removeprefix("bench_").removesuffix("_acc_norm"), key.endswith("_acc_norm")
        return f"{task}: {'length-normalised accuracy' if norm else 'accuracy'}"
    return key


def read_log(run):
    """A run's log.jsonl -> {"train": records, "eval": records}, each split in order of steps with one record per
    step (the last one written: a resumed run may have logged a step twice), old metric names renamed."""
    splits = {"train": {}, "eval": {}}
    with open(Path(run) / "log.jsonl") as f:
        for line in f:
            r = json.loads(line)
            if r.get("split") in splits:
                splits[r["split"]][r["iter"]] = {OLD_NAMES.get(k, k): v for k, v in r.items()}
    return {split: [rs[i] for i in sorted(rs)] for split, rs in splits.items()}


def curve(logs, split, key):
    """(tokens, values [seeds, steps]) of key over the steps that every seed logged it at; None if none did."""
    steps = set.intersection(*({r["iter"] for r in log[split] if r.get(key) is not None} for log in logs))
    if not steps:
        return None
    rows = [[r for r in log[split] if r["iter"] in steps] for log in logs]
    return [r["tokens"] for r in rows[0]], [[r[key] for r in row] for row in rows]


def plot_loss_curves(settings, path, what=""):
    """Training curves from log.jsonl against tokens seen: the whole run (step 0 included), the same curves over
    the second half of training, and every benchmark logged; settings as above, runs = read_log()s. Drawn: the
    train CE of each logged step (thin), the val loss at each eval (thick, a dot per eval), other val sets
    (dashed); the in-training condensation estimate is not drawn (measure.py's numbers are the ones to read)."""
    logs = [log for s in settings for log in s["runs"]]
    metrics = sorted({k for log in logs for r in log["eval"] for k, v in r.items()
                      if k not in NOT_METRICS and not k.startswith("val_") and isinstance(v, (int, float))})
    cols = min(len(metrics) + 2, 3)
    rows = math.ceil((len(metrics) + 2) / cols)
    size = (4.2 * cols, 3.3 * rows + 0.6 + 0.2 * math.ceil(len(settings) / 3))  # room for the legend below
    with figure(path, size, nrows=rows, ncols=cols, squeeze=False) as (fig, axes):
        whole, half = axes.flat[0], axes.flat[1]
        drawn = set()
        for s in settings:
            for ax in (whole, half):
                drawn |= draw_losses(ax, s, label=s["label"] if ax is whole else None)
        last = max(r["tokens"] for log in logs for r in log["eval"])
        half.set_xlim(last / 2, last * 1.02)
        later = [line.get_ydata()[line.get_xdata() >= last / 2] for line in half.get_lines()]
        later = np.concatenate([y for y in later if len(y)]) if any(len(y) for y in later) else []
        if len(later):
            pad = 0.05 * (later.max() - later.min() or 1)
            half.set_ylim(later.min() - pad, later.max() + pad)
        key = [k for k in ("train CE (thin)", "val loss (thick, a dot per eval)", "other val sets (dashed)")
               if k.split(" (")[0] in drawn]
        whole.set_title("the whole run: " + ", ".join(key), fontsize=8)
        half.set_title("the second half of training, zoomed", fontsize=8)
        for ax in (whole, half):
            millions(ax.xaxis, nbins=5)
            ax.set(xlabel="tokens seen", ylabel="loss (nats per token)")
        fig.legend(*whole.get_legend_handles_labels(), loc="outside lower center", fontsize=8,
                   ncols=min(len(settings), 3))  # below the panels, off the curves
        for ax, k in zip(axes.flat[2:], metrics):
            for s in settings:
                if got := curve(s["runs"], "eval", k):
                    mean_band(ax, *got, s["colour"], marker=".")
            millions(ax.xaxis)
            ax.set(xlabel="tokens seen", title=metric_label(k))
            ax.title.set_fontsize(9)
        for ax in axes.flat[len(metrics) + 2:]:
            ax.axis("off")
        fig.suptitle(f"{what}training curves ({seeds_note(settings)})", fontsize=10)


def draw_losses(ax, s, label=None):
    """One setting's loss curves on ax. -> the names of what it drew."""
    others = sorted({k for log in s["runs"] for r in log["eval"] for k in r if k.startswith("val_")})
    curves = [("train CE", curve(s["runs"], "train", "ce") or curve(s["runs"], "train", "loss"),
               dict(lw=0.8, alpha=0.6)),
              ("val loss", curve(s["runs"], "eval", "val"), dict(label=label, lw=2, marker="."))]
    curves += [("other val sets", curve(s["runs"], "eval", k), dict(lw=1.2, ls="--", marker=".")) for k in others]
    for name, got, style in curves:
        if got:
            mean_band(ax, *got, s["colour"], **style)
    return {name for name, got, _ in curves if got}


def main(argv=None):
    import argparse
    import sys
    from matplotlib import colormaps
    p = argparse.ArgumentParser(description="Training curves of runs on one plot, from their log.jsonl.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (train.py --out_dir)")
    p.add_argument("--out", default="loss_curves.png", help="the figure's file")
    args = p.parse_args(argv)
    settings = []
    for i, run in enumerate(args.runs):
        try:
            log = read_log(run)
        except (OSError, ValueError) as e:
            sys.exit(f"error: {run}: cannot read its log.jsonl ({type(e).__name__}: {str(e).splitlines()[0]})")
        if not log["train"] and not log["eval"]:
            sys.exit(f"error: {run}/log.jsonl holds no train or eval records")
        colour = f"C{i}" if len(args.runs) <= 10 else colormaps["tab20"](i % 20)  # C0..C9 repeat after ten
        settings.append(dict(label=short(run, 40), colour=colour, runs=[log]))
    plot_loss_curves(settings, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
