"""experiments/gpu_check.py --tiny: every stage of the GPU check runs at toy size on the CPU, so it cannot rot
between GPU runs, and its results say what was measured (and what could not be, without a GPU)."""

import json
import math
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
import gpu_check  # noqa: E402
import gpu_sweep  # noqa: E402


def test_tiny_gpu_check_runs_every_stage(tmp_path, capsys):
    committed = os.path.join(ROOT, "experiments", "results", "gpu")
    before = sorted(os.listdir(committed)) if os.path.isdir(committed) else None
    res = gpu_check.main(["--tiny", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert (sorted(os.listdir(committed)) if os.path.isdir(committed) else None) == before  # toy numbers stay out
    assert sorted(os.listdir(tmp_path)) == ["cpu-tiny.json", "cpu-tiny.md"]
    assert json.loads((tmp_path / "cpu-tiny.json").read_text()) == json.loads(json.dumps(res))
    md = (tmp_path / "cpu-tiny.md").read_text()
    assert md in out and out.startswith("GPU check (tiny) on cpu: estimated")
    assert "[" in out.splitlines()[1] and "stage 1/3 correctness done" in out  # one progress line per stage

    # 1. every check ran; the one that needs a GPU says so instead of claiming a pass
    status = {c["name"]: c for c in res["checks"]}
    assert len(status) == 7 and all(c["status"] == "pass" for n, c in status.items() if not n.startswith("fp32"))
    logits = status["fp32 logits, GPU vs CPU"]
    assert logits["status"] == "skip" and "no CUDA" in logits["note"] and logits["measured"] == 0
    assert status["save + resume continues the loss curve"]["measured"] == 0  # bit-exact on a CPU
    assert "gloo" in status["torchrun, 1 process, gloo"]["note"]
    assert 0 < status["angular loss and gradient vs float64"]["measured"] < 1e-4  # float32 against float64
    for c in res["checks"]:
        assert f"| {c['name']} | {c['status']} |" in md

    # 2. speed: the bench numbers hang together, and the profile covers what it lists
    (row,) = res["speed"]["train"]
    assert row["batch_size"] == 4 and res["speed"]["compiled"] is True
    assert row["tokens_per_s_none"] == pytest.approx(4 * 32 / row["ms_per_iter_none"] * 1000, rel=1e-6)
    assert row["disp_ratio"] == pytest.approx(row["ms_per_iter_angular"] / row["ms_per_iter_none"], rel=1e-6)
    assert 0 < row["mfu_none"] < 1 and res["speed"]["best"]["batch_size"] == 4
    assert [m["dtype"] for m in res["speed"]["measure"]] == ["float32", "bf16"]
    for m in res["speed"]["measure"]:
        assert m["texts_per_s"] > 0 and m["n_texts"] == 8
        assert m["one_pass_ratio"] == pytest.approx(m["paper_texts_per_s"] / m["texts_per_s"])
        assert m["standardize_ratio"] > 1  # a second forward pass
        assert f"{m['erank_ratio']:.3f}x | {m['standardize_ratio']:.3f}x (goal about 2x) |" in md
        assert f"| {m['dtype']} | {m['texts_per_s']:.1f} | {m['one_pass_ratio']:.3f}x (goal <= 1.05x) |" in md
    for label in ("none", "angular"):
        top = res["profiles"][label]["top"]
        shares = [t["share"] for t in top]
        assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1 + 1e-9
        assert f"| `{top[0]['op']}` |" in md
    assert "| 4 | " in md and f"{row['disp_ratio']:.3f}x" in md

    # 3. the science sample: the sweep's four widths, measured on held-out text
    sc = res["science"]
    assert [r["n_inner"] for r in sc["table"]] == list(gpu_sweep.WIDTHS) and sc["shape"] == "2 x 32"
    params = [r["n_params"] for r in sc["table"]]
    assert params == sorted(params) and params[-1] - params[0] == 2 * 2 * 32 * (4096 - 64) + 2 * (4096 - 64)
    assert all(abs(r["val_loss"] - math.log(50257)) < 0.5 for r in sc["table"])  # 4 steps: near chance
    assert all(-1 <= r["spearman"] <= 1 and 0 < r["last_layer_mean"] <= 1 for r in sc["table"])
    assert sc["measured_on"].startswith("austen (bundled, the 27 val documents") and sc["n_texts"] == 8 and sc["tokens_per_step"] == 2 * 64
    assert "| 4096 | " in md


def test_gpu_check_without_cuda_says_so(capsys):
    if gpu_check.torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here")
    with pytest.raises(SystemExit) as e:
        gpu_check.main([])
    assert "error: no CUDA GPU here" in str(e.value.code) and "--tiny" in str(e.value.code)
