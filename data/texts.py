"""
The texts a measurement is taken on, by the paper's protocol: N texts of T tokens, each from its own document,
drawn with a seed; held-out documents by default. measure.py reads --data through load_documents and
select_texts; gpu_sweep.py uses them to check, before training, that its texts will be there.
"""

import os
import re

import numpy as np
import torch

from data.prepare import (BUNDLED_SOURCES, CHUNK_DOCS, DEFAULT_SEED, DEFAULT_VAL_FRACTION, DataError, dataset_dir,
                          is_prepared, load_meta, load_split, read_documents, source_documents, val_mask)
from data.tokenizer import get_tokenizer


def paragraphs(text):
    """Blank-line separated paragraphs, as data/prepare.py reads a .txt file."""
    return [p.strip("\n") for p in re.split(r"\n[ \t]*\n", text) if p.strip()]


def val_documents(name, documents):
    """The documents of a bundled source that data/prepare.py puts into NAME's val split, whether or not NAME is
    prepared: its de-duplication (first copy kept, empty ones dropped), chunks and seeded val_mask, with the val
    fraction and seed of the prepared dataset when there is one (else prepare's defaults)."""
    fraction, seed = DEFAULT_VAL_FRACTION, DEFAULT_SEED
    if is_prepared(name):
        meta = load_meta(name)
        fraction, seed = meta["val_fraction"], meta["seed"]
    docs = list(dict.fromkeys(d for d in documents if d.strip()))
    chunks = [docs[i:i + CHUNK_DOCS] for i in range(0, len(docs), CHUNK_DOCS)]
    return [d for i, chunk in enumerate(chunks) for d, v in zip(chunk, val_mask(len(chunk), fraction, seed, i)) if v]


def load_documents(data, field="text", split="val"):
    """The documents named by --data, and a description of them. split val: a bundled or prepared dataset's val
    split (text the model never trained on), all: every document; a file is never split."""
    if data.endswith((".txt", ".jsonl")) or os.path.isfile(data):
        return read_documents(data, field), f"{data} (all documents: a file has no val split)"
    if data.removesuffix("_char") in BUNDLED_SOURCES:
        docs = source_documents(data)
        if split == "all":
            return docs, f"{data} (bundled, all {len(docs)} documents)"
        # a bundled corpus holds few documents (austen: 269 chapters, ~27 of them val): its val documents are cut
        # into paragraphs, as a prepared char dataset is, so that many texts can come from held-out text
        held = val_documents(data, docs)
        paras = [p for doc in held for p in paragraphs(doc)]
        return paras, f"{data} (bundled, the {len(held)} val documents of data/prepare.py's split, {len(paras)} paragraphs)"
    if not (dataset_dir(data) / "meta.json").exists():
        raise DataError(f"unknown data source {data!r}: not a .txt/.jsonl file, a bundled source "
                           f"({', '.join(BUNDLED_SOURCES)}) or a prepared dataset under data/ (python data/prepare.py)")
    meta = load_meta(data)  # clear errors for a half-prepared dataset
    _, decode = get_tokenizer(meta["tokenizer"])
    parts = [split_documents(load_split(data, name), meta["eot"], decode)
             for name in (("train", "val") if split == "all" else ("val",))]
    docs = parts[0] if len(parts) == 1 else [d for part in parts for d in part]
    return docs, f"{data} ({'train and val' if split == 'all' else 'val'}, {len(docs)} documents)"


def split_documents(tokens, eot, decode):
    """A prepared split's documents: cut at <|endoftext|>, or, for char data (which has no document marker and
    joined its documents by blank lines), its paragraphs."""
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
