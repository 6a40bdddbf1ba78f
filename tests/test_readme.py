"""The README and docs say what works: every command in them parses as its script reads it, every train.py
flag is documented, and the lab runs as written at toy size and leaves the figures it tells a reader to open."""

import os
import re
import shlex
from pathlib import Path

import pytest

import evaluate
import export
import measure
import sample
import train

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "experiments" / "README.md"]
PARSERS = {"train.py": lambda argv: train.parse_args(argv), "measure.py": measure.parse_args,
           "sample.py": sample.parse_args, "evaluate.py": evaluate.parse_args}


def commands(path):
    """The `python ...` commands of a Markdown file's bash blocks, continuation lines joined, comments cut."""
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    out = []
    for line in lines:
        for part in (p.strip() for p in line.split("&&")):
            if part.startswith(("python ", "torchrun ")):
                out.append(part)
    return out


def test_every_command_in_the_docs_parses():
    seen = 0
    for path in (p for p in DOCS if p.exists()):
        for cmd in commands(path):
            if "..." in cmd or "$" in cmd or " -m " in cmd:  # a recipe's shorthand, a loop's variable, pytest
                continue
            words = shlex.split(cmd)
            script = next(w for w in words if w.endswith(".py"))
            assert (ROOT / script).exists(), (path.name, cmd)
            if script in PARSERS:
                argv = words[words.index(script) + 1:]
                PARSERS[script](argv)  # an unknown flag or a bad value would exit with one line
                seen += 1
    assert seen > 20


def test_ci_runs_the_readme_test_command():
    """.ci/run runs exactly the test command a reader of the README types."""
    readme = [c for c in commands(ROOT / "README.md") if "pytest" in c]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if "pytest" in line
          and "pip install" not in line]
    assert readme == ["python -m pytest"] and ci == readme


def test_the_flag_reference_documents_every_flag():
    doc = (ROOT / "docs" / "flags.md").read_text()
    names = [s for action in train.build_parser()._actions for s in action.option_strings if s.startswith("--")]
    missing = [f for f in names if f not in doc and f != "--help"]
    assert not missing, f"docs/flags.md lacks {missing}"


TOY_TRAIN = ["--n_layer", "2", "--n_head", "2", "--n_embd", "32", "--block_size", "32", "--batch_size", "4",
             "--max_iters", "4", "--save_every", "2", "--eval_interval", "2", "--eval_iters", "2",
             "--cond_texts", "2", "--warmup_iters", "1", "--device", "cpu", "--no-compile"]
TOY_MEASURE = ["--n_texts", "4", "--n_boot", "20", "--device", "cpu"]


def test_the_lab_runs_as_written_at_toy_size(tmp_path, monkeypatch, capsys):
    """The README's lab, its commands taken from the README itself, each made toy-sized by flags appended after
    its own (the last of a flag wins); then the files it tells the reader to open."""
    readme = (ROOT / "README.md").read_text()
    lab = readme[readme.index("## The lab"):readme.index("## The files")]
    assert readme[:readme.index("## The lab")].count("\n") < 40 and readme.index("## The files") > 0
    assert readme[:readme.index("What to look for")].count("\n") < 80  # the lab in the first 80 lines
    (tmp_path / "lab.md").write_text(lab)
    cmds = commands(tmp_path / "lab.md")
    assert [shlex.split(c)[1] for c in cmds] == ["train.py", "train.py", "measure.py", "measure.py"]
    monkeypatch.chdir(tmp_path)
    for cmd in cmds:
        words = shlex.split(cmd)[2:]
        if cmd.startswith("python train.py"):
            train.main(words + TOY_TRAIN)
        else:
            measure.main(words + TOY_MEASURE)
    for figure in re.findall(r"`(out/[\w/]+\.png)`", lab):
        assert (tmp_path / figure).stat().st_size > 10_000, figure
    assert (tmp_path / "out" / "angular" / "ckpt_000002.pt").exists()
    export.main(["out/plain", "hf/out"])  # and the default run's export, as docs/export.md gives it
    assert (tmp_path / "hf" / "out" / "model.safetensors").exists()
    assert "rho" in capsys.readouterr().out and os.path.isdir(tmp_path / "out" / "lab_training")
