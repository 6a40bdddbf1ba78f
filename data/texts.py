"""
The texts a measurement is taken on, by the paper's protocol: N texts of T tokens, each from its own document,
drawn with a seed; held-out documents by default. measure.py reads --data through load_documents and
select_texts; gpu_sweep.py uses them to check, before training, that its texts will be there.
"""

import os

import numpy as np
import torch

from data.prepare import BUNDLED_SOURCES, DataError, dataset_dir, held_out_documents, read_documents


def load_documents(data, field="text", split="val"):
    """The documents named by --data, and a description of them: a file's every document (a file is never
    split), or a bundled or prepared dataset's held-out documents (split val; all: every document)."""
    if data.endswith((".txt", ".jsonl")) or os.path.isfile(data):
        return read_documents(data, field), f"{data} (all documents: a file has no val split)"
    if data.removesuffix("_char") not in BUNDLED_SOURCES and not (dataset_dir(data) / "meta.json").exists():
        raise DataError(f"unknown data source {data!r}: not a .txt/.jsonl file, a bundled source "
                        f"({', '.join(BUNDLED_SOURCES)}) or a prepared dataset under data/ (python data/prepare.py)")
    return held_out_documents(data, split)


def first_tokens(docs, start, encode, seq_len, used):
    """The first seq_len tokens of docs[start], a short document being joined (by a blank line) with the ones
    after it; -> (tokens, documents used) or None when the documents run out or reach one another text took."""
    text, end, limit = "", start, 8 * seq_len  # only the first `limit` characters are tokenized
    while True:
        ids = encode(text[:limit])
        cut = len(text) > limit  # a word cut at the limit may tokenize differently: keep a margin before it
        if not ids and len(text) >= max(limit, 1000):  # no progress: joining more text would never end
            raise DataError(f"the tokenizer encodes {len(text):,} characters of text to no tokens at all")
        if len(ids) >= seq_len + 16 * cut:
            return ids[:seq_len], range(start, end)
        if cut:
            limit *= 4
        elif end == len(docs) or end in used:
            return None
        else:
            text, end = (text + "\n\n" if text else "") + docs[end], end + 1


def select_texts(docs, encode, n_texts, seq_len, seed, what=""):
    """The paper's protocol: n_texts texts of seq_len tokens, from documents in file order (a seeded random choice
    of starting documents when there are more than n_texts), never two texts from one document.
    -> (tokens [n_texts, seq_len] int64, the starting document of each text)."""
    order = np.random.default_rng(seed).permutation(len(docs)) if len(docs) > n_texts else range(len(docs))
    chosen, used = {}, set()
    for start in map(int, order):
        if len(chosen) == n_texts:
            break
        try:
            got = start not in used and first_tokens(docs, start, encode, seq_len, used)
        except DataError as e:
            raise DataError(f"{e}{what} (an empty or broken tokenizer?)") from None
        if got:
            chosen[start] = got[0]
            used.update(got[1])
    if len(chosen) < n_texts:
        raise DataError(f"too little text{what}: need {n_texts} texts of {seq_len} tokens, the {len(docs)} "
                           f"documents hold only {len(chosen)} (lower --n_texts or --seq_len, or use more text)")
    starts = sorted(chosen)
    return torch.tensor([chosen[s] for s in starts], dtype=torch.long), starts
