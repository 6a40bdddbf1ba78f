"""
Command-line checks: bad input stops before any work, with one line (`error: ...`) and a non-zero exit.

    number          an argparse type: a float flag takes finite numbers only (no nan, no inf)
    one_line        makes a parser say its error in one line, not argparse's usage block
    check_train     train.py's flags, each against its possible range
    parse_layers    --disp_layers as block indices
    check_writable  an output folder that could not be written is refused before the work, not after it
"""

import argparse
import math
import os
import sys


def fail(msg):
    sys.exit(f"error: {msg}")


def number(text):
    """A finite float: nan and inf would pass every comparison a range check makes, and poison the run later."""
    value = float(text)  # argparse turns a ValueError here into "invalid number value"
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def one_line(parser, script):
    """parser.error prints one line naming the script's --help, instead of argparse's usage block."""
    parser.error = lambda msg: fail(f"{msg} (see python {script} --help)")
    return parser


def at_least(args, bounds, error=fail):
    """Each flag in bounds {name: lowest value} is at least that (a flag left at None is not checked); else
    error(message), by default one line and exit (a parser's error, to name its --help)."""
    for name, low in bounds.items():
        value = getattr(args, name)
        if value is not None and value < low:
            error(f"--{name} must be at least {low}, got {value}")


def check_train(args):
    """train.py's flags, before anything loads."""
    from model import GPTConfig  # here, so that the scripts without a model (data/prepare.py) need no torch
    at_least(args, dict(n_layer=1, n_head=1, n_embd=1, n_inner=1, block_size=2, batch_size=1,
                        gradient_accumulation_steps=1, eval_interval=1, eval_iters=1, log_interval=1, cond_texts=1,
                        eval_task_items=1, max_iters=0, warmup_iters=0, lr_decay_iters=0, save_every=0,
                        forget_every=0, disp_max_tokens=0))
    try:  # the model flags, by the model's own rules
        GPTConfig(block_size=args.block_size, n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                  n_inner=args.n_inner, dropout=args.dropout, bias=args.bias)
    except ValueError as e:
        fail(f"model flags: {e}")
    for name in ("min_lr", "weight_decay", "grad_clip", "disp_coeff", "embed_noise", "disp_lambda_norm"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            fail(f"--{name} must not be negative, got {getattr(args, name)}")
    for name in ("learning_rate", "disp_tau", "kd_temperature"):
        if not getattr(args, name) > 0:
            fail(f"--{name} must be positive, got {getattr(args, name)}")
    for name in ("beta1", "beta2"):
        if not 0 <= getattr(args, name) < 1:
            fail(f"--{name} must be in [0, 1), got {getattr(args, name)}")
    if not 0 <= args.kd_alpha <= 1:
        fail(f"--kd_alpha must be in [0, 1], got {args.kd_alpha}")
    if not 0 < args.disp_clamp < 1:
        fail(f"--disp_clamp must be in (0, 1), got {args.disp_clamp}")
    if args.disp_max_tokens == 1:
        fail("--disp_max_tokens must be 0 (every token) or at least 2: a pair needs two tokens")
    if args.overwrite and args.init_from == "resume":
        fail("--overwrite starts a new run and --init_from resume continues one: give one of them")


def parse_layers(spec, n_layer):
    """Which blocks' outputs to disperse: 'all', 'last', 'early' (the first n_layer // 2 blocks, at
    least one), 'late' (the rest: the second half, the middle block of an odd depth included) or a
    comma list of block indices 0..n_layer-1. -> sorted block indices (dispersion.layer_dispersion
    says which hidden state each is)."""
    s = str(spec).strip().lower()
    named = {"all": range(n_layer), "last": [n_layer - 1], "early": range(max(1, n_layer // 2)),
             "late": range(n_layer // 2, n_layer)}
    if s in named:
        return list(named[s])
    parts = [p.strip() for p in s.split(",")]
    if not s or not all(p.lstrip("-").isdigit() for p in parts):
        raise ValueError(f"bad layer spec {spec!r}: expected all, last, early, late or "
                         f"comma-separated block indices such as 0,5,11")
    layers = [int(p) for p in parts]
    bad = [i for i in layers if not 0 <= i < n_layer]
    if bad:
        raise ValueError(f"layer spec {spec!r}: block indices {bad} out of range 0..{n_layer - 1}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layer spec {spec!r} repeats a block index")
    return sorted(layers)


def check_writable(folder, flag):
    """folder (to be made if missing) can take files: it is no file, and it or its nearest existing parent is
    writable. -> None, or the one line that says why not."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        return f"{flag} {folder} is a file, not a folder"
    parent = os.path.abspath(folder)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{flag} {folder} is not writable ({parent} does not let this user write)"
    return None
