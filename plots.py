"""
The paper's figures, drawn from measure.py's results (matplotlib, files only):

  heatmaps.png     per model: x = layer fraction, y = cosine similarity, colour = share of token pairs in each bin
                   of that layer's text-averaged cosine matrix; all models on one colour scale
  layer_means.png  the per-layer mean cosine of every model, with a band of +-1 sd over texts
  layer_measures.png  per layer: within- and across-text mean cosine, within after standardising channels (when
                   measured) and the effective rank, one colour per model
  size_trend.png   rho and tau against parameters (from three models of different sizes)
  training.png     rho and tau of each run's snapshots against training tokens (when there are snapshots)
"""

import contextlib
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
        plot_training(runs, folder / "training.png")


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
    """The paper's figure: per model, x = layer fraction, y = cosine similarity, colour = the share of token pairs in
    each of 128 bins of that layer's averaged cosine matrix; one (log) colour scale for all models."""
    from matplotlib import colormaps, colors
    cols = min(len(results), 6)
    rows = math.ceil(len(results) / cols)
    top = max(r["hist"].max() for r in results)
    # the log scale masks empty bins, and they are painted in its lowest colour, as the shares below its floor
    norm, cmap = colors.LogNorm(top * 1e-4, top), colormaps["viridis"].with_extremes(bad=colormaps["viridis"](0))
    with figure(path, (3 * cols + 1.2, 2.8 * rows), nrows=rows, ncols=cols, squeeze=False, sharey=True) as (fig, axes):
        for ax, r in zip(axes.flat, results):
            x = np.linspace(0, 1, r["n_hidden"] + 1)  # layer l of L + 1 spans [l / (L + 1), (l + 1) / (L + 1)]
            mesh = ax.pcolormesh(x, np.linspace(-1, 1, r["hist"].shape[1] + 1), r["hist"].T, norm=norm, cmap=cmap)
            ax.set_title(short(r["name"], 40), fontsize=8)
            ax.set_xlabel("layer fraction")
        for ax in axes.flat[len(results):]:
            ax.axis("off")
        axes[0, 0].set_ylabel("cosine similarity")
        fig.colorbar(mesh, ax=axes, label="share of token pairs")


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
    """rho and tau against model size (log scale), with their bootstrap confidence intervals over texts; the title
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
        ax.set(xlabel="non-embedding parameters" if size_by != "n_params" else "parameters",
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


def plot_layer_measures(results, path):
    """Per layer, one colour per model: within (solid) and across (dashed) mean cosine, so that excess is the gap
    between them; within after standardising each channel, when measured; the effective rank over the width."""
    panels = ["within", *(["within_std"] if "layer_within_std" in results[0] else []), "erank"]
    colours = model_colours(len(results))
    with figure(path, (4.6 * len(panels), 4.4), ncols=len(panels), squeeze=False) as (fig, axes):
        axes = dict(zip(panels, axes[0]))
        for r, colour in zip(results, colours):
            x = np.linspace(0, 1, r["n_hidden"])
            axes["within"].plot(x, r["layer_mean"], "-", color=colour, lw=1.2, label=short(r["name"], 32))
            axes["within"].plot(x, r["layer_across"], "--", color=colour, lw=1)
            if "within_std" in axes:
                axes["within_std"].plot(x, r["layer_within_std"], "-", color=colour, lw=1.2)
            axes["erank"].plot(x, r["layer_erank_ratio"], "-", color=colour, lw=1.2)
        axes["within"].plot([], [], "k-", label="within a text")  # the two line styles, in the same legend
        axes["within"].plot([], [], "k--", label="across texts")
        axes["within"].set(ylabel="mean cosine similarity", title="within (solid) and across (dashed) texts")
        if "within_std" in axes:
            axes["within_std"].set(ylabel="mean cosine similarity", title="within, channels standardised")
        axes["erank"].set(ylabel="effective rank / width C", title="effective rank of the token cloud", ylim=(0, None))
        for ax in axes.values():
            ax.set_xlabel("layer fraction")
            ax.axhline(0, color="grey", lw=0.5)
        fig.legend(*axes["within"].get_legend_handles_labels(), loc="outside right upper", fontsize=7,
                   ncols=1 + len(results) // 24)


def plot_training(runs, path):
    """The paper's third observation: rho (solid) and tau (dashed) of each run's snapshots against tokens seen."""
    with figure(path) as (fig, ax):
        for i, (run, rs) in enumerate(runs.items()):
            x = [r["tokens_seen"] for r in rs]
            ax.plot(x, [r["spearman"] for r in rs], "o-", color=f"C{i}", label=f"{short(run, 30)} rho")
            ax.plot(x, [r["kendall"] for r in rs], "s--", color=f"C{i}", alpha=0.6, label=f"{short(run, 30)} tau")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set(xlabel="training tokens", ylabel="rank correlation of mean cosine with depth", ylim=(-1.05, 1.05),
               title="condensation over training (step 0 = initialisation)")
        ax.legend(fontsize=7)
