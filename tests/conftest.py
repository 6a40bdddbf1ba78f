"""Shared by the test files: `python -m pytest --runslow` also runs the tests marked @pytest.mark.slow (without it
they are skipped), and the tiny training runs of test_train.py and test_compile.py (a 2-layer, 32-wide model on 15
Austen chapters)."""

import json
import os

import pytest

import train
from data import prepare as dataprep

# the tiny model and schedule; each test file adds its own --compile or --no-compile
TINY = ["--n_layer", "2", "--n_head", "2", "--n_embd", "32", "--block_size", "32", "--batch_size", "4",
        "--eval_iters", "2", "--log_interval", "1", "--cond_texts", "2", "--warmup_iters", "2", "--device", "cpu",
        "--learning_rate", "3e-3"]


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def tiny_dataset(tmp_path_factory, tokenizer):
    """15 Austen chapters prepared with tokenizer ("char" or "gpt2") in a fresh folder -> its path."""
    out = tmp_path_factory.mktemp("data") / f"tiny_{tokenizer}"
    dataprep.prepare(out.name, dataprep.source_documents("austen")[:15], {"name": tokenizer}, out_dir=out,
                     verbose=False)
    return str(out)


@pytest.fixture(scope="module")
def char_data(tmp_path_factory):
    return tiny_dataset(tmp_path_factory, "char")


@pytest.fixture(scope="module")
def bpe_data(tmp_path_factory):
    return tiny_dataset(tmp_path_factory, "gpt2")


def run_tiny(out_dir, data, *flags):
    """train.py on the tiny model with flags -> the run's log.jsonl records."""
    train.main(["--dataset", data, "--out_dir", str(out_dir), *TINY, *map(str, flags)])
    with open(os.path.join(out_dir, "log.jsonl")) as f:
        return [json.loads(line) for line in f]
