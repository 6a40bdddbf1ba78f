"""
Measure embedding condensation: how the token vectors of one text crowd into a narrow cone, layer by layer.

    python measure.py gpt2 gpt2-medium gpt2-large --out results/gpt2      # GPT-2 sizes, bundled Austen chapters
    python measure.py out/run1 --snapshots --out results/run1              # every snapshot of one training run
    python measure.py hf:Qwen/Qwen3-0.6B hf:Qwen/Qwen3-1.7B --data wikitext103 --out results/qwen
    python measure.py hf:BASE hf:DISTILLED [hf:BASE2 hf:DISTILLED2 ...] --paired --out results/kd
    python measure.py hf:allenai/OLMo-1B-0724-hf@step1000-tokens2B hf:allenai/OLMo-1B-0724-hf --out results/olmo

MODEL, opened by load.py as in every script, is one of our checkpoint files or run directories (its ckpt.pt;
every ckpt_NNNNNN.pt with --snapshots), a GPT-2 name (gpt2, gpt2-medium, gpt2-large, gpt2-xl) or directory, or
hf:<name or directory>[@revision] for any Hugging Face causal LM through the optional `transformers` package.
--data is a .txt (one document per paragraph) or .jsonl (--field) file, a bundled source (austen, wiki and their
_char names: the documents data/prepare.py puts into their val split, cut into paragraphs; --split all: every
chapter or article), or a prepared data/<name> (its val split, cut into documents at <|endoftext|>; a char dataset
has no document marker, so, as in a .txt file, each paragraph is a document). Every model sees the same
documents, tokenized its own way.

Per model and layer, from one pass over the texts: within, the paper's mean token-token cosine within a text;
across, the mean cosine of two tokens of different texts at different positions (the direction all texts share);
excess, the mean cosine of two different tokens of one text minus across (like pairs: no token with itself, no two
tokens at one position);
rogue, the share of the squared norm in the --rogue_k largest channels. --erank adds erank, the effective rank of
the layer's token cloud (and erank / C), from a C x C sum over all tokens that costs about 5% of a GPT-2 forward
pass; --standardize adds within_std, within after standardising every channel (a second pass). Each has its rank
correlations with depth and (but erank) bootstrap CIs over texts.
Writes condensation.json, condensation.csv (one row per model), condensation_layers.csv (one row per layer) and
figures into --out, all at once at the end; a bad input stops everything with one line before any work.
train.py calls condensation_summary(model, idx) at each eval: rho, tau and the last layer's within, excess, erank.
"""

import argparse
import csv
import json
import re
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

from support import plots
from support.load import ModelError, check_flags, open_model, write_results
from support.progress import ticker
from data.prepare import DataError
from data.texts import load_documents, select_texts

DTYPES = {"float32": torch.float32, "bf16": torch.bfloat16}
N_BINS = 128  # histogram bins over [-1, 1] in the paper's heatmaps


MeasureError = DataError  # a bad input, here as in data/ (the texts raise it too): one line for the user


# ------------------------------------------------------------------------------------------------ the numbers
# One pass over the texts keeps running sums (layer_stats); every measure is then one function of those sums.

def cosine_matrices(h):
    """[B, T, C] hidden states -> [B, T, T] cosines between every two tokens of each text, in float32."""
    u = F.normalize(h.float(), dim=-1)
    return u @ u.transpose(-1, -2)  # C_ij = <x_i, x_j> / (|x_i| |x_j|)


def matrix_means(cos, offdiag=False):
    """within: the mean of each [T, T] matrix: all T^2 entries, as the paper (the diagonal is 1, a 1/T share), or,
    with offdiag, the T (T - 1) entries between different tokens only."""
    T = cos.shape[-1]
    total = cos.sum((-2, -1))
    return (total - cos.diagonal(dim1=-2, dim2=-1).sum(-1)) / (T * (T - 1)) if offdiag else total / T**2


def within_from_sums(s, T, offdiag=False):
    """within from s [..., C], the sum of a text's T unit token vectors: matrix_means without the T x T matrix."""
    sq = (s * s).sum(-1)  # sum_ij <u_i, u_j> = |s|^2, of which the diagonal is T
    return (sq - T) / (T * (T - 1)) if offdiag else sq / T**2


def across_mean(s, same, T, counts=None):
    """across_l: the mean cosine of two tokens of different texts at different positions, from s [N, L, C] (each
    text's sum of unit tokens) and same [L] = sum_{n != m} sum_i <u_ni, u_mi> (the pairs of texts at one position,
    from P_i = sum_n u_ni: sum_i |P_i|^2 - N T) -> [L]. Same positions are left out because two tokens of one text
    never share a position (and with it a position embedding). With counts [B, N] (how often each text is in each
    of B resamples) -> [B, L]: a resampled text is never paired with its own copy, and the same-position share of
    the pairs is kept at its value over all texts (its own per-pair values would need every text's [T, C] tokens)."""
    c = np.ones((1, len(s))) if counts is None else np.asarray(counts, dtype=np.float64)
    # over pairs of different texts, all positions: sum_{n != m} c_n c_m <s_n, s_m> = |sum c s|^2 - sum c^2 |s|^2
    pairs = np.stack([((c @ s[:, layer]) ** 2).sum(1) for layer in range(s.shape[1])], 1) - (c**2) @ (s**2).sum(-1)
    text_pairs = (c.sum(1) ** 2 - (c**2).sum(1))[:, None]  # (sum c)^2 - sum c^2 pairs of different texts
    N = len(s)
    with np.errstate(invalid="ignore", divide="ignore"):  # one text: no pairs, NaN
        same_per_pair = np.asarray(same) / (N * (N - 1))  # the mean over pairs of texts of their same-position sum
        out = (pairs - text_pairs * same_per_pair) / (text_pairs * T * (T - 1))
    return out[0] if counts is None else out


def excess_of(s, same, T, counts=None):
    """excess_l: the mean cosine of two different tokens of one text (the diagonal's ones left out, as across has
    none) minus across_l: the crowding of a text's tokens beyond what tokens of any two texts share. 0 in expectation
    for exchangeable texts whose tokens do not see each other. -> [L] (or [B, L] with counts, as across_mean)."""
    c = np.ones((1, len(s))) if counts is None else np.asarray(counts, dtype=np.float64)
    within = c @ within_from_sums(s, T, offdiag=True) / c.sum(1, keepdims=True)  # [B, L]
    out = within - across_mean(s, same, T, c)
    return out[0] if counts is None else out


def rogue_share(sq, k=3):
    """rogue_l: the share of the squared norm that the k largest channels hold, from sq [..., C], each channel's
    sum of squares q_c = sum_t h_tc^2 over the layer's raw tokens: sum of the k largest q_c / sum_c q_c."""
    q = torch.as_tensor(sq)  # torch's topk: 2-3x faster than numpy's partition on the bootstrap's [1000, C] rows
    return (q.topk(k, -1).values.sum(-1) / q.sum(-1)).numpy()


def effective_rank(moment):
    """erank_l (Roy & Vetterli 2007) of the [tokens, C] matrix U of unit tokens, from M = U^T U [..., C, C] (not
    centred): sigma_k = sqrt(eig_k(M)), p_k = sigma_k / sum_j sigma_j, erank = exp(-sum_k p_k log p_k)."""
    lam = np.linalg.eigvalsh(moment)
    # M sums float32 products: eigenvalues below float32's resolution of its trace are rounding, not directions
    # (their square roots would add to erank); they are 0, as those of a cloud with fewer tokens than channels
    floor = np.finfo(np.float32).eps * np.trace(moment, axis1=-2, axis2=-1)[..., None]
    sigma = np.sqrt(np.where(lam > floor, lam, 0))
    p = sigma / sigma.sum(-1, keepdims=True)
    return np.exp(-(p * np.log(np.where(p > 0, p, 1))).sum(-1))  # 0 log 0 = 0


def standardize(h, mean, std):
    """within_std's tokens: each channel standardised, z_c = (h_c - m_c) / sd_c, with the mean and sd of channel c
    over all the texts' tokens of the layer (from the first pass), so that no channel dominates the cosine."""
    return (h.float() - mean).div_(std)  # in place: one [B, T, C] tensor, not two


MOMENT_PANELS = 8  # column panels of the C x C moment: (P + 1) / 2P of a full matmul's work, 56% at P = 8
FLUSH_EVERY = 8  # batches whose moments are summed in float32 before they join the float64 sum


def panel_edges(C, panels=MOMENT_PANELS):
    """The column edges of the moment's panels: panel i holds rows edges[i]: and columns edges[i]:edges[i+1]."""
    return [round(C * i / panels) for i in range(panels + 1)]


def add_gram_lower(d, panels, edges):
    """panels[i] += d[:, a:]^T d[:, a:b] for d [n, C] and the column block [a, b) = edges[i:i+2]: the lower
    triangle of d^T d (and the diagonal blocks whole), one matmul per panel, a little over half a full d^T d's work.
    torch has no syrk (BLAS's one-triangle product); scipy's, faster alone, made the whole pass slower: its threads
    and torch's took the cores from each other between calls."""
    for panel, a, b in zip(panels, edges, edges[1:]):
        panel.addmm_(d[:, a:].T, d[:, a:b])


def flush_panels(panels, sums):
    """sums[i] += panels[i]: the float32 sums of the last FLUSH_EVERY batches join the float64 ones, in place on
    the device, and the panels restart from 0."""
    for panel, total in zip(panels, sums):
        total.add_(panel)
        panel.zero_()


def gram_from_panels(sums, edges):
    """The symmetric [C, C] float64 matrix (numpy) whose lower triangle the panel sums hold."""
    out = torch.zeros(edges[-1], edges[-1], dtype=torch.float64, device=sums[0].device)
    for total, a, b in zip(sums, edges, edges[1:]):
        out[a:, a:b] = total
    out = out.tril_()  # the diagonal blocks filled the upper triangle near the diagonal too
    return (out + out.tril(-1).T).cpu().numpy()  # the upper triangle from the lower one


@torch.no_grad()
def layer_stats(hidden_fn, tokens, batch_size=4, offdiag=False, device="cpu", extra=True, erank=False, tick=None):
    """Run the texts tokens [N, T] through a model in batches, keeping running sums -> dict of numpy arrays:
    avg [L, T, T] every layer's cosine matrix averaged entry by entry over the texts (the paper's heatmap);
    within [N, L] each text's mean cosine; with extra also s [N, L, C] each text's sum of unit tokens, sq [N, L, C]
    each text's per-channel sums of squares of the raw hidden states, total [L, C] their per-channel sums; with
    erank too, moment [L, C, C] the sum of u u^T over all tokens. Memory grows with N by two C-vectors per text and
    layer only, all allocated at the first batch (small arrays kept from every batch would fragment the heap)."""
    N, T = tokens.shape
    erank = erank and extra
    avg, within = None, []
    for b, batch in enumerate(tokens.split(batch_size)):
        hidden = hidden_fn(batch.to(device))
        B, n = len(batch), len(batch) * T  # texts and tokens in this batch
        rows = slice(b * batch_size, b * batch_size + B)
        if avg is None:
            L, C = len(hidden), hidden[0].shape[-1]
            avg = torch.zeros(L, T, T, dtype=torch.float64, device=device)
            if extra:
                s, sq, total = np.zeros((N, L, C)), np.zeros((N, L, C)), np.zeros((L, C))
                pos = torch.zeros(L, T, C, dtype=torch.float64, device=device)  # P_i = sum_n u_ni, per layer
            if erank:
                mus = np.zeros((-(-N // batch_size), L, C))  # each batch's mean unit token, as subtracted there
                edges = panel_edges(C)
                panels = [[torch.zeros(C - a, e - a, device=device) for a, e in zip(edges, edges[1:])] for _ in range(L)]
                sums64 = [[torch.zeros_like(p, dtype=torch.float64) for p in layer] for layer in panels]
        means, per_text, per_batch = [], [], []
        for layer, h in enumerate(hidden):  # one layer's [B, T, T] cosines at a time
            h = h.float()
            u = F.normalize(h, dim=-1)
            cos = u @ u.transpose(-1, -2)  # as cosine_matrices, reusing u
            avg[layer] += cos.sum(0, dtype=torch.float64)  # C-bar_l = (1/N) sum_n C_l(text n), summed here
            if not extra:
                means.append(matrix_means(cos, offdiag))
                continue
            # sums over one batch's tokens in float32 (a float64 reduction costs 5-10x on a CPU), across batches in
            # float64; within then comes from s (within_from_sums), the same number as matrix_means(cos)
            s_b = u.sum(1)  # [B, C]
            pos[layer] += u.sum(0)  # [T, C]: the same position of every text
            per_text.append(torch.stack([s_b, h.square().sum(1)], 1))  # [B, 2, C]
            per_batch.append(h.sum((0, 1)))  # [C]
            if erank:
                # sum u u^T = n mu mu^T + mu r^T + r mu^T + D^T D with D = u - mu, r = sum D, for any mu: taken about
                # the batch's mean mu, float32 rounding scales with the spread of the tokens, not with their length
                mu = (s_b.sum(0, dtype=torch.float64) / n).float()
                per_batch.append(mu)
                add_gram_lower(u.sub_(mu).reshape(-1, C), panels[layer], edges)  # u is D from here on
        if extra:  # one copy off the device per batch
            per_text, per_batch = torch.stack(per_text, 1).cpu().numpy(), torch.stack(per_batch).cpu().numpy()
            per_batch = per_batch.reshape(L, -1, C)  # [L, 1 or 2, C]: the raw sum, then mu with erank
            s[rows], sq[rows], total = per_text[:, :, 0], per_text[:, :, 1], total + per_batch[:, 0]
            within.append(within_from_sums(s[rows], T, offdiag))
        else:
            within.append(torch.stack(means, 1).double().cpu().numpy())
        if erank:
            mus[b] = per_batch[:, 1]
            if (b + 1) % FLUSH_EVERY == 0 or rows.stop == N:
                for layer in range(L):
                    flush_panels(panels[layer], sums64[layer])
        del hidden, cos, u  # freed before the next batch's forward pass, not during it
        if tick:
            tick(B)
    out = {"avg": (avg / N).cpu(), "within": np.concatenate(within)}
    if extra:  # same [L]: sum_{n != m} sum_i <u_ni, u_mi> = sum_i |P_i|^2 - N T, for across_mean
        out.update(s=s, sq=sq, total=total, same=(pos.square().sum((1, 2)) - N * T).cpu().numpy())
    if erank:
        starts = range(0, N, batch_size)
        counts = np.diff([*starts, N])[:, None] * T  # each batch's tokens, n
        rs = np.add.reduceat(s, starts) - counts[:, :, None] * mus  # r = sum D = s - n mu per batch, in float64
        out["moment"] = np.empty((L, C, C))
        for layer, m in enumerate(out["moment"]):  # a layer at a time: no second [L, C, C] array
            m[:], sums64[layer] = gram_from_panels(sums64[layer], edges), None  # each layer's sums freed as it goes
            mu, r = mus[:, layer], rs[:, layer]
            m += mu.T @ (counts * mu + r) + r.T @ mu  # the batches' n mu mu^T + mu r^T + r mu^T, all at once
    return out


def channel_moments(stats, n_tokens):
    """Each layer's per-channel mean and sd over all n_tokens tokens [L, C], from the first pass's sums."""
    mean = stats["total"] / n_tokens
    var = np.clip(stats["sq"].sum(0) / n_tokens - mean**2, 0, None)
    return mean, np.where(var > 0, np.sqrt(var), 1.0)  # a constant channel is 0 after centring, whatever sd


@torch.no_grad()
def standardized_within(hidden_fn, tokens, mean, std, batch_size=4, offdiag=False, device="cpu", tick=None):
    """within_std [N, L], a second pass: each text's mean cosine after standardize() with mean, std [L, C]."""
    T = tokens.shape[1]
    mean, std = (torch.as_tensor(x, dtype=torch.float32, device=device) for x in (mean, std))
    out = []
    for batch in tokens.split(batch_size):
        hidden = hidden_fn(batch.to(device))
        # float32 sums over each text's tokens, as layer_stats' s, then float64
        s = [F.normalize(z, dim=-1, out=z).sum(1) for z in map(standardize, hidden, mean, std)]
        out.append(within_from_sums(torch.stack(s, 1).double(), T, offdiag).cpu())
        del hidden
        if tick:
            tick(len(batch))
    return torch.cat(out).numpy()


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


# the measures beyond the paper's within, in the order of the tables; erank has no bootstrap (see summarize)
MEASURES = ("across", "excess", "rogue", "erank", "within_std")


def summarize(st, offdiag=False, last_n=3, boot_idx=None, ci=0.95, k=3):
    """The numbers of one model from layer_stats' output st (with "within_std" [N, L] when it was measured);
    boot_idx [n_boot, N] are text resamples shared by all models, so that differences between two models measured
    on the same texts are a paired bootstrap."""
    avg, per_text = st["avg"], st["within"]
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
    boot = boot_idx is not None and len(boot_idx)
    if boot:
        # each resample of texts gives per-layer means = the average of those texts' per-text means (exact)
        b_mu = np.stack([per_text[rows].mean(0) for rows in boot_idx])
        out["boot"] = dict(zip(("spearman", "kendall"), rank_rows(b_mu)), last_layer_mean=b_mu[:, -1])
        out["spearman_ci"], out["kendall_ci"] = ci_of(out["boot"]["spearman"], ci), ci_of(out["boot"]["kendall"], ci)
        counts = np.stack([np.bincount(rows, minlength=len(per_text)) for rows in boot_idx])
    layers, b_layers = {}, {}  # measure -> its per-layer values, and those of each resample [n_boot, L]
    if "s" in st:
        layers["across"] = across_mean(st["s"], st["same"], T)
        layers["excess"] = excess_of(st["s"], st["same"], T)
        layers["rogue"] = rogue_share(st["sq"].sum(0), k)
        if boot:
            b_layers["across"] = across_mean(st["s"], st["same"], T, counts)
            b_layers["excess"] = excess_of(st["s"], st["same"], T, counts)
            b_layers["rogue"] = np.stack([rogue_share(counts @ st["sq"][:, layer], k) for layer in range(L)], 1)
    if "moment" in st:  # erank is no sum over texts: a resample's would need each text's C x C matrix: no bootstrap
        layers["erank"] = effective_rank(st["moment"])
    if "within_std" in st:
        layers["within_std"] = st["within_std"].mean(0)
        if boot:
            b_layers["within_std"] = np.stack([st["within_std"][rows].mean(0) for rows in boot_idx])
    for name, y in layers.items():
        out["layer_" + name] = y.tolist()
        out |= {f"{name}_{key}": v for key, v in rank_correlations(np.arange(L), y).items()}
        out["last_layer_" + name] = float(y[-1])
        if name in b_layers:
            rho, tau = rank_rows(b_layers[name])
            out["boot"] |= {f"{name}_spearman": rho, f"{name}_kendall": tau, f"last_layer_{name}": b_layers[name][:, -1]}
            out[f"{name}_spearman_ci"], out[f"{name}_kendall_ci"] = ci_of(rho, ci), ci_of(tau, ci)
    if "erank" in layers:  # on the scale of the width C: 1 / C for one direction, 1 for all directions alike
        out["layer_erank_ratio"] = (layers["erank"] / st["moment"].shape[-1]).tolist()
        out["last_layer_erank_ratio"] = out["layer_erank_ratio"][-1]
    return out


@torch.no_grad()
def condensation_summary(net, idx, offdiag=False):
    """Cheap condensation of our GPT on a fixed batch of token ids idx [N, T] (one forward pass), for train.py's
    evals: Spearman and Kendall of the per-layer mean cosine against depth, and the last layer's mean, excess and
    effective rank, under measure.py's names (an estimate from few texts: measure.py's numbers use 100)."""
    was_training = net.training
    try:  # no logits: the output layer is costly
        hidden_fn = lambda x: net.eval()(x, return_hidden=True, head=False)[2]
        r = summarize(layer_stats(hidden_fn, idx, len(idx), offdiag, idx.device, erank=True), offdiag)
    finally:
        net.train(was_training)
    return {k: r[k] for k in ("spearman", "kendall", "last_layer_mean", "last_layer_excess", "last_layer_erank")}


# ------------------------------------------------------------------------------------------------ one run

def measure_all(args):
    """Validate every input, then measure every model; -> (results, report dict for condensation.json)."""
    if args.paired and len(args.models) % 2:
        raise MeasureError(f"--paired takes models in pairs (base, other, base, other, ...), got {len(args.models)}")
    docs, described = load_documents(args.data, args.field, args.split)
    models = [m for spec in args.models for m in open_model(spec, args.snapshots)]
    if args.paired and len(models) != len(args.models):
        raise MeasureError("--paired and --snapshots do not go together")
    if args.seq_len is None:  # the paper's 512, unless a model's context is shorter
        contexts = {m["name"]: m["max_len"] for m in models if m["max_len"] is not None}
        args.seq_len = min([SEQ_LEN, *contexts.values()])
        if args.seq_len < SEQ_LEN:
            shortest = min(contexts, key=contexts.get)
            print(f"texts of {args.seq_len} tokens: the shorter of {SEQ_LEN} and the smallest context of the models "
                  f"({shortest}); --seq_len sets it", flush=True)
    for m in models:  # tokenizing is cheap next to a forward pass: every text is checked before any of them runs
        if m["chars"] is not None:  # a char model has no id for a character it never saw: such characters are dropped
            m["encode"] = lambda text, known=m["chars"], encode=m["encode"]: encode("".join(c for c in text if c in known))
        if m["max_len"] is not None and args.seq_len > m["max_len"]:
            raise MeasureError(f"--seq_len {args.seq_len} is longer than {m['name']}'s context of {m['max_len']}")
        m["tokens"], m["starts"] = select_texts(docs, m["encode"], args.n_texts, args.seq_len, args.seed,
                                                f" in {described} for {m['name']}")
        if (top := int(m["tokens"].max())) >= m["vocab"]:
            raise MeasureError(f"{m['name']}: token id {top} is outside its vocabulary of {m['vocab']}")
    print(f"{len(models)} model(s), {args.n_texts} texts of {args.seq_len} tokens from {described}", flush=True)
    boot_idx = np.random.default_rng(args.seed + 1).integers(0, args.n_texts, (args.n_boot, args.n_texts))
    results = []
    for i, m in enumerate(models, 1):
        print(f"[{i}/{len(models)}] {m['name']}", flush=True)
        t0 = time.perf_counter()
        net = m["load"](args.device, DTYPES[args.dtype])
        hidden_fn, n_params, n_non_emb = net["hidden"], net["n_params"], net["n_params_non_embedding"]
        t1 = time.perf_counter()
        kw = dict(batch_size=args.batch_size, offdiag=args.offdiag, device=args.device)
        st = layer_stats(hidden_fn, m["tokens"], **kw, erank=args.erank, tick=ticker(args.n_texts, "texts"))
        if args.standardize:  # a second pass, with every channel standardised by the first pass's statistics
            mean, sd = channel_moments(st, args.n_texts * args.seq_len)
            st["within_std"] = standardized_within(hidden_fn, m["tokens"], mean, sd, **kw,
                                                   tick=ticker(args.n_texts, "texts, standardised"))
        del net, hidden_fn  # one model in memory at a time
        summary = summarize(st, args.offdiag, args.last_n, boot_idx, args.ci, args.rogue_k)
        t2 = time.perf_counter()
        r = dict(name=m["name"], kind=m["kind"], n_params=n_params, n_params_non_embedding=n_non_emb,
                 tokens_seen=m["tokens_seen"], run=m.get("run"), documents=m["starts"],
                 load_seconds=round(t1 - t0, 2), measure_seconds=round(t2 - t1, 2), seconds=round(t2 - t0, 2),
                 **summary)
        results.append(r)
        print(f"{r['name']}: rho {r['spearman']:+.3f}, excess rho {r['excess_spearman']:+.3f}, tau {r['kendall']:+.3f}, "
              f"last layer {r['last_layer_mean']:.3f} (loaded in {t1 - t0:.1f} s, measured in {t2 - t1:.1f} s)",
              flush=True)
    sized = sorted(results, key=lambda r: r["n_params"]) if len({r["n_params"] for r in results}) > 2 else []
    report = {"settings": {k: v for k, v in vars(args).items() if k != "models"} | {"data": described},
              "size_trend": {key: trend([r[key] for r in sized], [r["spearman"] for r in sized])
                             for key in ("n_params", "n_params_non_embedding")} | {
                                 "families": sorted({plots.family(r) for r in sized})} if sized else None,
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
    keys = ("spearman", "kendall", "last_layer_mean", "excess_spearman", "last_layer_excess", "within_std_spearman")
    for key in (k for k in keys if k in a and k in b):
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

FIGURES = ("heatmaps.png", "layer_means.png", "layer_measures.png", "size_trend.png")
RANKS = ("spearman", "spearman_p", "spearman_ci", "kendall", "kendall_p", "kendall_ci")
CSV_KEYS = ("name", "n_params", "n_params_non_embedding", "tokens_seen", "n_hidden", *RANKS, "last_layer_mean",
            "last_n_mean", *(f"{m}_{k}" for m in MEASURES for k in RANKS),
            *(f"last_layer_{m}" for m in (*MEASURES, "erank_ratio")), "load_seconds", "measure_seconds", "seconds")
LAYER_KEYS = ("across", "excess", "rogue", "erank", "erank_ratio", "within_std")  # condensation_layers.csv's columns


def write_outputs(results, report, folder, size_by="n_params"):
    text = re.sub(r"(?<=[\s\[])-?(NaN|Infinity)\b", "null", json.dumps(report, indent=1))  # e.g. rho of a flat curve
    text = re.sub(r"\[\s+([^\[\]{}\"]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)  # short lists
    (folder / "condensation.json").write_text(text + "\n")
    cell = lambda v: " ".join(map(str, v)) if isinstance(v, list) else v  # a confidence interval as "lo hi"
    layer_rows = [[r["name"], layer, layer / (r["n_hidden"] - 1), r["layer_mean"][layer], r["layer_std"][layer],
                   *(r["layer_" + k][layer] if "layer_" + k in r else None for k in LAYER_KEYS)]
                  for r in results for layer in range(r["n_hidden"])]
    tables = {"condensation.csv": [CSV_KEYS] + [[cell(r.get(k)) for k in CSV_KEYS] for r in results],
              "condensation_layers.csv": [("name", "layer", "layer_fraction", "mean", "std", *LAYER_KEYS)] + layer_rows}
    for name, rows in tables.items():
        with open(folder / name, "w", newline="") as f:
            csv.writer(f).writerows(rows)
    plots.draw_all(results, snapshot_runs(results), folder, size_by)


def print_table(results, report, last_n, size_by="n_params"):
    def fmt(r, k):  # r[k] and its confidence interval r[k_ci], when it has one
        ci = r.get(k + "_ci")
        return f"{r[k]:+.3f}" + (f" [{ci[0]:+.2f},{ci[1]:+.2f}]" if ci else "")
    std, erank = "within_std_spearman" in results[0], "last_layer_erank_ratio" in results[0]
    print(f"{'model':32s} {'params':>8s} {'non-emb':>8s} {'L+1':>4s} {'rho [CI]':>22s} {'excess rho [CI]':>22s} "
          + (f"{'std rho [CI]':>22s} " if std else "") + f"{'tau [CI]':>22s} {'last':>6s} {f'last{last_n}':>6s}"
          + (f" {'erank/C':>7s}" if erank else ""))
    for r in sorted(results, key=lambda r: r["n_params"]):
        print(f"{plots.short(r['name'], 32):32s} {r['n_params'] / 1e6:7.2f}M {r['n_params_non_embedding'] / 1e6:7.2f}M "
              f"{r['n_hidden']:4d} {fmt(r, 'spearman'):>22s} {fmt(r, 'excess_spearman'):>22s} "
              + (f"{fmt(r, 'within_std_spearman'):>22s} " if std else "") + f"{fmt(r, 'kendall'):>22s} "
              f"{r['last_layer_mean']:6.3f} {r['last_n_mean']:6.3f}"
              + (f" {r['last_layer_erank_ratio']:7.3f}" if erank else ""))
    if report["size_trend"]:
        t = report["size_trend"][size_by]
        print(f"size trend over {t['n']} models ({'non-embedding ' * (size_by != 'n_params')}parameters): "
              f"Spearman(size, rho) {t['spearman']:+.3f} (p {t['spearman_p']:.3g}), "
              f"Kendall {t['kendall']:+.3f} (p {t['kendall_p']:.3g})")
        if len(families := report["size_trend"]["families"]) > 1:
            print(f"note: the size trend mixes model families ({', '.join(families)})")
    for p in report["pairs"]:
        print(f"{p['other']} - {p['base']}: d_rho {fmt(p, 'd_spearman')}, d_excess_rho {fmt(p, 'd_excess_spearman')}, "
              f"d_last {p['d_last_layer_mean']:+.3f}" + ("" if p["same_texts"] else " (texts differ)"))


# ------------------------------------------------------------------------------------------------ command line

SEQ_LEN = 512  # the paper's text length, when every model's context allows it
N_BOOT = 1000  # bootstrap resamples of the texts


def parse_args(argv=None):
    formatter = type("Formatter", (argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter), {})
    p = argparse.ArgumentParser(description=__doc__, allow_abbrev=False, formatter_class=formatter)
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="checkpoint, run directory, GPT-2 name/dir, hf:<name>[@revision]")
    p.add_argument("--data", default="austen", help=".txt/.jsonl file, bundled source or prepared dataset name")
    p.add_argument("--split", default="val", choices=["val", "all"],
                   help="of a bundled or prepared dataset: val (documents no model trained on) or all documents")
    p.add_argument("--field", default="text", help="JSON field holding the text of a .jsonl file")
    p.add_argument("--n_texts", type=int, default=100, help="texts per model (the paper: 100)")
    p.add_argument("--seq_len", type=int, default=None,
                   help=f"tokens per text (default: the paper's {SEQ_LEN}, or the models' smallest context if shorter)")
    p.add_argument("--seed", type=int, default=0, help="seeds the choice of documents and the bootstrap")
    p.add_argument("--offdiag", action="store_true", help="leave each token's cosine with itself (1) out")
    p.add_argument("--standardize", action="store_true",
                   help="also within_std: a second pass with every channel standardised (mean 0, variance 1)")
    p.add_argument("--erank", action="store_true",
                   help="also erank, from a C x C second moment summed over all tokens: L C^2 / 2 multiply-adds a "
                        "token, about 5%% more time for GPT-2 (see the README's Cost)")
    p.add_argument("--rogue_k", type=int, default=3, help="rogue: the share of the squared norm in the k largest channels")
    p.add_argument("--last_n", type=int, default=3, help="also report the mean over the last n layers")
    p.add_argument("--n_boot", type=int, default=N_BOOT, help="bootstrap resamples of the texts (0: no CIs)")
    p.add_argument("--ci", type=float, default=0.95, help="confidence level of the bootstrap intervals")
    p.add_argument("--paired", action="store_true", help="models come in pairs (base, other): report differences")
    p.add_argument("--snapshots", action="store_true", help="a run directory means all its ckpt_NNNNNN.pt")
    p.add_argument("--size_by", default="total", choices=["total", "non_embedding"],
                   help="model size in the size trend's figure and line: all parameters or non-embedding ones")
    p.add_argument("--batch_size", type=int, default=4, help="texts per forward pass")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="where the models run: cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", default="float32", choices=["float32", "bf16"],
                   help="the models' weights and activations (the measures are taken in float32 either way)")
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
        results, report = measure_all(args)
        out = write_results(args.out, lambda folder: write_outputs(results, report, folder, size_by),
                            lambda out: [*out.glob("condensation*.*"), *out.glob("training*.png"),
                                         *(out / f for f in FIGURES)])
    except (MeasureError, ModelError, DataError, OSError, ValueError) as e:
        sys.exit(f"error: {(str(e).strip().splitlines() or [type(e).__name__])[0]}")
    print_table(results, report, args.last_n, size_by)
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
