"""The GPU paths on a CPU: torch.compile (inductor) and bfloat16 autocast give the numbers of the plain float32 run.

Every compiled run here has the same tiny model on GPT-2 BPE data, so inductor builds its kernels once and the later
runs reuse them; experiments/gpu_check.py --tiny (tests/test_gpu_check.py) compiles that same model too.
"""

import pytest
import torch

import dispersion
import measure
import train
from data import prepare as dataprep
from conftest import TINY, run_tiny as run
from support.load import load_checkpoint


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, bpe_data):
    """An untrained model of another seed: its logits differ from the student's, so the KL term is not zero."""
    out = tmp_path_factory.mktemp("teacher")
    train.main(["--dataset", bpe_data, "--out_dir", str(out), *TINY, "--no-compile", "--max_iters", "0",
                "--seed", "7"])
    return str(out)


def train_records(log):
    return {r["iter"]: r for r in log if r["split"] == "train"}


@pytest.mark.parametrize("kind", ["plain", "angular", "teacher"])
def test_compiled_training_matches_eager(tmp_path, bpe_data, teacher, kind):
    extra = {"plain": [], "angular": ["--disp", "angular"], "teacher": ["--teacher", teacher, "--kd_alpha", 0.5]}[kind]
    flags = ("--max_iters", 5, "--eval_interval", 5, *extra)
    eager = train_records(run(tmp_path / "eager", bpe_data, "--no-compile", *flags))
    compiled = train_records(run(tmp_path / "compiled", bpe_data, "--compile", *flags))
    assert set(eager) == set(compiled) == set(range(1, 6))
    for i in eager:
        for key in ("loss", "ce", "disp", "kl"):
            assert (key in eager[i]) == (key in compiled[i])
            if key in eager[i]:
                assert compiled[i][key] == pytest.approx(eager[i][key], abs=1e-4), (i, key)
    assert ("disp" in eager[1]) == (kind == "angular") and ("kl" in eager[1]) == (kind == "teacher")
    if kind == "teacher":
        assert eager[1]["kl"] > 1e-3  # another model: distillation really is in the loss
    assert eager[5]["loss"] < eager[1]["loss"]


def test_compiled_checkpoint_resumes_in_eager_mode(tmp_path, bpe_data):
    common = ("--lr_decay_iters", 8, "--eval_interval", 4)
    full = train_records(run(tmp_path / "full", bpe_data, "--no-compile", "--max_iters", 8, *common))
    run(tmp_path / "split", bpe_data, "--compile", "--max_iters", 4, *common)
    ckpt = torch.load(tmp_path / "split" / "ckpt.pt", weights_only=True)
    assert ckpt["iter_num"] == 4 and not any(k.startswith(("_orig_mod.", "module.")) for k in ckpt["model"])
    resumed = train_records(run(tmp_path / "split", bpe_data, "--no-compile", "--max_iters", 8,
                                "--init_from", "resume", *common))
    assert set(resumed) == set(range(1, 9))
    for i in range(5, 9):  # the eager continuation of a compiled run follows the uninterrupted eager run
        assert resumed[i]["loss"] == pytest.approx(full[i]["loss"], abs=1e-4)
    a, b = load_checkpoint(str(tmp_path / "full"))["model"], load_checkpoint(str(tmp_path / "split"))["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)


def test_angular_autograd_function_compiles():
    """AngularFast's hand-written backward, traced by dynamo and lowered by inductor, against eager autograd."""
    torch.manual_seed(0)
    h = torch.randn(2, 3, 16, 8)
    h[0, 0, 1] = h[0, 0, 0]  # two identical tokens: the clamp and its straight-through gradient are exercised
    loss_fn = lambda x: dispersion.dispersion_loss(x, kind="angular", tau=0.5, max_tokens=None)
    grads = []
    for fn in (loss_fn, torch.compile(loss_fn, fullgraph=True)):
        x = h.clone().requires_grad_()
        loss = fn(x)
        loss.backward()
        grads.append((loss.detach(), x.grad))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-6)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-6, rtol=1e-5)
    assert grads[0][1].abs().max() > 1e-3


def test_bf16_autocast_on_cpu_trains_close_to_float32(tmp_path, bpe_data, monkeypatch):
    seen = []  # (autocast on where the loss is called, dtype and autocast inside the loss's products)
    real_layer, real_gram = dispersion.layer_dispersion, dispersion.gram

    def layer_spy(hidden, *args, **kwargs):
        seen.append(("call", torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return real_layer(hidden, *args, **kwargs)

    def gram_spy(z):
        seen.append(("inside", torch.is_autocast_enabled("cpu"), z.dtype))
        out = real_gram(z)
        assert out.dtype == torch.float32
        return out

    monkeypatch.setattr(dispersion, "layer_dispersion", layer_spy)
    monkeypatch.setattr(dispersion, "gram", gram_spy)
    flags = ("--no-compile", "--max_iters", 5, "--eval_interval", 5, "--disp", "angular")
    fp32 = train_records(run(tmp_path / "fp32", bpe_data, "--dtype", "float32", *flags))
    assert {s[1] for s in seen if s[0] == "call"} == {False}
    seen.clear()
    bf16 = train_records(run(tmp_path / "bf16", bpe_data, "--dtype", "bfloat16", *flags))
    assert {s for s in seen if s[0] == "call"} == {("call", True, torch.bfloat16)}  # bf16 autocast was on ...
    assert {s for s in seen if s[0] == "inside"} == {("inside", False, torch.float32)}  # ... but not in the loss
    diffs = [abs(bf16[i]["loss"] - fp32[i]["loss"]) for i in fp32]
    assert 0 < max(diffs) < 1e-2  # close, and not the same run: bf16 really was used
    assert all(bf16[i]["disp"] == pytest.approx(fp32[i]["disp"], abs=1e-3) for i in fp32)
    assert bf16[5]["loss"] < bf16[1]["loss"] - 0.1


def test_measure_bf16_matches_float32(tmp_path, bpe_data):
    run(tmp_path / "run", bpe_data, "--no-compile", "--max_iters", 20, "--eval_interval", 20)
    texts = tmp_path / "texts.txt"  # one document per paragraph: chapters the model never saw
    texts.write_text("\n\n".join(dataprep.source_documents("austen")[200:202]))
    means = {}
    for dtype in ("float32", "bf16"):
        report = measure.main([str(tmp_path / "run"), "--data", str(texts), "--n_texts", "6", "--seq_len", "32",
                               "--n_boot", "0", "--device", "cpu", "--dtype", dtype, "--out", str(tmp_path / dtype)])
        means[dtype] = report["models"][0]["layer_mean"]
    assert len(means["float32"]) == 3
    assert max(abs(a - b) for a, b in zip(means["float32"], means["bf16"])) < 1e-2
    assert means["float32"] != means["bf16"]  # two computations, not one
