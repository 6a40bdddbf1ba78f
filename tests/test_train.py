"""train.py end to end on tiny models: exact resume, checkpoints, DDP, bad input, and the training-time losses."""

import json
import os
import subprocess
import sys

import pytest
import torch

import dispersion
import train
from data import prepare as dataprep
from model import GPT, load_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--n_layer", "2", "--n_head", "2", "--n_embd", "32", "--block_size", "32", "--batch_size", "4",
        "--eval_iters", "2", "--log_interval", "1", "--cond_texts", "2", "--warmup_iters", "2", "--device", "cpu",
        "--no-compile", "--learning_rate", "3e-3"]


@pytest.fixture(scope="module")
def char_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "tiny_char"
    dataprep.prepare("tiny_char", dataprep.source_documents("austen")[:15], {"name": "char"}, out_dir=out,
                     verbose=False)
    return str(out)


def run(out_dir, data, *extra):
    train.main(["--dataset", data, "--out_dir", str(out_dir), *TINY, *map(str, extra)])
    with open(os.path.join(out_dir, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


def train_losses(log):
    return {r["iter"]: r["loss"] for r in log if r["split"] == "train"}


def test_resume_is_bit_exact(tmp_path, char_data):
    # dropout on, so the restored RNG state matters too
    common = ("--dropout", 0.1, "--lr_decay_iters", 8, "--eval_interval", 4)
    full = train_losses(run(tmp_path / "full", char_data, "--max_iters", 8, *common))
    run(tmp_path / "split", char_data, "--max_iters", 4, *common)
    resumed = train_losses(run(tmp_path / "split", char_data, "--max_iters", 8, "--init_from", "resume", *common))
    assert set(full) == set(resumed) == set(range(1, 9))
    assert all(full[i] == resumed[i] for i in range(5, 9))  # bit for bit, not approximately
    a = load_checkpoint(str(tmp_path / "full"))["model"]
    b = load_checkpoint(str(tmp_path / "split"))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_are_plain_and_snapshots_start_at_init(tmp_path, char_data):
    run(tmp_path, char_data, "--max_iters", 4, "--eval_interval", 2, "--save_every", 2)
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".pt")) == [
        "ckpt.pt", "ckpt_000000.pt", "ckpt_000002.pt", "ckpt_000004.pt"]
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)  # no pickled classes anywhere
    assert ckpt["iter_num"] == 4 and ckpt["tokens_seen"] == 4 * 4 * 32
    assert not any(k.startswith(("_orig_mod.", "module.")) for k in ckpt["model"])
    assert ckpt["config"]["n_embd"] == 32 and ckpt["tokenizer"]["name"] == "char"
    assert not any(f.endswith(".tmp") for f in os.listdir(tmp_path))
    # the step-0 snapshot is the initialisation: the same seed gives the same model
    init = GPT.from_checkpoint(str(tmp_path / "ckpt_000000.pt"))
    torch.manual_seed(1337)
    fresh = GPT(init.config)
    assert all(torch.equal(p, q) for p, q in zip(init.state_dict().values(), fresh.state_dict().values()))
    final = GPT.from_checkpoint(str(tmp_path / "ckpt.pt")).state_dict()
    snap = GPT.from_checkpoint(str(tmp_path / "ckpt_000004.pt")).state_dict()
    assert all(torch.equal(final[k], snap[k]) for k in final)


def test_training_learns_and_logs(tmp_path, char_data, capsys):
    log = run(tmp_path, char_data, "--max_iters", 30, "--eval_interval", 30)
    evals = [r for r in log if r["split"] == "eval"]
    assert [r["iter"] for r in evals] == [0, 30]
    assert evals[-1]["val"] < evals[0]["val"] - 0.5
    for key in ("train", "val", "ppl_val", "rho", "tau", "last_cos"):
        assert key in evals[-1]
    train_rec = [r for r in log if r["split"] == "train"]
    assert len(train_rec) == 30 and all({"iter", "loss", "lr", "ce"} <= r.keys() for r in train_rec)
    assert "final val loss" in capsys.readouterr().out


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


def test_corrupt_checkpoint_fails(tmp_path, char_data):
    (tmp_path / "ckpt.pt").write_bytes(b"\x00garbage")
    with pytest.raises(SystemExit, match="not a readable checkpoint"):
        train.main(["--dataset", char_data, "--out_dir", str(tmp_path), *TINY, "--init_from", "resume"])


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
        return [r for r in log if r["split"] == "eval"][-1]["last_cos"]
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
    assert r["kd"] == pytest.approx(0.0, abs=1e-6)  # same seed, same init: teacher == student at step 0
    assert r["loss"] == pytest.approx(0.5 * r["ce"], rel=1e-5)


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
    assert len(a2["optimizer"]["state"]) == len(b2["optimizer"]["state"]) - 1  # its Adam moments are gone too
    a4, b4 = (load_checkpoint(str(tmp_path / d)) for d in "ab")
    assert len(a4["optimizer"]["state"]) == len(b4["optimizer"]["state"])  # the final model was not reset
    assert not torch.equal(a4["model"][wte], a2["model"][wte])


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
    ref = GPT.from_pretrained(str(tmp_path / "gpt2-tiny")).state_dict()
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


def test_readme_documents_every_flag():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    flags = [s for action in train.build_parser()._actions for s in action.option_strings if s.startswith("--")]
    missing = [f for f in flags if f not in readme and f != "--help"]
    assert not missing, f"README's flag table lacks {missing}"
