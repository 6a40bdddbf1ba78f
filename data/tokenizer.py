"""Tokenizers: GPT-2 BPE (through tiktoken, offline) and a character-level one.

A tokenizer is described by a small JSON-able spec dict, stored in meta.json and in checkpoints:
    {"name": "gpt2"}                       GPT-2's byte-level BPE, 50257 tokens, <|endoftext|> = 50256
    {"name": "char", "chars": "\\n !..."}   one token per character; token id = index in the sorted `chars`
`get_tokenizer(spec)` turns a spec into a pair of plain functions (encode, decode).
"""

import base64
import functools
import hashlib
from pathlib import Path

GPT2_RANKS_FILE = Path(__file__).resolve().parent / "gpt2.tiktoken"
# sha256 of the GPT-2 (r50k_base) ranks file; the same hash tiktoken itself expects for r50k_base
GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
GPT2_VOCAB_SIZE = 50257
GPT2_EOT = 50256  # <|endoftext|>, the separator between documents


def _read_gpt2_ranks(path=GPT2_RANKS_FILE):
    """Parse the shipped ranks file: one `base64(token bytes) rank` pair per line.

    Parsed here rather than with tiktoken.load.load_tiktoken_bpe because that function
    also writes a cached copy of the file into the temp directory.
    """
    raw = Path(path).read_bytes()
    if hashlib.sha256(raw).hexdigest() != GPT2_RANKS_SHA256:
        raise ValueError(f"{path} is corrupt: its sha256 does not match {GPT2_RANKS_SHA256}")
    ranks = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@functools.cache
def gpt2_encoding():
    """GPT-2's BPE as a tiktoken Encoding, built offline from data/gpt2.tiktoken.

    The shipped file is tried first: it is byte-for-byte the r50k_base ranks that
    tiktoken.get_encoding("gpt2") would download, so the result is identical, and it never
    waits on a network timeout. Only when the file is missing or corrupt do we ask tiktoken,
    which uses its own cache or downloads. Cached per process: building takes ~0.1 s.
    """
    import tiktoken

    try:
        ranks = _read_gpt2_ranks()
    except (OSError, ValueError) as shipped_error:
        try:
            return tiktoken.get_encoding("gpt2")
        except Exception as download_error:
            raise RuntimeError(
                f"cannot build the GPT-2 tokenizer: {shipped_error}; and tiktoken could not fetch it "
                f"({type(download_error).__name__}: {download_error})"
            ) from None
    try:  # GPT-2's pre-tokenization regex, in tiktoken's faster spelling
        from tiktoken_ext.openai_public import r50k_pat_str as pattern
    except ImportError:  # older tiktoken: the regex as in GPT-2's original encoder.py
        pattern = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

    return tiktoken.Encoding(
        name="gpt2",
        pat_str=pattern,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": GPT2_EOT},
        explicit_n_vocab=GPT2_VOCAB_SIZE,
    )


def char_spec(text):
    """Char tokenizer spec whose vocabulary is every character in `text` (a str or an iterable of str)."""
    chars = set()
    for piece in [text] if isinstance(text, str) else text:
        chars.update(piece)
    return {"name": "char", "chars": "".join(sorted(chars))}


def _check_spec(spec):
    if not isinstance(spec, dict) or spec.get("name") not in ("gpt2", "char"):
        raise ValueError(f"unknown tokenizer spec {spec!r}: expected {{'name': 'gpt2'}} or {{'name': 'char', 'chars': ...}}")
    if spec["name"] == "char":
        chars = spec.get("chars")
        if not isinstance(chars, str) or not chars:
            raise ValueError("a char tokenizer spec needs 'chars': a non-empty string of its characters")
        if len(set(chars)) != len(chars):
            raise ValueError("a char tokenizer spec has repeated characters in 'chars'")


def vocab_size(spec):
    """Number of token ids the spec can produce (ids are 0 .. vocab_size - 1)."""
    _check_spec(spec)
    return GPT2_VOCAB_SIZE if spec["name"] == "gpt2" else len(spec["chars"])


def eot_token(spec):
    """The end-of-text token id that separates documents, or None (the char tokenizer has none)."""
    _check_spec(spec)
    return GPT2_EOT if spec["name"] == "gpt2" else None


def _as_int_list(ids):
    # numpy arrays (e.g. slices of a .bin memmap) become plain ints, which tiktoken requires
    return ids.tolist() if hasattr(ids, "tolist") else list(ids)


def get_tokenizer(spec):
    """Return (encode, decode) for a spec: encode(str) -> list[int], decode(list[int]) -> str.

    GPT-2: text is always encoded as ordinary text, so a literal "<|endoftext|>" inside a document
    is spelled out in normal tokens and can never forge a document boundary.
    Char: a character outside the vocabulary raises ValueError naming it (no silent fallback id:
    a wrong token would quietly corrupt training data or measurements).
    """
    _check_spec(spec)
    if spec["name"] == "gpt2":
        enc = gpt2_encoding()
        return enc.encode_ordinary, lambda ids: enc.decode(_as_int_list(ids))

    chars = spec["chars"]
    stoi = {ch: i for i, ch in enumerate(chars)}

    def encode(text):
        try:
            return [stoi[ch] for ch in text]
        except KeyError as missing:
            ch = missing.args[0]
            raise ValueError(
                f"character {ch!r} (U+{ord(ch):04X}) at position {text.index(ch)} is not in the char "
                f"tokenizer's vocabulary of {len(chars)} characters"
            ) from None

    def decode(ids):
        try:
            return "".join([chars[i] for i in _as_int_list(ids)])
        except IndexError:
            bad = next(i for i in _as_int_list(ids) if not 0 <= i < len(chars))
            raise ValueError(f"token id {bad} is outside the char vocabulary (0..{len(chars) - 1})") from None

    return encode, decode
