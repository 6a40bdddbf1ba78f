"""Benchmark tasks: fetch each one from the Hugging Face Hub and write it, already formatted, as generic JSONL.

    python data/prepare.py hellaswag        # -> data/tasks/hellaswag.jsonl and data/tasks/hellaswag.fewshot.jsonl
    python data/prepare.py paper            # the paper's ten tasks; `all` adds hellaswag

Every prompt, every piece of preprocessing and every dataset repository and split below is lm-evaluation-harness's
(its task YAMLs and utils, v0.4), so that evaluate.py's numbers compare with published ones. evaluate.py knows only
the generic form, one JSON object per line:

    {"context": str, "choices": [str, ...], "gold": int}          multiple choice: choice i scored after the context
    {"context": str, "choices": [str, ...], "labels": [1, 0, ..]} several true answers (truthfulqa_mc2)
    {"contexts": [str, ...], "continuation": str, "gold": int}    partial scoring: one continuation after each context
    {"context": str, "continuation": str}                          one continuation (lambada): greedy match, perplexity

with optional "delimiter" (between context and continuation, " " unless set), "description" (text before the
few-shot examples, as MMLU's subject line) and "group" (few-shot examples come from the same group; MMLU's subject).
The few-shot examples are a second file in the same form, <task>.fewshot.jsonl (the task's train split, else its
validation split, as lm-evaluation-harness takes them).
"""

import json
import os
import re
import sys
from pathlib import Path

TASK_DIR = Path(__file__).resolve().parent / "tasks"

# The six-shot QA prompt that lm-evaluation-harness puts before every TruthfulQA question (from the TruthfulQA paper)
TRUTHFULQA_PROMPT = (
    "Q: What is human life expectancy in the United States?\n"
    "A: Human life expectancy in the United States is 78 years.\n\n"
    "Q: Who was president of the United States in 1955?\n"
    "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
    "Q: Which party did he belong to?\n"
    "A: He belonged to the Republican Party.\n\n"
    "Q: What is the square root of banana?\n"
    "A: I have no comment.\n\n"
    "Q: How does a telescope work?\n"
    "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
    "Q: Where were the 1992 Olympics held?\n"
    "A: The 1992 Olympics were held in Barcelona, Spain."
)

MMLU_SUBJECTS = tuple((
    "abstract_algebra anatomy astronomy business_ethics clinical_knowledge college_biology college_chemistry "
    "college_computer_science college_mathematics college_medicine college_physics computer_security "
    "conceptual_physics econometrics electrical_engineering elementary_mathematics formal_logic global_facts "
    "high_school_biology high_school_chemistry high_school_computer_science high_school_european_history "
    "high_school_geography high_school_government_and_politics high_school_macroeconomics high_school_mathematics "
    "high_school_microeconomics high_school_physics high_school_psychology high_school_statistics "
    "high_school_us_history high_school_world_history human_aging human_sexuality international_law jurisprudence "
    "logical_fallacies machine_learning management marketing medical_genetics miscellaneous moral_disputes "
    "moral_scenarios nutrition philosophy prehistory professional_accounting professional_law professional_medicine "
    "professional_psychology public_relations security_studies sociology us_foreign_policy virology world_religions"
).split())


# ----------------------------------------------------------------------------- one function per task: doc -> item

def _hellaswag_clean(text):
    # lm-evaluation-harness's preprocess: "[title]" marks a WikiHow heading; other brackets are scraping artefacts
    text = text.strip().replace(" [title]", ". ")
    return re.sub("\\[.*?\\]", "", text).replace("  ", " ")


def hellaswag(doc):
    ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    return {"context": _hellaswag_clean(doc["activity_label"] + ": " + ctx),
            "choices": [_hellaswag_clean(e) for e in doc["endings"]], "gold": int(doc["label"])}


def arc(doc):
    return {"context": f"Question: {doc['question']}\nAnswer:", "choices": list(doc["choices"]["text"]),
            "gold": list(doc["choices"]["label"]).index(doc["answerKey"])}


def piqa(doc):
    return {"context": f"Question: {doc['goal']}\nAnswer:", "choices": [doc["sol1"], doc["sol2"]],
            "gold": int(doc["label"])}


def openbookqa(doc):
    return {"context": doc["question_stem"], "choices": list(doc["choices"]["text"]),
            "gold": list(doc["choices"]["label"]).index(doc["answerKey"].lstrip())}


def winogrande(doc):
    # partial scoring: the blank "_" is filled with each option, and only the shared rest of the sentence is scored
    blank = doc["sentence"].index("_")
    return {"contexts": [doc["sentence"][:blank] + opt for opt in (doc["option1"], doc["option2"])],
            "continuation": doc["sentence"][blank + 1:].strip(), "gold": {"1": 0, "2": 1}[doc["answer"]]}


def lambada(doc):
    # the target is the last word (split at spaces) and the context everything before it; the delimiter " " puts the
    # space back, so that context + delimiter + continuation is the whole text again
    words = doc["text"].split(" ")
    return {"context": " ".join(words[:-1]), "continuation": words[-1]}


def truthfulqa_mc2(doc):
    return {"context": TRUTHFULQA_PROMPT + "\n\nQ: " + doc["question"] + "\nA:",
            "choices": list(doc["mc2_targets"]["choices"]), "labels": [int(x) for x in doc["mc2_targets"]["labels"]]}


def anli(doc):
    # True = entailment, Neither = neutral, False = contradiction: the dataset's labels 0, 1, 2 in that order
    return {"context": f"{doc['premise']}\nQuestion: {doc['hypothesis']} True, False, or Neither?\nAnswer:",
            "choices": ["True", "Neither", "False"], "gold": int(doc["label"])}


def mmlu(doc, subject):
    q = doc["question"].strip()
    a, b, c, d = doc["choices"]
    return {"context": f"{q}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer:", "choices": ["A", "B", "C", "D"],
            "gold": int(doc["answer"]), "group": subject,
            "description": f"The following are multiple choice questions (with answers) about "
                           f"{subject.replace('_', ' ')}.\n\n"}


def medmcqa(doc):
    options = "".join(f"{letter}. {doc[key]}\n" for letter, key in zip("ABCD", ("opa", "opb", "opc", "opd")))
    return {"context": "Question: " + doc["question"] + "\nChoices:\n" + options + "Answer:",
            "choices": ["A", "B", "C", "D"], "gold": int(doc["cop"])}


# ----------------------------------------------------------------------------- the registry

# name -> (repo, config, split scored, split of the few-shot examples, formatter, settings used by evaluate.py)
#   num_fewshot: the paper's setting; sampler: "random" (random.Random(1234).sample, lm-evaluation-harness's default)
#   or "first_n" (the first k in file order, MMLU's canonical dev examples); exclude_item: lm-evaluation-harness
#   passes the item to its sampler (to keep it out) when a task has no test split, which changes how it draws
TASKS = {
    "anli_r2": ("facebook/anli", None, "test_r2", "train_r2", anli, dict(num_fewshot=0)),
    "lambada_openai": ("EleutherAI/lambada_openai", "default", "test", None, lambada, dict(num_fewshot=0)),
    "openbookqa": ("allenai/openbookqa", "main", "test", "train", openbookqa, dict(num_fewshot=0)),
    "piqa": ("baber/piqa", None, "validation", "train", piqa, dict(num_fewshot=0, exclude_item=True)),
    "truthfulqa_mc2": ("truthfulqa/truthful_qa", "multiple_choice", "validation", None, truthfulqa_mc2,
                       dict(num_fewshot=0)),
    "winogrande": ("allenai/winogrande", "winogrande_xl", "validation", "train", winogrande,
                   dict(num_fewshot=0, exclude_item=True)),
    "arc_easy": ("allenai/ai2_arc", "ARC-Easy", "test", "train", arc, dict(num_fewshot=1)),
    "arc_challenge": ("allenai/ai2_arc", "ARC-Challenge", "test", "train", arc, dict(num_fewshot=1)),
    "mmlu": ("cais/mmlu", MMLU_SUBJECTS, "test", "dev", mmlu, dict(num_fewshot=1, sampler="first_n")),
    "medmcqa": ("openlifescienceai/medmcqa", None, "validation", "train", medmcqa, dict(num_fewshot=1)),
    "hellaswag": ("Rowan/hellaswag", None, "validation", "train", hellaswag, dict(num_fewshot=0, exclude_item=True)),
}
PAPER_TASKS = [name for name in TASKS if name != "hellaswag"]  # the paper's ten
PRESETS = {"paper": PAPER_TASKS, "all": list(TASKS)}
TASK_DEFAULTS = dict(num_fewshot=0, sampler="random", exclude_item=False)  # also for a user's own JSONL file


def settings(name):
    """num_fewshot, sampler and exclude_item of a named task (the defaults for any other)."""
    return TASK_DEFAULTS | (TASKS[name][5] if name in TASKS else {})


class TaskError(Exception):
    """A task that cannot be prepared; the message is one line for the user."""


def _load_rows(repo, config, split):
    try:
        import datasets
    except ImportError:
        raise TaskError("preparing benchmark tasks needs the Hugging Face `datasets` package and network access: "
                        "pip install datasets") from None
    try:
        return list(datasets.load_dataset(repo, config, split=split))
    except Exception as e:  # no network, a renamed repository, a missing split: one line, no traceback
        reason = (str(e).strip().splitlines() or [""])[0][:200]
        raise TaskError(f"could not load {repo} ({config or 'default'}, split {split}) from the Hugging Face Hub: "
                        f"{type(e).__name__}: {reason}") from None


def write_jsonl(path, items):
    """Write items one per line, through a temporary file, so that a half-written task never exists."""
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def prepare_task(name, out_dir=TASK_DIR, verbose=True):
    """Fetch one task and write out_dir/<name>.jsonl (the items scored) and <name>.fewshot.jsonl (its examples)."""
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    repo, configs, split, fewshot_split, fmt, _ = TASKS[name]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items, examples = [], []
    for config in configs if isinstance(configs, tuple) else [configs]:
        extra = (config,) if name == "mmlu" else ()  # MMLU's config is its subject, which its prompt names
        items += [fmt(doc, *extra) for doc in _load_rows(repo, config, split)]
        if fewshot_split:
            examples += [fmt(doc, *extra) for doc in _load_rows(repo, config, fewshot_split)]
    if fewshot_split:
        write_jsonl(out_dir / f"{name}.fewshot.jsonl", examples)
    write_jsonl(out_dir / f"{name}.jsonl", items)  # last: the task exists once its items do
    if verbose:
        shots = f", {len(examples):,} few-shot examples ({fewshot_split})" if fewshot_split else ""
        print(f"{name}: {len(items):,} items ({repo} {split}){shots} -> {out_dir / (name + '.jsonl')}")
    return len(items)


def main(names, out_dir=TASK_DIR):
    """python data/prepare.py <task> | paper | all: one line and exit status 1 on failure."""
    todo = [n for name in names for n in PRESETS.get(name, [name])]
    try:
        for name in todo:
            prepare_task(name, out_dir)
    except TaskError as e:
        sys.exit(f"error: {e}")
