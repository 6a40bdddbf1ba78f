"""
train.py's command line: every flag with its one default and its help (build_parser), and every check that can be
made before anything loads (check_args), so that bad input fails at once with one line. What a resumed run takes
from its checkpoint, and which flags may not change then, is rundir.py's (RUN_FLAGS, MODEL_FLAGS).
"""

import argparse
import sys

import dispersion
from model import GPTConfig

DESCRIPTION = "Train a GPT-2 (from scratch, from a checkpoint, or from GPT-2's weights) with an optional dispersion loss."


def build_parser():
    p = argparse.ArgumentParser(description=DESCRIPTION, allow_abbrev=False,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="austen_char",
                   help="prepared folder data/<name> (bundled ones prepare themselves)")
    g.add_argument("--eval_datasets", default="",
                   help="comma list of more prepared datasets whose val split is evaluated")
    g = p.add_argument_group("model (ignored when resuming or starting from GPT-2 weights)")
    g.add_argument("--n_layer", type=int, default=6, help="transformer blocks")
    g.add_argument("--n_head", type=int, default=4, help="attention heads per block (must divide n_embd)")
    g.add_argument("--n_embd", type=int, default=128, help="width of the residual stream")
    g.add_argument("--n_inner", type=int, default=None, help="MLP hidden width; default 4 * n_embd")
    g.add_argument("--block_size", type=int, default=128, help="training context length")
    g.add_argument("--dropout", type=float, default=0.0, help="dropout rate (0 for pre-training, as in nanoGPT)")
    g.add_argument("--bias", action=argparse.BooleanOptionalAction, default=True, help="biases in Linear and LayerNorm")
    g = p.add_argument_group("optimization")
    g.add_argument("--batch_size", type=int, default=32, help="sequences per micro-batch on each process")
    g.add_argument("--gradient_accumulation_steps", type=int, default=1,
                   help="micro-batches per optimizer step, summed over all processes (divisible by their number)")
    g.add_argument("--max_iters", type=int, default=1500, help="optimizer steps in all (may grow on resume)")
    g.add_argument("--learning_rate", type=float, default=2e-3, help="peak learning rate")
    g.add_argument("--min_lr", type=float, default=None, help="end of the cosine decay; default learning_rate / 10")
    g.add_argument("--warmup_iters", type=int, default=100, help="steps of linear learning-rate warmup")
    g.add_argument("--lr_decay_iters", type=int, default=None, help="length of warmup + cosine; default max_iters")
    g.add_argument("--weight_decay", type=float, default=0.1, help="AdamW decay of the matrices (not biases, norms)")
    g.add_argument("--beta1", type=float, default=0.9, help="AdamW beta1")
    g.add_argument("--beta2", type=float, default=0.95, help="AdamW beta2")
    g.add_argument("--grad_clip", type=float, default=1.0, help="clip the gradient norm to this; 0 disables")
    g = p.add_argument_group("dispersion loss (dispersion.py), weighted by disp_coeff in total_loss()")
    g.add_argument("--disp", default="none", choices=("none",) + dispersion.KINDS, help="which dispersion loss")
    g.add_argument("--disp_coeff", type=float, default=0.1, help="lambda; 0.1 is the paper's GPT-2 setting")
    g.add_argument("--disp_tau", type=float, default=1.0, help="temperature tau")
    g.add_argument("--disp_layers", default="all", help="all|last|early|late|comma list of block indices")
    g.add_argument("--disp_max_tokens", type=int, default=256, help="tokens sampled per sequence; 0 keeps all")
    g.add_argument("--disp_clamp", type=float, default=dispersion.DEFAULT_CLAMP,
                   help="angular kinds: cosine clamped to [-1+t, 1-t] with a straight-through gradient")
    g.add_argument("--disp_lambda_norm", type=float, default=dispersion.DEFAULT_LAMBDA_NORM,
                   help="l2_repel: weight of the mean(z^2) term that keeps repulsion from inflating the states")
    g = p.add_argument_group("distillation and baselines against condensation")
    g.add_argument("--teacher", default=None, help="checkpoint, run dir, GPT-2 name or dir to distil from")
    g.add_argument("--kd_alpha", type=float, default=0.5,
                   help="a, the KL's share of the loss (total_loss() has the formula)")
    g.add_argument("--kd_temperature", type=float, default=2.0, help="T, softening both distributions")
    g.add_argument("--embed_noise", type=float, default=0.0, help="NEFTune alpha: uniform noise of scale "
                   "alpha / sqrt(T * C) on the input embeddings while training")
    g.add_argument("--forget_every", type=int, default=0, help="re-initialise the token embeddings every K steps")
    g = p.add_argument_group("run")
    g.add_argument("--init_from", default="scratch",
                   help="scratch | resume (out_dir/ckpt.pt, with the run's saved flags) | a checkpoint or run dir | "
                        "a GPT-2 name or directory")
    g.add_argument("--out_dir", default="out", help="checkpoints, log.jsonl and config.json go here")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    g.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                   help="autocast dtype; auto is bfloat16 on GPUs that have it, else float32")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the model; default on with CUDA")
    g.add_argument("--seed", type=int, default=1337, help="seeds the initialisation, the batches and dropout")
    g.add_argument("--eval_interval", type=int, default=250, help="estimate losses and condensation every N steps")
    g.add_argument("--eval_iters", type=int, default=20, help="batches per loss estimate")
    g.add_argument("--cond_texts", type=int, default=8,
                   help="fixed val windows for the in-training condensation estimate (cond_* in log.jsonl)")
    g.add_argument("--eval_tasks", default="",
                   help="comma list of benchmarks scored at each eval (evaluate.py: tasks prepared by data/prepare.py "
                        "or .jsonl files), as bench_<task> (acc) and bench_<task>_acc_norm in log.jsonl")
    g.add_argument("--eval_task_items", type=int, default=200, help="items of each --eval_tasks task (its first)")
    g.add_argument("--log_interval", type=int, default=10, help="print and log a line every N steps")
    g.add_argument("--save_every", type=int, default=0,
                   help="also keep out_dir/ckpt_<iter>.pt (weights, for measure.py) every N steps, from 0")
    g.add_argument("--bench", action="store_true", help="time --max_iters steps (no eval, no checkpoint) and exit")
    g.add_argument("--overwrite", action="store_true",
                   help="start a new run in an out_dir that holds one, deleting its checkpoints, log and config")
    g.add_argument("--allow_changes", action="store_true",
                   help="with --init_from resume: accept flags that change the run (see RUN_FLAGS in rundir.py)")
    return p


def fail(msg):
    sys.exit(f"error: {msg}")


def check_args(a):
    """Everything that can be checked before loading anything, so bad input fails at once."""
    try:  # the model flags, by the model's own rules
        GPTConfig(block_size=a.block_size, n_layer=a.n_layer, n_head=a.n_head, n_embd=a.n_embd, n_inner=a.n_inner,
                  dropout=a.dropout, bias=a.bias)
    except ValueError as e:
        fail(f"model flags: {e}")
    for name in ("batch_size", "gradient_accumulation_steps", "eval_interval", "eval_iters", "log_interval",
                 "cond_texts", "eval_task_items"):
        if getattr(a, name) < 1:
            fail(f"--{name} must be at least 1, got {getattr(a, name)}")
    for name in ("max_iters", "warmup_iters", "save_every", "forget_every", "disp_max_tokens", "lr_decay_iters",
                 "min_lr", "weight_decay", "grad_clip", "disp_coeff", "embed_noise", "disp_lambda_norm"):
        if getattr(a, name) is not None and getattr(a, name) < 0:
            fail(f"--{name} must not be negative, got {getattr(a, name)}")
    for name in ("learning_rate", "disp_tau", "kd_temperature"):
        if not getattr(a, name) > 0:
            fail(f"--{name} must be positive, got {getattr(a, name)}")
    for name in ("beta1", "beta2"):
        if not 0 <= getattr(a, name) < 1:
            fail(f"--{name} must be in [0, 1), got {getattr(a, name)}")
    if not 0 <= a.kd_alpha <= 1:
        fail(f"--kd_alpha must be in [0, 1], got {a.kd_alpha}")
    if not 0 < a.disp_clamp < 1:
        fail(f"--disp_clamp must be in (0, 1), got {a.disp_clamp}")
    if a.overwrite and a.init_from == "resume":
        fail("--overwrite starts a new run and --init_from resume continues one: give one of them")


def parse_args(argv):
    """-> (flags, the names of the flags given on the command line): a resume tells the two apart."""
    parser = build_parser()
    parser.error = lambda msg: fail(f"{msg} (see python train.py --help)")  # one line, not argparse's usage block
    a = parser.parse_args(argv)
    for action in parser._actions:  # parse again with no defaults: what is left was given
        action.default = argparse.SUPPRESS
    given = set(vars(parser.parse_args(argv)))
    check_args(a)
    return a, given
