"""measure.py against an independent numpy computation, the cases with known answers, Hugging Face's GPT-2 and
another architecture through transformers (test-only), the figures, and every bad input of the command line."""

import dataclasses
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from support import load
import measure
import model
from support import checks, fast, outputs, plots
from support.load import load_gpt
from data import texts
from data.prepare import load_split, paragraphs, prepare, source_documents
from data.tokenizer import GPT2_RANKS_FILE, char_spec, get_tokenizer


def numpy_cosines(h):
    """One text's hidden states [T, C] -> its T x T cosine matrix, in float64, written from the definition."""
    h = np.asarray(h, dtype=np.float64)
    T = len(h)
    return np.array([[h[i] @ h[j] / (np.linalg.norm(h[i]) * np.linalg.norm(h[j])) for j in range(T)] for i in range(T)])


def numpy_mean(c, offdiag):
    T = len(c)
    return np.mean([c[i, j] for i in range(T) for j in range(T) if not (offdiag and i == j)])


def fake_model(n_layer=3, C=8, vocab=50, seed=0):
    """A deterministic stand-in for a model: hidden state l = embedding + l * running mean of the embeddings."""
    emb = torch.randn(vocab, C, generator=torch.Generator().manual_seed(seed))

    def hidden_fn(idx):
        x = emb[idx]
        run = x.cumsum(1) / torch.arange(1, idx.shape[1] + 1)[:, None]
        return [x + layer * run for layer in range(n_layer + 1)]
    return hidden_fn


def write_checkpoint(path, docs, n_layer=2, n_embd=16, seed=0, tokens_seen=0):
    torch.manual_seed(seed)
    spec = char_spec(docs)
    cfg = model.GPTConfig(block_size=64, vocab_size=len(spec["chars"]), n_layer=n_layer, n_head=2, n_embd=n_embd)
    net = model.GPT(cfg)
    torch.save({"model": net.state_dict(), "model_args": dataclasses.asdict(cfg), "tokenizer": spec,
                "iter_num": tokens_seen // 100, "tokens_seen": tokens_seen, "config": {}}, path)
    return net


@pytest.fixture
def corpus(tmp_path):
    """40 short documents, a .jsonl file of them, and two tiny checkpoints of different sizes."""
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", "home"]
    docs = [" ".join(rng.choice(words, rng.integers(5, 30))) + "." for _ in range(40)]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(docs)))
    write_checkpoint(tmp_path / "small.pt", docs, n_layer=2, n_embd=16, seed=0)
    write_checkpoint(tmp_path / "big.pt", docs, n_layer=4, n_embd=32, seed=1)
    return tmp_path, docs


FAST = ["--n_texts", "6", "--seq_len", "32", "--n_boot", "50"]


# ------------------------------------------------------------------------------------------------ the numbers

def unit(h):
    h = np.asarray(h, dtype=np.float64)
    return h / np.linalg.norm(h, axis=-1, keepdims=True)


def numpy_across(texts):
    """The mean cosine over every pair of tokens of two different texts [N][T, C] at two different positions,
    pair by pair."""
    u = [unit(t) for t in texts]
    return np.mean([u[n][i] @ u[m][j] for n in range(len(u)) for m in range(len(u)) if n != m
                    for i in range(len(u[n])) for j in range(len(u[m])) if i != j])


def numpy_excess(texts):
    """The mean cosine of two different tokens of one text, minus numpy_across, pair by pair."""
    pairs = [numpy_mean(numpy_cosines(t), offdiag=True) for t in texts]
    return np.mean(pairs) - numpy_across(texts)


def numpy_rogue(tokens, k):
    q = np.sort((np.asarray(tokens, dtype=np.float64) ** 2).sum(0))  # each channel's sum of squares
    return q[-k:].sum() / q.sum()


def numpy_erank(tokens):
    sigma = np.linalg.svd(unit(tokens), compute_uv=False)  # of the [tokens, C] matrix itself
    p = sigma[sigma > 1e-12] / sigma.sum()
    return np.exp(-(p * np.log(p)).sum())


def numpy_within_std(texts, offdiag):
    flat = np.concatenate(texts).astype(np.float64)
    z = [(t - flat.mean(0)) / flat.std(0) for t in texts]
    return [numpy_mean(numpy_cosines(t), offdiag) for t in z]


def all_measures(texts, offdiag=False, k=3, boot_idx=None):
    """measure.py's numbers for one layer given as its texts' hidden states [N, T, C], through both passes."""
    h = torch.as_tensor(np.asarray(texts), dtype=torch.float32)
    hidden_fn = lambda idx: [h[idx[:, 0]]]  # token 0 of each text names the text
    idx = torch.arange(len(h))[:, None].expand(-1, h.shape[1])
    st = measure.layer_stats(hidden_fn, idx, 2, offdiag, erank=True)
    st["within_std"] = measure.standardized_within(hidden_fn, idx, *measure.channel_moments(st, h.shape[0] * h.shape[1]),
                                                   2, offdiag)
    r = measure.summarize(st, offdiag, last_n=1, boot_idx=boot_idx, k=k)
    return {m: r["layer_" + m][0] for m in ("mean", *measure.MEASURES, "erank_ratio")} | {"all": r, "stats": st}


def paper(texts, offdiag=False, batch_size=2):
    """measure.paper_measure on one layer given as its texts' hidden states [N, T, C]."""
    h = torch.as_tensor(np.asarray(texts), dtype=torch.float32)
    idx = torch.arange(len(h))[:, None].expand(-1, h.shape[1])  # token 0 of each text names the text
    return measure.paper_measure(lambda i: [h[i[:, 0]]], idx, batch_size, offdiag)


@pytest.mark.parametrize("offdiag", [False, True])
def test_paper_measure_matches_numpy(offdiag):
    """The paper's measure, text by text: each text's mean cosine, and the matrices averaged entry by entry."""
    h = torch.randn(3, 7, 5, generator=torch.Generator().manual_seed(0))
    got = paper(h, offdiag)
    refs = [numpy_cosines(t) for t in h]
    assert np.allclose(got["within"][:, 0], [numpy_mean(c, offdiag) for c in refs], atol=1e-6)
    assert np.allclose(got["avg"][0].numpy(), np.mean(refs, 0), atol=1e-6)


@pytest.mark.parametrize("offdiag", [False, True])
def test_every_measure_matches_numpy(offdiag):
    rng = np.random.default_rng(0)
    texts = rng.normal(size=(5, 6, 8)) + rng.normal(size=8)  # a shared offset, so that across is not ~0
    texts[..., 2] *= 4  # and a channel larger than the others
    got = all_measures(texts, offdiag, k=2)
    within = np.mean([numpy_mean(numpy_cosines(t), offdiag) for t in texts])
    flat = texts.reshape(-1, 8)
    want = {"mean": within, "across": numpy_across(texts), "excess": numpy_excess(texts),
            "rogue": numpy_rogue(flat, 2), "erank": numpy_erank(flat), "erank_ratio": numpy_erank(flat) / 8,
            "within_std": np.mean(numpy_within_std(texts, offdiag))}
    assert got["within_std"] != pytest.approx(within)  # standardising changes it
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-5), key
    # the within-text mean from each text's sum of unit vectors is the mean of its cosine matrix
    st = got["stats"]
    assert np.allclose(measure.within_from_sums(st["s"], 6, offdiag), st["within"], atol=1e-6)


def test_identical_tokens():
    v = torch.randn(16, generator=torch.Generator().manual_seed(0))
    h = v * (1 + 4 * torch.rand(4, 10, 1, generator=torch.Generator().manual_seed(1)))  # one direction, any length
    for offdiag in (False, True):
        assert np.allclose(paper(h, offdiag)["within"], 1, atol=1e-6)
    got = all_measures(h.numpy())
    assert got["mean"] == pytest.approx(1, abs=1e-6) and got["across"] == pytest.approx(1, abs=1e-6)
    assert got["excess"] == pytest.approx(0, abs=1e-6) and got["erank"] == pytest.approx(1, abs=1e-4)
    assert got["rogue"] == pytest.approx(np.sort(v.numpy() ** 2)[-3:].sum() / (v.numpy() ** 2).sum(), abs=1e-6)


def test_orthonormal_tokens():
    N, T, C = 3, 4, 16
    q, _ = torch.linalg.qr(torch.randn(C, C, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    assert paper(q[None, :T])["within"][0, 0] == pytest.approx(1 / T, abs=1e-6)  # only the diagonal's T ones
    assert paper(q[None, :T], offdiag=True)["within"][0, 0] == pytest.approx(0, abs=1e-6)
    got = all_measures(q[:N * T].reshape(N, T, C).numpy())  # every token of every text orthogonal to every other
    assert got["mean"] == pytest.approx(1 / T, abs=1e-6) and got["across"] == pytest.approx(0, abs=1e-6)
    assert got["erank"] == pytest.approx(N * T, abs=1e-4) and got["erank_ratio"] == pytest.approx(N * T / C)


def test_a_shared_offset_is_anisotropy_not_excess():
    rng = np.random.default_rng(0)
    texts = rng.normal(size=(8, 16, 64))
    for offdiag in (False, True):
        plain, shifted = all_measures(texts, offdiag), all_measures(texts + 1.5 * rng.normal(size=64), offdiag)
        assert shifted["mean"] - plain["mean"] > 0.5 and shifted["across"] - plain["across"] > 0.5  # rise together
        assert shifted["excess"] < plain["excess"] + 0.02  # excess does not
        assert shifted["erank"] < plain["erank"] - 10  # one direction now stands out of the cloud


def test_one_huge_channel_is_rogue_not_within_std():
    rng = np.random.default_rng(1)
    texts = rng.normal(size=(8, 16, 64))
    huge = texts.copy()
    huge[..., 5] += 40  # every token gets a large value in one channel
    plain, rogue = all_measures(texts), all_measures(huge)
    assert rogue["mean"] - plain["mean"] > 0.5 and rogue["rogue"] - plain["rogue"] > 0.5
    assert rogue["within_std"] == pytest.approx(plain["within_std"], abs=1e-4)  # the channel is standardised away


def resample_across(texts, rows, same_positions=None):
    """across over the resampled texts `rows`, pair by pair, no text with its own copy; same_positions: the mean
    same-position sum <u_ni, u_mi> over pairs of different texts to use instead of each pair's own."""
    u, T = [unit(texts[n]) for n in rows], texts.shape[1]
    total = n = 0
    for a in range(len(rows)):
        for b in range(len(rows)):
            if rows[a] != rows[b]:
                every = (u[a] @ u[b].T).sum()
                same = np.trace(u[a] @ u[b].T) if same_positions is None else same_positions
                total, n = total + every - same, n + T * (T - 1)
    return total / n


def test_bootstrap_of_across_leaves_out_a_text_paired_with_itself():
    rng = np.random.default_rng(2)
    N, T = 5, 3
    texts = rng.normal(size=(N, T, 4)) + rng.normal(size=4)
    st = all_measures(texts)["stats"]
    u = unit(texts)
    same = np.mean([np.trace(u[n] @ u[m].T) for n in range(N) for m in range(N) if n != m])
    boot_idx = rng.integers(0, N, (6, N))
    counts = np.stack([np.bincount(rows, minlength=N) for rows in boot_idx])
    got = measure.across_mean(st["s"], st["same"], T, counts)[:, 0]
    for rows, value in zip(boot_idx, got):
        assert value == pytest.approx(resample_across(texts, rows, same), abs=1e-6)
    excess = measure.excess_of(st["s"], st["same"], T, counts)[:, 0]
    for rows, value in zip(boot_idx, excess):
        within = np.mean([numpy_mean(numpy_cosines(texts[n]), offdiag=True) for n in rows])
        assert value == pytest.approx(within - resample_across(texts, rows, same), abs=1e-6)
    # every text once: the pair-by-pair across, same positions and all
    assert measure.across_mean(st["s"], st["same"], T, np.ones((1, N)))[0, 0] == pytest.approx(numpy_across(texts))
    # the resample of every text once is the measurement itself
    tokens = torch.randint(0, 50, (5, 9), generator=torch.Generator().manual_seed(1))
    st = measure.layer_stats(fake_model(), tokens)
    st["within_std"] = measure.standardized_within(fake_model(), tokens, *measure.channel_moments(st, 45))
    r = measure.summarize(st, boot_idx=np.arange(5)[None])
    for m in ("across", "excess", "rogue", "within_std"):
        assert r[f"{m}_spearman_ci"] == pytest.approx([r[f"{m}_spearman"]] * 2, nan_ok=True), m


def test_bootstrap_of_across_is_close_to_the_pair_by_pair_one():
    """The resamples keep the same-position share at its mean over all pairs of texts: on a GPT's hidden states,
    positions strong, their spread is within a few per cent of resampling every pair's own share."""
    torch.manual_seed(0)
    net = model.GPT(model.GPTConfig(block_size=16, vocab_size=50, n_layer=2, n_head=2, n_embd=16))
    with torch.no_grad():
        net.transformer.wpe.weight.mul_(10)
    tokens = torch.randint(0, 50, (12, 16), generator=torch.Generator().manual_seed(1))
    hidden_fn = lambda idx: net(idx, return_hidden=True, head=False)[2]
    st = measure.layer_stats(hidden_fn, tokens)
    with torch.no_grad():
        hidden = [h.numpy() for h in hidden_fn(tokens)]
    boot_idx = np.random.default_rng(3).integers(0, 12, (200, 12))
    counts = np.stack([np.bincount(rows, minlength=12) for rows in boot_idx])
    got = measure.across_mean(st["s"], st["same"], 16, counts)
    for layer, h in enumerate(hidden):
        exact = np.array([resample_across(h, rows) for rows in boot_idx])
        assert got[:, layer].std() == pytest.approx(exact.std(), rel=0.1), layer
        assert np.percentile(got[:, layer], [2.5, 97.5]) == pytest.approx(np.percentile(exact, [2.5, 97.5]),
                                                                        abs=0.3 * exact.std()), layer


def test_excess_is_zero_for_random_texts_before_any_mixing():
    """Layer 0 (the embeddings: no token has seen another) of i.i.d. random texts: a text's tokens are no more
    alike than tokens of two texts, so excess is 0 up to noise; within minus an across with the same positions
    and the diagonal, as measured before, is not."""
    torch.manual_seed(0)
    net = model.GPT(model.GPTConfig(block_size=32, vocab_size=50, n_layer=2, n_head=2, n_embd=32))
    with torch.no_grad():
        net.transformer.wpe.weight.mul_(10)  # positions as strong as a trained model's, so that the old bias shows
    tokens = torch.randint(0, 50, (60, 32), generator=torch.Generator().manual_seed(1))
    hidden_fn = lambda idx: net(idx, return_hidden=True, head=False)[2]
    st = measure.layer_stats(hidden_fn, tokens)
    r = measure.summarize(st)
    counts = np.stack([np.bincount(rows, minlength=60) for rows in np.random.default_rng(0).integers(0, 60, (200, 60))])
    spread = measure.excess_of(st["s"], st["same"], 32, counts)[:, 0].std()  # layer 0's, over resampled texts
    assert abs(r["layer_excess"][0]) < 2 * spread
    old = r["layer_mean"][0] - old_across(st["s"], 32)[0]  # the definition used before
    assert old > 10 * spread


def old_across(s, T):
    """The definition used before: tokens of different texts at any positions, same positions included."""
    S = s.sum(0)
    return ((S * S).sum(-1) - (s * s).sum((0, 2))) / (len(s) * (len(s) - 1) * T**2)


@pytest.mark.parametrize("C", [8, 13])  # 13: panels of unequal widths
def test_moment_from_panels_across_flushes_matches_numpy(C):
    hidden_fn = fake_model(n_layer=2, C=C)
    tokens = torch.randint(0, 50, (2 * fast.FLUSH_EVERY + 3, 6), generator=torch.Generator().manual_seed(3))
    h = [layer.numpy().astype(np.float64).reshape(-1, C) for layer in hidden_fn(tokens)]
    for batch_size in (1, 2, 5):  # flushed once, twice or never before the last batch, which is shorter
        st = measure.layer_stats(hidden_fn, tokens, batch_size, erank=True)
        for layer, x in enumerate(h):
            u = unit(x)
            assert np.allclose(st["moment"][layer], u.T @ u, rtol=1e-5, atol=1e-5)
            assert np.allclose(st["total"][layer], x.sum(0), rtol=1e-5)
    d = torch.randn(40, C, generator=torch.Generator().manual_seed(4))
    edges = fast.panel_edges(C, 3)
    panels = [torch.zeros(C - a, b - a) for a, b in zip(edges, edges[1:])]
    sums = [torch.zeros_like(p, dtype=torch.float64) for p in panels]
    for _ in range(2):  # two flushes
        fast.add_gram_lower(d, panels, edges)
        fast.flush_panels(panels, sums)
        assert all(not p.any() for p in panels)  # the panels start again from 0
    out = fast.gram_from_panels(sums, edges)
    assert out.dtype == np.float64 and np.allclose(out, 2 * (d.T @ d).double().numpy(), atol=1e-4)  # symmetric


def test_rising_curve_gives_rho_tau_one_and_rank_stats_match_scipy():
    rising = np.array([[0.1, 0.2, 0.25, 0.5, 0.9]])
    assert np.allclose(fast.rank_rows(rising), 1) and np.allclose(fast.rank_rows(-rising), -1)
    # random rows, some with ties, against scipy
    y = np.round(np.random.default_rng(0).random((50, 9)), 1)
    rho, tau = fast.rank_rows(y)
    assert np.allclose(rho, [stats.spearmanr(np.arange(9), row)[0] for row in y])
    assert np.allclose(tau, [stats.kendalltau(np.arange(9), row)[0] for row in y])
    # through summarize, from a stack of layer matrices whose means rise with depth
    avg = torch.stack([torch.full((4, 4), v, dtype=torch.float64) for v in rising[0]])
    out = measure.summarize({"avg": avg, "within": np.tile(rising, (3, 1))}, boot_idx=np.zeros((5, 3), dtype=int))
    assert out["spearman"] == pytest.approx(1) and out["kendall"] == pytest.approx(1)
    assert out["spearman_ci"] == pytest.approx([1, 1])
    assert out["last_n_mean"] == pytest.approx(np.mean([0.25, 0.5, 0.9]))


@pytest.mark.parametrize("offdiag", [False, True])
def test_average_over_texts_is_entry_by_entry(offdiag):
    hidden_fn = fake_model()
    tokens = torch.randint(0, 50, (7, 9), generator=torch.Generator().manual_seed(1))
    ref = [[numpy_cosines(h[0]) for h in hidden_fn(tokens[n:n + 1])] for n in range(7)]  # [N][L] matrices
    for batch_size in (1, 3, 7):
        st = measure.layer_stats(hidden_fn, tokens, batch_size, offdiag)
        assert st["avg"].shape == (4, 9, 9) and st["s"].shape == st["sq"].shape == (7, 4, 8)
        assert np.allclose(st["avg"].numpy(), np.mean(ref, axis=0), atol=1e-6)
        assert np.allclose(st["within"], [[numpy_mean(c, offdiag) for c in layers] for layers in ref], atol=1e-6)
    per_text = st["within"]
    out = measure.summarize(st, offdiag, boot_idx=np.arange(7)[None])
    # the mean of the averaged matrix is the mean of the per-text means, so a bootstrap over per-text means is exact
    assert np.allclose(out["layer_mean"], per_text.mean(0), atol=1e-9)
    assert out["spearman_ci"][0] == pytest.approx(out["spearman"])
    assert np.allclose(out["layer_std"], per_text.std(0, ddof=1))
    assert np.allclose(out["hist"].sum(1), 1)  # each layer's histogram holds every entry it looks at


def test_condensation_summary_matches_numpy():
    torch.manual_seed(0)
    net = model.GPT(model.GPTConfig(block_size=32, vocab_size=40, n_layer=3, n_head=2, n_embd=16)).train()
    idx = torch.randint(0, 40, (4, 32))
    net.lm_head.register_forward_hook(lambda *_: pytest.fail("the output layer ran"))  # hidden states need no logits
    got = measure.condensation_summary(net, idx)
    assert net.training  # left as it was
    with torch.no_grad():
        hidden = [h.numpy() for h in net.eval()(idx, return_hidden=True, head=False)[2]]
    within = [np.mean([numpy_mean(numpy_cosines(t), False) for t in h]) for h in hidden]
    assert got["spearman"] == pytest.approx(stats.spearmanr(range(4), within)[0])
    assert got["kendall"] == pytest.approx(stats.kendalltau(range(4), within)[0])
    assert got["last_layer_mean"] == pytest.approx(within[-1], abs=1e-6)
    assert got["last_layer_excess"] == pytest.approx(numpy_excess(hidden[-1]), abs=1e-6)
    assert got["last_layer_erank"] == pytest.approx(numpy_erank(hidden[-1].reshape(-1, 16)), abs=1e-4)


# ------------------------------------------------------------------------------------------------ the texts

def test_texts_follow_the_protocol():
    docs = ["a" * 5, "b" * 50, "c" * 3, "d" * 3, "e" * 40, "f" * 2]
    encode = lambda s: [ord(c) for c in s]
    text = lambda ids: "".join(map(chr, ids))
    ids, span = texts.first_tokens(docs, 0, encode, 10, used=set())
    assert text(ids) == "aaaaa\n\nbbb" and list(span) == [0, 1]  # a short document joined with the next one
    ids, span = texts.first_tokens(docs, 2, encode, 10, used=set())
    assert text(ids) == "ccc\n\nddd\n\n" and list(span) == [2, 3, 4]
    assert texts.first_tokens(docs, 2, encode, 10, used={4}) is None  # never into another text's document
    assert texts.first_tokens(docs, 5, encode, 10, used=set()) is None  # the documents run out
    with pytest.raises(measure.MeasureError, match="need 6 texts of 10 tokens, the 6 documents hold only 2"):
        texts.select_texts(docs, encode, 6, 10, seed=0)
    long = [f"document {i} " * 5 for i in range(20)]
    tokens, starts = texts.select_texts(long[:4], encode, 4, 8, seed=0)
    assert starts == [0, 1, 2, 3] and text(tokens[2].tolist()) == "document"  # all of them, in file order
    a, sa = texts.select_texts(long, encode, 5, 12, seed=1)
    b, sb = texts.select_texts(long, encode, 5, 12, seed=1)
    assert sa == sb == sorted(sa) and torch.equal(a, b) and sa != list(range(5))  # a seeded choice, in file order
    assert [text(row.tolist()) for row in a] == [long[i][:12] for i in sa]


def test_documents_from_each_source(tmp_path):
    docs = [f"Document number {i}.\n\nIt has two paragraphs, the second about {i * i}." for i in range(12)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"body": d}) + "\n" for d in docs))
    assert texts.load_documents(str(tmp_path / "d.jsonl"), field="body")[0] == docs
    (tmp_path / "d.txt").write_text("\n\n".join(docs))
    assert len(texts.load_documents(str(tmp_path / "d.txt"))[0]) == 24  # a .txt file: one document per paragraph
    assert len(texts.load_documents("austen", split="all")[0]) == 269  # every chapter, as bundled
    # a prepared dataset: its val split, cut at <|endoftext|> into the very documents it was made of
    prepare(str(tmp_path / "ds"), docs, {"name": "gpt2"}, val_fraction=0.5, verbose=False)
    val, described = texts.load_documents(str(tmp_path / "ds"))
    assert described.endswith("(val, 6 documents)") and len(val) == 6 and set(val[i] for i in range(6)) < set(docs)
    everything, described = texts.load_documents(str(tmp_path / "ds"), split="all")
    assert described.endswith("(train and val, 12 documents)") and sorted(everything) == sorted(docs)
    # char data has no document marker: its blank-line separated paragraphs are the documents
    prepare(str(tmp_path / "dc"), docs, {"name": "char"}, val_fraction=0.5, verbose=False)
    assert len(texts.load_documents(str(tmp_path / "dc"))[0]) == 12


def test_a_bundled_source_means_its_prepared_val_split(tmp_path):
    # prepared here from the bundled chapters with prepare's defaults, as `python data/prepare.py austen_char` does
    meta = prepare(str(tmp_path / "ac"), source_documents("austen"), {"name": "char"}, verbose=False)
    val = paragraphs(get_tokenizer(meta["tokenizer"])[1](load_split(str(tmp_path / "ac"), "val")))
    held, described = texts.load_documents("austen_char")
    assert held == val and f"the {meta['n_val_docs']} val documents" in described
    assert texts.load_documents("austen")[0] == held  # the same documents, whatever the tokenizer
    # the suite's protocol fits in held-out text: 100 texts of 128 characters
    encode = get_tokenizer(meta["tokenizer"])[0]
    tokens, starts = texts.select_texts(held, encode, 100, 128, seed=0)
    assert tokens.shape == (100, 128) and len(set(starts)) == 100


def test_a_tokenizer_that_gives_nothing_stops_the_selection():
    docs = ["Some words of a document." * 4] * 5000
    with pytest.raises(measure.MeasureError) as e:
        texts.select_texts(docs, lambda text: [], 10, 32, seed=0, what=" for m")
    assert str(e.value) == ("the tokenizer encodes 1,120 characters of text to no tokens at all for m "
                            "(an empty or broken tokenizer?)")  # ten documents joined, at the first start


# ------------------------------------------------------------------------------------------------ the command line

def test_cli_outputs_and_figures(corpus, capsys):
    tmp, _ = corpus
    out = tmp / "out"
    report = measure.main([str(tmp / "small.pt"), str(tmp / "big.pt"), "--data", str(tmp / "docs.jsonl"),
                           "--out", str(out), "--paired", "--standardize", "--erank", *FAST])
    files = sorted(p.name for p in out.iterdir())
    assert files == ["README.md", "condensation.csv", "condensation.json", "condensation_layers.csv", "heatmaps.png",
                     "layer_means.png", "layer_measures.png"]  # no size trend from two models
    assert all(f"`{m}`" in (out / "README.md").read_text() for m in measure.DEFINITIONS)
    saved = json.loads((out / "condensation.json").read_text())
    assert [m["name"] for m in saved["models"]] == [str(tmp / "small.pt"), str(tmp / "big.pt")]
    small, big = saved["models"]
    assert len(small["layer_mean"]) == 3 and len(big["layer_mean"]) == 5 and small["n_params"] < big["n_params"]
    for key in ("spearman", "spearman_p", "kendall", "kendall_p", "n_params_non_embedding", "layer_std",
                "load_seconds", "measure_seconds", "layer_erank_ratio", "last_layer_erank_ratio"):
        assert key in small, key
    for m in measure.MEASURES:
        assert len(small["layer_" + m]) == 3 and isinstance(small["last_layer_" + m], float), m
        for key in ("spearman", "spearman_p", "kendall", "kendall_p") + (("spearman_ci", "kendall_ci") if m != "erank"
                                                                        else ()):
            assert f"{m}_{key}" in small, (m, key)
    assert small["documents"] == big["documents"]  # the same documents for every model
    assert saved["pairs"][0]["d_spearman"] == pytest.approx(big["spearman"] - small["spearman"])
    assert saved["pairs"][0]["d_excess_spearman"] == pytest.approx(big["excess_spearman"] - small["excess_spearman"])
    layers = (out / "condensation_layers.csv").read_text().splitlines()
    assert len(layers) == 1 + 3 + 5 and layers[0].endswith("std,across,excess,rogue,erank,erank_ratio,within_std")
    header = (out / "condensation.csv").read_text().splitlines()[0].split(",")
    assert {"excess_spearman", "excess_spearman_ci", "within_std_kendall", "last_layer_rogue"} <= set(header)
    import matplotlib.image
    for name in ("heatmaps.png", "layer_means.png", "layer_measures.png"):
        pixels = matplotlib.image.imread(out / name)
        assert pixels.shape[0] > 100 and pixels[..., :3].std() > 0.05, name  # drawn, not blank
    assert report["models"][0]["spearman"] == small["spearman"]
    printed = capsys.readouterr().out
    assert "texts 6/6" in printed and "texts, standardised 6/6" in printed and "excess rho [CI]" in printed
    assert "erank/C" in printed


def test_erank_only_with_its_flag(corpus, capsys):
    tmp, _ = corpus
    report = measure.main([str(tmp / "small.pt"), "--data", str(tmp / "docs.jsonl"), "--out", str(tmp / "noerank"),
                           *FAST])
    r = report["models"][0]
    assert "layer_across" in r and not any("erank" in key for key in r)
    assert "erank/C" not in capsys.readouterr().out
    rows = (tmp / "noerank" / "condensation_layers.csv").read_text().splitlines()
    assert rows[0].endswith("rogue,erank,erank_ratio,within_std") and rows[1].endswith(",,,")  # empty columns
    hidden_fn = fake_model()
    st = measure.layer_stats(hidden_fn, torch.randint(0, 50, (3, 6)))
    assert "moment" not in st and "s" in st  # no C x C sums without erank


def test_text_length_defaults_to_the_shortest_context(corpus, capsys):
    tmp, _ = corpus  # the checkpoints' context is 64
    report = measure.main([str(tmp / "small.pt"), "--data", str(tmp / "docs.jsonl"), "--out", str(tmp / "o"),
                           "--n_texts", "4", "--n_boot", "0", "--dtype", "bf16"])
    assert report["settings"]["seq_len"] == 64
    assert (f"texts of 64 tokens: the shorter of 512 and the smallest context of the models ({tmp / 'small.pt'}); "
            "--seq_len sets it") in capsys.readouterr().out
    # bf16 runs on a CPU too, and the measures are close to float32's
    net = load_gpt(str(tmp / "small.pt"))[0].eval()
    m = load.open_model(str(tmp / "small.pt"))[0]
    encode = lambda text: m["encode"]("".join(c for c in text if c in m["chars"]))  # as measure.py's
    tokens = texts.select_texts(texts.load_documents(str(tmp / "docs.jsonl"))[0], encode, 4, 64, seed=0)[0]
    full = measure.layer_stats(lambda idx: net(idx, return_hidden=True, head=False)[2], tokens)
    assert np.allclose(report["models"][0]["layer_mean"], full["within"].mean(0), atol=2e-2)


def test_short_names_and_families():
    assert plots.short("hf:Qwen/Qwen3-0.6B", 40) == "Qwen3-0.6B"
    assert plots.short("hf:/tmp/some/dir/qwen/", 40) == "qwen"
    assert plots.short("hf:allenai/OLMo-1B-0724-hf@step1000-tokens2B", 40) == "OLMo-1B-0724-hf@step1000-tokens2B"
    fam = lambda name, kind="hf": plots.family({"name": name, "kind": kind})
    assert fam("hf:Qwen/Qwen3-0.6B") == fam("hf:Qwen/Qwen3-4B") == "Qwen/Qwen3"
    assert fam("hf:bigscience/bloom-560m") == fam("hf:bigscience/bloom-1b1") == "bigscience/bloom"
    assert fam("hf:Qwen/Qwen2.5-7B") != fam("hf:Qwen/Qwen3-8B") and fam("gpt2-medium", "gpt2") == "gpt2"


def test_read_only_out_names_out(corpus, monkeypatch):
    tmp, _ = corpus

    def read_only(*args, **kw):
        raise OSError(30, "Read-only file system", str(tmp / ".measure-abc123"))
    monkeypatch.setattr(load.tempfile, "mkdtemp", read_only)
    with pytest.raises(SystemExit) as e:
        measure.main([str(tmp / "small.pt"), "--data", str(tmp / "docs.jsonl"), "--out", str(tmp / "ro"), *FAST])
    assert str(e.value.code) == f"error: cannot write the results into --out {tmp / 'ro'}: Read-only file system"


def test_an_unwritable_out_stops_before_the_measurement(corpus, monkeypatch, capsys):
    """Checked first, not after minutes of forward passes (os.access is asked: a root user may write anywhere)."""
    tmp, _ = corpus
    real = checks.os.access
    monkeypatch.setattr(checks.os, "access", lambda path, mode: False if str(path) == str(tmp) else real(path, mode))
    with pytest.raises(SystemExit) as e:
        measure.main([str(tmp / "small.pt"), "--data", str(tmp / "docs.jsonl"), "--out", str(tmp / "ro"), *FAST])
    assert e.value.code == f"error: --out {tmp / 'ro'} is not writable ({tmp} does not let this user write)"
    assert "texts" not in capsys.readouterr().out  # no text was measured


@pytest.mark.parametrize("argv,message", [
    (["--n_texts", "many"], "error: argument --n_texts: invalid int value: 'many' (see python measure.py --help)"),
    (["--ci", "nan"], "error: argument --ci: not a finite number: 'nan' (see python measure.py --help)"),
    (["--ci", "1.5"], "error: --ci must be between 0 and 1 (see python measure.py --help)"),
    ([], "error: give at least one MODEL (see python measure.py --help)"),
])
def test_bad_flags_are_one_line_without_the_usage_block(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        measure.parse_args(argv)
    assert e.value.code == message and capsys.readouterr().err == ""


def test_size_trend_over_three_sizes(corpus):
    tmp, docs = corpus
    write_checkpoint(tmp / "mid.pt", docs, n_layer=3, n_embd=24, seed=2)
    report = measure.main([str(tmp / n) for n in ("big.pt", "small.pt", "mid.pt")] +
                          ["--data", str(tmp / "docs.jsonl"), "--out", str(tmp / "o"), "--size_by", "non_embedding", *FAST])
    assert (tmp / "o" / "size_trend.png").exists() and report["size_trend"]["families"] == ["checkpoint"]
    models = sorted(report["models"], key=lambda m: m["n_params"])
    got = report["size_trend"]["n_params"]
    rhos = [m["spearman"] for m in models]
    assert got["n"] == 3 and got["spearman"] == pytest.approx(stats.spearmanr(range(3), rhos)[0])
    assert got["kendall_p"] == pytest.approx(stats.kendalltau(range(3), rhos)[1])


def test_cli_snapshots_of_a_run(corpus):
    tmp, docs = corpus
    run = tmp / "run"
    run.mkdir()
    for i, seen in enumerate((0, 1000, 2000)):
        write_checkpoint(run / f"ckpt_{i * 10:06d}.pt", docs, seed=i, tokens_seen=seen)
    report = measure.main([str(run), "--snapshots", "--data", str(tmp / "docs.jsonl"), "--out", str(tmp / "o"), *FAST])
    assert [m["tokens_seen"] for m in report["models"]] == [0, 1000, 2000]
    assert report["runs"][str(run)]["n"] == 3
    pixels = __import__("matplotlib.image").image.imread(tmp / "o" / "condensation_over_training.png")
    assert pixels[..., :3].std() > 0.05


BAD = [
    (lambda t: [str(t / "nope.pt")], "no such file"),
    (lambda t: [str(t / "corrupt.pt")], "not a readable checkpoint"),
    (lambda t: [str(t / "foreign.pt")], "not a nanodisperse checkpoint"),
    (lambda t: [str(t / "mismatch.pt")], "weights do not match model_args"),
    (lambda t: ["gpt5-turbo"], "unknown model 'gpt5-turbo'"),
    (lambda t: [str(t / "small.pt"), "--data", str(t / "short.txt")], "too little text"),
    (lambda t: [str(t / "small.pt"), "--data", "no_such_dataset"], "unknown data source"),
    (lambda t: [str(t / "small.pt"), "--data", str(t / "missing.jsonl")], "no such file"),
    (lambda t: [str(t / "small.pt"), str(t / "big.pt"), str(t / "small.pt"), "--paired"], "--paired takes models"),
    (lambda t: [str(t / "small.pt"), "--seq_len", "100"], "longer than"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_is_one_line_and_writes_nothing(corpus, argv, message):
    tmp, docs = corpus
    (tmp / "corrupt.pt").write_bytes(b"\x00garbage" * 10)
    torch.save({"weights": torch.zeros(3)}, tmp / "foreign.pt")
    ckpt = torch.load(tmp / "small.pt", weights_only=True)
    ckpt["model_args"]["n_embd"] = 32
    torch.save(ckpt, tmp / "mismatch.pt")
    (tmp / "short.txt").write_text("Too short.\n\nFar too short.\n")
    args = argv(tmp)
    if "--data" not in args:
        args += ["--data", str(tmp / "docs.jsonl")]
    with pytest.raises(SystemExit) as e:
        measure.main([*FAST[:4], *args, "--out", str(tmp / "out")])
    msg = str(e.value.code)
    assert msg.startswith("error: ") and message in msg and "\n" not in msg
    assert not (tmp / "out").exists() and not list(tmp.glob(".measure-*"))


def test_hf_without_transformers_is_one_line(corpus, monkeypatch):
    tmp, _ = corpus
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    (tmp / "out").mkdir()
    (tmp / "out" / "condensation.json").write_text("an earlier run's results")
    with pytest.raises(SystemExit) as e:
        measure.main(["hf:Qwen/Qwen3-0.6B", "--data", str(tmp / "docs.jsonl"), "--out", str(tmp / "out")])
    assert str(e.value.code) == ("error: hf:Qwen/Qwen3-0.6B needs the optional package transformers "
                                 "(pip install transformers)")
    assert [p.name for p in (tmp / "out").iterdir()] == ["condensation.json"]  # an earlier result stays as it was
    assert (tmp / "out" / "condensation.json").read_text() == "an earlier run's results"


def test_subprocess_exit_status(tmp_path):
    r = subprocess.run([sys.executable, measure.__file__, str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"error: no such file or directory: {tmp_path / 'missing.pt'}"]
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------------ transformers

@pytest.fixture(scope="module")
def gpt2_tokenizer(tmp_path_factory):
    """GPT-2's tokenizer as a Hugging Face one, converted offline from the shipped ranks file."""
    transformers = pytest.importorskip("transformers")
    from tiktoken_ext.openai_public import r50k_pat_str
    from transformers.convert_slow_tokenizer import TikTokenConverter
    tok = TikTokenConverter(vocab_file=str(GPT2_RANKS_FILE), pattern=r50k_pat_str).converted()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok)


def random_weights(net, seed):
    torch.manual_seed(seed)
    with torch.no_grad():  # random biases and norms too, so that nothing hides behind zeros and ones
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


def test_our_gpt2_and_transformers_gpt2_agree(tmp_path, corpus, gpt2_tokenizer):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(vocab_size=50257, n_positions=64, n_embd=32, n_layer=2, n_head=4)
    random_weights(transformers.GPT2LMHeadModel(cfg), 0).save_pretrained(tmp_path / "tiny")
    gpt2_tokenizer.save_pretrained(tmp_path / "tiny")
    data = str(corpus[0] / "docs.jsonl")
    run = lambda spec, out: measure.main([spec, "--data", data, "--out", str(tmp_path / out), *FAST])["models"][0]
    ours, hf = run(str(tmp_path / "tiny"), "a"), run("hf:" + str(tmp_path / "tiny"), "b")
    assert ours["kind"] == "gpt2" and hf["kind"] == "hf" and ours["documents"] == hf["documents"]
    assert np.allclose(ours["layer_mean"], hf["layer_mean"], atol=1e-5)
    assert np.allclose(ours["layer_std"], hf["layer_std"], atol=1e-5)
    for key in ("spearman", "kendall", "n_params", "n_params_non_embedding"):
        assert ours[key] == pytest.approx(hf[key]), key


def test_another_architecture_through_transformers(tmp_path, corpus, gpt2_tokenizer):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.Qwen3Config(vocab_size=50257, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                   num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64)
    net = random_weights(transformers.AutoModelForCausalLM.from_config(cfg), 1).eval()
    net.save_pretrained(tmp_path / "qwen")
    gpt2_tokenizer.save_pretrained(tmp_path / "qwen")
    docs = corpus[1]
    report = measure.main(["hf:" + str(tmp_path / "qwen"), "--data", str(corpus[0] / "docs.jsonl"),
                           "--out", str(tmp_path / "o"), *FAST])
    got = report["models"][0]
    assert got["n_hidden"] == 4 and got["kind"] == "hf"
    # independently: the same texts through transformers by hand, numpy cosines
    ids = texts.select_texts(docs, lambda s: gpt2_tokenizer(s)["input_ids"], 6, 32, seed=0)[0]
    with torch.no_grad(), warnings.catch_warnings():
        hidden = net(input_ids=ids, output_hidden_states=True).hidden_states
    ref = [np.mean([numpy_mean(numpy_cosines(h[n]), False) for n in range(6)]) for h in hidden]
    assert np.allclose(got["layer_mean"], ref, atol=1e-5)
    assert got["spearman"] == pytest.approx(stats.spearmanr(range(4), ref)[0])


def test_intervals_are_printed_with_the_digits_they_need():
    """+0.036 is not rounded to +0.04, nor a zero-width interval to noise; a narrow one gets more digits."""
    assert outputs.interval(1 / 28, [1 / 28, 1 / 28 + 1e-16]) == "+0.036 [+0.036, +0.036]"
    assert outputs.interval(0.0104, [0.0071, 0.0123]) == "+0.0104 [+0.0071, +0.0123]"
    assert outputs.interval(0.5, [-0.5, 1.0]) == "+0.500 [-0.500, +1.000]"
    assert outputs.interval(-0.25, None) == "-0.250"
