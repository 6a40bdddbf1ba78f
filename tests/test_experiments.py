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
from data import texts  # noqa: E402
import train  # noqa: E402
from model import GPT, GPTConfig  # noqa: E402
from support.load import load_gpt  # noqa: E402


def test_quick_suite_runs_every_experiment(tmp_path, capsys):
    args = ["--quick", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "results")]
    suite.main(args)
    out = capsys.readouterr().out.splitlines()
    trained = [l for l in out if l.startswith("python train.py")]
    progress = [l for l in out if l.startswith("# run ")]  # one line per run trained, counted against all of them
    assert [p.split(",")[0] for p in progress] == [f"# run {k}/{len(trained)}" for k in range(1, len(trained) + 1)]
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
    # every table cell is recomputed from the runs' own numbers, which summary.json keeps
    for exp in ("1_width", "3_distillation", "4_pretraining", "5_midtraining"):
        for setting, row in summary[exp]["table"].items():
            runs = [r for r in summary[exp]["runs"] if r["setting"] == setting]
            assert row["n"] == len(runs) and row["val"] == suite.analysis.mean_std([r["val"] for r in runs])
            assert row["spearman"] == suite.analysis.mean_std([r["spearman"] for r in runs])
    assert summary["4_pretraining"]["table"]["angular"]["n"] == 2  # the extra seed of the paired variants
    paired = summary["4_pretraining"]["paired"]
    assert set(paired) == {"angular", "decorrelation"} and paired["angular"]["seeds"] == [0, 1]
    rows = {(r["setting"], r["seed"]): r for r in summary["4_pretraining"]["runs"]}
    d = [rows["angular", s]["val"] - rows["none", s]["val"] for s in (0, 1)]
    assert paired["angular"]["val"]["mean"] == pytest.approx(sum(d) / 2)
    assert set(summary["4_pretraining"]["by_text"]) == {"austen", "wiki"}
    six = summary["6_width_training"]
    assert len(six["runs"]) == 4 and all(len(points) == 5 for points in six["runs"].values())  # steps 0, 10 .. 40
    assert list(six["compare"]["steps"]) == ["10", "20", "30", "40"] and "fit" in six
    assert all(at["val"]["n"] == 4 for at in six["compare"]["steps"].values())  # every run has each step
    figures = {"1_width": {"size_trend.png", "loss_curves.png"}, "2_training": {"condensation_over_training.png"},
               "3_distillation": {"loss_curves.png"}, "4_pretraining": {"loss_curves.png", "plain_vs_angular.png"},
               "5_midtraining": {"loss_curves.png"}}
    for folder, extra in figures.items():
        drawn = {p.name for p in (tmp_path / "results" / folder).glob("*.png")}
        assert drawn == {"heatmaps.png", "layer_means.png", "layer_measures.png"} | extra, folder
        assert all((tmp_path / "results" / folder / f).stat().st_size > 10_000 for f in drawn)
    assert {p.name for p in (tmp_path / "results" / "6_width_training").glob("*.png")} == {
        "condensation_against_loss.png"}
    md = (tmp_path / "results" / "summary.md").read_text()
    assert "## 4. Dispersion" in md and "| angular |" in md and "## 6. Width against training" in md
    assert "| minus none |" in md and "Pooled over the" in md
    # an interrupted or repeated suite trains nothing twice, and resumes a run that stopped before its last step
    unfinished = tmp_path / "runs" / "angular_seed0" / "ckpt.pt"
    ckpt = torch.load(unfinished, weights_only=True)
    ckpt["iter_num"], ckpt["tokens_seen"] = 10, ckpt["tokens_seen"] // 2
    torch.save(ckpt, unfinished)
    killed = tmp_path / "runs" / "decorrelation_seed0"  # killed before its first checkpoint: starts again
    (killed / "ckpt.pt").unlink()
    capsys.readouterr()
    suite.main(args + ["--only", "4"])
    lines = [l for l in capsys.readouterr().out.splitlines() if "train.py" in l]
    assert len(lines) == 10 and sum(l.startswith("# already done") for l in lines) == 8
    resumed = [l for l in lines if l.startswith("# resuming: ")]
    assert len(resumed) == 1 and "angular_seed0" in resumed[0] and resumed[0].endswith("--init_from resume")
    assert torch.load(unfinished, weights_only=True)["iter_num"] == 20
    again = [l for l in lines if l.startswith("# starting again")]
    assert len(again) == 1 and "decorrelation_seed0" in again[0]
    records = [json.loads(l) for l in (killed / "log.jsonl").read_text().splitlines()]
    steps = [(r["split"], r["iter"]) for r in records]
    assert len(set(steps)) == len(steps) and [i for s, i in steps if s == "eval"] == [0, 10, 20]  # no old records
    again = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert again["1_width"] == summary["1_width"] and again["n_runs"] == summary["n_runs"]  # --only kept the rest


def test_quick_suite_writes_apart_from_the_committed_results():
    full, quick = suite.parse_args([]), suite.parse_args(["--quick"])
    assert (full.runs, full.out) == (os.path.join("experiments", "runs"), os.path.join("experiments", "results"))
    assert quick.runs == os.path.join("experiments", "runs", "quick")
    assert quick.out == os.path.join("experiments", "runs", "quick", "results")
    assert suite.parse_args(["--quick", "--out", "o"]).out == "o"


@pytest.mark.parametrize("argv, message", [
    (["--only", "x"], "error: --only x: give experiments 1 to 6 as a comma list, e.g. --only 1,3"),
    (["--only", "1,7"], "error: --only 1,7: give experiments 1 to 6 as a comma list, e.g. --only 1,3"),
    (["--only", ""], "error: --only : give experiments 1 to 6 as a comma list, e.g. --only 1,3"),
    (["--quik"], "error: unrecognized arguments: --quik (see python experiments/suite.py --help)"),
])
def test_suite_bad_input_is_one_line(argv, message):
    with pytest.raises(SystemExit) as e:
        suite.parse_args(argv)
    assert e.value.code == message


def test_suite_flags_and_tables():
    cmd = ["--out_dir", "r", "--init_from", "a", "--max_iters", "6"]
    assert suite.with_flag(cmd, "--init_from", "resume") == ["--out_dir", "r", "--init_from", "resume",
                                                             "--max_iters", "6"]
    assert suite.with_flag(cmd, "--seed", 1) == cmd + ["--seed", "1"]
    row = {"n": 2, "n_params": 260_000, "val": [2.4, 0.03], "spearman": [0.857, 0.186], "kendall": [None, None],
           "last_layer_mean": [0.342, 0.03]}
    plain = suite.report.table({"8": row}, "n_inner").splitlines()
    assert plain[0] == "| n_inner | params | seeds | val loss | rho | Kendall | last-layer cos |"
    assert plain[2] == "| 8 | 0.260M | 2 | 2.400 ± 0.030 | 0.857 ± 0.186 | n/a ± n/a | 0.342 ± 0.030 |"
    more = suite.report.table({"8": row | {"excess_spearman": [-0.5, 0.25], "last_layer_excess": [0.1, 0.0]}})
    more = more.splitlines()
    assert more[0].endswith("| last-layer cos | excess rho | last-layer excess |")  # shown only when measured
    assert more[1] == "|---" * 9 + "|" and more[2].endswith("| -0.500 ± 0.250 | 0.100 ± 0.000 |")
    mean_std = suite.analysis.mean_std
    assert mean_std([1.0, None, 3.0]) == [2.0, 2 ** 0.5] and mean_std([None]) == [None, None]


def test_paired_tests_and_matched_loss():
    """The suite's statistics against scipy and hand-made runs."""
    from scipy import stats
    rows = [{"setting": g, "seed": s, "val": v} for g, vals in (("none", [2.0, 2.1, 2.2, 2.05]),
                                                                  ("disp", [1.9, 2.05, 2.1, 2.0])) for s, v in
            enumerate(vals)]
    got = suite.analysis.paired(rows, "none", ["val"])["disp"]["val"]
    d = [-0.1, -0.05, -0.1, -0.05]
    assert got["mean"] == pytest.approx(-0.075) and got["n"] == 4 and got["positive"] == 0
    assert got["t_p"] == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    assert got["wilcoxon_p"] == pytest.approx(stats.wilcoxon(d).pvalue)
    points = [{"step": 0, "val": 4.0, "spearman": 1.0}, {"step": 10, "val": 3.0, "spearman": 0.5},
              {"step": 20, "val": 2.0, "spearman": -0.5}, {"step": 30, "val": 2.2, "spearman": 0.0}]
    assert suite.analysis.at_loss(points, 2.5, "spearman") == pytest.approx(0.0)  # halfway from 3.0 to 2.0
    assert suite.analysis.at_loss(points, 1.5, "spearman") is None  # never reached
    runs = {"a": points, "b": [dict(p, val=p["val"] + 0.5) for p in points]}
    assert suite.analysis.loss_levels(runs, 3) == pytest.approx([3.0, 2.75, 2.5])


def test_gpu_sweep_sizes_match_the_paper():
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        sizes = [GPT(GPTConfig(vocab_size=50257, n_inner=w, **gpu_sweep.MODEL)).num_params() for w in gpu_sweep.WIDTHS]
    assert [round(s / 1e6) for s in sizes] == [69, 73, 87, 143]


def test_gpu_sweep_commands_are_valid_train_flags(capsys):
    gpu_sweep.main(["--dry_run"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and sum("--n_inner" in l for l in lines) == 4
    parser = train.build_parser()
    for line in lines[:4]:
        a = parser.parse_args(line.split()[2:])
        assert (a.n_layer, a.n_embd, a.block_size) == (12, 768, 1024) and a.compile
    for line in lines[4:]:  # both measurements: the paper's 100 texts of 512 tokens from the val split
        m = measure.parse_args(line.split()[2:])
        assert (m.data, m.n_texts, m.seq_len, len(m.models)) == ("fineweb_edu", 100, 512, 4)


def test_gpu_sweep_measures_held_out_text_that_the_repo_ships(tmp_path, capsys):
    """The sweep's measure step, on tiny models trained on the bundled Austen: its texts come from the val
    split, and a request for more text than that split holds stops before any training."""
    with pytest.raises(SystemExit, match="too little text in austen \\(bundled, the 27 val documents"):
        gpu_sweep.main(["--dataset", "austen", "--n_texts", "500", "--runs", str(tmp_path / "never")])  # of 512 tokens
    assert not (tmp_path / "never").exists()
    tiny = "--n_layer 1 --n_head 2 --n_embd 32 --block_size 64 --batch_size 2 --no-compile --device cpu " \
           "--eval_iters 1 --cond_texts 2"
    gpu_sweep.main(["--dataset", "austen", "--max_iters", "4", "--n_texts", "8", "--seq_len", "64", "--train_flags",
                    tiny, "--no-snapshots", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "res")])
    report = json.loads((tmp_path / "res" / "condensation.json").read_text())
    assert report["settings"]["data"].startswith("austen (bundled, the 27 val documents")
    assert report["settings"]["n_texts"] == 8
    widths = [load_gpt(str(tmp_path / "runs" / f"mlp{w}" / "ckpt.pt"))[0].config.n_inner
              for w in gpu_sweep.WIDTHS]
    assert widths == list(gpu_sweep.WIDTHS) and len(report["models"]) == 4
    val_docs = len(texts.load_documents("austen")[0])  # the documents measure.py saw are val paragraphs
    assert all(max(m["documents"]) < val_docs and len(m["documents"]) == 8 for m in report["models"])
    assert report["size_trend"]["n_params"]["n"] == 4
