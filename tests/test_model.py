"""model.py against Hugging Face's GPT-2 (a test-only dependency) and the invariants the rest relies on."""

import json

import pytest
import torch

import model
from model import GPT, GPTConfig
from support.load import load_checkpoint, load_gpt2

transformers = pytest.importorskip("transformers")


def tiny_hf_model(n_inner=None, seed=0):
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(vocab_size=97, n_positions=32, n_embd=48, n_layer=3, n_head=4, n_inner=n_inner,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    # random biases and norms too, so that a missed transpose or a dropped bias cannot hide behind zeros and ones
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return hf


@pytest.mark.parametrize("n_inner,serialization", [(None, "safetensors"), (None, "bin"), (80, "safetensors")])
def test_matches_huggingface(tmp_path, n_inner, serialization):
    hf = tiny_hf_model(n_inner)
    hf.save_pretrained(tmp_path, safe_serialization=(serialization == "safetensors"))
    if serialization == "bin":  # recent transformers always writes safetensors: make the .bin file ourselves
        for f in tmp_path.glob("*.safetensors"):
            f.unlink()
        torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    assert (tmp_path / ("model.safetensors" if serialization == "safetensors" else "pytorch_model.bin")).exists()
    ours = load_gpt2(str(tmp_path)).eval()
    assert ours.config.n_inner == n_inner
    idx = torch.randint(0, 97, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(idx, labels=idx, output_hidden_states=True)
        logits, loss, hidden = ours(idx[:, :-1], idx[:, 1:], return_hidden=True)
        full_logits, _, full_hidden = ours(idx, return_hidden=True)
    # HF shifts labels inside; we take explicit targets
    assert torch.allclose(full_logits, ref.logits, atol=1e-5, rtol=0)
    assert abs(loss.item() - ref.loss.item()) < 1e-5
    assert len(full_hidden) == len(ref.hidden_states) == 4
    for ours_h, ref_h in zip(full_hidden, ref.hidden_states):
        assert torch.allclose(ours_h, ref_h, atol=1e-5, rtol=0)


def test_hidden_state_convention():
    torch.manual_seed(0)
    m = GPT(GPTConfig(block_size=16, vocab_size=50, n_layer=3, n_head=2, n_embd=16)).eval()
    idx = torch.randint(0, 50, (2, 10))
    logits, loss, hidden = m(idx, return_hidden=True)
    assert loss is None and logits.shape == (2, 10, 50)
    assert len(hidden) == 4 and all(h.shape == (2, 10, 16) for h in hidden)
    # the last hidden state is after the final LayerNorm, so it is what the output layer sees
    assert torch.allclose(m.lm_head(hidden[-1]), logits, atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(hidden, m(idx, return_hidden=True, head=False)[2]))
    assert m(idx, head=False) == (None, None)
    x = hidden[0]
    for i, block in enumerate(m.transformer.h[:-1]):
        x = block(x)
        assert torch.allclose(x, hidden[i + 1], atol=1e-6)


def test_causal():
    torch.manual_seed(0)
    m = GPT(GPTConfig(block_size=16, vocab_size=50, n_layer=2, n_head=2, n_embd=16)).eval()
    a = torch.randint(0, 50, (1, 12))
    b = a.clone()
    b[0, 8:] = (b[0, 8:] + 1) % 50
    assert torch.allclose(m(a)[0][:, :8], m(b)[0][:, :8], atol=1e-6)
    assert not torch.allclose(m(a)[0][:, 8:], m(b)[0][:, 8:])


def test_n_inner_and_param_counts():
    def count(n_inner):
        return GPT(GPTConfig(block_size=1024, vocab_size=50257, n_layer=12, n_head=12, n_embd=768,
                             n_inner=n_inner)).num_params()
    # the paper's GPU sweep: 12 layers x 768, MLP 64 / 256 / 1024 / 4096 -> about 69M, 73M, 87M, 143M
    assert [round(count(w) / 1e6) for w in (64, 256, 1024, 4096)] == [69, 73, 87, 143]
    # GPT-2 small is 124M with n_inner = 4 * 768 = 3072
    assert round(count(None) / 1e6) == 124


def test_from_pretrained_missing_name_is_clear(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError) as e:
        load_gpt2("gpt2-nonexistent")
    msg = str(e.value)
    assert "config.json" in msg and "model.safetensors" in msg and str(tmp_path) in msg


def test_from_pretrained_hf_cache_layout(monkeypatch, tmp_path):
    hf = tiny_hf_model()
    snap = tmp_path / "models--openai-community--gpt2" / "snapshots" / "abc123"
    hf.save_pretrained(snap)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    ours = load_gpt2("gpt2").eval()
    idx = torch.randint(0, 97, (1, 8))
    with torch.no_grad():
        assert torch.allclose(ours(idx)[0], hf(idx).logits, atol=1e-5)


class Pickled:
    """An object that only unpickling could restore."""


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(str(tmp_path / "nope.pt"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x02 not a checkpoint")
    for mmap in (False, True):
        with pytest.raises(ValueError) as e:
            load_checkpoint(str(bad), mmap=mmap)
        assert str(e.value) == f"{bad} is not a readable checkpoint: it is not the zip archive torch.save writes"
    torch.save({"model": {}, "model_args": {}, "extra": Pickled()}, bad)
    with pytest.raises(ValueError) as e:
        load_checkpoint(str(bad))
    assert str(e.value) == (f"{bad} is not a readable checkpoint: it holds Python objects beyond tensors and plain "
                            "types, which are not loaded (they could run code)")  # and no advice to load it unsafely
    torch.save({"model": {}, "model_args": {}}, bad)
    bad.write_bytes(bad.read_bytes()[:-40])  # cut short
    with pytest.raises(ValueError) as e:
        load_checkpoint(str(bad))
    assert str(e.value) == (f"{bad} is not a readable checkpoint: it is corrupt or incomplete (a copy or a save "
                            "that did not finish?)")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="not a nanodisperse checkpoint"):
        load_checkpoint(str(foreign))


@pytest.mark.parametrize("serialization", ["safetensors", "bin"])
def test_reads_sharded_checkpoints(tmp_path, serialization):
    hf = tiny_hf_model()
    if serialization == "safetensors":  # transformers writes the shards and model.safetensors.index.json itself
        hf.save_pretrained(tmp_path, max_shard_size="40KB")
        index = tmp_path / "model.safetensors.index.json"
    else:  # the older format, by hand: tensors spread over three .bin files and an index naming each one's file
        hf.config.save_pretrained(tmp_path)
        sd, weight_map = hf.state_dict(), {}
        names = list(sd)
        for i in range(3):
            shard = f"pytorch_model-{i + 1:05d}-of-00003.bin"
            torch.save({k: sd[k].clone() for k in names[i::3]}, tmp_path / shard)
            weight_map.update({k: shard for k in names[i::3]})
        index = tmp_path / "pytorch_model.bin.index.json"
        index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    shards = set(json.loads(index.read_text())["weight_map"].values())
    assert len(shards) >= 3 and not (tmp_path / "model.safetensors").exists()
    ours = load_gpt2(str(tmp_path)).eval()
    idx = torch.randint(0, 97, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(ours(idx)[0], hf(idx).logits, atol=1e-5, rtol=0)
    (tmp_path / sorted(shards)[-1]).unlink()
    with pytest.raises(FileNotFoundError, match=f"lists {len(shards)} shards, but {sorted(shards)[-1]} is not in"):
        load_gpt2(str(tmp_path))


def test_layer_norm_state_dict_names():
    for bias in (True, False):
        names = set(GPT(GPTConfig(block_size=8, vocab_size=16, n_layer=1, n_head=1, n_embd=8, bias=bias)).state_dict())
        assert ("transformer.ln_f.bias" in names) == bias and "transformer.h.0.ln_1.weight" in names
