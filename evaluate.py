"""
Score models on downstream benchmarks with lm-evaluation-harness's rules, so that the numbers sit next to published
ones: the paper's ten tasks, HellaSwag, or any task file in the generic JSONL form (see data/tasks.py).

    python data/prepare.py all                                          # once: fetch and format the tasks (network)
    python evaluate.py gpt2 --tasks hellaswag,lambada_openai             # every item of the two
    python evaluate.py out/mid_plain out/mid_angular --tasks paper --paired --out results/bench
    python evaluate.py out --tasks path/to/mine.jsonl --num_fewshot 2    # a task of your own, named by its file stem
    python evaluate.py --bench                                           # items/s on a GPT-2-124M-shaped model

MODEL is anything load.py opens: our checkpoints and run directories, GPT-2 names or directories, hf:<name or dir>.
--tasks takes task names, `paper` (the paper's ten: 500 items each and its few-shot settings unless --limit and
--num_fewshot say otherwise), `all` (the ten and hellaswag) and .jsonl files. Writes benchmarks.json (settings; per
model and task the metrics with standard errors and every item's log-likelihoods), benchmarks.csv and
benchmarks.png into --out, all at once at the end; a bad input stops everything with one line before any work.
train.py --eval_tasks scores a fixed subset at each eval through tasks_for_training() and score_in_training().
"""

import argparse
import csv
import json
import math
import os
import random
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from support import checks, load
import model as gpt
from data import tasks as taskdata
from data.prepare import DataError, jsonl_records
from data.tokenizer import eot_token, get_tokenizer, vocab_size
from support.progress import progress

FEWSHOT_SEED = 1234  # lm-evaluation-harness's: random.Random(1234) draws the few-shot examples
FEWSHOT_DELIMITER = "\n\n"  # after each few-shot example
PRESET_LIMIT = 500  # the paper scores 500 items of each task
BOOTSTRAP_ITERS = 100_000  # lm-evaluation-harness's resamples for the perplexity's standard error
DTYPES = {"float32": torch.float32, "bf16": torch.bfloat16}


class EvalError(Exception):
    """A bad input; the message is one line for the user."""


# ------------------------------------------------------------------------------------------------ tasks

def kind_of(item):
    """Which of the four generic forms an item has (data/tasks.py)."""
    if "contexts" in item:
        return "partial"
    if "choices" in item:
        return "mc2" if "labels" in item else "choice"
    return "greedy"


def check_item(x, where):
    """One clear line for an item that is not in the generic form."""
    def need(key, typ, what):
        if not isinstance(x.get(key), typ) or (typ is list and not x[key]):
            raise EvalError(f"{where}: '{key}' must be {what}")

    if not isinstance(x, dict):
        raise EvalError(f"{where}: expected a JSON object, got {type(x).__name__}")
    if not any(k in x for k in ("choices", "contexts", "continuation")):
        raise EvalError(f"{where}: not a task item: it needs 'choices', 'contexts' or 'continuation' (data/tasks.py)")
    kind = kind_of(x)
    if kind == "partial":
        need("contexts", list, "a non-empty list of strings")
        need("continuation", str, "a string")
    else:
        need("context", str, "a string")
    if kind in ("choice", "mc2"):
        need("choices", list, "a non-empty list of strings")
    elif kind == "greedy":
        need("continuation", str, "a string")
    strings = x.get("choices") or x.get("contexts")
    if strings is not None and not all(isinstance(s, str) for s in strings):
        raise EvalError(f"{where}: every entry of '{'choices' if 'choices' in x else 'contexts'}' must be a string")
    if kind == "mc2":
        labels = x["labels"]
        if not (isinstance(labels, list) and len(labels) == len(strings) and set(labels) <= {0, 1} and 1 in labels):
            raise EvalError(f"{where}: 'labels' must be 0/1, one per choice, at least one 1")
    elif kind in ("choice", "partial"):
        if not (isinstance(x.get("gold"), int) and not isinstance(x["gold"], bool) and 0 <= x["gold"] < len(strings)):
            raise EvalError(f"{where}: 'gold' must be an index into its {len(strings)} "
                            f"{'choices' if kind == 'choice' else 'contexts'}")
    for key in ("delimiter", "description", "group"):
        if key in x and not isinstance(x[key], str):
            raise EvalError(f"{where}: '{key}' must be a string")


def read_jsonl(path):
    """Items of a task file, each checked, with the line number of the first bad one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise EvalError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    items = []
    try:
        for lineno, x in jsonl_records(text, path):
            check_item(x, f"{path}:{lineno}")
            items.append(x)
    except DataError as e:  # the line that is not JSON, as data/prepare.py reports it
        raise EvalError(str(e)) from None
    if not items:
        raise EvalError(f"{path}: no items")
    return items


def open_task(spec, task_dir=taskdata.TASK_DIR):
    """A task name (prepared under task_dir) or a .jsonl file -> dict(name, path, items, examples, settings)."""
    if spec.endswith(".jsonl") or os.sep in spec:
        path = Path(spec)
        if not path.is_file():
            raise EvalError(f"task file {spec} not found")
        name = path.name.removesuffix(".jsonl")
    elif spec in taskdata.TASKS:
        name, path = spec, Path(task_dir) / f"{spec}.jsonl"
        if not path.is_file():
            raise EvalError(f"task {spec} is not prepared ({path} not found); run: python data/prepare.py {spec}")
    else:
        raise EvalError(f"unknown task {spec!r}: not a .jsonl file nor one of {', '.join(taskdata.TASKS)} "
                        f"(or {' / '.join(taskdata.PRESETS)})")
    fewshot = path.with_name(name + ".fewshot.jsonl")
    return dict(name=name, path=str(path), items=read_jsonl(path), settings=taskdata.settings(name),
                examples=read_jsonl(fewshot) if fewshot.is_file() else None)


def task_names(spec):
    """--tasks: a comma list of names, presets and files."""
    names = [n for part in spec.split(",") if part.strip() for n in taskdata.PRESETS.get(part.strip(), [part.strip()])]
    return list(dict.fromkeys(names))


def first_items(items, limit):
    """The first `limit` items, or with groups (MMLU's subjects) the first `limit` of each group, as
    lm-evaluation-harness applies --limit to each subtask; -> their indices in file order."""
    seen = {}
    keep = []
    for i, x in enumerate(items):
        g = x.get("group")
        seen[g] = seen.get(g, 0) + 1
        if limit is None or seen[g] <= limit:
            keep.append(i)
    return keep


# ------------------------------------------------------------------------------------------------ prompts

def answer_of(x):
    """The gold continuation of an item, as a few-shot example shows it."""
    kind = kind_of(x)
    if kind == "choice":
        return x["choices"][x["gold"]]
    if kind == "mc2":
        return x["choices"][x["labels"].index(1)]
    return x["continuation"]


def render_example(x):
    """A few-shot example: its context (winogrande: the context of the right option, so the whole sentence), the
    delimiter, its gold answer, and a blank line."""
    context = x["contexts"][x["gold"]] if kind_of(x) == "partial" else x["context"]
    return context + x.get("delimiter", " ") + answer_of(x) + FEWSHOT_DELIMITER


def draw(rnd, pool, k, exclude=None):
    """Indices of k few-shot examples from pool, drawn as lm-evaluation-harness's sampler draws them, so that the
    same seed gives the same examples: random.sample of k; or, when the item itself may be in the pool (exclude),
    a sample of k + 1 with the item left out and the first k kept, and if that leaves too few, a sample of k
    from the pool without it."""
    available = len(pool) if exclude is None else sum(x != exclude for x in pool)
    if k > available:
        raise EvalError(f"{k} few-shot examples asked for, only {available} available"
                        + ("" if exclude is None else " besides the item"))
    if k == 0:
        return []
    if exclude is None:
        return rnd.sample(range(len(pool)), k)
    if k + 1 <= len(pool):
        chosen = [i for i in rnd.sample(range(len(pool)), k + 1) if pool[i] != exclude][:k]
        if len(chosen) == k:
            return chosen
    return rnd.sample([i for i, x in enumerate(pool) if x != exclude], k)


def fewshot_prefixes(task, keep, k, sampler=None):
    """The text before each kept item's own context: its description, then k examples, each followed by a blank
    line. One random.Random(1234) per task (and per group), drawn from in item order, as lm-evaluation-harness does;
    examples come from the task's few-shot file, else from its own items, never the item itself."""
    s = task["settings"]
    sampler = sampler or s["sampler"]
    items, examples = task["items"], task["examples"]
    own = examples is None  # no few-shot file: the items are their own pool
    pools, rnds = {}, {}
    for x in (items if own else examples):
        pools.setdefault(x.get("group"), []).append(x)
    prefixes = []
    for i in keep:
        x = items[i]
        text = x.get("description", "")
        if k:
            g = x.get("group")
            pool = pools.get(g, [])
            if sampler == "first_n":
                chosen = [j for j, e in enumerate(pool) if not (own and e == x)][:k]
                if len(chosen) < k:
                    raise EvalError(f"{task['name']}: {k} few-shot examples asked for, only {len(chosen)} available"
                                    + (f" in group {g!r}" if g else ""))
            else:
                rnd = rnds.setdefault(g, random.Random(FEWSHOT_SEED))
                try:
                    chosen = draw(rnd, pool, k, x if (own or s["exclude_item"]) else None)
                except EvalError as e:
                    raise EvalError(f"{task['name']}: {e}" + (f" in group {g!r}" if g else "")) from None
            text += "".join(render_example(pool[j]) for j in chosen)
        prefixes.append(text)
    return prefixes


def requests_of(x, prefix):
    """(context, continuation) strings for one item; each continuation starts with the delimiter."""
    d = x.get("delimiter", " ")
    kind = kind_of(x)
    if kind == "partial":  # winogrande: the contexts differ, the continuation after the blank is shared
        return [(prefix + c, d + x["continuation"]) for c in x["contexts"]]
    if kind == "greedy":
        return [(prefix + x["context"], d + x["continuation"])]
    return [(prefix + x["context"], d + c) for c in x["choices"]]


# ------------------------------------------------------------------------------------------------ tokens

def pair_encoder(m):
    """(context, continuation) -> (context ids, continuation ids) for a model m from load.open_model, by
    lm-evaluation-harness's rules."""
    encode = m["encode"]
    if m.get("chars") is not None:  # a char model has no id for a character it never saw: such characters are dropped
        known, encode_known = m["chars"], encode
        encode = lambda text: encode_known("".join(c for c in text if c in known))
    added = encode("")  # what the tokenizer adds on its own (BOS for some hf tokenizers, nothing for GPT-2)
    prefix_token = m["bos"] if m.get("bos") is not None else m.get("eot")

    def plain(text):  # the text's tokens without the ones the tokenizer adds
        ids = encode(text)
        return ids[len(added):] if added and ids[:len(added)] == added else ids

    def pair(context, continuation):
        # trailing whitespace of the context belongs to the continuation: "Answer: " + "A" is "Answer:" + " A"
        n = len(context) - len(context.rstrip())
        if n:
            context, continuation = context[:-n], context[-n:] + continuation
        if not context:
            # an empty context becomes one token, the BOS (else the end-of-text) the model predicts the text from
            if prefix_token is None:
                raise EvalError(f"{m['name']} has neither a BOS nor an end-of-text token to stand for an empty context")
            cont = plain(continuation)
            return ([prefix_token], cont) if cont[:1] != [prefix_token] else (cont[:1], cont[1:])
        # the continuation's tokens are those of the whole text after the context's own: BPE merges across the
        # boundary then come out as the whole text would tokenize, not as the continuation alone would
        whole, ctx = encode(context + continuation), encode(context)
        return ctx, whole[len(ctx):]
    return pair


def build_requests(task, m, num_fewshot=None, limit=None):
    """Everything that can be checked before a forward pass: the kept items, their prompts and token ids.
    -> dict(task, keep, kinds, reqs: [(ctx ids, cont ids)], spans: each item's slice of reqs, num_fewshot,
    truncated: how many inputs were cut from the left to fit the model's context)."""
    k = task["settings"]["num_fewshot"] if num_fewshot is None else num_fewshot
    keep = first_items(task["items"], limit)
    prefixes = fewshot_prefixes(task, keep, k)
    pair = pair_encoder(m)
    reqs, spans, truncated = [], [], 0
    for i, prefix in zip(keep, prefixes):
        start = len(reqs)
        for context, continuation in requests_of(task["items"][i], prefix):
            ctx, cont = pair(context, continuation)
            where = f"{task['name']} item {i + 1}"
            if not cont:
                raise EvalError(f"{where}: its continuation {continuation!r} has no tokens")
            if m["max_len"] is not None and len(cont) > m["max_len"]:
                raise EvalError(f"{where}: its continuation is {len(cont)} tokens, longer than {m['name']}'s "
                                f"context of {m['max_len']}")
            top = max(ctx + cont)
            if m.get("vocab") is not None and top >= m["vocab"]:
                raise EvalError(f"{where}: token id {top} is outside {m['name']}'s vocabulary of {m['vocab']}")
            truncated += m["max_len"] is not None and len(ctx) + len(cont) > m["max_len"] + 1
            reqs.append((ctx, cont))
        spans.append((start, len(reqs)))
    return dict(task=task, keep=keep, kinds=[kind_of(task["items"][i]) for i in keep], reqs=reqs, spans=spans,
                num_fewshot=k, truncated=int(truncated))


# ------------------------------------------------------------------------------------------------ the model

def position_logits(loaded):
    """run(idx [B, T], rows [P], cols [P]) -> the model's logits [P, V] (float32) for the next token at those
    positions. The log-softmax over them (loglikelihoods) runs over every output row, as lm-evaluation-harness does
    for any model: for GPT-2 these are its 50257 tokens; a padded vocabulary's unused rows keep the tiny
    probability training left them."""
    net = loaded["net"]
    if isinstance(net, gpt.GPT):
        def run(idx, rows, cols):
            # only the positions that are scored go through the output layer, the costliest matmul for short items
            h = net(idx, return_hidden=True, head=False)[2][-1]
            return net.lm_head(h[rows, cols]).float()
    else:
        def run(idx, rows, cols):
            return loaded["logits"](idx)[rows, cols].float()
    return run


@torch.no_grad()
def loglikelihoods(run, reqs, max_len, batch_size=16, device="cpu", show=False):
    """[(ctx ids, cont ids)] -> [(log-likelihood, is_greedy)]: the sum of the continuation tokens' log-probabilities,
    and whether each of them is the argmax. Inputs longer than max_len are cut from the left (the continuation
    kept). Requests with the same input (choices of one token after one context) share a row; rows are sorted by
    length and padded on the right, which a causal model never sees, so padding changes no number."""
    rows_of = {}
    for i, (ctx, cont) in enumerate(reqs):
        whole = ctx + cont
        if max_len is not None:
            whole = whole[-(max_len + 1):]
        rows_of.setdefault(tuple(whole[:-1]), []).append(i)  # the model sees all but the last token
    order = sorted(rows_of, key=lambda s: (-len(s), s))  # longest first: the first batch shows the memory needed
    out = [None] * len(reqs)
    batches = [order[b:b + batch_size] for b in range(0, len(order), batch_size)]
    for batch in progress(batches, what="batches") if show else batches:
        idx = torch.zeros(len(batch), len(batch[0]), dtype=torch.long)
        rows, cols, targets, owners = [], [], [], []
        for b, s in enumerate(batch):
            idx[b, :len(s)] = torch.tensor(s)
            for i in rows_of[s]:
                n = len(reqs[i][1])
                rows += [b] * n
                cols += range(len(s) - n, len(s))  # position t predicts token t + 1: the continuation's n tokens
                targets += reqs[i][1]
                owners.append((i, n))
        logits = run(idx.to(device), torch.tensor(rows, device=device), torch.tensor(cols, device=device))
        targets = torch.tensor(targets, device=device)
        logp = F.log_softmax(logits, dim=-1)  # over every output row, in float32
        token_lp = logp.gather(1, targets[:, None])[:, 0].cpu()
        greedy = (logits.argmax(1) == targets).cpu()
        at = 0
        for i, n in owners:
            out[i] = (float(token_lp[at:at + n].sum()), bool(greedy[at:at + n].all()))
            at += n
    return out


# ------------------------------------------------------------------------------------------------ the numbers

def item_scores(x, kind, res, n_tokens):
    """Per-item metrics from its requests' (log-likelihood, is_greedy)."""
    lls = np.array([r[0] for r in res])
    if kind == "greedy":  # lambada: acc = the target is what greedy decoding would produce
        return {"acc": float(res[0][1]), "loglikelihood": float(lls[0])}
    if kind == "partial":
        return {"acc": float(np.argmax(lls) == x["gold"])}
    if kind == "mc2":
        # truthfulqa_mc2: the probability mass of the true answers, normalised over all answers (computed with the
        # largest log-likelihood subtracted: the same ratio, without exp underflowing to 0 / 0 on long answers)
        p = np.exp(lls - lls.max())
        return {"acc": float(p[np.array(x["labels"]) == 1].sum() / p.sum())}
    chars = np.array([float(len(c)) for c in x["choices"]])
    return {"acc": float(np.argmax(lls) == x["gold"]),  # the choice with the highest log-likelihood
            # lm-evaluation-harness's acc_norm: log-likelihood divided by the choice's length in characters
            "acc_norm": float(np.argmax(lls / chars) == x["gold"]),
            # the normalisation of nanoGPT-style scripts: the mean log-probability per continuation token
            "acc_token": float(np.argmax(lls / np.array(n_tokens, dtype=float)) == x["gold"])}


def mean_stderr(v):
    """lm-evaluation-harness's standard error of a mean: sample std (n - 1) / sqrt(n); None below 2 items."""
    v = np.asarray(v, dtype=float)
    return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None


def pooled_stderr(values, groups):
    """lm-evaluation-harness's standard error of a group average weighted by size (MMLU over its subjects):
    the pooled variance sum_g (n_g - 1) n_g se_g^2 / (N - G), over N."""
    by = {}
    for v, g in zip(values, groups):
        by.setdefault(g, []).append(v)
    sizes = [len(v) for v in by.values()]
    if len(by) < 2 or min(sizes) < 2:
        return mean_stderr(values)
    se = [mean_stderr(v) for v in by.values()]
    pooled = sum((n - 1) * s**2 * n for n, s in zip(sizes, se)) / (sum(sizes) - len(sizes))
    return float(math.sqrt(pooled / sum(sizes)))


def perplexity_stderr(lls, iters=BOOTSTRAP_ITERS):
    """lm-evaluation-harness's bootstrap standard error of exp(-mean log-likelihood), draw for draw: chunks of 1000
    resamples, chunk i from random.Random(i) (its Mersenne Twister state, read into numpy for speed: the same
    numbers as random.choices), the sample std of all resamples; None for iters = 0."""
    lls = np.asarray(lls, dtype=float)
    n, chunk, stats = len(lls), min(1000, iters), []
    for i in range(iters // chunk if chunk else 0):
        state = random.Random(i).getstate()[1]
        rs = np.random.RandomState()
        rs.set_state(("MT19937", np.array(state[:-1], dtype=np.uint32), state[-1]))
        picks = (rs.random_sample((chunk, n)) * n).astype(np.int64)  # row by row: random.choices' order of draws
        stats.append(np.exp(-lls[picks].mean(1)))
    stats = np.concatenate(stats) if stats else np.zeros(0)
    return float(stats.std(ddof=1)) if len(stats) > 1 else None


def task_metrics(scores, kinds, groups, bootstrap_iters=BOOTSTRAP_ITERS):
    """Per task: each metric's mean over items and its standard error."""
    out = {}
    for key in ("acc", "acc_norm", "acc_token"):
        v = [s[key] for s in scores if key in s]
        if len(v) == len(scores):
            out[key] = float(np.mean(v))
            out[key + "_stderr"] = pooled_stderr(v, groups) if any(g is not None for g in groups) else mean_stderr(v)
    if kinds[0] == "greedy":
        lls = [s["loglikelihood"] for s in scores]
        out["perplexity"] = math.exp(-float(np.mean(lls)))  # exp(-mean log-likelihood of the targets) over items
        out["perplexity_stderr"] = perplexity_stderr(lls, bootstrap_iters)
    return out


def chance(items):
    """What guessing scores: 1 / choices (or contexts), the true share of the choices for mc2; None for lambada."""
    kind = kind_of(items[0])
    if kind == "greedy":
        return None
    if kind == "mc2":
        return float(np.mean([sum(x["labels"]) / len(x["labels"]) for x in items]))
    return float(np.mean([1 / len(x.get("choices") or x["contexts"]) for x in items]))


def score_task(run, built, max_len, batch_size=16, device="cpu", bootstrap_iters=BOOTSTRAP_ITERS, show=False):
    """Score one task's built requests -> (metrics, per-item records in file order)."""
    res = loglikelihoods(run, built["reqs"], max_len, batch_size, device, show)
    items = built["task"]["items"]
    scores, records = [], []
    for i, kind, (a, b) in zip(built["keep"], built["kinds"], built["spans"]):
        s = item_scores(items[i], kind, res[a:b], [len(c) for _, c in built["reqs"][a:b]])
        scores.append(s)
        records.append({"index": i, "loglikelihoods": [r[0] for r in res[a:b]],
                        "is_greedy": [r[1] for r in res[a:b]], **s})
    groups = [items[i].get("group") for i in built["keep"]]
    metrics = task_metrics(scores, built["kinds"], groups, bootstrap_iters)
    return metrics, records


# ------------------------------------------------------------------------------------------------ paired comparison

def paired_bootstrap(a, b, n_boot, seed, ci=0.95):
    """Paired bootstrap of b - a over tasks' items: a, b: {task: per-item values on the same items}.
    -> per task and for the macro average (the mean over tasks): the difference, its percentile CI and a two-sided
    p-value 2 min(P(d* <= 0), P(d* >= 0)) from the resampled differences. Items are resampled within each task,
    from a generator seeded by (seed, task name), so the same seed and items give the same numbers."""
    out, boots = {}, []
    for task in a:
        d = np.asarray(b[task], dtype=float) - np.asarray(a[task], dtype=float)
        rng = np.random.default_rng([seed, zlib.crc32(task.encode())])
        boot = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(1)
        boots.append(boot)
        out[task] = summarize_diff(d.mean(), boot, ci) | {"n": len(d)}
    macro = np.mean(boots, axis=0)
    out["macro"] = summarize_diff(np.mean([out[t]["diff"] for t in a]), macro, ci) | {"n_tasks": len(a)}
    return out


def summarize_diff(diff, boot, ci):
    lo, hi = np.percentile(boot, [50 * (1 - ci), 50 * (1 + ci)])
    # no smaller than 1 / resamples, the resolution of a bootstrap p-value (0 would claim certainty)
    p = min(1.0, max(2 * min(np.mean(boot <= 0), np.mean(boot >= 0)), 1 / len(boot)))
    return {"diff": float(diff), "ci": [float(lo), float(hi)], "p": float(p)}


# ------------------------------------------------------------------------------------------------ in training

def tasks_for_training(names, n_items, tokenizer, block_size, task_dir=taskdata.TASK_DIR):
    """train.py --eval_tasks: each task's first n_items, tokenized once for our model's tokenizer spec and context.
    Raises EvalError (one line) for a task that is not prepared or does not fit."""
    m = dict(name="the model", encode=get_tokenizer(tokenizer)[0], bos=None, eot=eot_token(tokenizer),
             chars=set(tokenizer["chars"]) if tokenizer["name"] == "char" else None, max_len=block_size,
             vocab=vocab_size(tokenizer))
    return [build_requests(open_task(name, task_dir), m, limit=n_items) for name in names]


def score_in_training(net, built_tasks, device, batch_size=16):
    """{"bench_<task>": acc, "bench_<task>_acc_norm": acc_norm where it applies} of our (uncompiled) GPT."""
    was_training = net.training
    net.eval()
    try:
        run = position_logits({"net": net})
        out = {}
        for built in built_tasks:
            metrics, _ = score_task(run, built, net.config.block_size, batch_size, device, bootstrap_iters=0)
            name = built["task"]["name"]
            out[f"bench_{name}"] = metrics["acc"]
            if "acc_norm" in metrics:
                out[f"bench_{name}_acc_norm"] = metrics["acc_norm"]
    finally:
        net.train(was_training)
    return out


# ------------------------------------------------------------------------------------------------ one run

def evaluate_all(args):
    """Check every input, then score every model on every task -> the report written to benchmarks.json."""
    names = task_names(args.tasks)
    if not names:
        raise EvalError("--tasks names no task")
    preset = any(p.strip() in taskdata.PRESETS for p in args.tasks.split(","))
    limit = {None: PRESET_LIMIT if preset else None, "all": None}.get(args.limit, args.limit)
    tasks = [open_task(n, args.task_dir) for n in names]
    if len({t["name"] for t in tasks}) < len(tasks):
        raise EvalError("two tasks have the same name (a file stem repeats a task name)")
    try:
        models = [m for spec in args.models for m in load.open_model(spec)]
    except (load.ModelError, FileNotFoundError) as e:
        raise EvalError(str(e)) from None
    if args.paired and len(models) % 2:
        raise EvalError(f"--paired takes models in pairs (base, other, ...), got {len(models)}")
    built = {m["name"]: [build_requests(t, m, args.num_fewshot, limit) for t in tasks] for m in models}
    report = {"settings": {"tasks": names, "limit": limit, "num_fewshot": args.num_fewshot, "batch_size":
                           args.batch_size, "device": args.device, "dtype": args.dtype, "seed": args.seed,
                           "n_boot": args.n_boot, "bootstrap_iters": args.bootstrap_iters,
                           "fewshot_seed": FEWSHOT_SEED,
                           "acc_norm": "lm-evaluation-harness's: log-likelihood / characters of the choice",
                           "acc_token": "nanoGPT-style: log-likelihood / tokens of the continuation"},
              "tasks": {t["name"]: {"path": t["path"], "n_items": len(t["items"]), "chance": chance(t["items"]),
                                    "kind": kind_of(t["items"][0])} for t in tasks},
              "models": [], "pairs": []}
    for m in models:
        t0 = time.perf_counter()
        loaded = m["load"](args.device, DTYPES[args.dtype])
        run = position_logits(loaded)
        entry = {"name": m["name"], "kind": m["kind"], "n_params": loaded["n_params"],
                 "tokens_seen": m.get("tokens_seen"), "tasks": {}}
        for b in built[m["name"]]:
            t1 = time.perf_counter()
            metrics, records = score_task(run, b, m["max_len"], args.batch_size, args.device, args.bootstrap_iters,
                                          show=True)
            seconds = time.perf_counter() - t1
            entry["tasks"][b["task"]["name"]] = {"metrics": metrics, "n": len(records), "num_fewshot": b["num_fewshot"],
                                                 "truncated": b["truncated"], "seconds": round(seconds, 2),
                                                 "items_per_s": round(len(records) / seconds, 2), "items": records}
            print(f"{m['name']} {b['task']['name']}: " + ", ".join(
                f"{k} {v:.4f}" for k, v in metrics.items() if not k.endswith("_stderr")) +
                f" ({len(records)} items, {seconds:.1f} s)", flush=True)
        entry["macro_acc"] = float(np.mean([t["metrics"]["acc"] for t in entry["tasks"].values()]))
        entry["seconds"] = round(time.perf_counter() - t0, 2)
        del loaded, run  # one model in memory at a time
        report["models"].append(entry)
    if args.paired:
        for a, b in zip(report["models"][::2], report["models"][1::2]):
            acc = lambda e: {t: [r["acc"] for r in v["items"]] for t, v in e["tasks"].items()}
            report["pairs"].append({"base": a["name"], "other": b["name"], "metric": "acc"} |
                                   paired_bootstrap(acc(a), acc(b), args.n_boot, args.seed))
    return report


# ------------------------------------------------------------------------------------------------ output

def plot_benchmarks(report, path):
    """Per task, each model's acc with +-1 standard error, and the chance level as a dashed line."""
    from support import plots
    tasks = list(report["tasks"])
    models = report["models"]
    width = 0.8 / len(models)
    with plots.figure(path, size=(max(6.4, 0.9 * len(tasks) + 2), 4)) as (fig, ax):
        for j, e in enumerate(models):
            x = np.arange(len(tasks)) + (j - (len(models) - 1) / 2) * width
            y = [e["tasks"][t]["metrics"]["acc"] for t in tasks]
            err = [e["tasks"][t]["metrics"].get("acc_stderr") or 0 for t in tasks]
            ax.bar(x, y, width, yerr=err, capsize=2, label=plots.short(e["name"], 28))
        for i, t in enumerate(tasks):
            if report["tasks"][t]["chance"] is not None:
                ax.hlines(report["tasks"][t]["chance"], i - 0.45, i + 0.45, colors="k", linestyles="--", lw=1)
        ax.set_xticks(range(len(tasks)), tasks, rotation=30, ha="right")
        ax.set_ylabel("acc (+-1 s.e.); dashed: chance")
        ax.set_title("acc: highest log-likelihood (lambada: greedy match; truthfulqa_mc2: true mass)", fontsize=9)
        ax.legend(fontsize=7)


CSV_KEYS = ("model", "task", "n", "num_fewshot", "acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "acc_token",
            "acc_token_stderr", "perplexity", "perplexity_stderr", "truncated", "items_per_s")


def write_outputs(report, folder):
    (folder / "benchmarks.json").write_text(json.dumps(report, indent=1) + "\n")
    with open(folder / "benchmarks.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_KEYS)
        for e in report["models"]:
            for t, r in e["tasks"].items():
                row = {"model": e["name"], "task": t, **r, **r["metrics"]}
                w.writerow([row.get(k, "") if row.get(k) is not None else "" for k in CSV_KEYS])
    plot_benchmarks(report, folder / "benchmarks.png")


def print_table(report):
    tasks = list(report["tasks"])
    print(f"{'model':28s} " + " ".join(f"{t[:14]:>14s}" for t in tasks) + f" {'macro':>7s}")
    for e in report["models"]:
        cells = [f"{e['tasks'][t]['metrics']['acc']:.4f}±{e['tasks'][t]['metrics'].get('acc_stderr') or 0:.3f}"
                 for t in tasks]
        print(f"{e['name'][-28:]:28s} " + " ".join(f"{c:>14s}" for c in cells) + f" {e['macro_acc']:7.4f}")
    for p in report["pairs"]:
        m = p["macro"]
        print(f"{p['other']} - {p['base']}: macro acc {m['diff']:+.4f} [{m['ci'][0]:+.4f}, {m['ci'][1]:+.4f}], "
              f"p {m['p']:.3g}")


# ------------------------------------------------------------------------------------------------ speed

def bench_items(n_items=100, seed=0):
    """HellaSwag-shaped items cut from the bundled Austen text: a context of 190 characters and four endings of 110
    (HellaSwag's averages), for timing; `gold` is arbitrary."""
    from data.prepare import source_documents
    text = " ".join(" ".join(source_documents("austen")).split())
    starts = np.random.default_rng(seed).integers(0, len(text) - 1000, n_items)
    return [{"context": text[s:s + 190].strip(), "choices": [text[s + 190 + 110 * j:s + 300 + 110 * j].strip()
                                                            for j in range(4)], "gold": 0} for s in starts]


def bench(device, n_items=100, batch_size=16, seed=0):
    """items/s of a random-weight GPT-2-124M-shaped model on bench_items(), after a warm-up."""
    items = bench_items(n_items, seed)
    task = {"name": "bench", "items": items, "examples": None, "settings": taskdata.settings("bench")}
    torch.manual_seed(seed)
    loaded = load.ours(gpt.GPT(gpt.GPTConfig(vocab_size=50257)), device, torch.float32)
    m = dict(name="GPT-2-124M shape", encode=get_tokenizer({"name": "gpt2"})[0], bos=None, eot=50256, max_len=1024,
             vocab=50257)
    built = build_requests(task, m)
    run = position_logits(loaded)
    loglikelihoods(run, built["reqs"][:8], 1024, batch_size, device)  # warm-up
    t0 = time.perf_counter()
    score_task(run, built, 1024, batch_size, device)
    seconds = time.perf_counter() - t0
    n_tok = sum(len(c) + len(k) for c, k in built["reqs"])
    return {"items": n_items, "seconds": seconds, "items_per_s": n_items / seconds,
            "tokens_per_request": n_tok / len(built["reqs"]), "batch_size": batch_size, "device": device,
            "threads": torch.get_num_threads()}


# ------------------------------------------------------------------------------------------------ command line

def limit_arg(text):
    if text == "all":
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of items or `all`, got {text!r}")
    return n


def parse_args(argv=None):
    formatter = type("Formatter", (argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter), {})
    p = checks.one_line(argparse.ArgumentParser(description=__doc__, allow_abbrev=False, formatter_class=formatter),
                        "evaluate.py")
    p.add_argument("models", nargs="*", metavar="MODEL", help="checkpoint, run directory, GPT-2 name/dir, hf:<name>")
    p.add_argument("--tasks", default="paper", help="comma list of task names, presets (paper, all) and .jsonl files")
    p.add_argument("--limit", type=limit_arg, default=None,
                   help="items per task (per subject for mmlu), or `all`; default 500 with a preset, else all")
    p.add_argument("--num_fewshot", type=int, default=None, help="few-shot examples; default: each task's own")
    p.add_argument("--task_dir", default=str(taskdata.TASK_DIR), help="where prepared tasks are")
    p.add_argument("--paired", action="store_true", help="models come in pairs (base, other): report differences")
    p.add_argument("--n_boot", type=int, default=10_000, help="paired bootstrap resamples of the items")
    p.add_argument("--bootstrap_iters", type=int, default=BOOTSTRAP_ITERS,
                   help="resamples for the perplexity's standard error (lm-evaluation-harness's); 0 skips it")
    p.add_argument("--seed", type=int, default=0, help="seeds the paired bootstrap")
    p.add_argument("--batch_size", type=int, default=16, help="sequences per forward pass")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", choices=list(DTYPES),
                   help="the weights and activations; the log-softmax is float32 either way")
    p.add_argument("--out", default="out_eval", help="folder for the results")
    p.add_argument("--bench", action="store_true", help="measure items/s on a random GPT-2-124M-shaped model")
    p.add_argument("--bench_items", type=int, default=100, help="items for --bench")
    args = p.parse_args(argv)
    load.check_flags(p, args, dict(num_fewshot=0, n_boot=1, bootstrap_iters=0, batch_size=1, bench_items=1))
    if not args.models and not args.bench:
        p.error("give at least one MODEL (or --bench)")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.bench:
        r = bench(args.device, args.bench_items, args.batch_size)
        print(f"evaluate.py, GPT-2-124M shape, {r['items']} four-choice items ({r['tokens_per_request']:.0f} tokens "
              f"per request), batch {r['batch_size']}, {r['device']}, {r['threads']} threads: "
              f"{r['items_per_s']:.2f} items/s ({r['seconds']:.1f} s)")
        return r
    try:
        if unwritable := checks.check_writable(args.out, "--out"):  # refused now, not after the scoring
            raise EvalError(unwritable)
        report = evaluate_all(args)
        out = load.write_results(args.out, lambda folder: write_outputs(report, folder))
    except (EvalError, OSError, ValueError) as e:
        sys.exit(f"error: {(str(e).strip().splitlines() or [type(e).__name__])[0]}")
    print_table(report)
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
