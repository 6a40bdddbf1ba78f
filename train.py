"""
Train a GPT-2 (from scratch, from a checkpoint, or from GPT-2's weights) with a dispersion loss.

    python train.py                                   # Austen's novels, a small char-level GPT, CPU
    python train.py --disp angular --disp_coeff 0.1   # the same with the paper's dispersion loss
    python train.py --init_from resume --out_dir out  # continue a stopped run (Ctrl-C saves one)
    torchrun --standalone --nproc_per_node 8 train.py --dataset fineweb_edu ...   # DDP on 8 GPUs

The objective, written once in train_step:

    L = (1 - alpha) CE + alpha tau_kd^2 KL(teacher || student) + lambda D

CE the next-token cross-entropy; KL the per-token divergence of the tau_kd-softened distributions
(only with --teacher; without one alpha is 0); D the dispersion loss of dispersion.py (only with
--disp), outside the distillation mix so that alpha does not weaken it. Every default is in
build_parser() below. What keeps a run folder whole (its lock, atomic checkpoints, a resume that
continues the same run, Ctrl-C) is support/rundir.py's.
"""

import argparse
import math
import os
import sys
import time
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

import dispersion
import measure
from data import prepare as dataprep
from evaluate import EvalError, score_in_training, tasks_for_training
from model import GPT, GPTConfig
from support import checks, device, progress, rundir
from support.checks import fail, number
from support.load import load_gpt
from support.mfu import peak_flops, utilisation


# ------------------------------------------------------------------------------------ the flags

def build_parser():
    """train.py's command line: every flag with its one default."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip(), allow_abbrev=False,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="austen_char",
                   help="prepared folder data/<name> (bundled ones prepare themselves)")
    g.add_argument("--eval_datasets", default="",
                   help="comma list of more prepared datasets whose val split is evaluated")
    g = p.add_argument_group("model (taken from the weights when resuming or starting from them)")
    g.add_argument("--n_layer", type=int, default=6, help="transformer blocks")
    g.add_argument("--n_head", type=int, default=4, help="attention heads (must divide n_embd)")
    g.add_argument("--n_embd", type=int, default=128, help="width of the residual stream")
    g.add_argument("--n_inner", type=int, default=None, help="MLP hidden width; default 4 * n_embd")
    g.add_argument("--block_size", type=int, default=128, help="training context length")
    g.add_argument("--dropout", type=number, default=0.0, help="dropout (0 for pre-training)")
    g.add_argument("--bias", action=argparse.BooleanOptionalAction, default=True,
                   help="biases in Linear and LayerNorm")
    g = p.add_argument_group("optimization")
    g.add_argument("--batch_size", type=int, default=32, help="sequences per micro-batch")
    g.add_argument("--gradient_accumulation_steps", type=int, default=1,
                   help="micro-batches per step, summed over all processes (a multiple of them)")
    g.add_argument("--max_iters", type=int, default=1500, help="optimizer steps (may grow later)")
    g.add_argument("--learning_rate", type=number, default=2e-3, help="peak learning rate")
    g.add_argument("--min_lr", type=number, default=None,
                   help="end of the cosine decay; default learning_rate / 10")
    g.add_argument("--warmup_iters", type=int, default=100, help="steps of linear warmup")
    g.add_argument("--lr_decay_iters", type=int, default=None,
                   help="length of warmup + cosine; default max_iters")
    g.add_argument("--weight_decay", type=number, default=0.1, help="AdamW decay of the matrices")
    g.add_argument("--beta1", type=number, default=0.9, help="AdamW beta1")
    g.add_argument("--beta2", type=number, default=0.95, help="AdamW beta2")
    g.add_argument("--grad_clip", type=number, default=1.0, help="gradient-norm clip; 0 disables")
    add_loss_flags(p)
    add_run_flags(p)
    return p


def add_loss_flags(p):
    g = p.add_argument_group("dispersion loss D (dispersion.py), weighted by lambda")
    g.add_argument("--disp", default="none", choices=("none",) + dispersion.KINDS,
                   help="which dispersion loss")
    g.add_argument("--disp_coeff", type=number, default=0.1, help="lambda (the paper's GPT-2: 0.1)")
    g.add_argument("--disp_tau", type=number, default=1.0, help="the loss's temperature tau")
    g.add_argument("--disp_layers", default="all", help="all|last|early|late|block indices 0,5,11")
    g.add_argument("--disp_max_tokens", type=int, default=256,
                   help="tokens sampled per sequence; 0 keeps all")
    g.add_argument("--disp_clamp", type=number, default=dispersion.DEFAULT_CLAMP,
                   help="angular kinds: cos clamped to [-1+t, 1-t], straight-through gradient")
    g.add_argument("--disp_lambda_norm", type=number, default=dispersion.DEFAULT_LAMBDA_NORM,
                   help="l2_repel: weight of its mean(z^2) term, which holds the states' scale")
    g = p.add_argument_group("distillation and baselines against condensation")
    g.add_argument("--teacher", default=None, help="checkpoint, run dir or GPT-2 to distil from")
    g.add_argument("--kd_alpha", type=number, default=0.5, help="alpha, the KL's share of the loss")
    g.add_argument("--kd_temperature", type=number, default=2.0, help="tau_kd, softening both")
    g.add_argument("--embed_noise", type=number, default=0.0,
                   help="NEFTune's alpha: noise of scale alpha / sqrt(T C) on the embeddings")
    g.add_argument("--forget_every", type=int, default=0,
                   help="re-initialise the token embeddings every K steps")


def add_run_flags(p):
    g = p.add_argument_group("run")
    g.add_argument("--init_from", default="scratch",
                   help="scratch | resume (out_dir/ckpt.pt, with the run's saved flags) | a "
                        "checkpoint or run dir | a GPT-2 name or directory")
    g.add_argument("--out_dir", default="out", help="the run's folder: checkpoints, log, config")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    g.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                   help="autocast dtype; auto is bfloat16 on GPUs that have it, else float32")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the model; default on with CUDA")
    g.add_argument("--seed", type=int, default=1337, help="seeds the init, the batches and dropout")
    g.add_argument("--eval_interval", type=int, default=250, help="losses and condensation every N")
    g.add_argument("--eval_iters", type=int, default=20, help="batches per loss estimate")
    g.add_argument("--cond_texts", type=int, default=8,
                   help="fixed val windows for the in-training condensation estimate")
    g.add_argument("--eval_tasks", default="",
                   help="benchmarks scored at each eval (evaluate.py's tasks or .jsonl files), "
                        "logged as bench_<task> and bench_<task>_acc_norm")
    g.add_argument("--eval_task_items", type=int, default=200, help="items per --eval_tasks task")
    g.add_argument("--log_interval", type=int, default=10, help="print and log every N steps")
    g.add_argument("--save_every", type=int, default=0,
                   help="also keep out_dir/ckpt_<iter>.pt (weights, for measure.py) every N steps")
    g.add_argument("--bench", action="store_true", help="time --max_iters steps, write nothing")
    g.add_argument("--overwrite", action="store_true",
                   help="start a new run in an out_dir that holds one, deleting that run's files")
    g.add_argument("--allow_changes", action="store_true",
                   help="with --init_from resume: accept flags that change the run (RUN_FLAGS)")


def parse_args(argv):
    """-> (args, the names of the flags given on the command line): a resume tells the two apart."""
    parser = checks.one_line(build_parser(), "train.py")
    args = parser.parse_args(argv)
    for action in parser._actions:  # parse again with no defaults: what is left was given
        action.default = argparse.SUPPRESS
    given = set(vars(parser.parse_args(argv)))
    checks.check_train(args)
    return args, given


# ------------------------------------------------------------------------------- data and model

def load_data(args, env):
    """-> data: meta (of --dataset), train (tokens), val_sets ({"val": ..., "val_<name>": ...})."""
    barrier = torch.distributed.barrier if env.ddp else None  # the others wait for the master
    try:
        meta, train, val_sets = dataprep.training_data(
            args.dataset, args.eval_datasets, args.block_size, env.master, barrier)
    except dataprep.DataError as e:
        fail(str(e))
    return SimpleNamespace(meta=meta, train=train, val_sets=val_sets)


def get_batch(data, args, key, device):
    """A random micro-batch that is a pure function of (seed, *key): training uses key (0, step,
    index), so a resumed run and a run split over several processes draw exactly the batches of one
    uninterrupted run."""
    rng = np.random.default_rng([args.seed, *key])
    ix = rng.integers(0, len(data) - args.block_size, size=args.batch_size)
    x = torch.from_numpy(np.stack([data[i:i + args.block_size] for i in ix]).astype(np.int64))
    y = torch.from_numpy(np.stack([data[i + 1:i + 1 + args.block_size] for i in ix])
                         .astype(np.int64))
    if device.type == "cuda":  # pinned memory lets the copy overlap with compute
        x, y = x.pin_memory(), y.pin_memory()
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    return x.to(device), y.to(device)


def init_model(args, data, ckpt, given):
    """The model to train: resumed, from trained weights (--init_from) or new. -> (model, args)."""
    if ckpt is not None:
        # only dropout may change, with --allow_changes; never the tokenizer the embeddings are for
        model_args = dict(ckpt["model_args"], dropout=args.dropout)
        if ckpt.get("tokenizer") != data.meta["tokenizer"]:
            fail(f"cannot resume on --dataset {args.dataset}: its tokenizer is not the one the "
                 "checkpoint was trained with")
        return GPT.from_checkpoint(dict(ckpt, model_args=model_args)), model_args
    torch.manual_seed(args.seed)  # the initialisation and, through the same stream, dropout
    if args.init_from == "scratch":
        vocab = 64 * math.ceil(data.meta["vocab_size"] / 64)  # a multiple of 64: faster matmuls
        model_args = dict(block_size=args.block_size, vocab_size=vocab, n_layer=args.n_layer,
                          n_head=args.n_head, n_embd=args.n_embd, n_inner=args.n_inner,
                          dropout=args.dropout, bias=args.bias)
        return GPT(GPTConfig(**model_args)), model_args
    model = trained_weights(args.init_from, "--init_from", args, data, args.dropout)
    model_args = {f: getattr(model.config, f) for f in GPTConfig.__dataclass_fields__}
    try:
        rundir.check_model_flags(args, given, model_args, f"--init_from {args.init_from}")
    except rundir.RunDirError as e:
        fail(e)
    return model, model_args


def trained_weights(spec, flag, args, data, dropout=0.0):
    """Our GPT with a checkpoint's, a run folder's or GPT-2's weights, on --dataset's tokenizer."""
    try:
        model, tokenizer = load_gpt(spec, dropout)
    except (FileNotFoundError, ValueError) as e:
        fail(f"{flag}: {e}")
    if tokenizer != data.meta["tokenizer"]:
        fail(f"{flag} {spec} uses another tokenizer than --dataset {args.dataset}")
    return model


def build_model(args, env, data, ckpt, given):
    """-> model (on the device), model_args, teacher (or None), disp_layers (block indices)."""
    model, model_args = init_model(args, data, ckpt, given)
    if args.block_size > model.config.block_size:
        fail(f"--block_size {args.block_size} is beyond the model's {model.config.block_size} "
             "positions")
    if data.meta["vocab_size"] > model.config.vocab_size:
        fail(f"{args.dataset} has {data.meta['vocab_size']} tokens, the model only "
             f"{model.config.vocab_size}")
    model.to(env.device)
    disp_layers = []
    if args.disp != "none":
        try:
            disp_layers = checks.parse_layers(args.disp_layers, model.config.n_layer)
        except ValueError as e:
            fail(f"--disp_layers: {e}")
    teacher = None
    if args.teacher:  # after the student: its initialisation draws from the seeded stream too
        teacher = trained_weights(args.teacher, "--teacher", args, data)
        teacher.to(env.device).eval().requires_grad_(False)
    if args.embed_noise > 0:  # NEFTune: noise on the input embeddings, in training only
        def add_noise(module, inputs, out):
            if not module.training:
                return out
            scale = args.embed_noise / math.sqrt(out.size(-2) * out.size(-1))  # alpha / sqrt(T C)
            return out + torch.empty_like(out).uniform_(-scale, scale)
        model.transformer.wte.register_forward_hook(add_noise)
    return model, model_args, teacher, disp_layers


# ------------------------------------------------------------------------------------- one step

def get_lr(it, args):
    """Linear warmup, cosine decay from learning_rate to min_lr at lr_decay_iters, then min_lr."""
    if it < args.warmup_iters:
        return args.learning_rate * (it + 1) / (args.warmup_iters + 1)
    if it >= args.lr_decay_iters:
        return args.min_lr
    ratio = (it - args.warmup_iters) / max(1, args.lr_decay_iters - args.warmup_iters)
    cosine = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 down to 0
    return args.min_lr + cosine * (args.learning_rate - args.min_lr)


def configure_optimizer(model, args, device):
    # weight decay on matrices only: biases, norms' gains and nothing else of dim < 2
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=args.learning_rate, betas=(args.beta1, args.beta2),
                             fused=device.type == "cuda")


def dispersion_term(run, hidden, step, index):
    """D on the chosen blocks' outputs, block i's being hidden[i + 1] (the last one after ln_f, as
    in Hugging Face's hidden states); its sampled tokens are a function of (seed, step, micro)."""
    args = run.args
    seed = int(np.random.SeedSequence([args.seed, step, index]).generate_state(1)[0])
    gen = torch.Generator(device=hidden[0].device).manual_seed(seed)
    return dispersion.layer_dispersion(hidden, run.disp_layers, kind=args.disp, tau=args.disp_tau,
                                       max_tokens=args.disp_max_tokens or None,
                                       clamp=args.disp_clamp, lambda_norm=args.disp_lambda_norm,
                                       generator=gen)


def distillation_term(run, x, logits):
    """KL(teacher || student) per token, both softened by tau_kd, over the real tokens only (the
    padded rows of the two vocabularies may differ)."""
    with torch.no_grad():
        t_logits = run.teacher(x)[0]
    V, tau_kd = run.data.meta["vocab_size"], run.args.kd_temperature
    student, target = (F.log_softmax(z[..., :V].float() / tau_kd, -1) for z in (logits, t_logits))
    return F.kl_div(student, target, log_target=True, reduction="batchmean") / x.size(1)


def train_step(run, it):
    """One optimizer step: this process's micro-batches, gradients averaged over all, clip, AdamW.
    -> (learning rate, {"loss", "ce", "disp", "kl"} averaged over the whole global batch)."""
    args, env = run.args, run.env
    lr = get_lr(it, args)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    n_micro = args.gradient_accumulation_steps // env.world
    alpha, tau_kd, lam = args.kd_alpha, args.kd_temperature, args.disp_coeff
    logged = {}
    for micro in range(n_micro):
        index = micro * env.world + env.rank  # this micro-batch's place among all processes'
        x, y = get_batch(run.data.train, args, (0, it, index), env.device)
        if env.ddp:  # only the last micro-step needs to average gradients across processes
            run.train_model.require_backward_grad_sync = micro == n_micro - 1
        with env.autocast:
            logits, ce, hidden = run.train_model(x, y, return_hidden=True)
            disp = dispersion_term(run, hidden, it, index) if run.disp_layers else None
            kl = distillation_term(run, x, logits) if run.teacher is not None else None
            # L = (1 - alpha) CE + alpha tau_kd^2 KL + lambda D
            loss = ce if kl is None else (1 - alpha) * ce + alpha * tau_kd * tau_kd * kl
            loss = loss if disp is None else loss + lam * disp
        env.scaler.scale(loss / n_micro).backward()
        parts = {"loss": loss, "ce": ce, "disp": disp, "kl": kl}
        for k, v in ((k, v) for k, v in parts.items() if v is not None):
            logged[k] = logged.get(k, 0.0) + v.detach().float() / args.gradient_accumulation_steps
    if env.ddp:
        for v in logged.values():
            torch.distributed.all_reduce(v)
    logged = {k: v.item() for k, v in logged.items()}
    if not math.isfinite(logged["loss"]):
        fail(f"loss is {logged['loss']} at step {it}: stopping; the last good checkpoint in "
             f"{args.out_dir} is kept (try a lower --learning_rate)")
    if args.grad_clip > 0:
        env.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.train_model.parameters(), args.grad_clip)
    env.scaler.step(run.optimizer)
    env.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    return lr, logged


def forget(run, it):
    """Active forgetting: fresh token embeddings and Adam moments every K steps, but never after the
    last step, which would hand back a model whose embeddings are random."""
    args = run.args
    if args.forget_every and it % args.forget_every == 0 and it < args.max_iters:
        wte = run.model.transformer.wte.weight
        with torch.no_grad():
            torch.nn.init.normal_(wte, mean=0.0, std=0.02)
        run.optimizer.state.pop(wte, None)


# ------------------------------------------------------------------------------------ evaluation

@torch.no_grad()
def eval_metrics(run):
    """Losses on fixed batches of every split, the condensation estimate and the benchmarks."""
    model, args, env = run.model, run.args, run.env
    model.eval()
    out = {}
    for split, d in [("train", run.data.train)] + list(run.data.val_sets.items()):
        # the same batches at every eval (key (1, split, k)): estimates differ by the model alone
        with env.autocast:
            losses = [model(*get_batch(d, args, (1, len(out), k), env.device))[1].item()
                      for k in range(args.eval_iters)]
        out[split] = float(np.mean(losses))
    # condensation on --cond_texts fixed val windows, under measure.py's names: an estimate, not
    # measure.py's numbers on 100 whole held-out texts
    with env.autocast:
        cond = measure.condensation_summary(model, run.cond_idx)
    out.update({k: v.item() if hasattr(v, "item") else v for k, v in cond.items()})  # numpy -> JSON
    if run.eval_tasks:  # benchmarks by evaluate.py's rules, the same items at every eval
        with env.autocast:
            out.update(score_in_training(model, run.eval_tasks, env.device))
    model.train()
    return out


def condensation_windows(val, args, device):
    """--cond_texts windows of block_size tokens spread evenly over the val split."""
    starts = np.linspace(0, len(val) - args.block_size - 1, args.cond_texts).astype(np.int64)
    windows = np.stack([val[i:i + args.block_size] for i in starts]).astype(np.int64)
    return torch.from_numpy(windows).to(device)


def eval_tasks(args, data, model):
    """--eval_tasks: the first --eval_task_items items of each, tokenized once, before any step (a
    task that is not prepared stops the run here, with the command that prepares it)."""
    if not args.eval_tasks:
        return []
    try:
        names = [t for t in args.eval_tasks.split(",") if t.strip()]
        return tasks_for_training(names, args.eval_task_items, data.meta["tokenizer"],
                                  model.config.block_size)
    except EvalError as e:
        fail(f"--eval_tasks: {e}")


def save(run, path, it, tokens_seen, snapshot=False):
    """ckpt.pt holds what an exact resume needs; a --save_every snapshot is for measuring, so it
    leaves out the optimizer's moments (twice the model's size) and the RNG state."""
    ckpt = {"model": run.model.state_dict(), "model_args": run.model_args,
            "tokenizer": run.data.meta["tokenizer"], "iter_num": it, "tokens_seen": tokens_seen,
            "config": vars(run.args)}
    if not snapshot:
        ckpt |= {"optimizer": run.optimizer.state_dict(), **device.rng_state(run.env.device)}
    rundir.save_checkpoint(ckpt, path)


# --------------------------------------------------------------------------------------- the run

def main(argv=None):
    args, given = parse_args(argv)
    resume = args.init_from == "resume"
    lock, restore_ctrl_c, env = None, lambda: None, None
    try:
        ckpt = rundir.resume_checkpoint(args, given) if resume else None
        if args.lr_decay_iters is None:
            args.lr_decay_iters = args.max_iters
        if args.min_lr is None:
            args.min_lr = args.learning_rate / 10
        env = device.setup(args)
        writes = env.master and not args.bench  # --bench and the other DDP processes write nothing
        if writes:
            rundir.check_out_dir(args.out_dir, resume, args.overwrite)
        device.start_processes(env)
        data = load_data(args, env)
        model, model_args, teacher, disp_layers = build_model(args, env, data, ckpt, given)
        device.check_memory(args, model, env.device)
        run = SimpleNamespace(args=args, env=env, data=data, model=model, model_args=model_args,
                              teacher=teacher, disp_layers=disp_layers,
                              eval_tasks=eval_tasks(args, data, model))
        if writes:  # only now, so that bad input leaves no trace in out_dir
            lock = rundir.lock_out_dir(args.out_dir, resume, args.overwrite)
        asked, restore_ctrl_c = rundir.catch_ctrl_c()  # from here on, Ctrl-C means: save and stop
        return train(run, ckpt, writes, asked)
    except rundir.RunDirError as e:
        fail(e)
    finally:
        restore_ctrl_c()
        rundir.release_lock(lock)
        device.end_processes(env)


def start(run, ckpt, writes):
    """The optimizer (resumed), the model the steps call (compiled, DDP-wrapped) and the run's
    files. -> (step, tokens seen, the eval record of this step if the log has one)."""
    args, env, model = run.args, run.env, run.model
    run.optimizer = configure_optimizer(model, args, env.device)
    it, tokens_seen = (ckpt["iter_num"], ckpt["tokens_seen"]) if ckpt is not None else (0, 0)
    if ckpt is not None:
        run.optimizer.load_state_dict(ckpt["optimizer"])
        if env.master and (note := rundir.schedule_note(args, it)):
            print(note)
    # checkpoints and evals use the plain module: no "_orig_mod." or "module." in their names
    run.train_model = device.wrap(model, args.compile, env)
    run.cond_idx = condensation_windows(run.data.val_sets["val"], args, env.device)
    run.peak = peak_flops(env.device, env.ptdtype)
    if env.master:
        print(progress.summary_line(run))
    resumed_at = it if ckpt else None
    ev = None
    if writes:
        ev = rundir.start_run_files(args.out_dir, vars(args), args.overwrite, resumed_at)
    if ckpt is not None:  # dropout and embedding noise continue the checkpoint's random stream
        device.restore_rng(ckpt, env.device)
    return it, tokens_seen, ev


def train(run, ckpt, writes, asked):
    """The loop, as nanoGPT's: eval and checkpoint, step, log; until max_iters or Ctrl-C."""
    args, env = run.args, run.env
    it, tokens_seen, ev = start(run, ckpt, writes)
    evaluated_at = it if ev is not None else None  # a resume does not repeat the eval its log has
    tokens_per_step = args.batch_size * args.block_size * args.gradient_accumulation_steps
    ckpt_path = os.path.join(args.out_dir, "ckpt.pt")
    run.train_model.train()
    t_start = t0 = time.perf_counter()
    step_times = []
    while True:
        saved = False
        if writes:
            if args.save_every and it % args.save_every == 0:
                snapshot = os.path.join(args.out_dir, f"ckpt_{it:06d}.pt")
                save(run, snapshot, it, tokens_seen, snapshot=True)
            if (it % args.eval_interval == 0 or it == args.max_iters) and it != evaluated_at:
                ev = eval_metrics(run)
                cond = measure.CONDENSATION_ESTIMATE
                print(progress.eval_line(it, ev, args.cond_texts, cond), flush=True)
                ppl = {f"ppl_{k}": math.exp(v) for k, v in ev.items() if k.startswith("val")}
                rundir.append_log(args.out_dir, {"iter": it, "split": "eval", "tokens": tokens_seen,
                                                 **ev, **ppl, "cond_windows": args.cond_texts})
                save(run, ckpt_path, it, tokens_seen)
                saved = True
            t0 = time.perf_counter()  # the step time should not include evaluation
        if it >= args.max_iters:
            break
        if rundir.stop_asked(asked, env.ddp, env.device):  # Ctrl-C: save this step, then stop
            if writes and not saved:
                save(run, ckpt_path, it, tokens_seen)
            rundir.stop_run(writes, ckpt_path, it, env.ddp)
        lr, logged = train_step(run, it)
        it, tokens_seen = it + 1, tokens_seen + tokens_per_step
        forget(run, it)
        if env.device.type == "cuda":
            torch.cuda.synchronize(env.device)
        t1 = time.perf_counter()
        dt, t0 = t1 - t0, t1
        step_times.append(dt)
        if env.master and (it % args.log_interval == 0 or it == args.max_iters):
            tok_s = tokens_per_step / dt
            util = step_mfu(run, tok_s)
            print(progress.step_line(it, lr, logged, dt, tok_s, util, args), flush=True)
            if writes:
                rundir.append_log(args.out_dir, {"iter": it, "split": "train",
                                                 "tokens": tokens_seen, "lr": lr, "ms": dt * 1000,
                                                 "tok_s": tok_s, "mfu": util, **logged})
    return finish(run, ev, step_times, tokens_per_step, time.perf_counter() - t_start)


def finish(run, ev, step_times, tokens_per_step, seconds):
    """The run's last line (with --bench, its timing). -> its results (None on other processes)."""
    if not run.env.master:
        return None
    if run.args.bench:
        return bench_result(run, step_times, tokens_per_step)
    unigram = run.data.meta["train_unigram_entropy"]
    print(f"done in {seconds:.0f} s: final val loss {ev['val']:.4f} (unigram entropy of the "
          f"training data {unigram:.4f} nats)")
    return {"val": ev["val"], "unigram_entropy": unigram, "seconds": seconds}


def step_mfu(run, tok_s):
    """MFU of this process's steps at tok_s tokens/s (on a CPU a faster step raises run.peak)."""
    flops = run.model.flops_per_token(run.args.block_size) * tok_s / run.env.world
    util, run.peak = utilisation(flops, run.peak, run.env.device)
    return util


def bench_result(run, step_times, tokens_per_step):
    """--bench: the median step time, leaving out the first steps (warm-up, compilation)."""
    steady = sorted(step_times[min(5, len(step_times) // 2):]) or [float("nan")]
    ms = 1000 * steady[len(steady) // 2]
    tok_s = tokens_per_step / ms * 1000
    util = step_mfu(run, tok_s)
    mfu = f", MFU {100 * util:.1f}% of {run.peak / 1e12:.2f} TFLOP/s" if util else ""
    print(f"bench: {ms:.1f} ms/iter (median of {len(steady)}), {tok_s:,.0f} tokens/s{mfu}")
    return {"ms_per_iter": ms, "tokens_per_s": tok_s, "mfu": util, "peak_flops": run.peak}


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # before the loop started, or a second Ctrl-C
        sys.exit("error: interrupted; nothing more was saved (the last checkpoint in --out_dir, if "
                 "any, is kept)")
