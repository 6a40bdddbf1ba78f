"""
Measure embedding condensation: how the token vectors of one text crowd into a narrow cone, layer by layer.

    python measure.py gpt2 gpt2-medium gpt2-large --out results/gpt2      # GPT-2 sizes, bundled Austen chapters
    python measure.py out/run1 --snapshots --out results/run1              # every snapshot of one training run
    python measure.py hf:Qwen/Qwen3-0.6B hf:Qwen/Qwen3-1.7B --data wikitext103 --out results/qwen
    python measure.py hf:BASE hf:DISTILLED [hf:BASE2 hf:DISTILLED2 ...] --paired --out results/kd
    python measure.py hf:allenai/OLMo-1B-0724-hf@step1000-tokens2B hf:allenai/OLMo-1B-0724-hf --out results/olmo

MODEL, opened by load.py as in every script, is one of our checkpoint files or run directories (its ckpt.pt;
every ckpt_NNNNNN.pt with --snapshots), a GPT-2 name (gpt2, gpt2-medium, gpt2-large, gpt2-xl) or directory, or
hf:<name or directory>[@revision] for any Hugging Face causal LM through the optional `transformers` package. --data is a .txt (one document per
paragraph) or .jsonl (--field) file, a bundled source (austen: its chapters, wiki: its articles; all of them), or
a prepared data/<name> (its val split, cut into documents at <|endoftext|>; a char dataset has no document marker,
so, as in a .txt file, each paragraph is a document). Every model sees the same documents, tokenized its own way.
Writes condensation.json, condensation.csv (one row per model), condensation_layers.csv (one row per layer) and
figures into --out, all at once at the end; a bad input stops everything with one line before any work.
train.py calls condensation_summary(model, idx) at each eval: rho, tau and the last layer's mean cosine.
"""

import argparse
import csv
import json
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

import plots
from load import ModelError, open_model
from data.prepare import (BUNDLED_SOURCES, DataError, dataset_dir, load_meta, load_split, read_documents,
                          source_documents)
from data.tokenizer import get_tokenizer

DTYPES = {"float32": torch.float32, "bf16": torch.bfloat16}
N_BINS = 128  # histogram bins over [-1, 1] in the paper's heatmaps


class MeasureError(Exception):
    """A bad input; the message is one line for the user."""


# ------------------------------------------------------------------------------------------------ the numbers

def cosine_matrices(h):
    """[B, T, C] hidden states -> [B, T, T] cosines between every two tokens of each text, in float32."""
    u = F.normalize(h.float(), dim=-1)
    return u @ u.transpose(-1, -2)  # C_ij = <x_i, x_j> / (|x_i| |x_j|)


def matrix_means(cos, offdiag=False):
    """Mean of each [T, T] matrix: all T^2 entries, as the paper (the diagonal is 1, a 1/T share), or, with
    offdiag, the T (T - 1) entries between different tokens only."""
    T = cos.shape[-1]
    total = cos.sum((-2, -1))
    return (total - cos.diagonal(dim1=-2, dim2=-1).sum(-1)) / (T * (T - 1)) if offdiag else total / T**2


@torch.no_grad()
def layer_cosines(hidden_fn, tokens, batch_size=4, offdiag=False, device="cpu"):
    """Run the texts tokens [N, T] through a model in batches -> (every layer's cosine matrix averaged entry by entry
    over the texts [L, T, T] float64, each text's per-layer mean [N, L]); memory does not grow with N."""
    N, T = tokens.shape
    total, per_text = None, []
    for batch in tokens.split(batch_size):
        hidden = hidden_fn(batch.to(device))
        if total is None:
            total = torch.zeros(len(hidden), T, T, dtype=torch.float64, device=device)
        means = []
        for layer, h in enumerate(hidden):  # one layer's [B, T, T] cosines at a time
            cos = cosine_matrices(h)
            total[layer] += cos.sum(0, dtype=torch.float64)  # C-bar_l = (1/N) sum_n C_l(text n), summed here
            means.append(matrix_means(cos, offdiag).double())
        per_text.append(torch.stack(means, 1).cpu())
        del hidden, cos  # freed before the next batch's forward pass, not during it
    return (total / N).cpu(), torch.cat(per_text).numpy()


def rank_rows(y):
    """Spearman's rho and Kendall's tau-b of each row of y [B, L] against the layer index 0..L-1, all rows at once
    (for the bootstrap); the same numbers as scipy's, ties included."""
    r = stats.rankdata(y, axis=1)
    r, x = r - r.mean(1, keepdims=True), np.arange(y.shape[1]) - (y.shape[1] - 1) / 2
    i, j = np.triu_indices(y.shape[1], 1)
    s = np.sign(y[:, j] - y[:, i])
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = r @ x / np.sqrt((r**2).sum(1) * (x**2).sum())  # rho = Pearson correlation of the ranks
        tau = s.sum(1) / np.sqrt(len(i) * (len(i) - (s == 0).sum(1)))  # (conc. - disc.) / sqrt(n0 (n0 - ties))
    return rho, tau


def rank_correlations(x, y):
    """Spearman's rho and Kendall's tau-b of y against x, with their p-values (scipy); NaN when y is flat."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        (r, rp), (t, tp) = stats.spearmanr(x, y), stats.kendalltau(x, y)
    return {"spearman": float(r), "spearman_p": float(rp), "kendall": float(t), "kendall_p": float(tp)}


def ci_of(samples, ci):
    """The central ci interval of the bootstrap samples, leaving out those of flat resamples (NaN)."""
    good = samples[np.isfinite(samples)]
    return [float(v) for v in np.percentile(good, [50 * (1 - ci), 50 * (1 + ci)])] if good.size else None


def summarize(avg, per_text, offdiag=False, last_n=3, boot_idx=None, ci=0.95):
    """The numbers of one model from layer_cosines' output; boot_idx [n_boot, N] are text resamples shared by all
    models, so that differences between two models measured on the same texts are a paired bootstrap."""
    L, T = avg.shape[0], avg.shape[-1]
    entries = avg[:, ~torch.eye(T, dtype=torch.bool)] if offdiag else avg.flatten(1)  # [L, entries looked at]
    # mu_l: the mean of layer l's text-averaged cosine matrix (= the mean of the per-text means: all have T tokens)
    mu = entries.mean(1).numpy()
    # the paper's heatmap column: a 128-bin histogram over [-1, 1] of the entries of the averaged matrix, as fractions
    hist = np.stack([np.histogram(e, N_BINS, (-1, 1))[0] for e in entries.clamp(-1, 1).numpy()])
    # condensation grows with depth when mu_l rises with l: rank correlations of mu_l with the layer index l
    out = {"n_hidden": L, "layer_mean": mu.tolist(),
           "layer_std": per_text.std(0, ddof=1).tolist() if len(per_text) > 1 else [0.0] * L,  # spread over texts
           **rank_correlations(np.arange(L), mu),
           "last_layer_mean": float(mu[-1]), "last_n_mean": float(mu[-last_n:].mean()),
           "hist": hist / entries.shape[1]}
    if boot_idx is not None and len(boot_idx):
        # each resample of texts gives per-layer means = the average of those texts' per-text means (exact)
        boot = np.stack([per_text[rows].mean(0) for rows in boot_idx])
        out["boot"] = dict(zip(("spearman", "kendall"), rank_rows(boot)), last_layer_mean=boot[:, -1])
        out["spearman_ci"], out["kendall_ci"] = ci_of(out["boot"]["spearman"], ci), ci_of(out["boot"]["kendall"], ci)
    return out


@torch.no_grad()
def condensation_summary(net, idx, offdiag=False):
    """Cheap condensation of our GPT on a fixed batch of token ids idx [N, T] (one forward pass), for train.py's
    evals: {"rho": Spearman, "tau": Kendall of the per-layer mean cosine against depth, "last_cos": last layer's}."""
    was_training = net.training
    try:
        hidden = net.eval()(idx, return_hidden=True, head=False)[2]  # no logits: the output layer is costly
    finally:
        net.train(was_training)
    mu = np.array([matrix_means(cosine_matrices(h), offdiag).mean().item() for h in hidden])
    rc = rank_correlations(np.arange(len(mu)), mu)
    return {"rho": rc["spearman"], "tau": rc["kendall"], "last_cos": float(mu[-1])}


# ------------------------------------------------------------------------------------------------ the texts

def load_documents(data, field="text"):
    """The documents named by --data, and a description of them."""
    if data.endswith((".txt", ".jsonl")) or os.path.isfile(data):
        return read_documents(data, field), data
    if data.removesuffix("_char") in BUNDLED_SOURCES:
        return source_documents(data), f"{data} (bundled, all documents)"
    if not (dataset_dir(data) / "meta.json").exists():
        raise MeasureError(f"unknown data source {data!r}: not a .txt/.jsonl file, a bundled source "
                           f"({', '.join(BUNDLED_SOURCES)}) or a prepared dataset under data/ (python data/prepare.py)")
    meta, tokens = load_meta(data), load_split(data, "val")  # clear errors for a half-prepared dataset
    _, decode = get_tokenizer(meta["tokenizer"])
    if meta["eot"] is None:  # char data: documents were joined by blank lines, like paragraphs
        return [p.strip("\n") for p in re.split(r"\n[ \t]*\n", decode(tokens)) if p.strip()], f"{data} (val)"
    cuts = np.flatnonzero(tokens == meta["eot"])
    bounds = [(a, b) for a, b in zip(np.r_[0, cuts + 1], np.r_[cuts, len(tokens)]) if b > a]
    return LazyDocs(tokens, bounds, decode), f"{data} (val)"


class LazyDocs:
    """Documents of a tokenized split, decoded only when asked for: a web corpus's val split can be large."""

    def __init__(self, tokens, bounds, decode):
        self.tokens, self.bounds, self.decode = tokens, bounds, decode

    def __len__(self):
        return len(self.bounds)

    def __getitem__(self, i):
        a, b = self.bounds[i]
        return self.decode(self.tokens[a:b])


def first_tokens(docs, start, encode, seq_len, used):
    """The first seq_len tokens of docs[start], a short document being joined (by a blank line) with the ones
    after it; -> (tokens, documents used) or None when the documents run out or reach one another text took."""
    text, end, limit = "", start, 8 * seq_len  # only the first `limit` characters are tokenized
    while True:
        ids = encode(text[:limit])
        cut = len(text) > limit  # a word cut at the limit may tokenize differently: keep a margin before it
        if len(ids) >= seq_len + 16 * cut:
            return ids[:seq_len], range(start, end)
        if cut:
            limit *= 4
        elif end == len(docs) or end in used:
            return None
        else:
            text, end = (text + "\n\n" if text else "") + docs[end], end + 1


def select_texts(docs, encode, n_texts, seq_len, seed, what=""):
    """The paper's protocol: n_texts texts of seq_len tokens, from documents in file order (a seeded random choice
    of starting documents when there are more than n_texts), never two texts from one document.
    -> (tokens [n_texts, seq_len] int64, the starting document of each text)."""
    order = np.random.default_rng(seed).permutation(len(docs)) if len(docs) > n_texts else range(len(docs))
    chosen, used = {}, set()
    for start in map(int, order):
        if len(chosen) == n_texts:
            break
        if start not in used and (got := first_tokens(docs, start, encode, seq_len, used)):
            chosen[start] = got[0]
            used.update(got[1])
    if len(chosen) < n_texts:
        raise MeasureError(f"too little text{what}: need {n_texts} texts of {seq_len} tokens, the {len(docs)} "
                           f"documents hold only {len(chosen)} (lower --n_texts or --seq_len, or use more text)")
    starts = sorted(chosen)
    return torch.tensor([chosen[s] for s in starts], dtype=torch.long), starts


# ------------------------------------------------------------------------------------------------ one run

def measure_all(args):
    """Validate every input, then measure every model; -> (results, report dict for condensation.json)."""
    if args.paired and len(args.models) % 2:
        raise MeasureError(f"--paired takes models in pairs (base, other, base, other, ...), got {len(args.models)}")
    docs, described = load_documents(args.data, args.field)
    models = [m for spec in args.models for m in open_model(spec, args.snapshots)]
    if args.paired and len(models) != len(args.models):
        raise MeasureError("--paired and --snapshots do not go together")
    for m in models:  # tokenizing is cheap next to a forward pass: every text is checked before any of them runs
        if m["chars"] is not None:  # a char model has no id for a character it never saw: such characters are dropped
            m["encode"] = lambda text, known=m["chars"], encode=m["encode"]: encode("".join(c for c in text if c in known))
        if m["max_len"] is not None and args.seq_len > m["max_len"]:
            raise MeasureError(f"--seq_len {args.seq_len} is longer than {m['name']}'s context of {m['max_len']}")
        m["tokens"], m["starts"] = select_texts(docs, m["encode"], args.n_texts, args.seq_len, args.seed,
                                                f" in {described} for {m['name']}")
        if (top := int(m["tokens"].max())) >= m["vocab"]:
            raise MeasureError(f"{m['name']}: token id {top} is outside its vocabulary of {m['vocab']}")
    boot_idx = np.random.default_rng(args.seed + 1).integers(0, args.n_texts, (args.n_boot, args.n_texts))
    results = []
    for m in models:
        t0 = time.perf_counter()
        net = m["load"](args.device, DTYPES[args.dtype])
        n_params, n_non_emb = net["n_params"], net["n_params_non_embedding"]
        avg, per_text = layer_cosines(net["hidden"], m["tokens"], args.batch_size, args.offdiag, args.device)
        del net  # one model in memory at a time
        seconds = time.perf_counter() - t0
        r = dict(name=m["name"], kind=m["kind"], n_params=n_params, n_params_non_embedding=n_non_emb,
                 tokens_seen=m["tokens_seen"], run=m.get("run"), documents=m["starts"], seconds=round(seconds, 2),
                 **summarize(avg, per_text, args.offdiag, args.last_n, boot_idx, args.ci))
        results.append(r)
        print(f"{r['name']}: rho {r['spearman']:+.3f}, tau {r['kendall']:+.3f}, last layer {r['last_layer_mean']:.3f} "
              f"({seconds:.1f} s)", flush=True)
    sized = sorted(results, key=lambda r: r["n_params"]) if len({r["n_params"] for r in results}) > 2 else []
    report = {"settings": {k: v for k, v in vars(args).items() if k != "models"} | {"data": described},
              "size_trend": {key: trend([r[key] for r in sized], [r["spearman"] for r in sized])
                             for key in ("n_params", "n_params_non_embedding")} if sized else None,
              "pairs": [pair(a, b, args.ci) for a, b in zip(results[::2], results[1::2])] if args.paired else [],
              "runs": {run: trend([r["tokens_seen"] for r in rs], [r["spearman"] for r in rs])
                       for run, rs in snapshot_runs(results).items()},
              "models": [{k: v for k, v in r.items() if k not in ("hist", "boot", "run")} for r in results]}
    return results, report


def trend(x, y):
    """Rank correlations of y with x (model size or training tokens); None below 3 points."""
    return {"n": len(x)} | rank_correlations(x, y) if len(x) >= 3 else None


def pair(a, b, ci):
    """b against a (say a distilled model against its base): differences and their paired bootstrap CIs."""
    out = {"base": a["name"], "other": b["name"], "same_texts": a["documents"] == b["documents"]}
    for key in ("spearman", "kendall", "last_layer_mean"):
        out["d_" + key] = b[key] - a[key]
        if "boot" in a:
            out[f"d_{key}_ci"] = ci_of(b["boot"][key] - a["boot"][key], ci)
    return out


def snapshot_runs(results):
    """Checkpoints of one run directory (or revisions of one hf: model) that know their training tokens."""
    runs = {}
    for r in results:
        if r["tokens_seen"] is not None:
            runs.setdefault(r["run"], []).append(r)
    return {run: sorted(rs, key=lambda r: r["tokens_seen"]) for run, rs in runs.items()
            if len({r["tokens_seen"] for r in rs}) > 1}


# ------------------------------------------------------------------------------------------------ output

FIGURES = ("heatmaps.png", "layer_means.png", "size_trend.png")
CSV_KEYS = ("name", "n_params", "n_params_non_embedding", "tokens_seen", "n_hidden", "spearman", "spearman_p",
            "spearman_ci", "kendall", "kendall_p", "kendall_ci", "last_layer_mean", "last_n_mean", "seconds")


def write_outputs(results, report, folder):
    text = re.sub(r"(?<=[\s\[])-?(NaN|Infinity)\b", "null", json.dumps(report, indent=1))  # e.g. rho of a flat curve
    text = re.sub(r"\[\s+([^\[\]{}\"]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)  # short lists
    (folder / "condensation.json").write_text(text + "\n")
    cell = lambda v: " ".join(map(str, v)) if isinstance(v, list) else v  # a confidence interval as "lo hi"
    tables = {"condensation.csv": [CSV_KEYS] + [[cell(r.get(k)) for k in CSV_KEYS] for r in results],
              "condensation_layers.csv": [("name", "layer", "layer_fraction", "mean", "std")] + [
                  [r["name"], layer, layer / (r["n_hidden"] - 1), mu, sd]
                  for r in results for layer, (mu, sd) in enumerate(zip(r["layer_mean"], r["layer_std"]))]}
    for name, rows in tables.items():
        with open(folder / name, "w", newline="") as f:
            csv.writer(f).writerows(rows)
    plots.draw_all(results, snapshot_runs(results), folder)


def print_table(results, report, last_n):
    def fmt(r, k):  # r[k] and its confidence interval r[k_ci], when it has one
        ci = r.get(k + "_ci")
        return f"{r[k]:+.3f}" + (f" [{ci[0]:+.2f},{ci[1]:+.2f}]" if ci else "")
    print(f"{'model':32s} {'params':>8s} {'non-emb':>8s} {'L+1':>4s} {'rho [CI]':>22s} {'tau [CI]':>22s} "
          f"{'last':>6s} {f'last{last_n}':>6s}")
    for r in sorted(results, key=lambda r: r["n_params"]):
        print(f"{plots.short(r['name'], 32):32s} {r['n_params'] / 1e6:7.2f}M {r['n_params_non_embedding'] / 1e6:7.2f}M "
              f"{r['n_hidden']:4d} {fmt(r, 'spearman'):>22s} {fmt(r, 'kendall'):>22s} {r['last_layer_mean']:6.3f} "
              f"{r['last_n_mean']:6.3f}")
    if report["size_trend"]:
        t = report["size_trend"]["n_params"]
        print(f"size trend over {t['n']} models: Spearman(size, rho) {t['spearman']:+.3f} (p {t['spearman_p']:.3g}), "
              f"Kendall {t['kendall']:+.3f} (p {t['kendall_p']:.3g})")
    for p in report["pairs"]:
        print(f"{p['other']} - {p['base']}: d_rho {fmt(p, 'd_spearman')}, d_last {p['d_last_layer_mean']:+.3f}"
              + ("" if p["same_texts"] else " (texts differ)"))


# ------------------------------------------------------------------------------------------------ command line

def parse_args(argv=None):
    formatter = type("Formatter", (argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter), {})
    p = argparse.ArgumentParser(description=__doc__, allow_abbrev=False, formatter_class=formatter)
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="checkpoint, run directory, GPT-2 name/dir, hf:<name>[@revision]")
    p.add_argument("--data", default="austen", help=".txt/.jsonl file, bundled source or prepared dataset name")
    p.add_argument("--field", default="text", help="JSON field holding the text of a .jsonl file")
    p.add_argument("--n_texts", type=int, default=100, help="texts per model (the paper: 100)")
    p.add_argument("--seq_len", type=int, default=512, help="tokens per text (the paper: 512)")
    p.add_argument("--seed", type=int, default=0, help="seeds the choice of documents and the bootstrap")
    p.add_argument("--offdiag", action="store_true", help="leave each token's cosine with itself (1) out")
    p.add_argument("--last_n", type=int, default=3, help="also report the mean over the last n layers")
    p.add_argument("--n_boot", type=int, default=1000, help="bootstrap resamples of the texts (0: no CIs)")
    p.add_argument("--ci", type=float, default=0.95, help="confidence level of the bootstrap intervals")
    p.add_argument("--paired", action="store_true", help="models come in pairs (base, other): report differences")
    p.add_argument("--snapshots", action="store_true", help="a run directory means all its ckpt_NNNNNN.pt")
    p.add_argument("--batch_size", type=int, default=4, help="texts per forward pass")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bf16"], help="bf16: for GPUs")
    p.add_argument("--out", default="out_measure", help="folder for the results")
    args = p.parse_args(argv)
    for name, low in (("n_texts", 1), ("seq_len", 2), ("last_n", 1), ("n_boot", 0), ("batch_size", 1)):
        if getattr(args, name) < low:
            p.error(f"--{name} must be at least {low}")
    if not 0 < args.ci < 1:
        p.error("--ci must be between 0 and 1")
    if not args.models:
        p.error("give at least one MODEL")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device}: no CUDA GPU here")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        p.error(f"--out {args.out} is a file, not a folder")
    return args


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out).resolve()
    try:
        results, report = measure_all(args)
        # everything is written into a fresh folder beside --out, then moved in: never a half-written result
        with tempfile.TemporaryDirectory(prefix=".measure-", dir=out.parent if out.parent.is_dir() else None) as tmp:
            write_outputs(results, report, Path(tmp))
            out.mkdir(parents=True, exist_ok=True)
            for old in [*out.glob("condensation*.*"), *out.glob("training*.png")] + [out / f for f in FIGURES]:
                old.unlink(missing_ok=True)  # a last run's files that this run does not rewrite would mix in
            for f in Path(tmp).iterdir():
                shutil.move(str(f), str(out / f.name))
    except (MeasureError, ModelError, DataError, OSError, ValueError) as e:
        sys.exit(f"error: {(str(e).strip().splitlines() or [type(e).__name__])[0]}")
    print_table(results, report, args.last_n)
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
