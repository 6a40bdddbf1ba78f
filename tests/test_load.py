"""load.py: every script opens a MODEL argument the same way; what it hands out agrees with the models themselves."""

from types import SimpleNamespace

import pytest
import torch

from support import load
import train
from data.tokenizer import char_spec
from model import GPT, GPTConfig


def checkpoint(path, tokenizer, vocab=64, **args):
    torch.manual_seed(0)
    model_args = dict(block_size=16, vocab_size=vocab, n_layer=2, n_head=2, n_embd=8, n_inner=None, dropout=0.0,
                      bias=True) | args
    net = GPT(GPTConfig(**model_args))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": net.state_dict(), "model_args": model_args, "tokenizer": tokenizer, "iter_num": 3,
                "tokens_seen": 300, "config": {}}, path)
    return net


def test_a_run_directory_and_its_checkpoint_open_alike(tmp_path):
    net = checkpoint(tmp_path / "run" / "ckpt.pt", char_spec("abc "))
    (by_dir,), (by_file,) = load.open_model(str(tmp_path / "run")), load.open_model(str(tmp_path / "run/ckpt.pt"))
    for m in (by_dir, by_file):
        assert m["kind"] == "checkpoint" and m["tokens_seen"] == 300 and m["max_len"] == 16
        assert (m["vocab"], m["n_vocab"], m["eot"], m["chars"]) == (64, 4, None, set("abc "))
        assert m["decode"](m["encode"]("a cab")) == "a cab"
    with pytest.raises(ValueError, match="'x'"):  # a char the model never saw is an error, not a silent drop
        by_dir["encode"]("ax")
    loaded = by_dir["load"]("cpu", torch.float32)
    idx = torch.tensor([by_dir["encode"]("abc abc")])
    assert torch.equal(loaded["logits"](idx), net(idx)[0])
    hidden = loaded["hidden"](idx)
    assert len(hidden) == 3 and torch.equal(hidden[-1], net(idx, return_hidden=True)[2][-1])
    assert loaded["n_params"] == net.num_params() and loaded["n_params_non_embedding"] == net.num_params(True)


def test_load_gpt_gives_trained_weights_and_keeps_the_tokenizer(tmp_path):
    net = checkpoint(tmp_path / "run" / "ckpt.pt", {"name": "gpt2"}, vocab=50304)
    got, tok = load.load_gpt(str(tmp_path / "run"), dropout=0.25)
    assert tok == {"name": "gpt2"} and got.config.dropout == 0.25
    assert all(torch.equal(a, b) for a, b in zip(got.state_dict().values(), net.state_dict().values()))
    # train.py takes the same weights, on the tokenizer they were trained with and no other
    args, same = SimpleNamespace(dataset="d"), SimpleNamespace(meta={"tokenizer": tok})
    took = train.trained_weights(str(tmp_path / "run"), "--init_from", args, same)
    assert all(torch.equal(a, b) for a, b in zip(took.state_dict().values(), net.state_dict().values()))
    with pytest.raises(SystemExit, match="--init_from .* uses another tokenizer than --dataset d"):
        train.trained_weights(str(tmp_path / "run"), "--init_from", args,
                              SimpleNamespace(meta={"tokenizer": {"name": "char"}}))
    (m,) = load.open_model(str(tmp_path / "run"))
    assert m["eot"] == 50256 and m["n_vocab"] == 50257 and m["encode"]("Hello world") == [15496, 995]


@pytest.mark.parametrize("spec,message", [
    ("no_such_model", "unknown model 'no_such_model'"),
    ("missing/ckpt.pt", "no such file or directory: missing/ckpt.pt"),
])
def test_bad_model_arguments_are_one_line(spec, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(load.ModelError, match=message):
        load.open_model(spec)


def test_a_folder_without_checkpoints_and_a_foreign_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(load.ModelError, match="holds no ckpt.pt"):
        load.open_model(str(tmp_path / "empty"))
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    with pytest.raises(load.ModelError, match="not a readable checkpoint"):
        load.open_model(str(tmp_path / "notes.pt"))
    with pytest.raises(load.ModelError, match="only our checkpoints and GPT-2 weights"):
        load.load_gpt("hf:Qwen/Qwen3-0.6B")


def test_a_hf_folder_whose_tokenizer_files_are_missing(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=100, n_positions=32)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "m")  # weights and config, no tokenizer files
    with pytest.raises(load.ModelError, match="turns text into no tokens"):
        load.open_model("hf:" + str(tmp_path / "m"))
