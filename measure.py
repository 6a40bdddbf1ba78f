"""
Measure embedding condensation: how the token vectors of one text crowd into a narrow cone, layer by
layer.

    # the paper's GPT-2 figure
    python measure.py gpt2 gpt2-medium gpt2-large gpt2-xl --out results/gpt2
    # every ckpt_NNNNNN.pt snapshot of one training run
    python measure.py out --snapshots --out results/run1
    python measure.py hf:Qwen/Qwen3-0.6B hf:Qwen/Qwen3-1.7B --data wikitext103 --out results/qwen
    python measure.py hf:BASE hf:DISTILLED [hf:BASE2 hf:DISTILLED2 ...] --paired --out results/kd

MODEL is one of our checkpoints or run folders, a GPT-2 name (downloaded once into the Hugging Face
cache) or folder, or hf:<name or folder>[@revision] for any Hugging Face causal LM (optional
`transformers`). --data: a .txt (one document per paragraph) or .jsonl (--field) file, a bundled
corpus (austen, wiki, their _char names: its held-out paragraphs) or a prepared data/<name> (its val
split). Every model sees the same documents.

The paper's measure (paper_measure below): per text and layer, the T x T matrix of cosines between
the text's tokens; its mean, averaged over texts, is the layer's mean cosine, and condensation grows
with depth when that mean rises with the layer (Spearman's rho and Kendall's tau-b against the layer
index). Beyond the paper, from the same pass (OnePass): across, excess, rogue and, with --erank, the
effective rank; with --standardize, a second pass for within_std. DEFINITIONS says in one sentence
what each is. Writes condensation.json, two CSVs, README.md (the columns) and the figures into
--out, all at once at the end; bad input stops with one line before any work.
"""

import argparse
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

from data.prepare import DataError
from support import checks, outputs, plots
from support.checks import check_writable
from support.fast import BatchMoment, rank_rows
from support.load import ModelError, check_flags, open_with_texts, write_results
from support.progress import ticker
from support.outputs import snapshot_runs

DTYPES = {"float32": torch.float32, "bf16": torch.bfloat16}
N_BINS = 128  # histogram bins over [-1, 1] in the paper's heatmaps
# a bad input, here as in data/ (the texts raise it too): one line for the user
MeasureError = DataError


# ------------------------------------------------------------------------------ the paper's measure

@torch.no_grad()
def paper_measure(hidden_fn, tokens, batch_size=4, offdiag=False, device="cpu", extras=None,
                  tick=None):
    """The paper's measure on texts tokens [N, T]: for each text and layer l, the cosines
    C_ij = <u_i, u_j> of its unit token vectors u_i = x_i / |x_i|; within [N, L] each matrix's mean;
    avg [L, T, T] the matrices averaged over texts entry by entry (the heatmap). extras (a OnePass)
    sees every layer's tokens on the way."""
    N, T = tokens.shape
    avg, within = None, []
    for batch in tokens.split(batch_size):
        # L tensors [B, T, C]: the embeddings, then each block's output
        hidden = hidden_fn(batch.to(device))
        if avg is None:
            avg = torch.zeros(len(hidden), T, T, dtype=torch.float64, device=device)
            if extras is not None:
                extras.start(N, len(hidden), T, hidden[0].shape[-1], device)
        means = []
        for layer, h in enumerate(hidden):  # one layer's [B, T, T] matrices at a time
            u = F.normalize(h.float(), dim=-1)
            cos = u @ u.transpose(-1, -2)
            avg[layer] += cos.sum(0, dtype=torch.float64)
            means.append(matrix_means(cos, offdiag))
            if extras is not None:
                extras.add(layer, h.float(), u)
        within.append(torch.stack(means, 1).double().cpu())
        if extras is not None:
            extras.end_batch(len(batch))
        del hidden, cos, u  # freed before the next batch's forward pass, not during it
        if tick:
            tick(len(batch))
    return {"within": torch.cat(within).numpy(), "avg": (avg / N).cpu()}


def matrix_means(cos, offdiag=False):
    """Each [T, T] matrix's mean: over all T^2 entries, as the paper (the diagonal's ones are a 1/T
    share), or, with offdiag, over the T (T - 1) entries between two different tokens."""
    T = cos.shape[-1]
    total = cos.sum((-2, -1))
    return ((total - cos.diagonal(dim1=-2, dim2=-1).sum(-1)) / (T * (T - 1)) if offdiag
            else total / T**2)


def rank_correlations(x, y):
    """Spearman's rho and Kendall's tau-b of y against x, with their p-values (scipy); NaN when y is
    flat."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        (r, rp), (t, tp) = stats.spearmanr(x, y), stats.kendalltau(x, y)
    return {"spearman": float(r), "spearman_p": float(rp), "kendall": float(t),
            "kendall_p": float(tp)}


def paper_summary(avg, within, offdiag=False, last_n=3):
    """From paper_measure: mu_l (layer_mean, the mean of layer l's averaged matrix, = the mean of
    its texts' means), the spread over texts, Spearman and Kendall of mu_l against l, and hist,
    the paper's heatmap columns: a 128-bin histogram over [-1, 1] of each averaged matrix's
    entries, as fractions."""
    L, T = avg.shape[0], avg.shape[-1]
    # [L, entries looked at]
    entries = avg[:, ~torch.eye(T, dtype=torch.bool)] if offdiag else avg.flatten(1)
    mu = entries.mean(1).numpy()
    hist = np.stack([np.histogram(e, N_BINS, (-1, 1))[0] for e in entries.clamp(-1, 1).numpy()])
    return {"n_hidden": L, "layer_mean": mu.tolist(),
            "layer_std": within.std(0, ddof=1).tolist() if len(within) > 1 else [0.0] * L,
            **rank_correlations(np.arange(L), mu), "last_layer_mean": float(mu[-1]),
            "last_n_mean": float(mu[-last_n:].mean()), "hist": hist / entries.shape[1]}


# ------------------------------------------------------------------------------ beyond the paper
# Each measure is a function of running sums over the texts, kept by OnePass in the paper's pass: no
# per-text T x T matrix and no per-text [T, C] array is kept, and a bootstrap resample of the texts
# is a weighted sum.

DEFINITIONS = {
    "within": "the paper's measure: the mean cosine of two tokens of one text, each token with "
              "itself included (a 1/T share of ones)",
    "across": "the mean cosine of two tokens of different texts at different positions: what any "
              "two tokens share, such as a common direction (same positions are left out: two "
              "tokens of one text never share a position, nor its position embedding)",
    "excess": "the mean cosine of two different tokens of one text (no token with itself) minus "
              "across: how much closer a text's tokens are than tokens of two texts; 0 in "
              "expectation when no token sees another",
    "rogue": "the share of the squared norm that the --rogue_k largest channels hold",
    "erank": "the effective rank (Roy & Vetterli) of the layer's unit tokens; erank_ratio = "
             "erank / C",
    "within_std": "within after standardising every channel over all tokens (mean 0, variance 1)",
}
MEASURES = tuple(DEFINITIONS)[1:]  # beyond the paper, in the tables' order


def within_from_sums(s, T, offdiag=False):
    """within from s [..., C], the sum of a text's T unit tokens: sum_ij <u_i, u_j> = |s|^2, the
    diagonal's T."""
    sq = (s * s).sum(-1)
    return (sq - T) / (T * (T - 1)) if offdiag else sq / T**2


def across_mean(s, same, T, counts=None):
    """across [L] from s [N, L, C] (each text's sum of unit tokens) and
    same [L] = sum_{n != m} sum_i <u_ni, u_mi> (the same-position pairs of two texts, from
    P_i = sum_n u_ni: sum_i |P_i|^2 - N T). With counts [B, N] (how often each text is in each of B
    resamples) -> [B, L]: a text is never paired with its own copy, and the same-position share is
    kept at its mean over all pairs of texts (each pair's own would need every text's [T, C] tokens;
    on trained models this changes the resamples' spread by about 1%)."""
    c = np.ones((1, len(s))) if counts is None else np.asarray(counts, dtype=np.float64)
    # over pairs of different texts, all positions:
    # sum_{n != m} c_n c_m <s_n, s_m> = |sum c s|^2 - sum c^2 |s|^2
    pairs = (np.stack([((c @ s[:, layer]) ** 2).sum(1) for layer in range(s.shape[1])], 1)
             - (c**2) @ (s**2).sum(-1))
    # (sum c)^2 - sum c^2 pairs of different texts
    text_pairs = (c.sum(1) ** 2 - (c**2).sum(1))[:, None]
    N = len(s)
    with np.errstate(invalid="ignore", divide="ignore"):  # one text: no pairs, NaN
        same_per_pair = np.asarray(same) / (N * (N - 1))
        out = (pairs - text_pairs * same_per_pair) / (text_pairs * T * (T - 1))
    return out[0] if counts is None else out


def excess_of(s, same, T, counts=None):
    """excess [L] (or [B, L] with counts): within over different tokens only, minus across_mean."""
    c = np.ones((1, len(s))) if counts is None else np.asarray(counts, dtype=np.float64)
    within = c @ within_from_sums(s, T, offdiag=True) / c.sum(1, keepdims=True)  # [B, L]
    out = within - across_mean(s, same, T, c)
    return out[0] if counts is None else out


def rogue_share(sq, k=3):
    """rogue from sq [..., C], each channel's sum of squares q_c = sum_t h_tc^2: the k largest q_c
    over sum_c q_c."""
    # torch's topk: 2-3x faster than numpy's partition on the bootstrap's [1000, C] rows
    q = torch.as_tensor(sq)
    return (q.topk(k, -1).values.sum(-1) / q.sum(-1)).numpy()


def effective_rank(moment):
    """erank of the [tokens, C] matrix U of unit tokens, from M = U^T U [..., C, C] (not centred):
    sigma_k = sqrt(eig_k(M)), p_k = sigma_k / sum_j sigma_j, erank = exp(-sum_k p_k log p_k)."""
    lam = np.linalg.eigvalsh(moment)
    # M sums float32 products: eigenvalues below float32's resolution of its trace are rounding, not
    # directions
    floor = np.finfo(np.float32).eps * np.trace(moment, axis1=-2, axis2=-1)[..., None]
    sigma = np.sqrt(np.where(lam > floor, lam, 0))
    p = sigma / sigma.sum(-1, keepdims=True)
    return np.exp(-(p * np.log(np.where(p > 0, p, 1))).sum(-1))  # 0 log 0 = 0


class OnePass:
    """The running sums of the measures beyond the paper's, added as paper_measure sees each layer:
    s [N, L, C] each text's sum of unit tokens; sq [N, L, C] each text's per-channel sums of squares
    of the raw states; total [L, C] their per-channel sums; pos [L, T, C] P_i, the unit tokens at
    position i summed over texts; with erank, the C x C second moment sum u u^T of all unit tokens
    (support/fast.py's BatchMoment, a fast path)."""

    def __init__(self, batch_size, erank=False):
        self.batch_size, self.erank = batch_size, erank

    def start(self, N, L, T, C, device):
        self.N, self.T, self.C, self.rows, self.batch = N, T, C, 0, 0
        # every array allocated once, here: small arrays kept from every batch would fragment the
        # heap
        self.s, self.sq, self.total = np.zeros((N, L, C)), np.zeros((N, L, C)), np.zeros((L, C))
        self.pos = torch.zeros(L, T, C, dtype=torch.float64, device=device)
        self.per_text, self.per_batch = [], []
        self.moment = BatchMoment(N, L, T, C, self.batch_size, device) if self.erank else None

    def add(self, layer, h, u):
        """One layer of one batch: h [B, T, C] the raw states (float32), u the unit tokens (changed
        in place)."""
        # sums over one batch's tokens in float32 (a float64 reduction costs 5-10x on a CPU), across
        # batches in float64; one copy off the device per batch (end_batch), so a GPU syncs once per
        # batch
        s_b = u.sum(1)
        self.pos[layer] += u.sum(0)
        self.per_text.append(torch.stack([s_b, h.square().sum(1)], 1))  # [B, 2, C]
        self.per_batch.append(h.sum((0, 1)))
        if self.moment:  # u is changed in place from here on
            self.per_batch.append(self.moment.add(layer, u, s_b))  # the batch's mean, subtracted

    def end_batch(self, B):
        rows = slice(self.rows, self.rows + B)
        per_text = torch.stack(self.per_text, 1).cpu().numpy()  # [B, L, 2, C]
        per_batch = torch.stack(self.per_batch).cpu().numpy().reshape(len(self.s[0]), -1, self.C)
        self.s[rows], self.sq[rows] = per_text[:, :, 0], per_text[:, :, 1]
        self.total += per_batch[:, 0]
        if self.moment:
            self.moment.end_batch(self.batch, per_batch[:, 1], last=rows.stop == self.N)
        self.per_text, self.per_batch, self.rows, self.batch = [], [], rows.stop, self.batch + 1

    def result(self):
        """-> s, sq, total, same [L] (sum_i |P_i|^2 - N T, for across_mean) and, with erank,
        moment [L, C, C]."""
        N, T = self.N, self.T
        out = dict(s=self.s, sq=self.sq, total=self.total,
                   same=(self.pos.square().sum((1, 2)) - N * T).cpu().numpy())
        if self.moment:
            out["moment"] = self.moment.result(self.s)
        return out


def layer_stats(hidden_fn, tokens, batch_size=4, offdiag=False, device="cpu", extra=True,
                erank=False, tick=None):
    """The paper's measure and, with extra, OnePass's sums, from one pass over the texts -> dict of
    arrays."""
    extras = OnePass(batch_size, erank) if extra else None
    out = paper_measure(hidden_fn, tokens, batch_size, offdiag, device, extras, tick)
    return out | (extras.result() if extra else {})


def channel_moments(stats, n_tokens):
    """Each layer's per-channel mean and sd over all n_tokens tokens [L, C], from the first pass's
    sums."""
    mean = stats["total"] / n_tokens
    var = np.clip(stats["sq"].sum(0) / n_tokens - mean**2, 0, None)
    # a constant channel is 0 after centring, whatever sd
    return mean, np.where(var > 0, np.sqrt(var), 1.0)


@torch.no_grad()
def standardized_within(hidden_fn, tokens, mean, std, batch_size=4, offdiag=False, device="cpu",
                        tick=None):
    """within_std [N, L], a second pass: within after z_c = (h_c - m_c) / sd_c, with
    mean, std [L, C] over all tokens (channel_moments), so that no channel dominates the cosine."""
    T = tokens.shape[1]
    mean, std = (torch.as_tensor(x, dtype=torch.float32, device=device) for x in (mean, std))
    out = []
    for batch in tokens.split(batch_size):
        hidden = hidden_fn(batch.to(device))
        # divided in place: one copy
        z = [(h.float() - m).div_(sd) for h, m, sd in zip(hidden, mean, std)]
        s = [F.normalize(x, dim=-1, out=x).sum(1) for x in z]
        out.append(within_from_sums(torch.stack(s, 1).double(), T, offdiag).cpu())
        del hidden, z
        if tick:
            tick(len(batch))
    return torch.cat(out).numpy()


# ------------------------------------------------------------------------------ summary

def ci_of(samples, ci):
    """The central ci interval of the bootstrap samples, leaving out those of flat resamples
    (NaN)."""
    good = samples[np.isfinite(samples)]
    return ([float(v) for v in np.percentile(good, [50 * (1 - ci), 50 * (1 + ci)])] if good.size
            else None)


def extra_layers(st, k, boot_idx=None):
    """Each measure beyond the paper's, per layer [L] (with boot_idx [B, N], per resample
    [B, L])."""
    T, L, out = st["avg"].shape[-1], st["avg"].shape[0], {}
    N = len(st["within"])
    counts = (None if boot_idx is None
              else np.stack([np.bincount(rows, minlength=N) for rows in boot_idx]))
    if "s" in st:
        out["across"] = across_mean(st["s"], st["same"], T, counts)
        out["excess"] = excess_of(st["s"], st["same"], T, counts)
        sq = (st["sq"].sum(0) if counts is None
              else np.stack([counts @ st["sq"][:, l] for l in range(L)], 1))
        out["rogue"] = rogue_share(sq, k)
    # no sum over texts, so no bootstrap: a resample needs each text's M
    if "moment" in st and boot_idx is None:
        out["erank"] = effective_rank(st["moment"])
    if "within_std" in st:
        out["within_std"] = resample(st["within_std"], boot_idx)
    return out


def resample(per_text, boot_idx=None):
    """The mean over texts of per_text [N, L]; with boot_idx [B, N], the mean of each resample
    [B, L]."""
    return (per_text.mean(0) if boot_idx is None
            else np.stack([per_text[rows].mean(0) for rows in boot_idx]))


def summarize(st, offdiag=False, last_n=3, boot_idx=None, ci=0.95, k=3):
    """The numbers of one model from layer_stats' st (with within_std [N, L] when measured);
    boot_idx [n_boot, N]: text resamples shared by all models, so that two models' differences are a
    paired bootstrap."""
    out = paper_summary(st["avg"], st["within"], offdiag, last_n)
    L, layers = out["n_hidden"], extra_layers(st, k)
    for name, y in layers.items():
        out["layer_" + name] = y.tolist()
        out |= {f"{name}_{key}": v for key, v in rank_correlations(np.arange(L), y).items()}
        out["last_layer_" + name] = float(y[-1])
    # on the scale of the width C: 1 / C for one direction, 1 for all directions alike
    if "erank" in layers:
        out["layer_erank_ratio"] = (layers["erank"] / st["moment"].shape[-1]).tolist()
        out["last_layer_erank_ratio"] = out["layer_erank_ratio"][-1]
    if boot_idx is not None and len(boot_idx):
        # a resample's per-layer means: the average of its texts' means (exact, as every text has T
        # tokens)
        resampled = {"": resample(st["within"], boot_idx), **extra_layers(st, k, boot_idx)}
        out["boot"] = {}
        for name, y in resampled.items():
            rho, kendall = rank_rows(y)
            prefix, last = (f"{name}_", f"last_layer_{name}") if name else ("", "last_layer_mean")
            out["boot"] |= {prefix + "spearman": rho, prefix + "kendall": kendall, last: y[:, -1]}
            out[prefix + "spearman_ci"] = ci_of(rho, ci)
            out[prefix + "kendall_ci"] = ci_of(kendall, ci)
    return out


CONDENSATION_ESTIMATE = ("spearman", "kendall", "last_layer_mean", "last_layer_excess",
                         "last_layer_erank")


@torch.no_grad()
def condensation_summary(net, idx, offdiag=False):
    """train.py's in-training estimate on a fixed batch of token ids idx [N, T] (one forward pass):
    the CONDENSATION_ESTIMATE numbers under measure.py's names, from few windows (measure.py's use
    100 texts)."""
    was_training = net.training
    try:  # no logits: the output layer is costly
        hidden_fn = lambda x: net.eval()(x, return_hidden=True, head=False)[2]
        r = summarize(layer_stats(hidden_fn, idx, len(idx), offdiag, idx.device, erank=True),
                      offdiag)
    finally:
        net.train(was_training)
    return {k: r[k] for k in CONDENSATION_ESTIMATE}


# ------------------------------------------------------------------------------ one run

def measure_one(m, args, boot_idx):
    """One model's measurement: its pass (two with --standardize), then the summary."""
    t0 = time.perf_counter()
    net = m["load"](args.device, DTYPES[args.dtype])
    hidden_fn = net["hidden"]
    t1 = time.perf_counter()
    kw = dict(batch_size=args.batch_size, offdiag=args.offdiag, device=args.device)
    st = layer_stats(hidden_fn, m["tokens"], **kw, erank=args.erank,
                     tick=ticker(args.n_texts, "texts"))
    if args.standardize:  # a second pass, every channel standardised by the first pass's statistics
        mean, sd = channel_moments(st, args.n_texts * args.seq_len)
        st["within_std"] = standardized_within(hidden_fn, m["tokens"], mean, sd, **kw,
                                               tick=ticker(args.n_texts, "texts, standardised"))
    del hidden_fn  # one model in memory at a time
    summary = summarize(st, args.offdiag, args.last_n, boot_idx, args.ci, args.rogue_k)
    t2 = time.perf_counter()
    return dict(name=m["name"], kind=m["kind"], n_params=net["n_params"],
                n_params_non_embedding=net["n_params_non_embedding"], tokens_seen=m["tokens_seen"],
                run=m.get("run"), seq_len=args.seq_len, documents=m["starts"],
                load_seconds=round(t1 - t0, 2), measure_seconds=round(t2 - t1, 2),
                seconds=round(t2 - t0, 2), **summary)


def measure_all(args):
    """Validate every input, then measure every model; -> (results, report dict for
    condensation.json)."""
    models, described = open_with_texts(args, SEQ_LEN)
    print(f"{len(models)} model(s), {args.n_texts} texts of {args.seq_len} tokens from {described}",
          flush=True)
    boot_idx = np.random.default_rng(args.seed + 1).integers(0, args.n_texts,
                                                             (args.n_boot, args.n_texts))
    results = []
    for i, m in enumerate(models, 1):
        print(f"[{i}/{len(models)}] {m['name']}", flush=True)
        r = measure_one(m, args, boot_idx)
        results.append(r)
        print(f"{r['name']}: rho {r['spearman']:+.3f}, excess rho {r['excess_spearman']:+.3f}, "
              f"Kendall {r['kendall']:+.3f}, last layer {r['last_layer_mean']:.3f} "
              f"(loaded in {r['load_seconds']:.1f} s, measured in {r['measure_seconds']:.1f} s)",
              flush=True)
    sized = (sorted(results, key=lambda r: r["n_params"])
             if len({r["n_params"] for r in results}) > 2 else [])
    size_trend = {key: trend([r[key] for r in sized], [r["spearman"] for r in sized])
                  for key in ("n_params", "n_params_non_embedding")}
    report = {"settings": ({k: v for k, v in vars(args).items() if k != "models"}
                           | {"data": described}),
              "definitions": DEFINITIONS,
              "size_trend": (size_trend | {"families": sorted({plots.family(r) for r in sized})}
                             if sized else None),
              "pairs": ([pair(a, b, args.ci) for a, b in zip(results[::2], results[1::2])]
                        if args.paired else []),
              "runs": {run: trend([r["tokens_seen"] for r in rs], [r["spearman"] for r in rs])
                       for run, rs in snapshot_runs(results).items()},
              "models": [{k: v for k, v in r.items() if k not in ("hist", "boot", "run")}
                         for r in results]}
    return results, report


def trend(x, y):
    """Rank correlations of y with x (model size or training tokens); None below 3 points."""
    return {"n": len(x)} | rank_correlations(x, y) if len(x) >= 3 else None


def pair(a, b, ci):
    """b against a (say a distilled model against its base): differences and their paired
    bootstrap CIs."""
    out = {"base": a["name"], "other": b["name"], "same_texts": a["documents"] == b["documents"]}
    keys = ("spearman", "kendall", "last_layer_mean", "excess_spearman", "last_layer_excess",
            "within_std_spearman")
    for key in (k for k in keys if k in a and k in b):
        out["d_" + key] = b[key] - a[key]
        if "boot" in a:
            out[f"d_{key}_ci"] = ci_of(b["boot"][key] - a["boot"][key], ci)
    return out


# ------------------------------------------------------------------------------ command line

SEQ_LEN = 512  # the paper's text length, when every model's context allows it
N_BOOT = 1000  # bootstrap resamples of the texts


def parse_args(argv=None):
    formatter = type("Formatter", (argparse.ArgumentDefaultsHelpFormatter,
                                   argparse.RawDescriptionHelpFormatter), {})
    p = checks.one_line(argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                                formatter_class=formatter),
                        "measure.py")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="checkpoint, run directory, GPT-2 name/dir, hf:<name>[@revision]")
    p.add_argument("--data", default="austen",
                   help=".txt/.jsonl file, bundled source or prepared dataset name")
    p.add_argument("--split", default="val", choices=["val", "all"],
                   help="of a bundled or prepared dataset: val (documents no model trained on) or "
                        "all documents")
    p.add_argument("--field", default="text", help="JSON field holding the text of a .jsonl file")
    p.add_argument("--n_texts", type=int, default=100, help="texts per model (the paper: 100)")
    p.add_argument("--seq_len", type=int, default=None,
                   help=f"tokens per text (default: the paper's {SEQ_LEN}, or the models' smallest "
                        "context)")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the choice of documents and the bootstrap")
    p.add_argument("--offdiag", action="store_true",
                   help="leave each token's cosine with itself (1) out")
    p.add_argument("--standardize", action="store_true",
                   help="also within_std: a second pass with every channel standardised (mean 0, "
                        "variance 1)")
    p.add_argument("--erank", action="store_true",
                   help="also erank, from a C x C second moment summed over all tokens: L C^2 / 2 "
                        "multiply-adds a token, about 5%% more time for GPT-2")
    p.add_argument("--rogue_k", type=int, default=3,
                   help="rogue: the share of the squared norm in the k largest channels")
    p.add_argument("--last_n", type=int, default=3,
                   help="also report the mean over the last n layers")
    p.add_argument("--n_boot", type=int, default=N_BOOT,
                   help="bootstrap resamples of the texts (0: no CIs)")
    p.add_argument("--ci", type=checks.number, default=0.95,
                   help="confidence level of the bootstrap intervals")
    p.add_argument("--paired", action="store_true",
                   help="models come in pairs (base, other): report differences")
    p.add_argument("--snapshots", action="store_true",
                   help="a run directory means all its ckpt_NNNNNN.pt")
    p.add_argument("--size_by", default="total", choices=["total", "non_embedding"],
                   help="model size in the size trend's figure and line: all parameters or "
                        "non-embedding ones")
    p.add_argument("--batch_size", type=int, default=4, help="texts per forward pass")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="where the models run: cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", default="float32", choices=["float32", "bf16"],
                   help="the models' weights and activations (the measures are taken in float32 "
                        "either way)")
    p.add_argument("--out", default="out_measure", help="folder for the results")
    args = p.parse_args(argv)
    check_flags(p, args, dict(n_texts=1, seq_len=2, last_n=1, n_boot=0, batch_size=1, rogue_k=1))
    if not 0 < args.ci < 1:
        p.error("--ci must be between 0 and 1")
    if not args.models:
        p.error("give at least one MODEL")
    return args


def main(argv=None):
    args = parse_args(argv)
    size_by = "n_params" if args.size_by == "total" else "n_params_non_embedding"
    try:
        # refused now, not after the whole measurement
        if unwritable := check_writable(args.out, "--out"):
            raise MeasureError(unwritable)
        results, report = measure_all(args)
        out = write_results(args.out,
                            lambda folder: outputs.write_outputs(results, report, folder, size_by),
                            outputs.output_files)
    except (MeasureError, ModelError, DataError, OSError, ValueError) as e:
        sys.exit(f"error: {(str(e).strip().splitlines() or [type(e).__name__])[0]}")
    outputs.print_table(results, report, args.last_n, size_by)
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
