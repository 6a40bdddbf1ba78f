"""plots.py: training logs read as the run they record, the heatmaps' axis, and the loss-curve command."""

import json

import numpy as np
import pytest

from support import plots


def write_log(folder, records):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def eval_record(i, val, **kw):
    return {"iter": i, "split": "eval", "tokens": 100 * i, "train": val + 0.1, "val": val, **kw}


def test_read_log_keeps_one_record_per_step_and_renames_the_old_metrics(tmp_path):
    run = write_log(tmp_path / "a", [
        eval_record(0, 4.0, rho=1.0, tau=1.0, last_cos=0.1),
        {"iter": 5, "split": "train", "tokens": 500, "loss": 3.5, "ce": 3.4},
        eval_record(10, 3.0, rho=0.5, tau=0.4, last_cos=0.3),
        {"iter": 5, "split": "train", "tokens": 500, "loss": 3.6, "ce": 3.5},  # a resumed run logs step 5 again
        eval_record(10, 2.9, cond_rho=0.2, cond_tau=0.1, cond_last_cos=0.25),  # a later spelling
        eval_record(20, 2.8, cond_spearman=0.1, cond_kendall=0.0, cond_last_layer_mean=0.2),  # another spelling
        eval_record(30, 2.7, spearman=0.0, kendall=0.0, last_layer_mean=0.2, cond_windows=8),  # measure.py's names
        {"iter": 10, "split": "bench", "tokens": 1000},  # not a split that is drawn
    ])
    log = plots.read_log(run)
    assert [r["iter"] for r in log["train"]] == [5] and log["train"][0]["ce"] == 3.5  # the last one written
    assert [r["iter"] for r in log["eval"]] == [0, 10, 20, 30]
    assert log["eval"][0] == eval_record(0, 4.0, spearman=1.0, kendall=1.0, last_layer_mean=0.1)
    assert log["eval"][1] == eval_record(10, 2.9, spearman=0.2, kendall=0.1, last_layer_mean=0.25)
    assert log["eval"][2] == eval_record(20, 2.8, spearman=0.1, kendall=0.0, last_layer_mean=0.2)
    assert plots.metric_label("bench_hellaswag_acc_norm") == "hellaswag: length-normalised accuracy"


def test_curve_averages_seeds_over_the_steps_all_of_them_logged(tmp_path):
    a = plots.read_log(write_log(tmp_path / "a", [eval_record(i, 5.0 - i) for i in (0, 1, 2)]))
    b = plots.read_log(write_log(tmp_path / "b", [eval_record(i, 6.0 - i) for i in (0, 2)]))  # step 1 missing
    assert plots.curve([a, b], "eval", "val") == ([0, 200], [[5.0, 3.0], [6.0, 4.0]])
    assert plots.curve([a, b], "eval", "cond_excess") is None


def test_heatmap_axis_is_the_papers_unless_data_fall_below():
    hist = np.zeros((3, 128))
    hist[:, 100] = 1.0  # every pair at cosine 0.5625
    assert plots.heatmap_ylim([hist]) == (-0.25, 1)
    low = hist.copy()
    low[1, 48] = 0.1  # the bin [-0.25, -0.234375): still on the paper's axis
    assert plots.heatmap_ylim([hist, low]) == (-0.25, 1)
    low[2, 47] = 0.1  # [-0.265625, -0.25): the axis reaches down to -0.3
    assert plots.heatmap_ylim([hist, low]) == (-0.3, 1)


def test_loss_curve_command(tmp_path, capsys):
    runs = []
    for k, name in enumerate(("plain", "dispersion")):
        records = []
        for i in range(0, 60, 10):
            records.append({"iter": i, "split": "train", "tokens": 100 * i, "loss": 4 - i / 30 + k, "ce": 4 - i / 30})
            if i % 20 == 0:
                records.append(eval_record(i, 4 - i / 25, rho=1 - i / 50, tau=1 - i / 60, last_cos=0.2,
                                           val_wiki=5 - i / 30, bench_arc_easy=0.25 + i / 500))
        runs.append(str(write_log(tmp_path / name, records)))
    out = tmp_path / "loss.png"
    plots.main([*runs, "--out", str(out)])
    assert out.stat().st_size > 20_000 and capsys.readouterr().out == f"wrote {out}\n"
    with pytest.raises(SystemExit) as e:
        plots.main([runs[0], str(tmp_path / "missing")])
    assert e.value.code.startswith(f"error: {tmp_path / 'missing'}: cannot read its log.jsonl (FileNotFoundError")
    assert "\n" not in e.value.code
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "log.jsonl").write_text("")
    with pytest.raises(SystemExit) as e:
        plots.main([str(tmp_path / "empty")])
    assert e.value.code == f"error: {tmp_path / 'empty'}/log.jsonl holds no train or eval records"
