"""train.py end to end on tiny models: exact resume, checkpoints, DDP, bad input, and the training-time losses."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch

import dispersion
import measure
from support import mfu
from support import rundir
import train
from data import prepare as dataprep
from model import GPT
from support.load import load_checkpoint, load_gpt, load_gpt2

from conftest import TINY as TINY_MODEL, run_tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [*TINY_MODEL, "--no-compile"]  # eager: the compiled runs are test_compile.py's


def run(out_dir, data, *extra):
    return run_tiny(out_dir, data, "--no-compile", *extra)



def train_losses(log):
    return {r["iter"]: r["loss"] for r in log if r["split"] == "train"}


TIMING = ("ms", "tok_s", "mfu")  # the only numbers of a log that may differ between two runs of one config


def untimed(log):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in log]


def test_resume_is_bit_exact_and_logs_each_step_once(tmp_path, char_data):
    # dropout on, so the restored RNG state matters too
    common = ("--dropout", 0.1, "--lr_decay_iters", 8, "--eval_interval", 4)
    full = run(tmp_path / "full", char_data, "--max_iters", 8, *common)
    split = tmp_path / "split"
    run(split, char_data, "--max_iters", 4, *common)
    at_4 = (split / "ckpt.pt").read_bytes()
    # a run killed after logging steps 5 and 6 but before its next checkpoint, mid-way through a line
    run(split, char_data, "--max_iters", 6, "--init_from", "resume")
    (split / "ckpt.pt").write_bytes(at_4)
    with open(split / "log.jsonl", "a") as f:
        f.write('{"iter": 7, "spl')
    resumed = run(split, char_data, "--max_iters", 8, "--init_from", "resume")  # the other flags: the run's own
    assert [(r["iter"], r["split"]) for r in resumed] == [(r["iter"], r["split"]) for r in full]  # each once
    assert untimed(resumed) == untimed(full)  # bit for bit, not approximately
    a = load_checkpoint(str(tmp_path / "full"))["model"]
    b = load_checkpoint(str(split))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.load(open(split / "config.json"))["dropout"] == 0.1


def test_resume_keeps_the_run_or_says_what_would_change(tmp_path, char_data, capsys):
    run(tmp_path, char_data, "--max_iters", 2, "--disp", "angular", "--seed", 7)
    base = ["--dataset", char_data, "--out_dir", str(tmp_path), "--init_from", "resume"]
    with pytest.raises(SystemExit) as e:
        train.main(base + ["--seed", "8", "--batch_size", "4", "--disp", "none"])
    assert e.value.code == ("error: resuming with --seed 8 (the run has 7); --disp none (the run has angular) would "
                            "change the run: leave the flag out to keep the run's own value, or add --allow_changes "
                            "if you mean it")
    with pytest.raises(SystemExit) as e:
        train.main(base + ["--n_embd", "64", "--allow_changes"])
    assert e.value.code == ("error: cannot resume with --n_embd 64: the checkpoint's weights fix the model to "
                            "n_layer 2, n_head 2, n_embd 32, n_inner None, bias True")
    other = tmp_path.parent / (tmp_path.name + "_other")
    dataprep.prepare("other", ["xyz " * 500, "zyx " * 500], {"name": "char"}, out_dir=other, verbose=False)
    with pytest.raises(SystemExit) as e:  # no flag makes a model read another tokenizer's ids
        train.main(base + ["--dataset", str(other), "--allow_changes"])
    assert e.value.code == (f"error: cannot resume on --dataset {other}: its tokenizer is not the one the "
                            "checkpoint was trained with")
    with pytest.raises(SystemExit) as e:
        train.main(base + ["--max_iters", "1"])
    assert e.value.code == "error: --max_iters 1 is behind the checkpoint, which is at step 2"
    # flags that cannot change the run are taken as given; a longer run keeps the saved schedule
    capsys.readouterr()
    log = run(tmp_path, char_data, "--init_from", "resume", "--max_iters", 3, "--eval_interval", 1)
    assert "note: steps past lr_decay_iters 2 run at min_lr" in capsys.readouterr().out
    assert [r["iter"] for r in log if r["split"] == "eval"] == [0, 2, 3]
    cfg = json.load(open(tmp_path / "config.json"))
    assert (cfg["seed"], cfg["disp"], cfg["eval_interval"], cfg["lr_decay_iters"]) == (7, "angular", 1, 2)
    lr_3 = [r["lr"] for r in log if r["iter"] == 3 and r["split"] == "train"]
    assert lr_3 == [pytest.approx(3e-4)]  # min_lr = lr / 10, after step 2
    run(tmp_path, char_data, "--init_from", "resume", "--max_iters", 4, "--seed", 9, "--allow_changes")
    assert json.load(open(tmp_path / "config.json"))["seed"] == 9


def test_resume_past_a_schedule_still_warming_up_says_so(tmp_path, char_data, capsys):
    """--max_iters 2 under a 5-step warmup, resumed to 4: the note says what the logged lr does."""
    run(tmp_path, char_data, "--max_iters", 2, "--warmup_iters", 5)
    capsys.readouterr()
    log = run(tmp_path, char_data, "--init_from", "resume", "--max_iters", 4, "--warmup_iters", 5)
    assert ("note: the saved schedule's warmup (5 steps) outlasts its lr_decay_iters 2: the learning rate keeps "
            "rising until step 5") in capsys.readouterr().out
    lrs = [r["lr"] for r in log if r["split"] == "train"]
    assert lrs == sorted(lrs) and lrs[-1] < 3e-3  # still rising, still below the peak


def test_one_folder_one_run(tmp_path, char_data):
    run(tmp_path, char_data, "--max_iters", 2, "--save_every", 1)
    with pytest.raises(SystemExit) as e:
        run(tmp_path, char_data, "--max_iters", 1)
    assert e.value.code == (f"error: --out_dir {tmp_path} already holds a run (ckpt.pt, ckpt_000000.pt, "
                            "ckpt_000001.pt, ...): continue it with --init_from resume, choose another --out_dir, "
                            "or add --overwrite to delete it")
    log = run(tmp_path, char_data, "--max_iters", 1, "--overwrite")
    assert [(r["iter"], r["split"]) for r in log] == [(0, "eval"), (1, "train"), (1, "eval")]
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".pt")) == ["ckpt.pt"]  # the old snapshots are gone
    assert load_checkpoint(str(tmp_path))["iter_num"] == 1
    # a run holding the folder stops a second one; the lock file names the holder
    lock = rundir.take_lock(open(tmp_path / rundir.LOCK_FILE, "a+"), str(tmp_path))
    try:
        with pytest.raises(SystemExit) as e:
            run(tmp_path, char_data, "--max_iters", 2, "--init_from", "resume")
        assert e.value.code == (f"error: --out_dir {tmp_path} is in use by a running train.py (pid {os.getpid()} on "
                                f"{socket.gethostname()}): wait for it, or choose another --out_dir")
    finally:
        rundir.release_lock(lock)
    # what a killed run leaves behind (a lock file naming a process that no longer holds it) blocks nothing
    (tmp_path / rundir.LOCK_FILE).write_text("pid 999999 on a-host-long-gone\n")
    assert load_checkpoint(str(tmp_path))["iter_num"] == 1
    run(tmp_path, char_data, "--max_iters", 2, "--init_from", "resume")
    assert load_checkpoint(str(tmp_path))["iter_num"] == 2
    assert (tmp_path / rundir.LOCK_FILE).read_text() == ""  # released: it names no holder


def test_ctrl_c_saves_and_resumes(tmp_path, char_data):
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), "--dataset", char_data, "--out_dir",
                             str(out), *TINY, "--max_iters", "100000", "--eval_interval", "100000"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # wait for a few steps
        if (out / "log.jsonl").exists() and len((out / "log.jsonl").read_text().splitlines()) >= 4:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    step = load_checkpoint(str(out))["iter_num"]
    assert err.strip().splitlines()[-1] == (f"interrupted: saved {out}/ckpt.pt at step {step}; continue with: "
                                            f"python train.py --init_from resume --out_dir {out}")
    logged = [json.loads(line)["iter"] for line in open(out / "log.jsonl")]
    assert step >= 3 and logged[-1] == step  # the checkpoint is the last step logged, not the last eval
    assert not any(f.endswith(".tmp") for f in os.listdir(out))
    log = run(out, char_data, "--init_from", "resume", "--max_iters", step + 2)
    assert [r["iter"] for r in log if r["split"] == "train"] == list(range(1, step + 3))


def test_full_disk_and_unwritable_out_dir_stop_with_one_line(tmp_path, char_data):
    out = tmp_path / "full"
    out.mkdir()
    os.symlink("/dev/full", out / "ckpt.pt.tmp")  # the checkpoint is written here first: a disk with no room
    with pytest.raises(SystemExit) as e:
        run(out, char_data, "--max_iters", 2)
    free = shutil.disk_usage(out).free / 2**20
    assert e.value.code.startswith(f"error: cannot write {out}/ckpt.pt (the write failed; ")
    assert e.value.code.endswith("MiB free on its disk); the previous checkpoint is kept: fix this, then use "
                                 "--init_from resume") and free > 0
    assert sorted(os.listdir(out)) == ["config.json", "log.jsonl", rundir.LOCK_FILE]  # no ckpt.pt.tmp left
    (tmp_path / "ro").mkdir(mode=0o555)
    target = str(tmp_path / "ro" / "run")
    if os.geteuid() == 0:  # root writes where a mode forbids it: take a place the kernel keeps read-only instead
        target = "/sys/nanodisperse_run"
    try:
        os.mkdir(target)
    except OSError as e:
        reason = e.strerror
    else:
        os.rmdir(target)
        pytest.skip(f"{target} is writable here")
    with pytest.raises(SystemExit) as e:
        run(target, char_data, "--max_iters", 1)
    assert e.value.code == f"error: --out_dir {target} is not writable ({reason})"


def test_checkpoints_are_plain_and_snapshots_start_at_init(tmp_path, char_data):
    run(tmp_path, char_data, "--max_iters", 4, "--eval_interval", 2, "--save_every", 2)
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".pt")) == [
        "ckpt.pt", "ckpt_000000.pt", "ckpt_000002.pt", "ckpt_000004.pt"]
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)  # no pickled classes anywhere
    assert ckpt["iter_num"] == 4 and ckpt["tokens_seen"] == 4 * 4 * 32
    assert not any(k.startswith(("_orig_mod.", "module.")) for k in ckpt["model"])
    assert ckpt["config"]["n_embd"] == 32 and ckpt["tokenizer"]["name"] == "char"
    assert not any(f.endswith(".tmp") for f in os.listdir(tmp_path))
    snap = load_checkpoint(str(tmp_path / "ckpt_000002.pt"), mmap=True)  # as measure.py reads them
    assert {"model", "model_args", "tokenizer", "tokens_seen", "iter_num"} <= set(snap)
    assert "optimizer" not in snap and "rng_cpu" not in snap and snap["iter_num"] == 2
    assert os.path.getsize(tmp_path / "ckpt_000002.pt") < 0.5 * os.path.getsize(tmp_path / "ckpt.pt")
    # the step-0 snapshot is the initialisation: the same seed gives the same model
    init = load_gpt(str(tmp_path / "ckpt_000000.pt"))[0]
    torch.manual_seed(1337)
    fresh = GPT(init.config)
    assert all(torch.equal(p, q) for p, q in zip(init.state_dict().values(), fresh.state_dict().values()))
    final = load_gpt(str(tmp_path / "ckpt.pt"))[0].state_dict()
    snap = load_gpt(str(tmp_path / "ckpt_000004.pt"))[0].state_dict()
    assert all(torch.equal(final[k], snap[k]) for k in final)


def test_training_learns_and_logs(tmp_path, char_data, capsys):
    log = run(tmp_path, char_data, "--max_iters", 30, "--eval_interval", 30)
    evals = [r for r in log if r["split"] == "eval"]
    assert [r["iter"] for r in evals] == [0, 30]
    assert evals[-1]["val"] < evals[0]["val"] - 0.5
    for key in ("train", "val", "ppl_val"):
        assert key in evals[-1]
    # the condensation estimate: what measure.condensation_summary returns, under its names, on the final model
    # and the --cond_texts val windows spread evenly over the val split
    a = train.build_parser().parse_args(["--block_size", "32", "--cond_texts", "2"])
    windows = train.condensation_windows(dataprep.load_split(char_data, "val"), a, torch.device("cpu"))
    assert windows.shape == (2, 32)
    final = measure.condensation_summary(load_gpt(str(tmp_path / "ckpt.pt"))[0], windows)
    assert {k: evals[-1][k] for k in measure.CONDENSATION_ESTIMATE} == final and evals[-1]["cond_windows"] == 2
    train_rec = [r for r in log if r["split"] == "train"]
    assert len(train_rec) == 30 and all({"iter", "loss", "lr", "ce"} <= r.keys() for r in train_rec)
    out = capsys.readouterr().out
    assert "final val loss" in out and "; condensation estimate on 2 val windows: spearman " in out


def test_lr_schedule():
    a = train.build_parser().parse_args(["--learning_rate", "1.0", "--min_lr", "0.1", "--warmup_iters", "10",
                                          "--lr_decay_iters", "110"])
    lrs = [train.get_lr(i, a) for i in range(130)]
    assert lrs[0] < lrs[5] < lrs[9] < 1.0  # warming up
    assert lrs[10] == pytest.approx(1.0) and lrs[60] == pytest.approx(0.55) and lrs[110] == pytest.approx(0.1)
    assert all(x >= y for x, y in zip(lrs[10:], lrs[11:])) and lrs[129] == 0.1


@pytest.mark.parametrize("argv,message", [
    (["--no_such_flag"], "unrecognized arguments"),
    (["--n_layer", "two"], "invalid int value"),
    (["--n_embd", "30", "--n_head", "4"], "not divisible"),
    (["--dataset", "never_prepared_xyz"], "python data/prepare.py"),
    (["--block_size", "100000000"], "not shorter"),
    (["--init_from", "resume"], "checkpoint not found"),
    (["--disp", "angular", "--disp_layers", "7"], "out of range"),
    (["--disp", "bogus"], "invalid choice"),
    (["--init_from", "gpt2-not-a-model"], "unknown model"),
])
def test_bad_input_fails_at_once(tmp_path, char_data, argv, message, capsys):
    argv = ["--dataset", char_data, "--out_dir", str(tmp_path), *TINY] + argv
    with pytest.raises(SystemExit) as e:
        train.main(argv)
    text = str(e.value.code) + capsys.readouterr().err
    assert e.value.code != 0 and message in text
    assert not os.path.exists(tmp_path / "log.jsonl")  # no work was done


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path, char_data, monkeypatch):
    real, calls = dispersion.layer_dispersion, []

    def poisoned(*args, **kwargs):
        calls.append(1)
        out = real(*args, **kwargs)
        return out * float("nan") if len(calls) == 4 else out

    monkeypatch.setattr(dispersion, "layer_dispersion", poisoned)
    with pytest.raises(SystemExit, match="loss is nan at step 3"):
        run(tmp_path, char_data, "--max_iters", 10, "--eval_interval", 2, "--disp", "angular")
    assert load_checkpoint(str(tmp_path))["iter_num"] == 2


def test_dispersion_lowers_last_layer_cosine(tmp_path, char_data):
    def last_cos(disp):
        log = run(tmp_path / disp, char_data, "--max_iters", 40, "--eval_interval", 40, "--disp", disp,
                  "--disp_coeff", 1.0, "--cond_texts", 8)
        ev = [r for r in log if r["split"] == "eval"][-1]
        return ev["last_layer_mean"]
    assert last_cos("angular") < last_cos("none") - 0.05


def test_losses_logged_separately(tmp_path, char_data):
    log = run(tmp_path, char_data, "--max_iters", 2, "--disp", "decorrelation", "--disp_coeff", 0.5)
    r = [r for r in log if r["split"] == "train"][-1]
    assert r["loss"] == pytest.approx(r["ce"] + 0.5 * r["disp"], rel=1e-5)


def test_distillation_from_identical_teacher_has_zero_kl(tmp_path, char_data):
    run(tmp_path / "t", char_data, "--max_iters", 0, "--save_every", 1)
    log = run(tmp_path / "s", char_data, "--max_iters", 1, "--teacher", tmp_path / "t" / "ckpt_000000.pt",
              "--kd_alpha", 0.5)
    r = [r for r in log if r["split"] == "train"][0]
    assert r["kl"] == pytest.approx(0.0, abs=1e-6)  # same seed, same init: teacher == student at step 0
    assert r["loss"] == pytest.approx(0.5 * r["ce"], rel=1e-5)


def test_total_loss_keeps_dispersion_outside_the_distillation_mix(tmp_path, char_data):
    run(tmp_path / "t", char_data, "--max_iters", 3)  # a teacher that differs from the student: KL > 0
    log = run(tmp_path / "s", char_data, "--max_iters", 2, "--teacher", tmp_path / "t", "--kd_alpha", 0.25,
              "--kd_temperature", 3, "--disp", "angular", "--disp_coeff", 0.4)
    for r in (r for r in log if r["split"] == "train"):
        assert r["kl"] > 1e-3 and r["disp"] != 0
        assert r["loss"] == pytest.approx(0.75 * r["ce"] + 0.25 * 9 * r["kl"] + 0.4 * r["disp"], rel=1e-5)


def test_mid_training_from_own_checkpoint(tmp_path, char_data):
    run(tmp_path / "a", char_data, "--max_iters", 3, "--eval_interval", 3)
    log = run(tmp_path / "b", char_data, "--max_iters", 2, "--init_from", tmp_path / "a", "--eval_interval", 2)
    first = [r for r in log if r["split"] == "eval"][0]
    a_last = [json.loads(l) for l in open(tmp_path / "a" / "log.jsonl") if '"eval"' in l][-1]
    assert first["iter"] == 0 and first["val"] == a_last["val"]  # starts from a's weights, with a fresh schedule
    assert load_checkpoint(str(tmp_path / "b"))["iter_num"] == 2


def test_teacher_with_other_tokenizer_is_refused(tmp_path, char_data, capsys):
    other = tmp_path / "other"
    dataprep.prepare("other", ["xyz " * 500, "zyx " * 500], {"name": "char"}, out_dir=other, verbose=False)
    run(tmp_path / "t", str(other), "--max_iters", 0, "--block_size", 16)
    with pytest.raises(SystemExit, match="another tokenizer"):
        run(tmp_path / "s", char_data, "--max_iters", 1, "--teacher", tmp_path / "t")


def test_embed_noise_only_in_training(tmp_path, char_data):
    plain = run(tmp_path / "a", char_data, "--max_iters", 3, "--eval_interval", 3)
    noisy = run(tmp_path / "b", char_data, "--max_iters", 3, "--eval_interval", 3, "--embed_noise", 50)
    first_eval = lambda log: [r for r in log if r["split"] == "eval"][0]
    assert first_eval(plain)["val"] == first_eval(noisy)["val"]  # evaluation sees clean embeddings
    assert train_losses(plain)[1] != train_losses(noisy)[1]


def test_active_forgetting_resets_token_embeddings(tmp_path, char_data):
    flags = ("--max_iters", 4, "--eval_interval", 4, "--save_every", 2)
    run(tmp_path / "a", char_data, *flags, "--forget_every", 2)  # resets after step 2; not after the last, 4
    run(tmp_path / "b", char_data, *flags)
    a2, b2 = (load_checkpoint(str(tmp_path / d / "ckpt_000002.pt")) for d in "ab")
    wte = "transformer.wte.weight"
    assert not torch.equal(a2["model"][wte], b2["model"][wte])
    assert a2["model"][wte].std().item() == pytest.approx(0.02, rel=0.1)
    assert torch.equal(a2["model"]["transformer.h.0.mlp.c_fc.weight"], b2["model"]["transformer.h.0.mlp.c_fc.weight"])
    a4, b4 = (load_checkpoint(str(tmp_path / d)) for d in "ab")
    # its Adam moments went with it: they restarted after step 2, so they count 2 steps where the others count 4
    steps = lambda ckpt: sorted(int(s["step"]) for s in ckpt["optimizer"]["state"].values())
    assert steps(b4) == [4] * len(steps(b4)) and steps(a4) == [2] + [4] * (len(steps(b4)) - 1)
    assert not torch.equal(a4["model"][wte], a2["model"][wte])  # the final model was not reset


def test_eval_datasets_logged(tmp_path, char_data):
    log = run(tmp_path, char_data, "--max_iters", 1, "--eval_datasets", char_data)
    ev = [r for r in log if r["split"] == "eval"][0]
    assert f"val_{char_data}" in ev and ev[f"ppl_val_{char_data}"] > 1


def test_mid_training_from_gpt2_weights(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_positions=64, n_embd=32, n_layer=2, n_head=2))
    hf.save_pretrained(tmp_path / "gpt2-tiny")
    data = tmp_path / "bpe"
    dataprep.prepare("bpe", dataprep.source_documents("austen")[:3], {"name": "gpt2"}, out_dir=data, verbose=False)
    run(tmp_path / "out", str(data), "--init_from", tmp_path / "gpt2-tiny", "--max_iters", 0, "--block_size", 64)
    saved = load_checkpoint(str(tmp_path / "out"))
    ref = load_gpt2(str(tmp_path / "gpt2-tiny")).state_dict()
    assert saved["model_args"]["vocab_size"] == 50257 and saved["tokenizer"] == {"name": "gpt2"}
    assert all(torch.equal(saved["model"][k], ref[k]) for k in ref)


def test_ddp_two_processes_follow_one(tmp_path, char_data):
    """Two gloo processes with one micro-batch each = one process with two, at the same global batch."""
    args = ["--dataset", char_data, *TINY, "--max_iters", "4", "--eval_interval", "4", "--gradient_accumulation_steps",
            "2"]
    train.main(args + ["--out_dir", str(tmp_path / "one")])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_RANK"))}
    env["OMP_NUM_THREADS"] = "1"
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    os.path.join(ROOT, "train.py"), *args, "--out_dir", str(tmp_path / "two")],
                   check=True, env=env, cwd=ROOT, capture_output=True, timeout=300)
    one, two = (train_losses([json.loads(l) for l in open(tmp_path / d / "log.jsonl")]) for d in ("one", "two"))
    assert set(one) == set(two) == {1, 2, 3, 4}
    assert all(abs(one[i] - two[i]) < 1e-5 for i in one)
    a, b = load_checkpoint(str(tmp_path / "one"))["model"], load_checkpoint(str(tmp_path / "two"))["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def bad_run(tmp_path, char_data, kind):
    """Make what the bad input needs -> (flags, the one line train.py must stop with)."""
    out = tmp_path / "out"
    if kind == "out_dir is a file":
        out.write_text("not a folder")
        return [], f"error: --out_dir {out} is a file, not a folder"
    if kind == "weights do not fit model_args":
        run(out, char_data, "--max_iters", 0)
        ckpt = torch.load(out / "ckpt.pt", weights_only=True)
        ckpt["model_args"]["vocab_size"] += 64
        torch.save(ckpt, out / "ckpt.pt")
        return ["--init_from", "resume"], (f"error: cannot resume: {out}/ckpt.pt: weights do not match model_args "
                                           "(first mismatch: transformer.wte.weight)")
    if kind == "init_from a file that is no checkpoint":
        (tmp_path / "x.pt").write_bytes(b"\x00 not a checkpoint")
        return ["--init_from", str(tmp_path / "x.pt")], (
            f"error: --init_from: {tmp_path}/x.pt is not a readable checkpoint: it is not the zip archive torch.save "
            "writes")
    if kind == "corrupt checkpoint":
        run(out, char_data, "--max_iters", 0)
        data = (out / "ckpt.pt").read_bytes()
        (out / "ckpt.pt").write_bytes(data[:len(data) // 2])  # cut short, as by a copy that did not finish
        return ["--init_from", "resume"], (f"error: cannot resume: {out}/ckpt.pt is not a readable checkpoint: it is "
                                           "corrupt or incomplete (a copy or a save that did not finish?)")
    if kind == "a snapshot copied over ckpt.pt":
        run(out, char_data, "--max_iters", 1, "--save_every", 1)
        shutil.copy(out / "ckpt_000000.pt", out / "ckpt.pt")  # the natural way back to an earlier step
        return ["--init_from", "resume"], (f"error: cannot resume: {out}/ckpt.pt is a --save_every snapshot (weights "
                                           "only, no optimizer or RNG state); start a new run from its weights with "
                                           f"--init_from {out}/ckpt.pt")
    if kind == "killed before its first checkpoint":
        out.mkdir()
        (out / "config.json").write_text("{}")
        (out / "train.lock").write_text("")
        return [], (f"error: --out_dir {out} holds a run that stopped before its first checkpoint (config.json): "
                    "start it again with --overwrite, or choose another --out_dir")
    if kind == "init_from with another shape":
        run(tmp_path / "small", char_data, "--max_iters", 0)
        return ["--init_from", str(tmp_path / "small"), "--n_layer", "4"], (
            f"error: --init_from {tmp_path / 'small'} with --n_layer 4: the checkpoint's weights fix the model to "
            "n_layer 2, n_head 2, n_embd 32, n_inner None, bias True")
    flags, line = {
        "mps": (["--device", "mps"], "error: --device mps, but MPS (Apple's GPU backend) is not available here"),
        "n_head 0": (["--n_head", "0"], "error: --n_head must be at least 1, got 0"),
        "block_size 1": (["--block_size", "1"], "error: --block_size must be at least 2, got 1"),
        "disp_coeff nan": (["--disp_coeff", "nan"],
                           "error: argument --disp_coeff: not a finite number: 'nan' (see python train.py --help)"),
        "learning_rate inf": (["--learning_rate", "inf"], "error: argument --learning_rate: not a finite number: "
                                                          "'inf' (see python train.py --help)"),
        "a batch no memory holds": (["--batch_size", "100000000"], "error: one micro-batch of 100000000 x 32 tokens "
                                    "needs at least 15,258.8 GiB of activations for this model; cpu has"),
        "disp_max_tokens 1": (["--disp_max_tokens", "1"],
                              "error: --disp_max_tokens must be 0 (every token) or at least 2: a pair needs two tokens"),
        "beta1": (["--beta1", "1.5"], "error: --beta1 must be in [0, 1), got 1.5"),
        "cond_texts": (["--cond_texts", "0"], "error: --cond_texts must be at least 1, got 0"),
        "weight_decay": (["--weight_decay", "-1"], "error: --weight_decay must not be negative, got -1.0"),
        "min_lr": (["--min_lr", "-1"], "error: --min_lr must not be negative, got -1.0"),
        "overwrite and resume": (["--overwrite", "--init_from", "resume"],
                                 "error: --overwrite starts a new run and --init_from resume continues one: give one "
                                 "of them"),
        "absolute dataset path": (["--dataset", f"{tmp_path}/mine"],
                                  f"error: dataset '{tmp_path}/mine' is not prepared ({tmp_path}/mine/meta.json not "
                                  "found); run: python data/prepare.py mine --input FILE.txt|FILE.jsonl --out_dir "
                                  f"{tmp_path}/mine"),
    }[kind]
    return flags, line


@pytest.mark.parametrize("kind", ["mps", "beta1", "cond_texts", "weight_decay", "min_lr", "overwrite and resume",
                                  "absolute dataset path", "out_dir is a file", "weights do not fit model_args",
                                  "init_from a file that is no checkpoint", "corrupt checkpoint",
                                  "a snapshot copied over ckpt.pt", "killed before its first checkpoint",
                                  "init_from with another shape", "n_head 0", "block_size 1", "disp_coeff nan",
                                  "learning_rate inf", "a batch no memory holds", "disp_max_tokens 1"])
def test_bad_input_gives_one_exact_line(tmp_path, char_data, kind):
    if kind == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    flags, line = bad_run(tmp_path, char_data, kind)
    out = tmp_path / "out"
    before = sorted(os.listdir(out)) if out.is_dir() else None
    with pytest.raises(SystemExit) as e:
        train.main(["--dataset", char_data, "--out_dir", str(out), *TINY, *flags])
    assert e.value.code == line or (kind == "a batch no memory holds" and e.value.code.startswith(line))
    assert "\n" not in e.value.code
    assert (sorted(os.listdir(out)) if out.is_dir() else None) == before  # nothing written, nothing half-written


def test_mfu_never_exceeds_one(monkeypatch):
    monkeypatch.setattr(mfu, "CPU_PEAK", {})
    net = GPT(train.GPTConfig(block_size=32, vocab_size=64, n_layer=2, n_head=2, n_embd=32))
    a = train.build_parser().parse_args(["--block_size", "32"])
    env = SimpleNamespace(world=1, device=torch.device("cpu"))
    run_ = SimpleNamespace(args=a, model=net, env=env, peak=1e9)
    rate = 1e9 / net.flops_per_token(32)  # tokens/s at exactly the measured peak
    assert train.step_mfu(run_, rate / 2) == pytest.approx(0.5)
    assert train.step_mfu(run_, rate * 3) == 1.0 and run_.peak == pytest.approx(3e9)  # a faster step raises the peak
    assert train.step_mfu(run_, rate) == pytest.approx(1 / 3)
    assert mfu.CPU_PEAK[torch.get_num_threads()] == run_.peak  # and later runs in this process start from it
