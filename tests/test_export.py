"""export.py against transformers and safetensors (test-only references): the exported model computes our logits,
its tokenizer gives data.tokenizer's GPT-2 ids, the weights survive export -> GPT.from_pretrained bit for bit, and
every bad input gets one line with nothing half-written."""

import json

import pytest
import torch

import export
import model
from data.tokenizer import GPT2_RANKS_FILE, char_spec, get_tokenizer
from model import GPT, GPTConfig
from support import hub
from support.load import load_gpt2

transformers = pytest.importorskip("transformers")

DATA = GPT2_RANKS_FILE.parent


def save_model(path, tokenizer, vocab_size, bias=True, n_inner=24, seed=0):
    """A tiny checkpoint as train.py writes it, with random biases and norms so that a dropped bias, a missed
    transpose or a swapped layer cannot hide behind zeros and ones."""
    torch.manual_seed(seed)
    args = dict(block_size=32, vocab_size=vocab_size, n_layer=2, n_head=2, n_embd=16, n_inner=n_inner,
                dropout=0.0, bias=bias)
    net = GPT(GPTConfig(**args))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    torch.save({"model": net.state_dict(), "model_args": args, "tokenizer": tokenizer}, path)
    return net.eval()


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    """A GPT-2 BPE model padded to 50304 rows, as train.py makes it, and its export."""
    root = tmp_path_factory.mktemp("bpe")
    net = save_model(root / "ckpt.pt", {"name": "gpt2"}, 50304)
    assert export.export(str(root / "ckpt.pt"), root / "hf") == []
    return net, root


def test_exported_logits_match(bpe):
    net, root = bpe
    config = json.loads((root / "hf" / "config.json").read_text())
    assert config["architectures"] == ["GPT2LMHeadModel"] and config["model_type"] == "gpt2"
    assert (config["vocab_size"], config["n_inner"], config["n_positions"], config["n_ctx"]) == (50257, 24, 32, 32)
    assert config["bos_token_id"] == config["eos_token_id"] == 50256
    hf = transformers.AutoModelForCausalLM.from_pretrained(root / "hf").eval()
    assert type(hf).__name__ == "GPT2LMHeadModel" and hf.config.n_inner == 24
    idx = torch.randint(0, 50257, (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, ref = net(idx)[0], hf(idx).logits
    assert ref.shape == (2, 32, 50257)
    # the real tokens' logits are the same; the padded rows were left out
    assert torch.allclose(ref, ours[..., :50257], atol=1e-5, rtol=0)


def test_exported_tokenizer_gives_our_ids(bpe, tmp_path):
    _, root = bpe
    # transformers reads tokenizer.json when it is there; without it, it builds the BPE from vocab.json and merges.txt
    for f in (root / "hf").iterdir():
        if f.name != "tokenizer.json":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    encode, decode = get_tokenizer({"name": "gpt2"})
    # the bundled texts: English prose, and Wikipedia with its 515 characters (accents, other scripts, symbols)
    texts = [f.read_text()[:40_000] for f in sorted((DATA / "austen").glob("*.txt"))]
    texts += [json.loads(line)["text"] for line in (DATA / "wiki" / "articles.jsonl").read_text().splitlines()]
    texts += ["  two spaces,\ttab\n\n\nnewlines \u00e9\u4e2d\U0001f600 and 's 'll 'VE", ""]
    for folder, some in ((root / "hf", texts), (tmp_path, texts[:6] + texts[-12:])):
        tok = transformers.AutoTokenizer.from_pretrained(folder)
        assert tok("Hello world")["input_ids"] == [15496, 995] == encode("Hello world")
        assert (tok.eos_token_id, tok.bos_token_id, len(tok)) == (50256, 50256, 50257)
        for text in some:
            ids = tok(text)["input_ids"]
            assert ids == encode(text)
            assert tok.decode(ids) == decode(ids) == text


def test_merges_are_gpt2s(bpe):
    _, root = bpe
    merges = (root / "hf" / "merges.txt").read_text(encoding="utf-8").splitlines()
    vocab = json.loads((root / "hf" / "vocab.json").read_text(encoding="utf-8"))
    assert merges[0] == "#version: 0.2" and len(merges) == 1 + 50000
    # GPT-2's first merges, in its byte-to-unicode spelling: 'Ġ' is the space
    assert merges[1:8] == ["Ġ t", "Ġ a", "h e", "i n", "r e", "o n", "Ġt he"]
    assert vocab["Ġthe"] == 262 and vocab["<|endoftext|>"] == 50256 and vocab["!"] == 0 and vocab["Ġ"] == 220
    tokenizers = pytest.importorskip("tokenizers")  # tokenizer.json, as tools without Python read it
    fast = tokenizers.Tokenizer.from_file(str(root / "hf" / "tokenizer.json"))
    assert fast.encode("Hello world").ids == [15496, 995] and fast.encode("a<|endoftext|>").ids == [64, 50256]
    # merge r makes token 256 + r from two tokens ranked below it
    for r, line in enumerate(merges[1:]):
        a, b = line.split(" ")
        assert vocab[a + b] == 256 + r and vocab[a] < 256 + r and vocab[b] < 256 + r


def test_safetensors_as_the_reference_reads_it(bpe):
    safetensors = pytest.importorskip("safetensors.torch")
    net, root = bpe
    theirs = safetensors.load_file(root / "hf" / "model.safetensors")
    ours = export.hf_state_dict(net, 50257)
    assert sorted(theirs) == sorted(ours) and "lm_head.weight" not in theirs  # tied: transformers ties it back
    assert all(torch.equal(theirs[k], ours[k]) for k in ours)
    assert theirs["transformer.h.0.mlp.c_fc.weight"].shape == (16, 24)  # Conv1D: (in, out)
    n = int.from_bytes((root / "hf" / "model.safetensors").read_bytes()[:8], "little")
    assert n % 8 == 0  # tensors start 8-byte aligned


@pytest.mark.parametrize("keep", [False, True])
def test_round_trip_is_bit_exact(tmp_path, bpe, keep):
    net, root = bpe
    export.export(str(root / "ckpt.pt"), tmp_path / "hf", keep_padded_vocab=keep)
    back = load_gpt2(str(tmp_path / "hf"))
    assert back.config.vocab_size == (50304 if keep else 50257) and back.config.n_inner == 24
    ref = net.state_dict()
    for k, v in back.state_dict().items():
        expect = ref[k][:50257] if k.endswith(("wte.weight", "lm_head.weight")) and not keep else ref[k]
        assert torch.equal(v, expect), k


def test_gpt2_folder_exports_as_transformers_saves_it(tmp_path):
    """GPT-2 weights in, the same file out: every tensor as transformers' own save_pretrained stores it."""
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=97, n_positions=32, n_embd=16, n_layer=2, n_head=2, n_inner=40)
    hf = transformers.GPT2LMHeadModel(cfg)
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.05 * torch.randn_like(p))
    hf.save_pretrained(tmp_path / "gpt2")
    export.export(str(tmp_path / "gpt2"), tmp_path / "hf")
    ref = {k: v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    theirs = hub.read_safetensors(tmp_path / "hf" / "model.safetensors")
    assert sorted(theirs) == sorted(ref) and all(torch.equal(theirs[k], ref[k]) for k in ref)
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert (config["vocab_size"], config["n_inner"], config["n_positions"]) == (97, 40, 32)


def test_model_without_biases_exports_zeros(tmp_path):
    net = save_model(tmp_path / "ckpt.pt", {"name": "gpt2"}, 50304, bias=False, n_inner=None)
    export.export(str(tmp_path / "ckpt.pt"), tmp_path / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert hf.config.n_inner is None and torch.all(hf.transformer.h[1].mlp.c_fc.bias == 0)
    idx = torch.randint(0, 50257, (1, 20), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(hf(idx).logits, net(idx)[0][..., :50257], atol=1e-5, rtol=0)


def test_char_model_exports_weights_and_says_tokenizer_has_no_hf_form(tmp_path, capsys):
    spec = char_spec("abc def\n")
    net = save_model(tmp_path / "ckpt.pt", spec, 64)
    export.main([str(tmp_path / "ckpt.pt"), str(tmp_path / "hf")])
    out = capsys.readouterr().out
    assert "the char tokenizer has no Hugging Face form" in out and out.splitlines()[-1] == f"wrote {tmp_path / 'hf'}"
    files = sorted(f.name for f in (tmp_path / "hf").iterdir())
    assert files == ["config.json", "model.safetensors", "nanodisperse_tokenizer.json"]  # no tokenizer files
    assert json.loads((tmp_path / "hf" / "nanodisperse_tokenizer.json").read_text()) == spec
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["vocab_size"] == 8 and config["eos_token_id"] is None
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert hf.config.eos_token_id is None and hf.config.bos_token_id is None  # not GPT-2's 50256
    idx = torch.tensor([get_tokenizer(spec)[0]("bad cafe\nface")])
    with torch.no_grad():
        assert torch.allclose(hf(idx).logits, net(idx)[0][..., :8], atol=1e-5, rtol=0)


def test_re_export_replaces_an_earlier_one(tmp_path, bpe):
    _, root = bpe
    save_model(tmp_path / "char.pt", char_spec("xyz"), 64)
    out = tmp_path / "hf"
    export.export(str(root / "ckpt.pt"), out)
    assert (out / "vocab.json").exists()
    export.export(str(tmp_path / "char.pt"), out)  # the BPE export's tokenizer files must not linger
    assert sorted(f.name for f in out.iterdir()) == ["config.json", "model.safetensors", "nanodisperse_tokenizer.json"]
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".")] == []


def test_failed_export_leaves_nothing(tmp_path, bpe, monkeypatch, capsys):
    _, root = bpe
    out = tmp_path / "new" / "hf"

    def disk_full(tensors, path):
        path.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "write_safetensors", disk_full)
    with pytest.raises(SystemExit) as e:
        export.main([str(root / "ckpt.pt"), str(out)])
    assert e.value.code.startswith(f"error: cannot write {out}: No space left on device (")  # the path, the room
    assert e.value.code.endswith(" MiB free on its disk); nothing was changed there")
    assert list(tmp_path.iterdir()) == []  # no OUT_DIR, no folder on the way to it, no temporary folder
    out = tmp_path / "hf"
    out.mkdir()
    (out / "config.json").write_text("an earlier export")
    with pytest.raises(SystemExit):
        export.main([str(root / "ckpt.pt"), str(out)])
    assert [f.name for f in tmp_path.iterdir()] == ["hf"] and (out / "config.json").read_text() == "an earlier export"
    monkeypatch.undo()
    export.main([str(root / "ckpt.pt"), str(tmp_path / "new" / "hf")])  # folders on the way are made
    assert (tmp_path / "new" / "hf" / "model.safetensors").exists()


@pytest.mark.parametrize("case,message", [
    ("not_a_model", "is not a readable checkpoint"),
    ("missing", "no such file or directory: "),
    ("hf_model", "only our checkpoints and GPT-2 weights load into model.py's GPT"),
    ("out_is_file", "is a file, not a folder"),
    ("out_has_other_files", "holds other files (notes.txt): give a new or empty folder, or one holding an earlier"),
    ("out_under_a_file", "is not a writable folder"),
])
def test_bad_input_is_one_line(tmp_path, bpe, case, message):
    _, root = bpe
    model, out = str(root / "ckpt.pt"), tmp_path / "hf"
    if case == "not_a_model":
        model = str(tmp_path / "weights.pt")
        (tmp_path / "weights.pt").write_text("not a checkpoint")
    elif case == "missing":
        model = str(tmp_path / "nothing" / "ckpt.pt")
    elif case == "hf_model":
        model = "hf:" + str(tmp_path)
    elif case == "out_is_file":
        out.write_text("x")
    elif case == "out_has_other_files":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif case == "out_under_a_file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "sub" / "hf"
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as e:
        export.main([model, str(out)])
    assert e.value.code.startswith("error: ") and message in e.value.code and "\n" not in e.value.code
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written
