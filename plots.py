"""
The paper's figures, drawn from measure.py's results (matplotlib, files only):

  heatmaps.png     per model: x = layer fraction, y = cosine similarity, colour = share of token pairs in each bin
                   of that layer's text-averaged cosine matrix; all models on one colour scale
  layer_means.png  the per-layer mean cosine of every model, with a band of +-1 sd over texts
  size_trend.png   rho and tau against parameters (when the models differ in size)
  training.png     rho and tau of each run's snapshots against training tokens (when there are snapshots)
"""

import contextlib
import math
from pathlib import Path

import numpy as np


def draw_all(results, runs, folder):
    """Every figure that the results call for, into folder; runs: {run: its snapshots' results, by tokens}."""
    plot_heatmaps(results, folder / "heatmaps.png")
    plot_layer_means(results, folder / "layer_means.png")
    if len({r["n_params"] for r in results}) > 1:
        plot_size_trend(results, folder / "size_trend.png")
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
    """A model's name for a figure or table: a run directory by its own name, a snapshot as run/ckpt_NNNNNN."""
    path = Path(name)
    if path.suffix == ".pt":
        name = f"{path.parent.name}/{path.stem}"
    elif path.exists():
        name = path.resolve().name
    return name[-width:]


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


def plot_size_trend(results, path):
    """rho and tau against model size (log scale), with their bootstrap confidence intervals over texts."""
    rs = sorted(results, key=lambda r: r["n_params"])
    x = np.array([r["n_params"] for r in rs], dtype=float)
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
        ax.set(xlabel="parameters", ylabel="rank correlation of mean cosine with depth", ylim=(-1.05, 1.05),
               title="condensation against model size")
        ax.legend(fontsize=8)


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
