"""
Export a model to Hugging Face's format, so that transformers, lm-evaluation-harness, vLLM or the hub can use it:

    python export.py out hf/out          # our run directory (its ckpt.pt), a checkpoint file, or GPT-2 weights
    python -c "import transformers as t; m = t.AutoModelForCausalLM.from_pretrained('hf/out'); \\
               tok = t.AutoTokenizer.from_pretrained('hf/out')"
    lm_eval --model hf --model_args pretrained=hf/out --tasks lambada_openai

OUT_DIR gets config.json (a GPT2LMHeadModel), model.safetensors (written here: the format is simple enough to need
no package) and, for GPT-2 BPE models, the tokenizer as GPT-2's vocab.json and merges.txt (and the same BPE as
tokenizer.json), made from the shipped ranks file data/gpt2.tiktoken. A char-level tokenizer has no Hugging Face
form: its weights are exported, and its characters are kept in nanodisperse_tokenizer.json, which Hugging Face
tools do not read.

The output layer keeps only the rows the tokenizer can produce (50257 for GPT-2's BPE, as in GPT-2's own
checkpoint): our models pad the vocabulary to a multiple of 64 for speed, and a padded row is a token no tokenizer
can decode. --keep_padded_vocab exports every row instead (config.json's vocab_size is then the padded size).
"""

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from data.tokenizer import GPT2_EOT, GPT2_RANKS_FILE, _read_gpt2_ranks, vocab_size
from support.checks import one_line
from support.load import load_gpt

# Hugging Face's GPT-2 computes these four layers with Conv1D, whose weight is stored (in, out): Linear's transposed
# (model.GPT.from_pretrained transposes them the other way on loading)
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# everything export writes, so that re-exporting into the same folder knows what it may replace
EXPORT_FILES = ("config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer.json",
                "tokenizer_config.json", "special_tokens_map.json", "nanodisperse_tokenizer.json")
EOT_TEXT = "<|endoftext|>"


class ExportError(ValueError):
    """Input that cannot be exported; the message is one line for the user."""


# ------------------------------------------------------------------------------------------------ the weights

def hf_config(cfg, n_rows, tokenizer):
    """config.json of a GPT2LMHeadModel with the same shape; n_inner is kept (null means 4 * n_embd in both)."""
    config = dict(architectures=["GPT2LMHeadModel"], model_type="gpt2", vocab_size=n_rows,
                  n_positions=cfg.block_size, n_ctx=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                  n_head=cfg.n_head, n_inner=cfg.n_inner, activation_function="gelu_new", layer_norm_epsilon=1e-5,
                  resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
                  initializer_range=0.02, scale_attn_weights=True, tie_word_embeddings=True, use_cache=True,
                  dtype="float32")
    # GPT-2's own config: both <|endoftext|>; a char vocabulary has no such token, and saying nothing would let
    # transformers' GPT-2 default of 50256 stand
    eot = GPT2_EOT if tokenizer["name"] == "gpt2" else None
    return {**config, "bos_token_id": eot, "eos_token_id": eot}


def hf_state_dict(net, n_rows):
    """Our parameters under GPT2LMHeadModel's names and layouts. The output layer is tied to wte, so it is not
    stored (transformers ties it on loading, as for GPT-2); a model trained without biases gets zero biases,
    which compute the same function in a GPT-2 that always has them."""
    out = {}
    for name, p in net.state_dict().items():
        if name == "lm_head.weight":
            continue
        p = p.detach().cpu()
        if name == "transformer.wte.weight":
            p = p[:n_rows]
        out[name] = p.t() if name.endswith(CONV1D) else p
    if not net.config.bias:
        for name, p in list(out.items()):
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight", "c_attn.weight", "c_proj.weight",
                              "c_fc.weight")):
                n_out = p.shape[1] if name.endswith(CONV1D) else p.shape[0]
                out[name.removesuffix("weight") + "bias"] = torch.zeros(n_out, dtype=p.dtype)
    return {k: v.contiguous() for k, v in out.items()}


SAFETENSORS_NAMES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def write_safetensors(tensors, path):
    """The safetensors format: an 8-byte little-endian header length, a JSON header giving each tensor's dtype,
    shape and [start, end) byte range in the data that follows, then the raw little-endian bytes, back to back.
    The header is padded with spaces to a multiple of 8 bytes so that every tensor starts aligned."""
    if sys.byteorder != "little":
        raise ExportError("writing safetensors needs a little-endian machine")
    header, offset = {"__metadata__": {"format": "pt"}}, 0  # transformers refuses a file without format "pt"
    names = sorted(tensors)
    for name in names:
        t = tensors[name]
        n = t.numel() * t.element_size()
        header[name] = dict(dtype=SAFETENSORS_NAMES[t.dtype], shape=list(t.shape), data_offsets=[offset, offset + n])
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for name in names:
            f.write(tensors[name].reshape(-1).view(torch.uint8).numpy().tobytes())


# ------------------------------------------------------------------------------------------------ the tokenizer

def bytes_to_unicode():
    """GPT-2's spelling of bytes as printable characters, which vocab.json and merges.txt are written in: the 188
    printable Latin-1 bytes stand for themselves, the other 68 (control bytes, space, ...) become chr(256 + n) in
    byte order, so that the space is 'Ġ' and the newline 'Ċ'."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + n) for n, b in enumerate(others)}}


def gpt2_vocab_and_merges(ranks):
    """vocab.json and merges.txt from tiktoken's ranks (token bytes -> id). Token r >= 256 is made by merge r - 256:
    BPE on its bytes, with only the merges ranked below r, stops at two parts, and those are the merge."""
    spell = bytes_to_unicode()
    text = lambda b: "".join(spell[x] for x in b)
    vocab, merges = {}, []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        vocab[text(token)] = rank
        if rank < 256:
            continue
        parts = [token[i:i + 1] for i in range(len(token))]
        while len(parts) > 2:  # merge the adjacent pair of lowest rank, as tiktoken's own BPE does
            best, at = rank, -1
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + parts[i + 1], rank)
                if r < best:
                    best, at = r, i
            if at < 0:
                break
            parts[at:at + 2] = [parts[at] + parts[at + 1]]
        if len(parts) != 2:
            raise ExportError(f"{GPT2_RANKS_FILE}: token {rank} is not one merge of two lower-ranked tokens")
        merges.append(f"{text(parts[0])} {text(parts[1])}")
    vocab[EOT_TEXT] = GPT2_EOT
    return vocab, merges


@functools.cache
def gpt2_tokenizer_files():
    """vocab.json's, merges.txt's and tokenizer.json's text, made once per process (about a second)."""
    vocab, merges = gpt2_vocab_and_merges(_read_gpt2_ranks())
    # tokenizer.json is the same BPE for the tokenizers library (read by transformers first, and by tools without
    # Python): GPT-2's byte-level pre-tokenizer (its regex, no prefix space) and decoder, <|endoftext|> special
    byte_level = dict(type="ByteLevel", add_prefix_space=False, trim_offsets=True, use_regex=True)
    fast = dict(version="1.0", truncation=None, padding=None,
                added_tokens=[dict(id=GPT2_EOT, content=EOT_TEXT, single_word=False, lstrip=False, rstrip=False,
                                   normalized=False, special=True)],
                normalizer=None, pre_tokenizer=byte_level, post_processor={**byte_level, "trim_offsets": False},
                decoder=byte_level,
                model=dict(type="BPE", dropout=None, unk_token=None, continuing_subword_prefix="",
                           end_of_word_suffix="", fuse_unk=False, byte_fallback=False, ignore_merges=False,
                           vocab=vocab, merges=merges))
    return (json.dumps(vocab, ensure_ascii=False), "#version: 0.2\n" + "\n".join(merges) + "\n",
            json.dumps(fast, ensure_ascii=False))


def write_gpt2_tokenizer(folder, max_len):
    vocab, merges, fast = gpt2_tokenizer_files()
    (folder / "vocab.json").write_text(vocab, encoding="utf-8")
    (folder / "merges.txt").write_text(merges, encoding="utf-8")
    (folder / "tokenizer.json").write_text(fast, encoding="utf-8")
    special = dict(bos_token=EOT_TEXT, eos_token=EOT_TEXT, unk_token=EOT_TEXT)
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    # GPT-2's tokenizer adds no BOS and no prefix space: text is encoded as it is, as data.tokenizer does
    config = dict(tokenizer_class="GPT2Tokenizer", model_max_length=max_len, add_prefix_space=False,
                  add_bos_token=False, errors="replace", **special)
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


# ------------------------------------------------------------------------------------------------ the folder

def check_out_dir(out):
    """Refuse a file, an unwritable folder or one holding files that are not an earlier export.
    -> the nearest folder on the way to out that exists already."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file, not a folder")
    if out.is_dir():
        others = sorted(f.name for f in out.iterdir() if f.name not in EXPORT_FILES)
        if others:
            raise ExportError(f"{out} holds other files ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''})"
                              ": give a new or empty folder, or one holding an earlier export")
        if not os.access(out, os.W_OK):
            raise ExportError(f"{out} is not writable")
    base = out.parent
    while not base.exists():  # the folders still to be made
        base = base.parent
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        raise ExportError(f"cannot create {out}: {base} is not a writable folder")
    return base


def export(spec, out_dir, keep_padded_vocab=False):
    """Write MODEL spec to out_dir in Hugging Face's format. -> lines to tell the user."""
    out = Path(out_dir).absolute()
    base = check_out_dir(out)
    try:
        net, tokenizer = load_gpt(spec)
    except (ValueError, OSError) as e:  # ModelError is a ValueError; so are from_pretrained's complaints
        raise ExportError(str(e)) from None
    n_vocab = vocab_size(tokenizer)
    n_rows = net.config.vocab_size if keep_padded_vocab else min(n_vocab, net.config.vocab_size)
    notes = []
    if keep_padded_vocab and n_rows > n_vocab:
        notes.append(f"vocab_size {n_rows}: the output layer keeps its {n_rows - n_vocab} padded rows; the "
                     f"tokenizer produces ids 0..{n_vocab - 1} only")
    # everything goes into a fresh folder on OUT_DIR's file system, which then takes OUT_DIR's place in one rename:
    # never a half export, and no folder left behind by a failed one
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=base))
    try:
        write_export(net, tokenizer, n_rows, tmp, out, notes)
    except OSError as e:  # a full disk, say: the folder it would have gone to, and how much room there is
        free = shutil.disk_usage(base).free / 2**20
        raise ExportError(f"cannot write {out}: {e.strerror or e} ({free:,.0f} MiB free on its disk); nothing "
                          "was changed there") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return notes


def write_export(net, tokenizer, n_rows, tmp, out, notes):
    """The export's files into tmp, which then takes out's place in one rename."""
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes a private folder; the export is an ordinary one
    (tmp / "config.json").write_text(json.dumps(hf_config(net.config, n_rows, tokenizer), indent=2) + "\n")
    write_safetensors(hf_state_dict(net, n_rows), tmp / "model.safetensors")
    (tmp / "nanodisperse_tokenizer.json").write_text(json.dumps(tokenizer) + "\n")
    if tokenizer["name"] == "gpt2":
        write_gpt2_tokenizer(tmp, net.config.block_size)
    else:
        notes.append(f"the {tokenizer['name']} tokenizer has no Hugging Face form: no tokenizer files written; "
                     f"token id i is character i of 'chars' in nanodisperse_tokenizer.json")
    if out.exists():  # an empty folder or an earlier export: swap it for the new one
        old = out.with_name(tmp.name + ".old")
        out.rename(old)
        try:
            tmp.rename(out)
        except OSError:
            old.rename(out)
            raise
        shutil.rmtree(old)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out)


def main(argv=None):
    p = argparse.ArgumentParser(description="Export a model (our checkpoint or run directory, or GPT-2 weights) to "
                                            "Hugging Face's GPT2LMHeadModel format.", allow_abbrev=False)
    p.add_argument("model", metavar="MODEL", help="one of our run directories or checkpoints, or GPT-2 weights "
                                                  "(a name in the Hugging Face cache or a folder)")
    p.add_argument("out_dir", metavar="OUT_DIR", help="the folder to write (new, empty, or an earlier export)")
    p.add_argument("--keep_padded_vocab", action="store_true",
                   help="export the output layer's padded rows too (default: only the tokenizer's ids)")
    one_line(p, "export.py")
    args = p.parse_args(argv)
    try:
        notes = export(args.model, args.out_dir, args.keep_padded_vocab)
    except (ExportError, OSError) as e:
        sys.exit(f"error: {(str(e).strip().splitlines() or [type(e).__name__])[0]}")
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {args.out_dir}")


if __name__ == "__main__":
    main()
