"""
Open a MODEL argument, one way for every script: measure.py, evaluate.py, sample.py, export.py and train.py's
--init_from and --teacher. A MODEL is

    out/run1  out/run1/ckpt.pt  out/run1/ckpt_000500.pt   one of our run directories (its ckpt.pt) or checkpoints
    gpt2  gpt2-medium  org/name  path/to/gpt2_dir         GPT-2 weights: a folder, or a hub name (the Hugging Face
                                                          cache, else downloaded into it)
    hf:Qwen/Qwen3-0.6B  hf:path/to/dir  hf:NAME@REVISION  any Hugging Face causal LM (optional `transformers`)

open_model() checks the argument and reads the tokenizer without loading any weights, so that a script can reject
every bad input before its first forward pass; load(device, dtype) then builds the network. Beside it, what the
scripts that read MODELs and write a results folder share: check_flags (their common flag checks) and
write_results (the folder written whole); and open_with_texts, measure.py's models with their texts.
"""

import inspect
import json
import os
import pickle
import re
import shutil
import tempfile
from pathlib import Path

import torch

import model as gpt
from support import checks, hub
from data.prepare import DataError
from data.texts import load_documents, select_texts
from data.tokenizer import eot_token, get_tokenizer, vocab_size

GPT2_NAMES = hub.GPT2_NAMES  # gpt2, gpt2-medium, gpt2-large, gpt2-xl: openai-community/<name> on the hub


class ModelError(ValueError):
    """A MODEL argument that cannot be opened; the message is one line for the user."""


def check_flags(parser, args, at_least):
    """The flag checks that measure.py and evaluate.py share, each failing through parser.error: at_least
    {flag: its lowest value} (a flag left at None is not checked), a CUDA --device where there is none, and an --out
    that is a file."""
    checks.at_least(args, at_least, parser.error)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA GPU here")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error(f"--out {args.out} is a file, not a folder")


def write_results(out, write, stale=lambda folder: ()):
    """A script's result files, written whole into the folder out (its --out, as given): write(folder) fills a fresh
    folder beside out; then the files stale(out) lists (a last run's that this one does not rewrite, which would mix
    in) are removed and the new ones moved in, so a failure midway leaves no half-written result. measure.py and
    evaluate.py share it. A failed write is an OSError whose one line names --out, not the temporary folder."""
    folder = Path(out).resolve()
    try:
        beside = folder.parent if folder.parent.is_dir() else None  # the same disk: the moves are renames
        with tempfile.TemporaryDirectory(prefix=".results-", dir=beside) as tmp:
            write(Path(tmp))
            folder.mkdir(parents=True, exist_ok=True)
            for old in stale(folder):
                old.unlink(missing_ok=True)
            for f in Path(tmp).iterdir():
                shutil.move(str(f), str(folder / f.name))
    except OSError as e:
        raise OSError(f"cannot write the results into --out {out}: {e.strerror or e}") from None
    return folder


def open_with_texts(args, paper_len):
    """measure.py's inputs: every MODEL opened and checked, and the texts it will see chosen and
    tokenized, before any forward pass (--seq_len None: paper_len tokens, or the smallest context of
    the models if that is shorter). -> (models, described data)."""
    if args.paired and len(args.models) % 2:
        raise DataError(f"--paired takes models in pairs (base, other, base, other, ...), got "
                           f"{len(args.models)}")
    docs, described = load_documents(args.data, args.field, args.split)
    models = [m for spec in args.models for m in open_model(spec, args.snapshots)]
    if args.paired and len(models) != len(args.models):
        raise DataError("--paired and --snapshots do not go together")
    if args.seq_len is None:  # the paper's 512, unless a model's context is shorter
        contexts = {m["name"]: m["max_len"] for m in models if m["max_len"] is not None}
        args.seq_len = min([paper_len, *contexts.values()])
        if args.seq_len < paper_len:
            print(f"texts of {args.seq_len} tokens: the shorter of {paper_len} and the smallest "
                  f"context of the models ({min(contexts, key=contexts.get)}); --seq_len sets it",
                  flush=True)
    for m in models:  # tokenizing is cheap next to a forward pass
        # a char model has no id for a character it never saw: those are dropped
        if m["chars"] is not None:
            m["encode"] = (lambda text, known=m["chars"], enc=m["encode"]:
                           enc("".join(c for c in text if c in known)))
        if m["max_len"] is not None and args.seq_len > m["max_len"]:
            raise DataError(f"--seq_len {args.seq_len} is longer than {m['name']}'s context of "
                               f"{m['max_len']}")
        m["tokens"], m["starts"] = select_texts(docs, m["encode"], args.n_texts, args.seq_len,
                                                args.seed, f" in {described} for {m['name']}")
        if (top := int(m["tokens"].max())) >= m["vocab"]:
            raise DataError(f"{m['name']}: token id {top} is outside its vocabulary of "
                               f"{m['vocab']}")
    return models, described


def load_checkpoint(path, map_location="cpu", mmap=False):
    """Read a checkpoint written by train.py, with one clear error for a missing, corrupt or foreign file."""
    if os.path.isdir(path):
        path = os.path.join(path, "ckpt.pt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # torch.save writes a zip archive
            raise ValueError(f"{path} is not a readable checkpoint: it is not the zip archive torch.save writes")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError:  # torch.load refused to unpickle it: the refusal keeps a stranger's code out
        raise ValueError(f"{path} is not a readable checkpoint: it holds Python objects beyond tensors and plain "
                         "types, which are not loaded (they could run code)") from None
    except RuntimeError:  # PyTorch's zip reader on a file cut short or damaged
        raise ValueError(f"{path} is not a readable checkpoint: it is corrupt or incomplete (a copy or a save that "
                         "did not finish?)") from None
    except Exception as e:
        raise ValueError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_args" not in ckpt:
        raise ValueError(f"{path} is not a nanodisperse checkpoint (no 'model' and 'model_args' entries)")
    if isinstance(ckpt["model"], dict):  # saved from a compiled or DDP-wrapped model by someone else's script
        ckpt["model"] = {k.removeprefix("_orig_mod.").removeprefix("module."): v for k, v in ckpt["model"].items()}
    return ckpt


def open_model(spec, snapshots=False):
    """-> a list (a run's snapshots are several) of dicts, one per model:
    name, kind ("checkpoint" | "gpt2" | "hf"), run (what snapshots of one training run share), tokens_seen,
    encode (str -> ids, with the special tokens the tokenizer adds itself), decode (ids -> str), chars (a char
    model's known characters, else None), tokenizer (our spec dict; None for hf), vocab (rows of the output layer),
    n_vocab (ids the tokenizer can produce), max_len (context length or None), eot and bos (ids or None), and
    load(device, dtype) -> dict(net, hidden: ids [B, T] -> list of n_layer + 1 states [B, T, C],
    logits: ids [B, T] -> [B, T, vocab], n_params, n_params_non_embedding)."""
    if spec.startswith("hf:"):
        return [open_hf(spec[3:])]
    path = Path(spec)
    if path.is_dir() and (snapshots or (path / "ckpt.pt").exists() or not (path / "config.json").exists()):
        files = sorted(path.glob("ckpt_[0-9]*.pt")) if snapshots else [path / "ckpt.pt"]
        if not files or not files[0].exists():
            raise ModelError(f"{spec} holds no {'ckpt_NNNNNN.pt snapshots' if snapshots else 'ckpt.pt'} "
                             "(nor config.json of a GPT-2 model)")
        return [open_checkpoint(f, str(f) if snapshots else spec) for f in files]
    if path.is_file():
        return [open_checkpoint(path, spec)]
    if path.is_dir() or (hub.hub_repo(spec) and not spec.endswith(".pt")):
        return [open_gpt2(spec)]  # a folder, gpt2 ... gpt2-xl or a hub repo org/name: the cache, else downloaded
    if spec.endswith(".pt") or os.sep in spec:
        raise ModelError(f"no such file or directory: {spec}")
    raise ModelError(f"unknown model {spec!r}: not a checkpoint file or run directory, a GPT-2 name "
                     f"({', '.join(GPT2_NAMES)}), hub repo (org/name) or directory, nor hf:<name or directory>")


def open_checkpoint(path, name):
    # memory-mapped, so that checking a run's every snapshot reads neither its weights nor its optimizer state
    try:
        ckpt = load_checkpoint(str(path), mmap=True)
    except (FileNotFoundError, ValueError) as e:
        raise ModelError(str(e)) from None
    try:  # weights that do not fit model_args are caught now on a meta-device model, which costs no memory
        with torch.device("meta"):
            ref = gpt.GPT(gpt.GPTConfig(**ckpt["model_args"])).state_dict()
        sd = ckpt["model"]
        bad = [k for k in ref if k not in sd or tuple(sd[k].shape) != tuple(ref[k].shape)] + sorted(set(sd) - set(ref))
    except (TypeError, ValueError, AttributeError) as e:
        raise ModelError(f"{path} is not a nanodisperse checkpoint ({e})") from None
    if bad:
        raise ModelError(f"{path}: weights do not match model_args (first mismatch: {bad[0]})")
    tok, args = ckpt.get("tokenizer") or {"name": "gpt2"}, ckpt["model_args"]
    encode, decode = get_tokenizer(tok)
    load = lambda device, dtype: ours(gpt.GPT.from_checkpoint(load_checkpoint(str(path))), device, dtype)
    return dict(name=name, kind="checkpoint", run=str(Path(path).parent), tokens_seen=ckpt.get("tokens_seen"),
                encode=encode, decode=decode, chars=set(tok["chars"]) if tok["name"] == "char" else None,
                tokenizer=tok, vocab=args["vocab_size"], n_vocab=vocab_size(tok), max_len=args["block_size"],
                eot=eot_token(tok), bos=None, load=load)


def open_gpt2(spec):
    try:
        folder = hub.find_pretrained(spec)  # the cache, else the hub; a one-line FileNotFoundError if neither
    except FileNotFoundError as e:
        raise ModelError(str(e)) from None
    config = json.loads(Path(folder, "config.json").read_text())
    if config.get("model_type", "gpt2") != "gpt2":
        raise ModelError(f"{spec} holds a {config.get('model_type')} model, not GPT-2: use hf:{spec}")
    encode, decode = get_tokenizer({"name": "gpt2"})
    load = lambda device, dtype: ours(load_gpt2(folder), device, dtype)
    return dict(name=spec, kind="gpt2", run=None, tokens_seen=None, encode=encode, decode=decode, chars=None,
                tokenizer={"name": "gpt2"}, vocab=config["vocab_size"], n_vocab=vocab_size({"name": "gpt2"}),
                max_len=config["n_positions"], eot=eot_token({"name": "gpt2"}), bos=None, load=load)


def ours(net, device, dtype):
    """Our GPT as load() hands it out. Its hidden states follow Hugging Face's output_hidden_states (the convention
    throughout): n_layer + 1 of them, the embedding output, then each block's output, the last after ln_f."""
    net = net.to(device=device, dtype=dtype).eval()
    # head=False: no output layer, a large share of the forward pass, for logits nobody reads
    return dict(net=net, hidden=lambda idx: net(idx, return_hidden=True, head=False)[2],
                logits=lambda idx: net(idx)[0], n_params=net.num_params(), n_params_non_embedding=net.num_params(True))


def open_hf(spec):
    """hf:<name or directory>[@revision], e.g. hf:allenai/OLMo-1B-0724-hf@step5000-tokens10B: an intermediate
    checkpoint, whose training tokens are read from the revision's name when it has them (tokens<N>B)."""
    try:
        import transformers
    except ImportError:
        raise ModelError(f"hf:{spec} needs the optional package transformers (pip install transformers)") from None
    name, _, revision = (spec, "", "") if os.path.exists(spec) else spec.partition("@")
    kw = {"revision": revision} if revision else {}
    try:
        config = transformers.AutoConfig.from_pretrained(name, **kw)
        tok = transformers.AutoTokenizer.from_pretrained(name, **kw)
    except Exception as e:  # missing directory, unknown name, no network, no tokenizer: main keeps the first line
        raise ModelError(f"cannot load hf:{spec}: {str(e).strip() or type(e).__name__}") from None
    encode = lambda text: tok(text, verbose=False)["input_ids"]  # with the model's own special tokens (e.g. BOS)
    if not [i for i in encode("The quick brown fox.") if i not in tok.all_special_ids]:
        # transformers hands back an empty tokenizer when a folder lacks its files: every text would be nothing
        raise ModelError(f"hf:{spec}: its tokenizer turns text into no tokens (are the tokenizer files missing?)")

    def load(device, dtype):
        dtype_arg = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
        net = transformers.AutoModelForCausalLM.from_pretrained(name, **kw, **{dtype_arg: dtype}).to(device).eval()
        # for the hidden states alone, ask for one position's logits where the model allows it
        extra = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(net.forward).parameters else {}
        n = sum(p.numel() for p in net.parameters())
        # non-embedding parameters: minus token and position tables (counting tied ones once), as model.num_params
        tables = {id(m.weight): m.weight.numel() for m in net.modules() if isinstance(m, torch.nn.Embedding)}
        return dict(net=net, n_params=n, n_params_non_embedding=n - sum(tables.values()),
                    hidden=lambda idx: net(input_ids=idx, output_hidden_states=True, use_cache=False,
                                           **extra).hidden_states,
                    logits=lambda idx: net(input_ids=idx, use_cache=False).logits)

    max_len = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    seen = re.search(r"tokens(\d+)B", revision)
    return dict(name=f"hf:{spec}", kind="hf", run=f"hf:{name}", tokens_seen=int(seen[1]) * 10**9 if seen else None,
                encode=encode, decode=lambda ids: tok.decode(list(ids)), chars=None, tokenizer=None,
                vocab=getattr(config, "vocab_size", None) or len(tok), n_vocab=len(tok), max_len=max_len,
                eot=tok.eos_token_id, bos=tok.bos_token_id, load=load)


def load_gpt(spec, dropout=0.0):
    """Our GPT with trained weights, to continue training, distil from, sample or export: one of our checkpoints
    or run directories, or GPT-2 weights. -> (model on the CPU, its tokenizer spec)."""
    if spec.startswith("hf:"):
        raise ModelError(f"{spec}: only our checkpoints and GPT-2 weights load into model.py's GPT "
                         "(hf: models can be measured and evaluated)")
    m = open_model(spec)[0]
    if m["kind"] == "checkpoint":
        ckpt = load_checkpoint(str(spec))
        ckpt["model_args"]["dropout"] = dropout
        return gpt.GPT.from_checkpoint(ckpt), m["tokenizer"]
    return load_gpt2(spec, dropout), m["tokenizer"]


def load_gpt2(name_or_dir, dropout=0.0):
    """model.py's GPT with GPT-2's weights, from a folder with config.json and the weights, or the hub's cache."""
    folder = hub.find_pretrained(name_or_dir)
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    try:
        return gpt.GPT.from_pretrained(config, hub.read_weights(folder), dropout)
    except ValueError as e:
        raise ValueError(f"{folder}: {e}") from None
