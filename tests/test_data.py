"""Tests for data/: offline GPT-2 BPE, the char tokenizer, and the shared prepare path."""

import hashlib
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from data import prepare, tokenizer

REPO = Path(__file__).resolve().parent.parent

# chapters per novel, counted by hand from the heading lines ("CHAPTER I", "Chapter 1", "CHAPTER 1")
AUSTEN_CHAPTERS = {
    "emma": 55,
    "mansfield_park": 48,
    "northanger_abbey": 31,
    "persuasion": 24,
    "pride_and_prejudice": 61,
    "sense_and_sensibility": 50,
}


def austen_paragraph():
    text = (REPO / "data" / "austen" / "emma.txt").read_text(encoding="utf-8")
    return text.split("\n\n")[6].strip()  # the opening of Emma, chapter I


# ----------------------------------------------------------------------------- tokenizers

def test_gpt2_offline_known_ids(monkeypatch):
    # must work without tiktoken's download path: make that path fail loudly
    import tiktoken

    def no_download(name):
        raise AssertionError("gpt2_encoding() should not need tiktoken.get_encoding")

    monkeypatch.setattr(tiktoken, "get_encoding", no_download)
    tokenizer.gpt2_encoding.cache_clear()
    enc = tokenizer.gpt2_encoding()
    assert enc.encode("Hello world") == [15496, 995]
    assert enc.eot_token == 50256 == tokenizer.GPT2_EOT
    assert enc.n_vocab == 50257
    assert enc.encode("<|endoftext|>", allowed_special="all") == [50256]
    assert tokenizer.gpt2_encoding() is enc  # cached in-process
    shipped = hashlib.sha256((REPO / "data" / "gpt2.tiktoken").read_bytes()).hexdigest()
    assert shipped == tokenizer.GPT2_RANKS_SHA256
    # the same file tiktoken itself would download for GPT-2 (its r50k_base expects this hash)
    import inspect
    from tiktoken_ext import openai_public
    assert shipped in inspect.getsource(openai_public.r50k_base)


def test_gpt2_round_trip_on_bundled_text():
    encode, decode = tokenizer.get_tokenizer({"name": "gpt2"})
    paragraph = austen_paragraph()
    assert len(paragraph) > 200 and paragraph.startswith("Emma Woodhouse")
    ids = encode(paragraph)
    assert all(isinstance(i, int) and 0 <= i < 50257 for i in ids)
    assert len(ids) < len(paragraph) / 3  # BPE really merges: ~4 characters per token in English
    assert decode(ids) == paragraph
    assert decode(np.array(ids, dtype=np.uint16)) == paragraph  # slices of .bin files decode too
    # a literal end-of-text string in a document stays ordinary text: no forged document boundary
    assert 50256 not in encode("end <|endoftext|> start")
    assert decode(encode("end <|endoftext|> start")) == "end <|endoftext|> start"


def test_char_tokenizer_round_trip_and_spec():
    text = "Emma Woodhouse, handsome, clever, and rich £20,000\n\n"
    spec = tokenizer.char_spec(text)
    assert spec == {"name": "char", "chars": "".join(sorted(set(text)))}
    assert json.loads(json.dumps(spec)) == spec  # plain JSON, for meta.json and checkpoints
    encode, decode = tokenizer.get_tokenizer(spec)
    ids = encode(text)
    assert ids == [spec["chars"].index(c) for c in text]
    assert decode(ids) == text
    assert tokenizer.vocab_size(spec) == len(set(text)) and tokenizer.eot_token(spec) is None
    assert tokenizer.char_spec(["ab", "ba", "c"])["chars"] == "abc"


def test_char_tokenizer_clear_errors():
    encode, decode = tokenizer.get_tokenizer(tokenizer.char_spec("abc"))
    with pytest.raises(ValueError, match=r"'z' \(U\+007A\) at position 2"):
        encode("abz")
    with pytest.raises(ValueError, match="outside the char vocabulary"):
        decode([0, 3])
    with pytest.raises(ValueError, match="unknown tokenizer"):
        tokenizer.get_tokenizer({"name": "bpe"})
    with pytest.raises(ValueError, match="repeated"):
        tokenizer.get_tokenizer({"name": "char", "chars": "aa"})


# ----------------------------------------------------------------------------- documents

def test_austen_chapters_per_novel():
    total = 0
    for novel, n_chapters in AUSTEN_CHAPTERS.items():
        text = (REPO / "data" / "austen" / f"{novel}.txt").read_text(encoding="utf-8")
        chapters = prepare.split_chapters(text)
        assert len(chapters) == n_chapters, novel
        # every chapter after the first starts at its heading (Emma's volumes start at "VOLUME")
        assert all(c.split(None, 1)[0].upper() in ("CHAPTER", "VOLUME") for c in chapters[1:]), novel
        # nothing lost: the chapters hold exactly the novel's non-blank text
        assert "\n".join(chapters).split() == text.split(), novel
        total += n_chapters
    assert len(prepare.source_documents("austen")) == total == 269
    assert prepare.source_documents("austen_char") == prepare.source_documents("austen")


def test_wiki_documents_are_articles():
    docs = prepare.source_documents("wiki")
    assert len(docs) == 89
    assert docs[0].startswith("Anarchism")
    assert prepare.read_documents(REPO / "data" / "wiki" / "articles.jsonl", field="title")[:2] == ["Anarchism", "Autism"]


def test_read_documents_txt_and_jsonl(tmp_path):
    txt = tmp_path / "notes.txt"
    txt.write_text("First para\nline two.\n\n\n  Second para.\n \n\nThird.\n", encoding="utf-8")
    assert prepare.read_documents(txt) == ["First para\nline two.", "  Second para.", "Third."]
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text('{"text": "a"}\n\n{"text": "b", "id": 2}\n', encoding="utf-8")
    assert prepare.read_documents(jsonl) == ["a", "b"]


def test_read_documents_clear_errors(tmp_path):
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text('{"text": "a"}\n{"body": "b", "id": 2}\n', encoding="utf-8")
    with pytest.raises(prepare.DataError, match=r"docs.jsonl:2: no field 'text' \(found: body, id\)"):
        prepare.read_documents(jsonl)
    with pytest.raises(prepare.DataError, match="no such file"):
        prepare.read_documents(tmp_path / "missing.txt")
    with pytest.raises(prepare.DataError, match="unsupported file type '.csv'"):
        prepare.read_documents(tmp_path / "x.csv")


# ----------------------------------------------------------------------------- prepare

def small_documents(n=30):
    # distinct short documents of different lengths, with some non-ASCII for the char tokenizer
    return [f"Document {i}: " + "word " * (i % 7) + f"caf\u00e9 {i * i}." for i in range(n)]


def read_split(out_dir, split):
    path = Path(out_dir) / f"{split}.bin"
    assert path.stat().st_size % 2 == 0
    return np.fromfile(path, dtype=np.uint16)


def test_prepare_gpt2_round_trip_split_and_meta(tmp_path):
    docs = small_documents()
    docs_with_dupes = docs + ["", "   \n", docs[3]]  # empty ones dropped, the duplicate kept once
    meta = prepare.prepare("tiny", docs_with_dupes, {"name": "gpt2"}, out_dir=tmp_path, val_fraction=0.2,
                           seed=7, source="test", verbose=False)
    _, decode = tokenizer.get_tokenizer({"name": "gpt2"})
    split_docs = {}
    for split in ("train", "val"):
        tokens = read_split(tmp_path, split)
        assert tokens[-1] == 50256  # each document is followed by <|endoftext|>
        pieces = np.split(tokens, np.flatnonzero(tokens == 50256) + 1)[:-1]
        split_docs[split] = [decode(p[:-1]) for p in pieces]
        assert len(tokens) == meta[f"n_{split}_tokens"]
    train, val = split_docs["train"], split_docs["val"]
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(docs)
    # original order is kept inside each split
    assert train == [d for d in docs if d in set(train)] and val == [d for d in docs if d in set(val)]
    assert len(val) == 6  # round(0.2 * 30)
    on_disk = json.loads((tmp_path / "meta.json").read_text())
    assert on_disk == meta
    assert {k: meta[k] for k in ("vocab_size", "tokenizer", "eot", "source", "n_train_docs", "n_val_docs")} == {
        "vocab_size": 50257, "tokenizer": {"name": "gpt2"}, "eot": 50256, "source": "test",
        "n_train_docs": 24, "n_val_docs": 6}
    assert meta["train_unigram_entropy"] == pytest.approx(prepare.unigram_entropy(read_split(tmp_path, "train")))
    assert not list(tmp_path.glob("*.tmp"))


def test_prepare_char_builds_vocab_from_all_documents(tmp_path):
    docs = small_documents(12) + ["only in one document: \u03a9"]
    meta = prepare.prepare("tiny_char", docs, {"name": "char"}, out_dir=tmp_path, verbose=False)
    spec = meta["tokenizer"]
    assert meta["eot"] is None and meta["vocab_size"] == len(spec["chars"])
    assert set(spec["chars"]) == set("".join(docs)) | {"\n"}
    _, decode = tokenizer.get_tokenizer(spec)
    train, val = decode(read_split(tmp_path, "train")), decode(read_split(tmp_path, "val"))
    # documents are followed by a blank line; every document is in exactly one split
    for doc in docs:
        assert (doc + "\n\n" in train) != (doc + "\n\n" in val)
    assert meta["n_val_docs"] == 1 and len(train) + len(val) == sum(len(d) + 2 for d in docs)


def test_prepare_is_deterministic_under_the_seed(tmp_path):
    docs = small_documents(40)
    outs = {}
    for run, seed in (("a", 1), ("b", 1), ("c", 2)):
        prepare.prepare("tiny", docs, {"name": "gpt2"}, out_dir=tmp_path / run, seed=seed, verbose=False)
        outs[run] = (tmp_path / run / "val.bin").read_bytes()
    assert outs["a"] == outs["b"]
    assert outs["a"] != outs["c"]


def test_prepare_always_has_a_val_document_and_caps(tmp_path):
    meta = prepare.prepare("two", ["one doc.", "another doc."], {"name": "gpt2"}, out_dir=tmp_path,
                           val_fraction=0.01, verbose=False)
    assert (meta["n_train_docs"], meta["n_val_docs"]) == (1, 1)
    meta = prepare.prepare("capped", small_documents(30), {"name": "gpt2"}, out_dir=tmp_path, max_docs=10,
                           verbose=False)
    assert meta["n_train_docs"] + meta["n_val_docs"] == 10
    meta = prepare.prepare("capped", small_documents(30), {"name": "gpt2"}, out_dir=tmp_path, max_tokens=50,
                           verbose=False)
    per_doc = [len(tokenizer.gpt2_encoding().encode_ordinary(d)) + 1 for d in small_documents(30)]
    n_docs = int(np.searchsorted(np.cumsum(per_doc), 50)) + 1  # the document crossing the cap is kept
    assert meta["n_train_docs"] + meta["n_val_docs"] == n_docs
    assert meta["n_train_tokens"] + meta["n_val_tokens"] == sum(per_doc[:n_docs])
    with pytest.raises(prepare.DataError, match="at least 2"):
        prepare.prepare("one", ["just one", "just one", ""], {"name": "gpt2"}, out_dir=tmp_path / "one",
                        verbose=False)
    assert not (tmp_path / "one").exists()  # the folder it made for them is gone again
    (tmp_path / "kept").mkdir()  # a folder that was there before stays
    with pytest.raises(prepare.DataError, match="at least 2"):
        prepare.prepare("kept", ["just one"], {"name": "gpt2"}, out_dir=tmp_path / "kept", verbose=False)
    assert (tmp_path / "kept").is_dir() and not list((tmp_path / "kept").iterdir())


def test_cli_refuses_before_any_folder_is_made(tmp_path, capsys):
    (tmp_path / "one.txt").write_text("A single paragraph.\n")
    with pytest.raises(SystemExit) as e:
        prepare.main(["mine", "--input", str(tmp_path / "one.txt"), "--out_dir", str(tmp_path / "mine")])
    assert e.value.code.startswith("error: mine: need at least 2 non-empty, distinct documents")
    assert not (tmp_path / "mine").exists()
    for flags, message in ((["--val_fraction", "nan"], "argument --val_fraction: not a finite number: 'nan'"),
                           (["--max_docs", "x"], "argument --max_docs: invalid int value: 'x'")):
        with pytest.raises(SystemExit) as e:
            prepare.main(["austen", *flags, "--out_dir", str(tmp_path / "a")])
        assert e.value.code == f"error: {message} (see python data/prepare.py --help)"
    assert capsys.readouterr().err == "" and not (tmp_path / "a").exists()


def test_unigram_entropy_matches_scipy():
    tokens = np.random.default_rng(0).zipf(1.5, size=5000) % 300
    counts = np.bincount(tokens)
    assert prepare.unigram_entropy(tokens.astype(np.uint16)) == pytest.approx(scipy.stats.entropy(counts), rel=1e-12)
    assert prepare.unigram_entropy([3, 3, 3]) == 0.0
    assert prepare.unigram_entropy([0, 1, 2, 3]) == pytest.approx(np.log(4))


def test_load_meta_and_unprepared_dataset_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(prepare, "DATA_DIR", tmp_path / "data")  # an empty data/ folder
    with pytest.raises(prepare.DataError, match=r"'austen_char' is not prepared .*run: python data/prepare.py austen_char$"):
        prepare.load_meta("austen_char")
    with pytest.raises(prepare.DataError, match=r"run: python data/prepare.py no_such_dataset --input FILE"):
        prepare.load_meta("no_such_dataset")
    meta = prepare.prepare("tiny", small_documents(), {"name": "gpt2"}, out_dir=tmp_path, verbose=False)
    assert prepare.load_meta(str(tmp_path)) == meta
    assert len(prepare.load_split(str(tmp_path), "val")) == meta["n_val_tokens"]
    with open(tmp_path / "train.bin", "ab") as f:
        f.write(b"\0\0")
    with pytest.raises(prepare.DataError, match="does not match meta.json"):
        prepare.load_meta(str(tmp_path))


def test_cli_on_a_local_jsonl(tmp_path):
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"body": d}) + "\n" for d in small_documents()), encoding="utf-8")
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "data/prepare.py", "mine", "--input", str(src), "--field", "body",
                          "--out_dir", str(out), "--seed", "3"], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "unigram entropy" in run.stdout
    assert "  mine: documents 30, " in run.stdout and ", done in " in run.stdout  # progress.py's closing line
    meta = json.loads((out / "meta.json").read_text())
    assert meta["n_train_docs"] + meta["n_val_docs"] == 30 and meta["seed"] == 3
    bad = subprocess.run([sys.executable, "data/prepare.py", "mine", "--input", str(src), "--out_dir",
                          str(tmp_path / "bad")], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode != 0
    assert bad.stderr.strip() == f"error: {src}:1: no field 'text' (found: body); choose one with --field"
    assert not (tmp_path / "bad").exists()


# ----------------------------------------------------------------------------- Hugging Face sources

def test_hf_source_without_datasets_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` now raises ImportError
    with pytest.raises(SystemExit) as exit_info:
        prepare.main(["imdb", "--out_dir", str(tmp_path / "imdb")])
    assert exit_info.value.code == ("error: preparing imdb needs the Hugging Face `datasets` package and "
                                    "network access: pip install datasets")
    assert not (tmp_path / "imdb").exists()
    with pytest.raises(prepare.DataError, match="pip install datasets"):
        prepare.source_documents("wikitext103")


def fake_datasets(rows_by_repo=None, error=None):
    calls = []

    def load_dataset(repo, config, split, streaming):
        calls.append((repo, config, split, streaming))
        if error:
            raise error
        return iter(rows_by_repo[repo])

    return types.SimpleNamespace(load_dataset=load_dataset), calls


def test_hf_download_failure_is_one_clear_line(monkeypatch, tmp_path):
    module, _ = fake_datasets(error=ConnectionError("Couldn't reach the Hub\nmore detail"))
    monkeypatch.setitem(sys.modules, "datasets", module)
    with pytest.raises(SystemExit) as exit_info:
        prepare.main(["squad", "--out_dir", str(tmp_path)])
    message = exit_info.value.code
    assert message.startswith("error: could not load squad (rajpurkar/squad, plain_text, split train)")
    assert "\n" not in message and "Couldn't reach the Hub" in message
    assert not list(tmp_path.glob("*"))


def test_hf_documents_from_rows(monkeypatch):
    wikitext = [{"text": t} for t in ["", " = Alpha = \n", "", " Alpha text . \n", " = = History = = \n",
                                      " More alpha . \n", " = Beta = \n", " Beta text . \n"]]
    squad = [{"context": "Paris is big.", "question": "Is Paris big?"},
             {"context": "Paris is big.", "question": "What is big?"},
             {"context": "Rome is old.", "question": "Is Rome old?"}]
    pubmed = [{"question": "Does X help?", "context": {"contexts": ["Background.", "Results."]},
               "long_answer": "X helps.", "final_decision": "yes"}]
    module, calls = fake_datasets({"Salesforce/wikitext": wikitext, "rajpurkar/squad": squad,
                                   "qiaojin/PubMedQA": pubmed, "stanfordnlp/imdb": [{"text": "Great film."}]})
    monkeypatch.setitem(sys.modules, "datasets", module)
    assert prepare.source_documents("wikitext103") == [
        "= Alpha = \n Alpha text . \n = = History = = \n More alpha .", "= Beta = \n Beta text ."]
    assert prepare.source_documents("squad", split="validation") == [
        "Paris is big.\n\nIs Paris big?\nWhat is big?", "Rome is old.\n\nIs Rome old?"]
    assert prepare.source_documents("pubmed_qa") == ["Does X help?\n\nBackground.\n\nResults.\n\nX helps."]
    assert prepare.source_documents("imdb_char") == ["Great film."]
    assert calls[0] == ("Salesforce/wikitext", "wikitext-103-raw-v1", "train", True)
    assert calls[1] == ("rajpurkar/squad", "plain_text", "validation", True)


def test_hf_source_end_to_end_with_a_cap(monkeypatch, tmp_path):
    reviews = [{"text": f"Review number {i}: a fine film."} for i in range(50)]
    module, calls = fake_datasets({"stanfordnlp/imdb": reviews})
    monkeypatch.setitem(sys.modules, "datasets", module)
    prepare.main(["imdb", "--out_dir", str(tmp_path), "--max_docs", "20", "--split", "test"])
    meta = prepare.load_meta(str(tmp_path))
    assert meta["source"] == "hf:stanfordnlp/imdb plain_text split test"
    assert (meta["n_train_docs"], meta["n_val_docs"]) == (18, 2)
    assert calls == [("stanfordnlp/imdb", "plain_text", "test", True)]


def test_prepare_source_bundled_wiki(tmp_path):
    meta = prepare.prepare_source("wiki", out_dir=tmp_path, verbose=False)
    assert prepare.is_prepared(str(tmp_path)) and prepare.load_meta(str(tmp_path)) == meta
    assert (meta["n_train_docs"], meta["n_val_docs"], meta["eot"]) == (80, 9, 50256)
    _, decode = tokenizer.get_tokenizer(meta["tokenizer"])
    val = read_split(tmp_path, "val")
    val_docs = [decode(p[:-1]) for p in np.split(val, np.flatnonzero(val == 50256) + 1)[:-1]]
    articles = prepare.source_documents("wiki")
    assert len(val_docs) == 9 and all(doc in articles for doc in val_docs)


def test_the_suggested_prepare_command_for_a_path_is_one_prepare_accepts(tmp_path):
    target = tmp_path / "corpora" / "mine"
    with pytest.raises(prepare.DataError) as e:
        prepare.load_meta(str(target))
    command = f"python data/prepare.py mine --input FILE.txt|FILE.jsonl --out_dir {target}"
    assert str(e.value).endswith(f"; run: {command}")
    src = tmp_path / "notes.txt"
    src.write_text("\n\n".join(small_documents()), encoding="utf-8")
    argv = command.replace("FILE.txt|FILE.jsonl", str(src)).split()[2:]
    prepare.main(argv)  # exactly what the message says, with the file filled in
    assert prepare.load_meta(str(target))["n_train_docs"] > 0
    assert prepare.prepare_command(str(tmp_path / "austen_char")) == \
        f"python data/prepare.py austen_char --out_dir {tmp_path / 'austen_char'}"  # a bundled source needs no file
    assert prepare.prepare_command(str(tmp_path / "my notes")).startswith("python data/prepare.py NAME --input ")


def test_out_dir_naming_a_file_is_one_line(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    with pytest.raises(SystemExit) as e:
        prepare.main(["wiki", "--out_dir", str(afile)])
    assert e.value.code == f"error: --out_dir {afile} is a file, not a folder"
    with pytest.raises(prepare.DataError, match=f"^{afile} is a file, not a folder$"):
        prepare.prepare("x", small_documents(), {"name": "char"}, out_dir=afile, verbose=False)
    assert afile.read_text() == "keep me"
