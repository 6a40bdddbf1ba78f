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

import load
import measure
import model
from data.prepare import prepare
from data.tokenizer import GPT2_RANKS_FILE, char_spec


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

@pytest.mark.parametrize("offdiag", [False, True])
def test_cosines_match_numpy(offdiag):
    h = torch.randn(3, 7, 5, generator=torch.Generator().manual_seed(0))
    cos = measure.cosine_matrices(h)
    means = measure.matrix_means(cos, offdiag)
    for b in range(3):
        ref = numpy_cosines(h[b])
        assert np.allclose(cos[b].numpy(), ref, atol=1e-6)
        assert abs(means[b].item() - numpy_mean(ref, offdiag)) < 1e-6


def test_identical_tokens_give_one():
    h = torch.randn(1, 1, 16).expand(2, 10, 16) * torch.rand(2, 10, 1) * 5  # one direction, any positive length
    for offdiag in (False, True):
        assert torch.allclose(measure.matrix_means(measure.cosine_matrices(h), offdiag), torch.ones(2), atol=1e-6)


def test_orthonormal_tokens_give_one_over_t_or_zero():
    T = 12
    q, _ = torch.linalg.qr(torch.randn(T, T, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    cos = measure.cosine_matrices(q[None])
    assert abs(measure.matrix_means(cos).item() - 1 / T) < 1e-6  # only the diagonal's T ones, over T^2 entries
    assert abs(measure.matrix_means(cos, offdiag=True).item()) < 1e-6


def test_rising_curve_gives_rho_tau_one_and_rank_stats_match_scipy():
    rising = np.array([[0.1, 0.2, 0.25, 0.5, 0.9]])
    assert np.allclose(measure.rank_rows(rising), 1) and np.allclose(measure.rank_rows(-rising), -1)
    # random rows, some with ties, against scipy
    y = np.round(np.random.default_rng(0).random((50, 9)), 1)
    rho, tau = measure.rank_rows(y)
    assert np.allclose(rho, [stats.spearmanr(np.arange(9), row)[0] for row in y])
    assert np.allclose(tau, [stats.kendalltau(np.arange(9), row)[0] for row in y])
    # through summarize, from a stack of layer matrices whose means rise with depth
    avg = torch.stack([torch.full((4, 4), v, dtype=torch.float64) for v in rising[0]])
    out = measure.summarize(avg, np.tile(rising, (3, 1)), boot_idx=np.zeros((5, 3), dtype=int))
    assert out["spearman"] == pytest.approx(1) and out["kendall"] == pytest.approx(1)
    assert out["spearman_ci"] == pytest.approx([1, 1])
    assert out["last_n_mean"] == pytest.approx(np.mean([0.25, 0.5, 0.9]))


@pytest.mark.parametrize("offdiag", [False, True])
def test_average_over_texts_is_entry_by_entry(offdiag):
    hidden_fn = fake_model()
    tokens = torch.randint(0, 50, (7, 9), generator=torch.Generator().manual_seed(1))
    ref = [[numpy_cosines(h[0]) for h in hidden_fn(tokens[n:n + 1])] for n in range(7)]  # [N][L] matrices
    for batch_size in (1, 3, 7):
        avg, per_text = measure.layer_cosines(hidden_fn, tokens, batch_size, offdiag)
        assert avg.shape == (4, 9, 9)
        assert np.allclose(avg.numpy(), np.mean(ref, axis=0), atol=1e-6)
        assert np.allclose(per_text, [[numpy_mean(c, offdiag) for c in layers] for layers in ref], atol=1e-6)
    out = measure.summarize(avg, per_text, offdiag, boot_idx=np.arange(7)[None])
    # the mean of the averaged matrix is the mean of the per-text means, so a bootstrap over per-text means is exact
    assert np.allclose(out["layer_mean"], per_text.mean(0), atol=1e-9)
    assert out["spearman_ci"][0] == pytest.approx(out["spearman"])
    assert np.allclose(out["layer_std"], per_text.std(0, ddof=1))
    assert np.allclose(out["hist"].sum(1), 1)  # each layer's histogram holds every entry it looks at


def test_condensation_summary_matches_the_full_measurement():
    torch.manual_seed(0)
    net = model.GPT(model.GPTConfig(block_size=32, vocab_size=40, n_layer=3, n_head=2, n_embd=16)).train()
    idx = torch.randint(0, 40, (4, 32))
    net.lm_head.register_forward_hook(lambda *_: pytest.fail("the output layer ran"))  # hidden states need no logits
    got = measure.condensation_summary(net, idx)
    assert net.training  # left as it was
    avg, per_text = measure.layer_cosines(load.ours(net, "cpu", torch.float32)["hidden"], idx)
    full = measure.summarize(avg, per_text)
    assert got == pytest.approx({"rho": full["spearman"], "tau": full["kendall"], "last_cos": full["last_layer_mean"]})


# ------------------------------------------------------------------------------------------------ the texts

def test_texts_follow_the_protocol():
    docs = ["a" * 5, "b" * 50, "c" * 3, "d" * 3, "e" * 40, "f" * 2]
    encode = lambda s: [ord(c) for c in s]
    text = lambda ids: "".join(map(chr, ids))
    ids, span = measure.first_tokens(docs, 0, encode, 10, used=set())
    assert text(ids) == "aaaaa\n\nbbb" and list(span) == [0, 1]  # a short document joined with the next one
    ids, span = measure.first_tokens(docs, 2, encode, 10, used=set())
    assert text(ids) == "ccc\n\nddd\n\n" and list(span) == [2, 3, 4]
    assert measure.first_tokens(docs, 2, encode, 10, used={4}) is None  # never into another text's document
    assert measure.first_tokens(docs, 5, encode, 10, used=set()) is None  # the documents run out
    with pytest.raises(measure.MeasureError, match="need 6 texts of 10 tokens, the 6 documents hold only 2"):
        measure.select_texts(docs, encode, 6, 10, seed=0)
    long = [f"document {i} " * 5 for i in range(20)]
    tokens, starts = measure.select_texts(long[:4], encode, 4, 8, seed=0)
    assert starts == [0, 1, 2, 3] and text(tokens[2].tolist()) == "document"  # all of them, in file order
    a, sa = measure.select_texts(long, encode, 5, 12, seed=1)
    b, sb = measure.select_texts(long, encode, 5, 12, seed=1)
    assert sa == sb == sorted(sa) and torch.equal(a, b) and sa != list(range(5))  # a seeded choice, in file order
    assert [text(row.tolist()) for row in a] == [long[i][:12] for i in sa]


def test_documents_from_each_source(tmp_path):
    docs = [f"Document number {i}.\n\nIt has two paragraphs, the second about {i * i}." for i in range(12)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"body": d}) + "\n" for d in docs))
    assert measure.load_documents(str(tmp_path / "d.jsonl"), field="body")[0] == docs
    (tmp_path / "d.txt").write_text("\n\n".join(docs))
    assert len(measure.load_documents(str(tmp_path / "d.txt"))[0]) == 24  # a .txt file: one document per paragraph
    assert len(measure.load_documents("austen")[0]) > 100  # the bundled default: one document per chapter
    # a prepared dataset: its val split, cut at <|endoftext|> into the very documents it was made of
    prepare(str(tmp_path / "ds"), docs, {"name": "gpt2"}, val_fraction=0.5, verbose=False)
    val, described = measure.load_documents(str(tmp_path / "ds"))
    assert described.endswith("(val)") and len(val) == 6 and set(val[i] for i in range(6)) < set(docs)
    # char data has no document marker: its blank-line separated paragraphs are the documents
    prepare(str(tmp_path / "dc"), docs, {"name": "char"}, val_fraction=0.5, verbose=False)
    assert len(measure.load_documents(str(tmp_path / "dc"))[0]) == 12


# ------------------------------------------------------------------------------------------------ the command line

def test_cli_outputs_and_figures(corpus):
    tmp, _ = corpus
    out = tmp / "out"
    report = measure.main([str(tmp / "small.pt"), str(tmp / "big.pt"), "--data", str(tmp / "docs.jsonl"),
                           "--out", str(out), "--paired", *FAST])
    files = sorted(p.name for p in out.iterdir())
    assert files == ["condensation.csv", "condensation.json", "condensation_layers.csv", "heatmaps.png",
                     "layer_means.png", "size_trend.png"]
    saved = json.loads((out / "condensation.json").read_text())
    assert [m["name"] for m in saved["models"]] == [str(tmp / "small.pt"), str(tmp / "big.pt")]
    small, big = saved["models"]
    assert len(small["layer_mean"]) == 3 and len(big["layer_mean"]) == 5 and small["n_params"] < big["n_params"]
    for key in ("spearman", "spearman_p", "kendall", "kendall_p", "n_params_non_embedding", "layer_std"):
        assert key in small
    assert small["documents"] == big["documents"]  # the same documents for every model
    assert saved["pairs"][0]["d_spearman"] == pytest.approx(big["spearman"] - small["spearman"])
    assert len((out / "condensation_layers.csv").read_text().splitlines()) == 1 + 3 + 5
    import matplotlib.image
    for name in ("heatmaps.png", "layer_means.png", "size_trend.png"):
        pixels = matplotlib.image.imread(out / name)
        assert pixels.shape[0] > 100 and pixels[..., :3].std() > 0.05, name  # drawn, not blank
    assert report["models"][0]["spearman"] == small["spearman"]


def test_size_trend_over_three_sizes(corpus):
    tmp, docs = corpus
    write_checkpoint(tmp / "mid.pt", docs, n_layer=3, n_embd=24, seed=2)
    report = measure.main([str(tmp / n) for n in ("big.pt", "small.pt", "mid.pt")] +
                          ["--data", str(tmp / "docs.jsonl"), "--out", str(tmp / "o"), *FAST])
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
    pixels = __import__("matplotlib.image").image.imread(tmp / "o" / "training.png")
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
    ids = measure.select_texts(docs, lambda s: gpt2_tokenizer(s)["input_ids"], 6, 32, seed=0)[0]
    with torch.no_grad(), warnings.catch_warnings():
        hidden = net(input_ids=ids, output_hidden_states=True).hidden_states
    ref = [np.mean([numpy_mean(numpy_cosines(h[n]), False) for n in range(6)]) for h in hidden]
    assert np.allclose(got["layer_mean"], ref, atol=1e-5)
    assert got["spearman"] == pytest.approx(stats.spearmanr(range(4), ref)[0])
