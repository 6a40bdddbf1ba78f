"""Prepare a dataset: documents -> tokens -> data/NAME/{train,val}.bin + meta.json.

    python data/prepare.py austen                  # bundled Jane Austen novels, GPT-2 BPE
    python data/prepare.py austen_char             # same text, one token per character
    python data/prepare.py wiki                    # bundled Wikipedia articles (wiki_char for chars)
    python data/prepare.py imdb                    # Hugging Face datasets (needs `datasets` + network):
                                                   #   wikitext103, pubmed_qa, imdb, squad, fineweb_edu
    python data/prepare.py mine --input notes.txt  # any local .txt, or .jsonl with --field (default "text")

Every source goes through the same path, `prepare()`:
  - empty documents are dropped and exact duplicates kept once (so one text can't be in both splits);
  - documents, not tokens, are split into train and val by a seeded shuffle, so the two splits never
    share a document, and val always gets at least one;
  - each document is followed by a separator: the <|endoftext|> token (50256) for GPT-2, a blank
    line "\\n\\n" for the char tokenizer (which has no special tokens);
  - tokens are written as raw np.uint16 (the vocabulary must fit in 65536 ids), and meta.json records
    the tokenizer spec, the separator, the source and the counts.
A prepared dataset is one whose meta.json exists: it is written last, after both .bin files.
"""

import argparse
import hashlib
import itertools
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script (python data/prepare.py): make `data` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from data import tokenizer
from support.checks import check_writable, number, one_line
from support.progress import progress

DATA_DIR = Path(__file__).resolve().parent
CHUNK_DOCS = 8192  # documents tokenized and split at a time; bounds memory for streamed web corpora
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_SEED = 1337

BUNDLED_SOURCES = {
    "austen": "six Jane Austen novels (data/austen/*.txt, public domain), one document per chapter",
    "wiki": "89 English Wikipedia articles (data/wiki/articles.jsonl, CC BY-SA), one document per article",
}
# name -> (Hugging Face repo, config, default split, what one document is)
HF_SOURCES = {
    "wikitext103": ("Salesforce/wikitext", "wikitext-103-raw-v1", "train", "one article (split at ' = Title = ' lines)"),
    "pubmed_qa": ("qiaojin/PubMedQA", "pqa_labeled", "train", "question, abstract context, long answer"),
    "imdb": ("stanfordnlp/imdb", "plain_text", "train", "one review"),
    "squad": ("rajpurkar/squad", "plain_text", "train", "one context paragraph followed by all its questions"),
    "fineweb_edu": ("HuggingFaceFW/fineweb-edu", "sample-10BT", "train", "one web page (streamed; cap with --max_tokens)"),
}


class DataError(Exception):
    """A problem with input data or a dataset; the message is one line meant for the user."""


# ----------------------------------------------------------------------------- reading documents

def read_documents(path, field="text"):
    """Documents from a local file.

    .txt:   split at blank lines, so each paragraph is one document (a plain text file has no other
            reliable document marker); leading/trailing newlines of each paragraph are removed.
    .jsonl: one JSON object per line, the document is its `field` (a string); blank lines are skipped.
    """
    path = Path(path)
    if path.suffix not in (".txt", ".jsonl"):
        raise DataError(f"{path}: unsupported file type {path.suffix or '(none)'!r}; use .txt or .jsonl")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read as UTF-8 text ({e})") from None
    if path.suffix == ".txt":
        return paragraphs(text)

    documents = []
    for lineno, record in jsonl_records(text, path):
        if not isinstance(record, dict) or field not in record:
            fields = ", ".join(record) if isinstance(record, dict) else type(record).__name__
            raise DataError(f"{path}:{lineno}: no field {field!r} (found: {fields}); choose one with --field")
        if not isinstance(record[field], str):
            raise DataError(f"{path}:{lineno}: field {field!r} is {type(record[field]).__name__}, not a string")
        documents.append(record[field])
    return documents


def paragraphs(text):
    """Blank-line separated paragraphs, their leading and trailing newlines removed."""
    return [p.strip("\n") for p in re.split(r"\n[ \t\r\f\v]*\n", text) if p.strip()]


def jsonl_records(text, path):
    """(line number, the parsed JSON value) of each non-blank line of a .jsonl file's text; one line of error,
    with the line number, for the first that is not JSON."""
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None


# A chapter heading is a line of its own: "CHAPTER I", "Chapter 1", "CHAPTER 12." ... In Emma a
# "VOLUME II" line comes just before the first chapter of each volume and belongs to it.
_CHAPTER_START = re.compile(
    r"^(?:volume +[ivxlc\d]+[ \t]*\n(?:[ \t]*\n)*)?chapter +(?:\d+|[ivxlc]+)\.?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)


def split_chapters(text):
    """Split a novel into chapters. The front matter (title, author, preface) joins chapter 1
    and the end matter stays with the last chapter, so no text is lost."""
    starts = [m.start() for m in _CHAPTER_START.finditer(text)]
    if not starts:
        return [text.strip()]
    starts[0] = 0
    bounds = starts + [len(text)]
    return [text[a:b].strip() for a, b in zip(bounds, bounds[1:])]


def _import_datasets(name):
    """The optional Hugging Face `datasets` package, or one clear line saying how to get it."""
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"preparing {name} needs the Hugging Face `datasets` package and network access: pip install datasets"
        ) from None
    return datasets


def _hf_rows(name, split=None, config=None):
    """Rows of a Hugging Face dataset, streamed (nothing beyond what is read gets downloaded)."""
    repo, default_config, default_split, _ = HF_SOURCES[name]
    datasets = _import_datasets(name)
    config, split = config or default_config, split or default_split

    def rows():
        # errors can surface at the first request or mid-stream; either way one line, no traceback
        try:
            yield from datasets.load_dataset(repo, config, split=split, streaming=True)
        except Exception as e:
            reason = (str(e).strip().splitlines() or [""])[0][:200]
            raise DataError(
                f"could not load {name} ({repo}, {config}, split {split}) from the Hugging Face Hub "
                f"(network access needed): {type(e).__name__}: {reason}"
            ) from None

    return rows()


def _wikitext_articles(rows):
    # wikitext rows are lines; an article starts at a top-level heading " = Title = "
    # (section headings are " = = Section = = ", with more '=' signs).
    lines = []
    for row in itertools.chain(rows, [None]):  # None marks the end of the last article
        if row is None or re.fullmatch(r" = [^=].* = \n?", row["text"]):
            article = "".join(lines).strip()
            if article:
                yield article
            lines = []
        if row is not None:
            lines.append(row["text"])


def _pubmed_documents(rows):
    # reads like the abstract it came from: the question (usually the paper's title), the context
    # paragraphs, then the long answer (the abstract's conclusion); the yes/no label is left out
    for row in rows:
        yield "\n\n".join([row["question"], *row["context"]["contexts"], row["long_answer"]])


def _squad_documents(rows):
    # several questions share one context paragraph (consecutive rows); one document per context
    # keeps a paragraph from appearing in both train and val
    for context, group in itertools.groupby(rows, key=lambda row: row["context"]):
        yield context + "\n\n" + "\n".join(row["question"] for row in group)


def _stream_documents(name, split=None, config=None):
    """Documents of a named source, lazily (the web corpus does not fit in memory)."""
    base = name.removesuffix("_char")
    if base == "austen":
        for path in sorted((DATA_DIR / "austen").glob("*.txt")):
            yield from split_chapters(path.read_text(encoding="utf-8"))
    elif base == "wiki":
        yield from read_documents(DATA_DIR / "wiki" / "articles.jsonl", field="text")
    elif base in HF_SOURCES:
        rows = _hf_rows(base, split, config)
        if base == "wikitext103":
            yield from _wikitext_articles(rows)
        elif base == "pubmed_qa":
            yield from _pubmed_documents(rows)
        elif base == "squad":
            yield from _squad_documents(rows)
        else:
            yield from (row["text"] for row in rows)
    else:
        raise DataError(f"unknown source {name!r}; known: {', '.join(known_sources())} (or use --input FILE)")


def known_sources():
    names = [*BUNDLED_SOURCES, *HF_SOURCES]
    return names + [n + "_char" for n in names]


def source_documents(name, max_docs=None, split=None, config=None):
    """Documents of a named source: 'austen' (chapters), 'wiki' (articles), or a Hugging Face one.
    A '_char' suffix is accepted and ignored (it only selects the tokenizer)."""
    if name.removesuffix("_char") not in [*BUNDLED_SOURCES, *HF_SOURCES]:
        raise DataError(f"unknown source {name!r}; known: {', '.join(known_sources())} (or use --input FILE)")
    if name.removesuffix("_char") in HF_SOURCES:
        _import_datasets(name.removesuffix("_char"))  # fail now, not at the first document
    return list(itertools.islice(_stream_documents(name, split, config), max_docs))


# ----------------------------------------------------------------------------- the shared path

def unigram_entropy(tokens):
    """Entropy in nats of the token frequencies: the loss of the best model that ignores context."""
    return _entropy_from_counts(np.bincount(np.asarray(tokens, dtype=np.int64).ravel()))


def _entropy_from_counts(counts):
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())  # H = -sum_v p(v) log p(v)


def val_mask(n, val_fraction, seed, chunk_index=0):
    """Which of n documents go to val: a seeded random subset of round(val_fraction * n) of them.
    The first chunk always gives val at least one document and train at least one."""
    n_val = round(val_fraction * n)
    if chunk_index == 0:
        n_val = min(max(n_val, 1), n - 1)
    rng = np.random.default_rng([seed, chunk_index])
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[:n_val]] = True
    return mask


def _unique_nonempty(documents):
    # digests instead of the texts themselves keep memory small for streamed corpora
    seen = set()
    for doc in documents:
        if not doc.strip():
            continue
        digest = hashlib.blake2b(doc.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        if digest not in seen:
            seen.add(digest)
            yield doc


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # what a dataset name may be


def dataset_dir(name):
    """Where a dataset lives: data/NAME, or NAME itself when it is a path (contains a '/')."""
    return Path(name) if ("/" in str(name) or os.sep in str(name)) else DATA_DIR / name


def prepare_command(name):
    """The command that prepares a dataset, for error messages; one that main() accepts as it is, but for the
    FILE it cannot know."""
    is_path = "/" in str(name) or os.sep in str(name)
    base = Path(name).name if is_path else str(name)
    if not NAME_PATTERN.fullmatch(base):
        base = "NAME"
    known = base.removesuffix("_char") in [*BUNDLED_SOURCES, *HF_SOURCES]
    return (f"python data/prepare.py {base}" + ("" if known else " --input FILE.txt|FILE.jsonl")
            + (f" --out_dir {name}" if is_path else ""))


def prepare(name, documents, spec, out_dir=None, val_fraction=DEFAULT_VAL_FRACTION, seed=DEFAULT_SEED,
            max_docs=None, max_tokens=None, source=None, verbose=True):
    """Tokenize `documents` (any iterable of str) and write train.bin, val.bin and meta.json.

    spec: a tokenizer spec; {"name": "char"} without "chars" gets its vocabulary from all the
    documents, train and val alike, so val has no unknown characters.
    Documents are handled CHUNK_DOCS at a time; each chunk is split with its own seeded shuffle,
    so a corpus smaller than one chunk is exactly one seeded shuffle of all its documents.
    max_docs / max_tokens cap the corpus (the document that crosses max_tokens is kept whole).
    Returns the meta dict.
    """
    t0 = time.time()
    out_dir = Path(out_dir) if out_dir is not None else dataset_dir(name)
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    documents = itertools.islice(_unique_nonempty(documents), max_docs)
    total_docs = max_docs
    if spec.get("name") == "char" and "chars" not in spec:
        documents = list(documents)  # two passes: vocabulary first, then tokens
        spec = tokenizer.char_spec([*documents, "\n\n"])
        documents, total_docs = iter(documents), len(documents)
    if verbose:  # a streamed web corpus takes hours: a line at a steady pace says how far it has come
        documents = progress(documents, total=total_docs, what=f"{name}: documents")
    n_vocab = tokenizer.vocab_size(spec)
    if n_vocab > 2**16:
        raise DataError(f"vocabulary of {n_vocab} tokens does not fit in uint16 (at most 65536)")
    eot = tokenizer.eot_token(spec)
    encode, _ = tokenizer.get_tokenizer(spec)
    separator = [eot] if eot is not None else encode("\n\n")
    if spec["name"] == "gpt2":
        encode_batch = tokenizer.gpt2_encoding().encode_ordinary_batch  # tokenizes on several threads
    else:
        encode_batch = lambda docs: [encode(d) for d in docs]

    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir} is a file, not a folder")
    made = not out_dir.exists()  # a folder made here and left empty by a refusal is removed again
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create {out_dir} ({e.strerror})") from None
    (out_dir / "meta.json").unlink(missing_ok=True)  # not "prepared" until the new meta.json is written
    paths = {split: out_dir / f"{split}.bin" for split in ("train", "val")}
    tmp = {split: path.with_suffix(".bin.tmp") for split, path in paths.items()}
    n_tokens, n_docs = {"train": 0, "val": 0}, {"train": 0, "val": 0}
    train_counts = np.zeros(n_vocab, dtype=np.int64)
    try:
        with open(tmp["train"], "wb") as f_train, open(tmp["val"], "wb") as f_val:
            files = {"train": f_train, "val": f_val}
            for chunk_index in itertools.count():
                chunk = list(itertools.islice(documents, CHUNK_DOCS))
                if not chunk:
                    break
                ids = [doc_ids + separator for doc_ids in encode_batch(chunk)]
                if max_tokens is not None:  # keep documents until the running total reaches the cap
                    total = sum(n_tokens.values())
                    lengths = np.cumsum([len(x) for x in ids])
                    ids = ids[: int(np.searchsorted(lengths, max_tokens - total)) + 1]
                is_val = val_mask(len(ids), val_fraction, seed, chunk_index)
                for split, want_val in (("train", False), ("val", True)):
                    part = [x for x, v in zip(ids, is_val) if v == want_val]
                    tokens = np.fromiter(itertools.chain.from_iterable(part), dtype=np.int64)
                    if tokens.size and tokens.max() >= n_vocab:
                        raise DataError(f"token id {tokens.max()} is outside the vocabulary of {n_vocab}")
                    files[split].write(tokens.astype(np.uint16).tobytes())
                    n_tokens[split] += tokens.size
                    n_docs[split] += len(part)
                    if split == "train":
                        train_counts += np.bincount(tokens, minlength=n_vocab)
                if max_tokens is not None and sum(n_tokens.values()) >= max_tokens:
                    break
        if n_docs["train"] == 0 or n_docs["val"] == 0:
            raise DataError(f"{name}: need at least 2 non-empty, distinct documents (one for train, one for val), "
                            f"got {n_docs['train'] + n_docs['val']}")
        for split in paths:
            os.replace(tmp[split], paths[split])
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)
        if made and not any(out_dir.iterdir()):
            out_dir.rmdir()

    meta = {
        "vocab_size": n_vocab,
        "tokenizer": spec,
        "eot": eot,
        "source": source or name,
        "n_train_tokens": n_tokens["train"],
        "n_val_tokens": n_tokens["val"],
        "n_train_docs": n_docs["train"],
        "n_val_docs": n_docs["val"],
        "train_unigram_entropy": _entropy_from_counts(train_counts),
        "val_fraction": val_fraction,
        "seed": seed,
        "dtype": "uint16",
    }
    meta_tmp = out_dir / "meta.json.tmp"
    meta_tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(meta_tmp, out_dir / "meta.json")
    if verbose:
        print(f"{name}: train {n_tokens['train']:,} tokens in {n_docs['train']:,} docs, "
              f"val {n_tokens['val']:,} tokens in {n_docs['val']:,} docs, vocab {n_vocab:,} ({spec['name']})")
        print(f"{name}: unigram entropy of train tokens {meta['train_unigram_entropy']:.4f} nats; "
              f"wrote {out_dir} in {time.time() - t0:.1f} s")
    return meta


def prepare_source(name, out_dir=None, tokenizer_name=None, val_fraction=DEFAULT_VAL_FRACTION, seed=DEFAULT_SEED,
                   max_docs=None, max_tokens=None, split=None, config=None, verbose=True):
    """Prepare a named source (bundled or Hugging Face), as `python data/prepare.py NAME` does.
    The tokenizer is char for names ending in _char, else gpt2, unless tokenizer_name says otherwise."""
    base = name.removesuffix("_char")
    if base in HF_SOURCES:
        repo, default_config, default_split, _ = HF_SOURCES[base]
        _import_datasets(base)  # fail now, before any work
        source = f"hf:{repo} {config or default_config} split {split or default_split}"
    elif base in BUNDLED_SOURCES:
        source = BUNDLED_SOURCES[base]
    else:
        raise DataError(f"unknown source {name!r}; known: {', '.join(known_sources())} (or use --input FILE)")
    spec = {"name": tokenizer_name or ("char" if name.endswith("_char") else "gpt2")}
    return prepare(name, _stream_documents(base, split, config), spec, out_dir=out_dir, val_fraction=val_fraction,
                   seed=seed, max_docs=max_docs, max_tokens=max_tokens, source=source, verbose=verbose)


# ----------------------------------------------------------------------------- held-out documents

def held_out_documents(name, split="val"):
    """The documents of NAME (a bundled source, or a prepared dataset) that no model trained on it saw, as text,
    with a description: split val is what prepare() puts (or would put) into NAME's val split; all is every
    document. A bundled source's documents (chapters, articles) come cut into their paragraphs, as a char
    dataset's are, so that many texts can come from few held-out documents."""
    if name.removesuffix("_char") in BUNDLED_SOURCES:
        docs = source_documents(name)
        if split == "all":
            return docs, f"{name} (bundled, all {len(docs)} documents)"
        held = val_documents(name, docs)
        paras = [p for doc in held for p in paragraphs(doc)]
        return paras, (f"{name} (bundled, the {len(held)} val documents of data/prepare.py's split, "
                       f"{len(paras)} paragraphs)")
    meta = load_meta(name)  # clear errors for an unprepared or half-prepared dataset
    _, decode = tokenizer.get_tokenizer(meta["tokenizer"])
    parts = [split_documents(load_split(name, part), meta["eot"], decode)
             for part in (("train", "val") if split == "all" else ("val",))]
    docs = parts[0] if len(parts) == 1 else [d for part in parts for d in part]
    return docs, f"{name} ({'train and val' if split == 'all' else 'val'}, {len(docs)} documents)"


def val_documents(name, documents):
    """The documents that prepare() puts into NAME's val split, whether or not NAME is prepared: its
    de-duplication, chunks and seeded val_mask, with the prepared dataset's val fraction and seed if there is
    one (else the defaults)."""
    fraction, seed = DEFAULT_VAL_FRACTION, DEFAULT_SEED
    if is_prepared(name):
        meta = load_meta(name)
        fraction, seed = meta["val_fraction"], meta["seed"]
    docs = list(dict.fromkeys(d for d in documents if d.strip()))
    chunks = [docs[i:i + CHUNK_DOCS] for i in range(0, len(docs), CHUNK_DOCS)]
    return [d for i, chunk in enumerate(chunks) for d, v in zip(chunk, val_mask(len(chunk), fraction, seed, i))
            if v]


def split_documents(tokens, eot, decode):
    """A prepared split's documents: cut at <|endoftext|>, or, for char data (which has no document marker
    and joined its documents by blank lines), its paragraphs."""
    if eot is None:
        return paragraphs(decode(tokens))
    cuts = np.flatnonzero(tokens == eot)
    bounds = [(a, b) for a, b in zip(np.r_[0, cuts + 1], np.r_[cuts, len(tokens)]) if b > a]
    return LazyDocs(tokens, bounds, decode)


class LazyDocs:
    """Documents of a tokenized split, decoded only when asked for: a web corpus's val split can be large."""

    def __init__(self, tokens, bounds, decode):
        self.tokens, self.bounds, self.decode = tokens, bounds, decode

    def __len__(self):
        return len(self.bounds)

    def __getitem__(self, i):
        a, b = self.bounds[i]
        return self.decode(self.tokens[a:b])


# ----------------------------------------------------------------------------- reading prepared data

def is_prepared(name):
    """Whether data/NAME (or the directory NAME) holds a prepared dataset, i.e. its meta.json."""
    return (dataset_dir(name) / "meta.json").exists()


def load_meta(name):
    """meta.json of a prepared dataset (a name under data/ or a directory), checked against its .bin files."""
    directory = dataset_dir(name)
    meta_path = directory / "meta.json"
    if not meta_path.exists():
        raise DataError(f"dataset {name!r} is not prepared ({meta_path} not found); run: {prepare_command(name)}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        expected = {split: meta[f"n_{split}_tokens"] for split in ("train", "val")}
        tokenizer.vocab_size(meta["tokenizer"])
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{meta_path} is corrupt ({type(e).__name__}: {e}); re-run: {prepare_command(name)}") from None
    for split, n in expected.items():
        path = directory / f"{split}.bin"
        size = path.stat().st_size if path.exists() else None
        if size != 2 * n:
            found = "missing" if size is None else f"{size} bytes"
            raise DataError(f"{path} does not match meta.json ({found}, expected {2 * n} bytes); "
                            f"re-run: {prepare_command(name)}")
    return meta


def load_split(name, split):
    """Tokens of a prepared split ('train' or 'val') as a read-only np.uint16 memmap."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    load_meta(name)  # clear errors for unprepared or inconsistent data
    return np.memmap(dataset_dir(name) / f"{split}.bin", dtype=np.uint16, mode="r")


# ----------------------------------------------------------------------------- command line

def training_data(dataset, eval_datasets="", block_size=0, prepare_bundled=True, barrier=None):
    """train.py's data: dataset's meta, its train tokens and the val splits ({"val": ..., "val_<name>": ...} for
    each comma-listed eval dataset). A bundled corpus prepares itself first where prepare_bundled (the one process
    that writes); barrier(), if given, then lets the other processes read. Raises DataError."""
    names = [dataset] + list(filter(None, eval_datasets.split(",")))
    if prepare_bundled:  # a few seconds, on first use
        for name in names:
            if name.removesuffix("_char") in BUNDLED_SOURCES and not is_prepared(name):
                prepare_source(name)
    if barrier is not None:
        barrier()
    meta = load_meta(dataset)
    train = load_split(dataset, "train")
    val_sets = {"val": load_split(dataset, "val")}
    for name in names[1:]:
        if load_meta(name)["tokenizer"] != meta["tokenizer"]:
            raise DataError(f"--eval_datasets {name} uses another tokenizer than --dataset {dataset}")
        val_sets[f"val_{name}"] = load_split(name, "val")
    for name, d in [("train", train)] + list(val_sets.items()):
        if len(d) <= block_size + 1:
            raise DataError(f"--block_size {block_size} is not shorter than the {name} split of {dataset} "
                            f"({len(d)} tokens)")
    return meta, train, val_sets


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help shows every default, and the list of sources as it is laid out; a flag whose default is None
    says in its own help what leaving it out means."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def main(argv=None):
    from data import tasks  # benchmark tasks for evaluate.py: python data/prepare.py hellaswag | paper | all
    names = sys.argv[1:] if argv is None else argv
    if names and all(n in tasks.TASKS or n in tasks.PRESETS for n in names):
        return tasks.main(names)
    sources = "\n".join(f"  {n:12s} {d}" for n, d in BUNDLED_SOURCES.items())
    sources += "\n" + "\n".join(f"  {n:12s} {repo} ({cfg}): {d}" for n, (repo, cfg, _, d) in HF_SOURCES.items())
    parser = argparse.ArgumentParser(
        description="Tokenize a corpus into data/NAME/{train,val}.bin (uint16) and meta.json.",
        epilog=f"sources (NAME, or NAME_char for the char tokenizer):\n{sources}\n"
               "Hugging Face sources need `pip install datasets` and network access.",
        formatter_class=HelpFormatter,
    )
    one_line(parser, "data/prepare.py")
    parser.add_argument("name", metavar="NAME", help="dataset name: a source above, or any name with --input")
    parser.add_argument("--input", help="local .txt (one document per paragraph) or .jsonl (one per line) file")
    parser.add_argument("--field", help="JSON field holding the text in a .jsonl --input (default: text)")
    parser.add_argument("--tokenizer", choices=["gpt2", "char"],
                        help="default: char when NAME ends in _char, else gpt2")
    parser.add_argument("--val_fraction", type=number, default=DEFAULT_VAL_FRACTION,
                        help="fraction of documents held out for val (at least one)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the train/val document split")
    parser.add_argument("--max_docs", type=int, help="use at most this many documents")
    parser.add_argument("--max_tokens", type=int, help="stop once this many tokens are written")
    parser.add_argument("--split", help="Hugging Face split to read (default: train)")
    parser.add_argument("--config", help="Hugging Face config, e.g. pqa_artificial for pubmed_qa")
    parser.add_argument("--out_dir", help="where to write (default: data/NAME, where training looks)")
    args = parser.parse_args(argv)

    # bad input: one line and a non-zero exit, before any work
    name, base = args.name, args.name.removesuffix("_char")
    if args.out_dir is not None and (unwritable := check_writable(args.out_dir, "--out_dir")):
        sys.exit(f"error: {unwritable}")
    if not NAME_PATTERN.fullmatch(name):
        sys.exit(f"error: dataset name {name!r} must be letters, digits, '_', '.', '-'")
    if args.input is None and base not in [*BUNDLED_SOURCES, *HF_SOURCES]:
        sys.exit(f"error: unknown dataset {name!r}; known: {', '.join(known_sources())}; "
                 "or give a local file with --input FILE.txt|FILE.jsonl")
    if args.field is not None and (args.input is None or not args.input.endswith(".jsonl")):
        sys.exit("error: --field applies only to a .jsonl --input")
    if (args.split or args.config) and (args.input is not None or base not in HF_SOURCES):
        sys.exit(f"error: --split and --config apply only to Hugging Face sources ({', '.join(HF_SOURCES)})")
    if not 0 < args.val_fraction < 1:
        sys.exit(f"error: --val_fraction must be between 0 and 1, got {args.val_fraction}")
    for flag in ("max_docs", "max_tokens"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            sys.exit(f"error: --{flag} must be a positive integer")
    try:
        if args.input is None:
            prepare_source(name, out_dir=args.out_dir, tokenizer_name=args.tokenizer, val_fraction=args.val_fraction,
                           seed=args.seed, max_docs=args.max_docs, max_tokens=args.max_tokens, split=args.split,
                           config=args.config)
        else:
            documents = read_documents(args.input, field=args.field or "text")
            source = f"file {args.input}" + (f" (field {args.field or 'text'})" if args.input.endswith(".jsonl") else "")
            spec = {"name": args.tokenizer or ("char" if name.endswith("_char") else "gpt2")}
            prepare(name, documents, spec, out_dir=args.out_dir, val_fraction=args.val_fraction, seed=args.seed,
                    max_docs=args.max_docs, max_tokens=args.max_tokens, source=source)
    except DataError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
