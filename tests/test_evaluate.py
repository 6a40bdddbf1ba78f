"""evaluate.py and data/tasks.py: lm-evaluation-harness's scoring rules on hand-built items with a model whose
log-probabilities are known, its tokenization and few-shot rules, its statistics against direct computations,
batch-size invariance, our GPT-2 against transformers' GPT-2, and every bad input."""

import dataclasses
import json
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import evaluate as ev
from support import checks, load
import model
from data import tasks as taskdata
from data.tokenizer import GPT2_RANKS_FILE, get_tokenizer

CHARS = "\n !',.:?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def char_model(max_len=None, vocab=None):
    """A model description as load.open_model gives it, for the char tokenizer over CHARS (one id per character)."""
    encode, decode = get_tokenizer({"name": "char", "chars": CHARS})
    return dict(name="bigram", encode=encode, decode=decode, bos=None, eot=CHARS.index("\n"), chars=None,
                max_len=max_len, vocab=vocab or len(CHARS))


def bigram_run(seed=0):
    """A bigram model: the next token's logits depend on the current token alone, through a fixed random table;
    -> (run for evaluate.loglikelihoods, the table of log-probabilities as numpy)."""
    table = torch.randn(len(CHARS), len(CHARS), generator=torch.Generator().manual_seed(seed)) * 3
    return (lambda idx, rows, cols: table[idx[rows, cols]]), F.log_softmax(table.double(), -1).numpy()


def direct_ll(logp, context, continuation):
    """The log-likelihood of a continuation under the bigram table, token by token, and whether each is the argmax."""
    ids = [CHARS.index(c) for c in context + continuation]
    steps = range(len(context), len(ids))
    return sum(logp[ids[t - 1], ids[t]] for t in steps), all(logp[ids[t - 1]].argmax() == ids[t] for t in steps)


def task_of(items, examples=None, name="t", **settings):
    return dict(name=name, path="-", items=items, examples=examples, settings=taskdata.TASK_DEFAULTS | settings)


def score(items, m=None, run=None, **kw):
    m = m or char_model()
    run = run or bigram_run()[0]
    built = ev.build_requests(task_of(items), m, kw.pop("num_fewshot", 0))
    return ev.score_task(run, built, m["max_len"], bootstrap_iters=kw.pop("bootstrap_iters", 0), **kw)


def tiny_gpt(seed=0, block_size=64, vocab=len(CHARS)):
    torch.manual_seed(seed)
    net = model.GPT(model.GPTConfig(block_size=block_size, vocab_size=vocab, n_layer=2, n_head=2, n_embd=16)).eval()
    with torch.no_grad():  # larger weights than the init: log-probabilities that differ clearly between choices
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net


# ------------------------------------------------------------------------------------------------ scoring rules

def test_choice_metrics_against_the_bigram_model():
    _, logp = bigram_run()
    items = [{"context": "The cat sat on the", "choices": ["mat.", "dog, who ran off.", "hat"], "gold": 0},
             {"context": "Question: Where?\nAnswer:", "choices": ["Here", "Over there by the door", "No"], "gold": 1},
             {"context": "It was", "choices": ["a", "b", "c", "d"], "gold": 3, "delimiter": ": "},
             # one-token choices after one context: a single row of the batch serves all four
             {"context": "It was", "choices": ["a", "b", "c", "d"], "gold": 2, "delimiter": ""}]
    metrics, records = score(items)
    for x, r in zip(items, records):
        d = x.get("delimiter", " ")
        ref = [direct_ll(logp, x["context"], d + c)[0] for c in x["choices"]]
        assert np.allclose(r["loglikelihoods"], ref, atol=1e-4)
        assert r["acc"] == float(np.argmax(ref) == x["gold"])
        assert r["acc_norm"] == float(np.argmax(np.array(ref) / [len(c) for c in x["choices"]]) == x["gold"])
        assert r["acc_token"] == float(np.argmax(np.array(ref) / [len(d + c) for c in x["choices"]]) == x["gold"])
    for key in ("acc", "acc_norm", "acc_token"):
        v = [r[key] for r in records]
        assert metrics[key] == pytest.approx(np.mean(v))
        assert metrics[key + "_stderr"] == pytest.approx(np.std(v, ddof=1) / math.sqrt(len(v)))


def test_acc_and_acc_norm_pick_differently_when_lengths_differ():
    # a long choice collects more negative log-likelihood: acc prefers the short one, acc_norm can prefer the long
    _, logp = bigram_run()
    context, short, long = "It was", "a", "a very long and winding answer"
    ll_s, ll_l = (direct_ll(logp, context, " " + c)[0] for c in (short, long))
    assert ll_s > ll_l
    norm_pick = int(ll_l / len(long) > ll_s / len(short))
    _, (r,) = score([{"context": context, "choices": [short, long], "gold": 1}])
    assert r["acc"] == 0.0 and r["acc_norm"] == float(norm_pick == 1)


def test_partial_scoring_winogrande():
    _, logp = bigram_run()
    item = {"contexts": ["Anna gave Beth the book because Anna", "Anna gave Beth the book because Beth"],
            "continuation": "was kind.", "gold": 0}
    _, (r,) = score([item])
    ref = [direct_ll(logp, c, " was kind.")[0] for c in item["contexts"]]
    assert np.allclose(r["loglikelihoods"], ref, atol=1e-4)
    assert r["acc"] == float(np.argmax(ref) == 0)


def test_lambada_greedy_match_and_perplexity():
    _, logp = bigram_run()
    # a continuation that greedy decoding produces, built from the table itself, and two that it does not
    ids = [CHARS.index("T")]
    for _ in range(4):
        ids.append(int(logp[ids[-1]].argmax()))
    greedy_text = "".join(CHARS[i] for i in ids)
    items = [{"context": greedy_text[0], "continuation": greedy_text[1:], "delimiter": ""},
             {"context": "Once upon a", "continuation": "time"}, {"context": "The end of the", "continuation": "story"}]
    metrics, records = score(items, bootstrap_iters=2000)
    ref = [direct_ll(logp, x["context"], x.get("delimiter", " ") + x["continuation"]) for x in items]
    assert [r["acc"] for r in records] == [float(g) for _, g in ref]
    assert records[0]["acc"] == 1.0
    assert np.allclose([r["loglikelihood"] for r in records], [ll for ll, _ in ref], atol=1e-4)
    assert metrics["perplexity"] == pytest.approx(math.exp(-np.mean([ll for ll, _ in ref])), rel=1e-4)
    assert metrics["perplexity_stderr"] > 0


def test_mc2_is_the_normalised_mass_of_the_true_answers():
    _, logp = bigram_run()
    item = {"context": "Q: Is it so?\nA:", "choices": ["Yes.", "It is.", "No.", "Never."], "labels": [1, 1, 0, 0]}
    _, (r,) = score([item])
    p = np.exp([direct_ll(logp, item["context"], " " + c)[0] for c in item["choices"]])
    assert r["acc"] == pytest.approx(p[:2].sum() / p.sum(), rel=1e-4)


# ------------------------------------------------------------------------------------------------ tokenization

@pytest.fixture(scope="module")
def gpt2():
    encode, decode = get_tokenizer({"name": "gpt2"})
    return dict(name="gpt2", encode=encode, decode=decode, bos=None, eot=50256, chars=None, max_len=1024, vocab=50257)


def test_continuation_is_split_from_the_whole_text(gpt2):
    pair, enc = ev.pair_encoder(gpt2), gpt2["encode"]
    # "foobar" is two tokens whose second is not the token of "bar" alone: the whole text's tokens decide
    ctx, cont = pair("foo", "bar")
    assert ctx == enc("foo") and cont == enc("foobar")[len(enc("foo")):] and cont != enc("bar")
    # trailing whitespace of the context moves to the front of the continuation
    assert pair("Answer: ", "A") == pair("Answer:", " A") == (enc("Answer:"), enc(" A"))


def test_empty_context_becomes_one_token(gpt2):
    assert ev.pair_encoder(gpt2)("", "Hello there") == ([50256], gpt2["encode"]("Hello there"))
    with_bos = dict(gpt2, bos=7)
    assert ev.pair_encoder(with_bos)("", "Hi") == ([7], gpt2["encode"]("Hi"))
    # a tokenizer that adds its BOS itself: the BOS stays in front of a context, once, and not doubled when empty
    adds = dict(gpt2, bos=7, encode=lambda s: [7] + gpt2["encode"](s))
    assert ev.pair_encoder(adds)("", "Hi") == ([7], gpt2["encode"]("Hi"))
    assert ev.pair_encoder(adds)("Say", " hi") == ([7] + gpt2["encode"]("Say"), gpt2["encode"](" hi"))
    with pytest.raises(ev.EvalError, match="neither a BOS nor an end-of-text"):
        ev.pair_encoder(dict(gpt2, eot=None))("", "Hi")


def test_long_inputs_are_cut_from_the_left_keeping_the_continuation():
    net = tiny_gpt()
    run = ev.position_logits({"net": net})
    ctx, cont = list(range(3, 30)), [5, 9, 11]
    (ll, greedy), = ev.loglikelihoods(run, [(ctx, cont)], max_len=10)
    window = (ctx + cont)[-11:]  # the model sees the last 10 tokens of the input; the continuation is inside them
    with torch.no_grad():
        logp = F.log_softmax(net(torch.tensor([window[:-1]]))[0][0].double(), -1)
    ref = sum(logp[len(window) - 1 - len(cont) + j, t] for j, t in enumerate(cont))
    assert ll == pytest.approx(float(ref), abs=1e-4)
    built = ev.build_requests(task_of([{"context": "a" * 30, "choices": ["bcd"], "gold": 0}]), char_model(10))
    assert built["truncated"] == 1


# ------------------------------------------------------------------------------------------------ batching

def test_batch_size_does_not_change_any_loglikelihood():
    rng = np.random.default_rng(0)
    words = "the cat sat on a mat and ran far away from home".split()
    text = lambda n: " ".join(rng.choice(words, n))
    items = [{"context": text(rng.integers(1, 12)), "choices": [text(rng.integers(1, 6)) for _ in range(3)],
              "gold": 0} for _ in range(12)]
    run = ev.position_logits({"net": tiny_gpt()})
    one = score(items, char_model(64), run, batch_size=1)[1]
    sixteen = score(items, char_model(64), run, batch_size=16)[1]
    assert np.abs(np.array([r["loglikelihoods"] for r in one]) -
                  np.array([r["loglikelihoods"] for r in sixteen])).max() < 1e-5


# ------------------------------------------------------------------------------------------------ few-shot

def test_fewshot_prompt_is_the_hand_written_string():
    examples = [{"context": f"Question: q{i}?\nAnswer:", "choices": [f"a{i}", f"b{i}"], "gold": i % 2}
                for i in range(6)]
    item = {"context": "Question: mine?\nAnswer:", "choices": ["x", "y"], "gold": 0, "description": "About q.\n\n"}
    (prefix,) = ev.fewshot_prefixes(task_of([item], examples), [0], 2)
    i, j = random.Random(1234).sample(range(6), 2)  # lm-evaluation-harness's draw
    expected = (f"About q.\n\nQuestion: q{i}?\nAnswer: {examples[i]['choices'][i % 2]}\n\n"
                f"Question: q{j}?\nAnswer: {examples[j]['choices'][j % 2]}\n\n")
    assert prefix == expected
    assert ev.requests_of(item, prefix)[1] == (expected + "Question: mine?\nAnswer:", " y")
    # winogrande: an example is its whole sentence; lambada: its whole text
    wino = {"contexts": ["Ann thanked Bo because Ann", "Ann thanked Bo because Bo"], "continuation": "was kind.",
            "gold": 1}
    assert ev.render_example(wino) == "Ann thanked Bo because Bo was kind.\n\n"
    assert ev.render_example(taskdata.lambada({"text": "it was a dark night"})) == "it was a dark night\n\n"


def test_no_item_is_its_own_example_and_first_n_keeps_to_the_group():
    items = [{"context": f"c{i}", "choices": ["a", "b"], "gold": 0} for i in range(5)]
    prefixes = ev.fewshot_prefixes(task_of(items), range(5), 4)  # no few-shot file: the items are the pool
    for x, p in zip(items, prefixes):
        assert ev.render_example(x) not in p and p.count("\n\n") == 4
    examples = [{"context": f"{g}{i}", "choices": ["a"], "gold": 0, "group": g} for g in "xy" for i in range(3)]
    grouped = [{"context": "q", "choices": ["a"], "gold": 0, "group": g} for g in "yx"]
    got = ev.fewshot_prefixes(task_of(grouped, examples, sampler="first_n"), [0, 1], 2)
    assert got == ["y0 a\n\ny1 a\n\n", "x0 a\n\nx1 a\n\n"]


def test_limit_applies_to_each_group():
    items = [{"context": "q", "choices": ["a"], "gold": 0, "group": g} for g in "aabbbc"]
    assert ev.first_items(items, 2) == [0, 1, 2, 3, 5] and ev.first_items(items, None) == list(range(6))


# ------------------------------------------------------------------------------------------------ statistics

def test_perplexity_stderr_is_lm_evaluation_harness_bootstrap_draw_for_draw():
    lls = list(np.random.default_rng(1).normal(-3, 1, 40))
    stats = []
    for i in range(3):  # its procedure, written out with the random module: 1000 resamples per seeded chunk
        rnd = random.Random(i)
        stats += [math.exp(-sum(s) / len(s)) for s in (rnd.choices(lls, k=len(lls)) for _ in range(1000))]
    mu = sum(stats) / len(stats)
    ref = math.sqrt(sum((x - mu) ** 2 for x in stats) / (len(stats) - 1))
    assert ev.perplexity_stderr(lls, 3000) == pytest.approx(ref, rel=1e-9)


def test_pooled_stderr_of_groups():
    v = [1, 0, 1, 1, 0, 0, 1, 0, 1]
    g = list("aaaabbbbb")
    se = {k: np.std([x for x, h in zip(v, g) if h == k], ddof=1) / math.sqrt(g.count(k)) for k in "ab"}
    ref = math.sqrt(((4 - 1) * se["a"] ** 2 * 4 + (5 - 1) * se["b"] ** 2 * 5) / (9 - 2) / 9)
    assert ev.pooled_stderr(v, g) == pytest.approx(ref)


def test_paired_bootstrap():
    rng = np.random.default_rng(0)
    a = {"t1": rng.integers(0, 2, 200).tolist(), "t2": rng.integers(0, 2, 100).tolist()}
    b = {"t1": [1] * 200, "t2": a["t2"]}
    r = ev.paired_bootstrap(a, b, 2000, seed=3)
    assert r == ev.paired_bootstrap(a, b, 2000, seed=3)  # the same seed and items: the same numbers
    assert r["t1"]["diff"] == pytest.approx(1 - np.mean(a["t1"])) and r["t1"]["p"] < 0.01
    assert r["t2"] == {"diff": 0.0, "ci": [0.0, 0.0], "p": 1.0, "n": 100}
    assert r["macro"]["diff"] == pytest.approx(r["t1"]["diff"] / 2)
    assert r["macro"]["ci"][0] < r["macro"]["diff"] < r["macro"]["ci"][1]


# ------------------------------------------------------------------------------------------------ data/tasks.py

def test_task_formatting_follows_lm_evaluation_harness():
    hs = taskdata.hellaswag({"activity_label": "Roof", "ctx_a": "A man is on a roof.", "ctx_b": "he",
                             "endings": ["pulls [title] Shingles off.", " is [step] up there. "], "label": "1"})
    assert hs == {"context": "Roof: A man is on a roof. He", "choices": ["pulls. Shingles off.", "is up there."],
                  "gold": 1}
    assert taskdata.winogrande({"sentence": "Ann thanked Bo because _ was kind.", "option1": "Ann",
                                "option2": "Bo", "answer": "2"}) == {
        "contexts": ["Ann thanked Bo because Ann", "Ann thanked Bo because Bo"], "continuation": "was kind.", "gold": 1}
    assert taskdata.lambada({"text": "he opened the door"}) == {"context": "he opened the", "continuation": "door"}
    assert taskdata.arc({"question": "Why?", "choices": {"text": ["x", "y"], "label": ["1", "2"]},
                         "answerKey": "2"}) == {"context": "Question: Why?\nAnswer:", "choices": ["x", "y"], "gold": 1}
    assert taskdata.openbookqa({"question_stem": "Sun is", "choices": {"text": ["hot", "cold"], "label": ["A", "B"]},
                                "answerKey": " A"})["gold"] == 0
    mm = taskdata.mmlu({"question": " What? ", "choices": ["1", "2", "3", "4"], "answer": 2}, "high_school_physics")
    assert mm["context"] == "What?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:" and mm["choices"] == ["A", "B", "C", "D"]
    assert mm["description"] == ("The following are multiple choice questions (with answers) about "
                                 "high school physics.\n\n")
    assert taskdata.anli({"premise": "P.", "hypothesis": "H.", "label": 2})["context"] == \
        "P.\nQuestion: H. True, False, or Neither?\nAnswer:"
    med = taskdata.medmcqa({"question": "Q?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 3})
    assert med["context"] == "Question: Q?\nChoices:\nA. a\nB. b\nC. c\nD. d\nAnswer:" and med["gold"] == 3
    tq = taskdata.truthfulqa_mc2({"question": "Q?", "mc2_targets": {"choices": ["t", "f"], "labels": [1, 0]}})
    assert tq["context"].startswith("Q: What is human life expectancy") and tq["context"].endswith("\n\nQ: Q?\nA:")
    for fmt_item in (hs, mm, med, tq):
        ev.check_item(fmt_item, "formatted")
    assert len(taskdata.PAPER_TASKS) == 10 and taskdata.PRESETS["all"][-1] == "hellaswag"


# ------------------------------------------------------------------------------------------------ the command line

@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    """A tiny GPT-2 with random weights, saved by transformers with GPT-2's tokenizer (converted offline)."""
    transformers = pytest.importorskip("transformers")
    from tiktoken_ext.openai_public import r50k_pat_str
    from transformers.convert_slow_tokenizer import TikTokenConverter
    folder = tmp_path_factory.mktemp("gpt2") / "tiny"
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=TikTokenConverter(
        vocab_file=str(GPT2_RANKS_FILE), pattern=r50k_pat_str).converted())
    tok.bos_token = tok.eos_token = "<|endoftext|>"
    torch.manual_seed(0)
    net = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=50257, n_positions=64, n_embd=32,
                                                               n_layer=2, n_head=4))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    net.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def write_task(path, items):
    path.write_text("".join(json.dumps(x) + "\n" for x in items))
    return str(path)


ITEMS = [{"context": "The cat sat on the", "choices": ["mat.", "dog, which barked.", "moon"], "gold": 0},
         {"context": "Question: What is two plus two?\nAnswer: ", "choices": ["4", "five", "22"], "gold": 0},
         {"context": "", "choices": ["Hello there", "Goodbye"], "gold": 1}]


def test_our_gpt2_and_transformers_gpt2_agree(tmp_path, gpt2_dir):
    task = write_task(tmp_path / "mine.jsonl", ITEMS)
    report = ev.main([str(gpt2_dir), "hf:" + str(gpt2_dir), "--tasks", task, "--out", str(tmp_path / "o"),
                      "--paired", "--n_boot", "200"])
    ours, hf = (m["tasks"]["mine"] for m in report["models"])
    assert [m["kind"] for m in report["models"]] == ["gpt2", "hf"]
    assert [r["index"] for r in ours["items"]] == [0, 1, 2]  # file order
    diff = np.abs(np.array(sum((r["loglikelihoods"] for r in ours["items"]), [])) -
                  np.array(sum((r["loglikelihoods"] for r in hf["items"]), []))).max()
    assert diff < 1e-4
    assert report["pairs"][0]["macro"]["diff"] == pytest.approx(hf["metrics"]["acc"] - ours["metrics"]["acc"])
    saved = json.loads((tmp_path / "o" / "benchmarks.json").read_text())
    assert saved["models"][0]["tasks"]["mine"]["metrics"] == ours["metrics"]
    assert (tmp_path / "o" / "benchmarks.png").stat().st_size > 0
    rows = (tmp_path / "o" / "benchmarks.csv").read_text().splitlines()
    assert rows[0].startswith("model,task,n,") and len(rows) == 3


def write_checkpoint(path, block_size=64):
    net = tiny_gpt(block_size=block_size)
    torch.save({"model": net.state_dict(), "model_args": dataclasses.asdict(net.config),
                "tokenizer": {"name": "char", "chars": CHARS}, "iter_num": 0, "tokens_seen": 0, "config": {}}, path)
    return str(path)


def test_every_bad_input_stops_with_one_line(tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "ckpt.pt", block_size=8)
    good = write_task(tmp_path / "good.jsonl", ITEMS[:2])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ITEMS[0]) + "\n{not json\n")
    cases = {
        "unknown task 'nosuch'": ["--tasks", "nosuch"],
        f"task hellaswag is not prepared ({tmp_path / 'hellaswag.jsonl'} not found); run: "
        "python data/prepare.py hellaswag": ["--tasks", "hellaswag", "--task_dir", str(tmp_path)],
        f"{bad}:2: not valid JSON": ["--tasks", str(bad)],
        "long item 1: its continuation is 11 tokens, longer than": [
            "--tasks", write_task(tmp_path / "long.jsonl", [{"context": "a", "continuation": "bcdefghijk"}])],
        f"{tmp_path / 'gold.jsonl'}:1: 'gold' must be an index into its 2 choices": [
            "--tasks", write_task(tmp_path / "gold.jsonl", [{"context": "a", "choices": ["b", "c"], "gold": 2}])],
        "--paired takes models in pairs": ["--tasks", good, "--paired"],
    }
    for message, args in cases.items():
        with pytest.raises(SystemExit) as e:
            ev.main([ckpt, *args, "--out", str(tmp_path / "out")])
        assert str(e.value.code).startswith("error: " + message), (message, e.value.code)
        assert "\n" not in str(e.value.code)
    with pytest.raises(SystemExit) as e:
        ev.main([ckpt, "--tasks", good, "--limit", "0"])
    assert e.value.code == ("error: argument --limit: must be a positive number of items or `all`, got '0' "
                            "(see python evaluate.py --help)")  # one line, not argparse's usage block
    assert capsys.readouterr().err == ""


def test_an_unwritable_out_stops_before_the_scoring(tmp_path, monkeypatch, capsys):
    ckpt = write_checkpoint(tmp_path / "ckpt.pt", block_size=8)
    good = write_task(tmp_path / "good.jsonl", ITEMS[:2])
    real = checks.os.access
    monkeypatch.setattr(checks.os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real(p, mode))
    monkeypatch.setattr(ev, "evaluate_all", lambda args: pytest.fail("scored before --out was checked"))
    with pytest.raises(SystemExit) as e:
        ev.main([ckpt, "--tasks", good, "--out", str(tmp_path / "ro")])
    assert e.value.code == f"error: --out {tmp_path / 'ro'} is not writable ({tmp_path} does not let this user write)"
    assert not (tmp_path / "out").exists()  # nothing written


def test_training_subset(tmp_path):
    task = write_task(tmp_path / "mine.jsonl", [{"context": "It was", "choices": ["a", "the end"], "gold": 1}] * 5)
    net = tiny_gpt()
    built = ev.tasks_for_training([task], 3, {"name": "char", "chars": CHARS}, 64)
    got = ev.score_in_training(net.train(), built, "cpu")
    assert net.training and set(got) == {"bench_mine", "bench_mine_acc_norm"} and len(built[0]["keep"]) == 3
    m = load.open_model(write_checkpoint(tmp_path / "c.pt"))[0]
    assert ev.build_requests(ev.open_task(task), m, limit=3)["reqs"] == built[0]["reqs"]


def test_prepare_writes_both_files_through_the_formatters(tmp_path, monkeypatch):
    rows = {("cais/mmlu", s, split): [{"question": f"{s} {split}?", "choices": list("wxyz"), "answer": 1}]
            for s in taskdata.MMLU_SUBJECTS[:2] for split in ("test", "dev")}
    monkeypatch.setattr(taskdata, "MMLU_SUBJECTS", taskdata.MMLU_SUBJECTS[:2])
    monkeypatch.setitem(taskdata.TASKS, "mmlu", ("cais/mmlu", taskdata.MMLU_SUBJECTS[:2], *taskdata.TASKS["mmlu"][2:]))
    monkeypatch.setattr(taskdata, "_load_rows", lambda repo, config, split: rows[(repo, config, split)])
    assert taskdata.prepare_task("mmlu", tmp_path, verbose=False) == 2
    task = ev.open_task("mmlu", tmp_path)
    assert [x["group"] for x in task["items"]] == ["abstract_algebra", "anatomy"]
    assert task["examples"][1]["context"].startswith("anatomy dev?\nA. w") and task["settings"]["sampler"] == "first_n"
    (prefix,) = ev.fewshot_prefixes(task, [1], 1)
    assert prefix == task["items"][1]["description"] + "anatomy dev?\nA. w\nB. x\nC. y\nD. z\nAnswer: B\n\n"


def test_prepare_without_datasets_is_one_line(monkeypatch):
    import builtins
    from data import prepare
    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **kw: (_ for _ in ()).throw(ImportError(name))
                        if name == "datasets" else real_import(name, *a, **kw))
    with pytest.raises(SystemExit) as e:
        prepare.main(["hellaswag"])
    assert str(e.value.code) == ("error: preparing benchmark tasks needs the Hugging Face `datasets` package and "
                                 "network access: pip install datasets")


def test_train_logs_benchmarks_at_each_eval(tmp_path):
    import train
    task = write_task(tmp_path / "mine.jsonl", [{"context": "It was a", "choices": ["day", "night"], "gold": 1}] * 4)
    train.main(["--max_iters", "2", "--eval_interval", "1", "--eval_iters", "1", "--n_layer", "1", "--n_head", "2",
                "--n_embd", "16", "--batch_size", "2", "--block_size", "32", "--out_dir", str(tmp_path / "run"),
                "--eval_tasks", task, "--eval_task_items", "3", "--device", "cpu", "--no-compile"])
    evals = [json.loads(line) for line in open(tmp_path / "run" / "log.jsonl") if '"eval"' in line]
    assert len(evals) == 3 and all(0 <= r["bench_mine"] <= 1 and "bench_mine_acc_norm" in r for r in evals)
    with pytest.raises(SystemExit) as e:
        train.main(["--out_dir", str(tmp_path / "run2"), "--eval_tasks", str(tmp_path / "none.jsonl"),
                    "--max_iters", "1"])
    assert str(e.value.code) == f"error: --eval_tasks: task file {tmp_path / 'none.jsonl'} not found"
    assert not (tmp_path / "run2").exists()
