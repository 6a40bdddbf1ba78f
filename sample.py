"""
Sample text from a model, as nanoGPT's sample.py does:

    python sample.py out                                           # our run directory (its ckpt.pt)
    python sample.py gpt2 --start "The meaning of life is" --num_samples 3 --max_new_tokens 100
    python sample.py out --start FILE:prompt.txt --temperature 0.8 --top_k 200 --seed 1

MODEL is what every script takes (load.py): one of our checkpoints or run directories, GPT-2 weights (a name in
the Hugging Face cache or a folder), or hf:<name or folder> through transformers. Each sample is printed with its
prompt, then a separator line. Sampling: the logits of the next token divided by the temperature, all but the
top_k largest dropped, softmax, one draw; the same seed gives the same samples.
"""

import argparse
import sys
from pathlib import Path

import torch

from support import checks
from support.checks import number
from support.load import ModelError, open_model

SEPARATOR = "---------------"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Sample text from a model, as nanoGPT's sample.py does.",
                                allow_abbrev=False, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="our checkpoint or run directory, GPT-2 name or folder, or hf:NAME")
    p.add_argument("--start", default="\n",
                   help="the prompt, or FILE:path to read it from a file (default: %(default)r, a newline)")
    p.add_argument("--num_samples", type=int, default=3, help="samples to draw, one after another")
    p.add_argument("--max_new_tokens", type=int, default=300, help="tokens generated per sample")
    p.add_argument("--temperature", type=number, default=0.8, help="< 1 sharper, > 1 more random")
    p.add_argument("--top_k", type=int, default=200, help="sample among the k likeliest tokens; 1 is greedy, 0 all")
    p.add_argument("--seed", type=int, default=1337, help="seeds the draws")
    p.add_argument("--device", default="auto", help="auto (cuda if there is one, else cpu) | cpu | cuda | cuda:N | mps")
    checks.one_line(p, "sample.py")
    args = p.parse_args(argv)
    checks.at_least(args, dict(num_samples=1, max_new_tokens=1), p.error)
    if not args.temperature > 0:
        p.error(f"--temperature must be positive, got {args.temperature} (--top_k 1 is greedy decoding)")
    if args.top_k < 0:
        p.error(f"--top_k must be 0 (all tokens) or more, got {args.top_k}")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(args.device)
    except RuntimeError:
        p.error(f"unknown --device {args.device}")
    if (device.type == "cuda" and not torch.cuda.is_available()) or \
            (device.type == "mps" and not torch.backends.mps.is_available()):
        p.error(f"--device {args.device}, but this machine has no such device")
    return args


def read_prompt(start):
    if start.startswith("FILE:"):
        path = Path(start[5:])
        try:
            return path.read_text(encoding="utf-8")
        except OSError as e:
            raise ValueError(f"--start {start}: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise ValueError(f"--start {start}: not UTF-8 text") from None
    return start


def encode_prompt(m, text):
    """The prompt's token ids, or a ValueError saying in one line why it cannot be a prompt for model m."""
    if not text:
        raise ValueError("--start is empty: give at least one character (the default is a newline)")
    try:
        ids = m["encode"](text)
    except ValueError as e:  # a char model meets a character it never saw: data.tokenizer names it
        raise ValueError(f"--start: {e}") from None
    if not ids:
        raise ValueError(f"--start {text!r} gives no tokens for {m['name']}")
    if max(ids) >= m["vocab"]:  # e.g. a char model exported to a folder that now reads as GPT-2
        raise ValueError(f"--start gives token id {max(ids)}, past {m['name']}'s vocabulary of {m['vocab']}")
    if m["max_len"] and len(ids) > m["max_len"]:
        raise ValueError(f"--start is {len(ids)} tokens, longer than {m['name']}'s context of {m['max_len']}")
    return ids


def sample(m, net, ids, args, device):
    """Yields one list of token ids (prompt included) per sample, each as soon as it is drawn."""
    torch.manual_seed(args.seed)
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    top_k = args.top_k or None
    for _ in range(args.num_samples):
        if m["kind"] == "hf":
            import transformers
            # the model's own generation defaults (top_p, repetition penalty, stopping at end-of-text) would mix in
            # with ours: without them, it draws max_new_tokens tokens from the same distribution as our GPT would
            net.generation_config = transformers.GenerationConfig()
            cfg = transformers.GenerationConfig(do_sample=True, temperature=args.temperature, top_k=top_k or 0,
                                                top_p=1.0, max_new_tokens=args.max_new_tokens,
                                                pad_token_id=m["eot"] if m["eot"] is not None else 0,
                                                suppress_tokens=list(range(m["n_vocab"], m["vocab"])) or None)
            y = net.generate(idx, attention_mask=torch.ones_like(idx), generation_config=cfg)
        else:  # our GPT: only the tokenizer's ids can come out, never a padded row
            y = net.generate(idx, args.max_new_tokens, temperature=args.temperature, top_k=top_k,
                             n_vocab=m["n_vocab"])
        yield y[0].tolist()


def main(argv=None):
    args = parse_args(argv)
    try:
        m = open_model(args.model)[0]  # checks MODEL and reads its tokenizer, loads no weights yet
        ids = encode_prompt(m, read_prompt(args.start))
        if m["kind"] == "hf" and m["max_len"] and len(ids) + args.max_new_tokens > m["max_len"]:
            raise ValueError(f"{m['name']}: prompt ({len(ids)} tokens) + --max_new_tokens {args.max_new_tokens} "
                             f"is longer than its context of {m['max_len']}")
        device = torch.device(args.device)
        net = m["load"](device, torch.float32)["net"]
    except (ModelError, ValueError, OSError) as e:
        sys.exit(f"error: {(str(e).strip().splitlines() or [type(e).__name__])[0]}")
    samples = []
    for y in sample(m, net, ids, args, device):
        print(m["decode"](y))
        print(SEPARATOR, flush=True)
        samples.append(y)
    return samples


if __name__ == "__main__":
    main()
