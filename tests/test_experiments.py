"""The experiment suite end to end at toy size (the CI smoke test), and the GPU sweep's configuration."""

import json
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments"))
import gpu_sweep  # noqa: E402
import suite  # noqa: E402
import measure  # noqa: E402
from model import GPT, GPTConfig  # noqa: E402


def test_quick_suite_runs_every_experiment(tmp_path, capsys):
    args = ["--quick", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "results")]
    suite.main(args)
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert list(summary["1_width"]["table"]) == [str(w) for w in summary["widths"]]
    assert summary["widths"] == [2, 10, 42, 170]  # n_embd 32: the paper's n_inner / n_embd of 1/12 .. 16/3
    assert len(summary["2_training"]) == 1 and summary["2_training"][0]["tokens"][0] == 0  # from initialisation
    assert len(summary["2_training"][0]["rho"]) == 11
    assert len(summary["3_distillation"]["pairs"]) == 1
    assert list(summary["4_pretraining"]["table"]) == list(suite.VARIANTS)
    assert list(summary["5_midtraining"]["table"]) == ["mid_none", "mid_angular"]
    for row in summary["4_pretraining"]["table"].values():
        assert -1 <= row["spearman"][0] <= 1 and 0 < row["val"][0] < 6
    for folder in ("1_width", "2_training", "3_distillation", "4_pretraining", "5_midtraining"):
        assert (tmp_path / "results" / folder / "heatmaps.png").stat().st_size > 10_000
    md = (tmp_path / "results" / "summary.md").read_text()
    assert "## 4. Dispersion" in md and "| angular |" in md
    # an interrupted or repeated suite trains nothing twice
    capsys.readouterr()
    suite.main(args + ["--only", "4"])
    lines = [l for l in capsys.readouterr().out.splitlines() if "train.py" in l]
    assert len(lines) == 7 and all(l.startswith("# already done") for l in lines)
    again = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert again["1_width"] == summary["1_width"] and again["n_runs"] == summary["n_runs"]  # --only kept the rest


def test_gpu_sweep_sizes_match_the_paper():
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        sizes = [GPT(GPTConfig(vocab_size=50257, n_inner=w, **gpu_sweep.MODEL)).num_params() for w in gpu_sweep.WIDTHS]
    assert [round(s / 1e6) for s in sizes] == [69, 73, 87, 143]


def test_gpu_sweep_commands_are_valid_train_flags(capsys):
    gpu_sweep.main(["--dry_run"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and sum("--n_inner" in l for l in lines) == 4
    import train
    parser = train.build_parser()
    for line in lines[:4]:
        a = parser.parse_args(line.split()[2:])
        assert (a.n_layer, a.n_embd, a.block_size) == (12, 768, 1024) and a.compile
    for line in lines[4:]:  # both measurements: the paper's 100 texts of 512 tokens from the val split
        m = measure.parse_args(line.split()[2:])
        assert (m.data, m.n_texts, m.seq_len, len(m.models)) == ("data/fineweb_edu", 100, 512, 4)


def test_gpu_sweep_measures_held_out_text_that_the_repo_ships(tmp_path, capsys):
    """The sweep's measure step, on tiny models trained on the bundled Austen: its texts come from the val
    split, and a request for more text than that split holds stops before any training."""
    with pytest.raises(SystemExit, match="too little text in data/austen \\(val\\)"):
        gpu_sweep.main(["--dataset", "austen", "--runs", str(tmp_path / "never")])  # 100 texts of 512 tokens
    assert not (tmp_path / "never").exists()
    tiny = "--n_layer 1 --n_head 2 --n_embd 32 --block_size 64 --batch_size 2 --no-compile --device cpu " \
           "--eval_iters 1 --cond_texts 2"
    gpu_sweep.main(["--dataset", "austen", "--max_iters", "4", "--n_texts", "8", "--seq_len", "64", "--train_flags",
                    tiny, "--no-snapshots", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "res")])
    report = json.loads((tmp_path / "res" / "condensation.json").read_text())
    assert report["settings"]["data"] == "data/austen (val)" and report["settings"]["n_texts"] == 8
    widths = [GPT.from_checkpoint(str(tmp_path / "runs" / f"mlp{w}" / "ckpt.pt")).config.n_inner
              for w in gpu_sweep.WIDTHS]
    assert widths == list(gpu_sweep.WIDTHS) and len(report["models"]) == 4
    val_docs = len(measure.load_documents("data/austen")[0])  # the documents measure.py saw are val documents
    assert all(max(m["documents"]) < val_docs and len(m["documents"]) == 8 for m in report["models"])
    assert report["size_trend"]["n_params"]["n"] == 4
