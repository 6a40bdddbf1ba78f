"""
Train a GPT-2 (from scratch, from a checkpoint, or from GPT-2's weights) with an optional dispersion loss.

    python train.py                                      # the bundled Austen corpus, a small char-level model, CPU
    python train.py --disp angular --disp_coeff 0.1      # the same with the paper's dispersion loss
    python train.py --init_from resume --out_dir out     # continue a stopped run (Ctrl-C stops with a checkpoint)
    torchrun --standalone --nproc_per_node 8 train.py --dataset fineweb_edu ...   # several GPUs with DDP

Every default lives in flags.py's build_parser(); `python train.py --help` explains each flag.
What a run folder (--out_dir) holds and how it is kept whole (lock, log, atomic checkpoints) is rundir.py's.
"""

import math
import os
import sys
import time
from contextlib import nullcontext
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

import dispersion
import measure
from support import rundir
from data import prepare as dataprep
from evaluate import EvalError, score_in_training, tasks_for_training
from flags import fail, parse_args
from support.load import load_gpt
from support.mfu import peak_flops, utilisation
from model import GPT, GPTConfig


def setup(a):
    """Processes (torchrun's DDP or one) and the device. -> env: ddp, rank, world, master, device, autocast, scaler."""
    ddp = int(os.environ.get("RANK", -1)) != -1  # launched by torchrun
    rank, world = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if ddp else (0, 1)
    if a.gradient_accumulation_steps % world:
        fail(f"--gradient_accumulation_steps {a.gradient_accumulation_steps} is not divisible by {world} processes")
    if a.device == "auto":
        a.device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if ddp and a.device.startswith("cuda"):
        a.device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    try:
        device = torch.device(a.device)
    except RuntimeError:
        fail(f"unknown --device {a.device} (cpu, cuda, cuda:N or mps)")
    if device.type == "cuda" and not torch.cuda.is_available():
        fail(f"--device {a.device}, but no CUDA GPU is available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        fail(f"--device {a.device}, but there are only {torch.cuda.device_count()} CUDA GPUs")
    if device.type == "mps" and not torch.backends.mps.is_available():
        fail("--device mps, but MPS (Apple's GPU backend) is not available here")
    if device.type not in ("cpu", "cuda", "mps"):
        fail(f"--device {a.device} is not supported (cpu, cuda, cuda:N or mps)")
    if a.dtype == "auto":
        a.dtype = "bfloat16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    ptdtype = getattr(torch, a.dtype)
    if a.compile is None:
        a.compile = device.type == "cuda"
    return SimpleNamespace(
        ddp=ddp, rank=rank, world=world, master=rank == 0, device=device,
        autocast=torch.autocast(device.type, dtype=ptdtype) if ptdtype != torch.float32 else nullcontext(),
        scaler=torch.amp.GradScaler(device.type, enabled=ptdtype == torch.float16), ptdtype=ptdtype)


# ---------------------------------------------------------------------------------------- data and model

def load_data(a, env):
    """-> data: meta (of --dataset), train (tokens) and val_sets ({"val": tokens, "val_<name>": tokens, ...})."""
    try:
        names = [a.dataset] + list(filter(None, a.eval_datasets.split(",")))
        if env.master:  # the bundled corpora prepare themselves on first use (a few seconds)
            for name in names:
                if name.removesuffix("_char") in dataprep.BUNDLED_SOURCES and not dataprep.is_prepared(name):
                    dataprep.prepare_source(name)
        if env.ddp:
            torch.distributed.barrier()
        meta = dataprep.load_meta(a.dataset)
        train_data = dataprep.load_split(a.dataset, "train")
        val_sets = {"val": dataprep.load_split(a.dataset, "val")}
        for name in names[1:]:
            if dataprep.load_meta(name)["tokenizer"] != meta["tokenizer"]:
                fail(f"--eval_datasets {name} uses another tokenizer than --dataset {a.dataset}")
            val_sets[f"val_{name}"] = dataprep.load_split(name, "val")
    except dataprep.DataError as e:
        fail(str(e))
    for name, d in [("train", train_data)] + list(val_sets.items()):
        if len(d) <= a.block_size + 1:
            fail(f"--block_size {a.block_size} is not shorter than the {name} split of {a.dataset} ({len(d)} tokens)")
    return SimpleNamespace(meta=meta, train=train_data, val_sets=val_sets)


def load_weights(spec, dropout=0.0):
    """A trained model to start from or distil from (load.py: our checkpoints, run directories or GPT-2 weights).
    -> (model, its tokenizer spec)."""
    return load_gpt(spec, dropout)


def build_model(a, env, data, ckpt):
    """The model to train (fresh, resumed or from trained weights), the teacher and the layers dispersion acts on.
    -> model: net (the plain module), args (its GPTConfig fields), teacher, disp_layers."""
    if ckpt is None:  # the seed decides the initialisation and, through the same stream, dropout
        torch.manual_seed(a.seed)
    if ckpt is not None:
        args = dict(ckpt["model_args"], dropout=a.dropout)  # only dropout may differ, and only with --allow_changes
        if ckpt.get("tokenizer") != data.meta["tokenizer"]:  # even with --allow_changes: the embeddings are its
            fail(f"cannot resume on --dataset {a.dataset}: its tokenizer is not the one the checkpoint was "
                 "trained with")
        net = GPT.from_checkpoint(dict(ckpt, model_args=args))
    elif a.init_from == "scratch":
        vocab = 64 * math.ceil(data.meta["vocab_size"] / 64)  # padded to a multiple of 64 for faster matmuls
        args = dict(block_size=a.block_size, vocab_size=vocab, n_layer=a.n_layer, n_head=a.n_head, n_embd=a.n_embd,
                    n_inner=a.n_inner, dropout=a.dropout, bias=a.bias)
        net = GPT(GPTConfig(**args))
    else:  # mid-training: trained weights, a fresh optimizer and schedule
        try:
            net, tokenizer = load_weights(a.init_from, a.dropout)
        except (FileNotFoundError, ValueError) as e:
            fail(f"--init_from: {e}")
        if tokenizer != data.meta["tokenizer"]:
            fail(f"--init_from {a.init_from} uses another tokenizer than --dataset {a.dataset}")
        args = {f: getattr(net.config, f) for f in GPTConfig.__dataclass_fields__}
        for k in rundir.MODEL_FLAGS:  # config.json says what the model is, not what the ignored flags said
            setattr(a, k, args[k])
    if a.block_size > net.config.block_size:
        fail(f"--block_size {a.block_size} is beyond the model's {net.config.block_size} positions")
    if data.meta["vocab_size"] > net.config.vocab_size:
        fail(f"{a.dataset} has {data.meta['vocab_size']} tokens, the model only {net.config.vocab_size}")
    net.to(env.device)
    disp_layers = []
    if a.disp != "none":
        try:
            disp_layers = dispersion.parse_layers(a.disp_layers, net.config.n_layer)
        except ValueError as e:
            fail(f"--disp_layers: {e}")
    teacher = None
    if a.teacher:
        try:
            teacher, teacher_tok = load_weights(a.teacher)
        except (FileNotFoundError, ValueError) as e:
            fail(f"--teacher: {e}")
        if teacher_tok != data.meta["tokenizer"]:
            fail(f"--teacher {a.teacher} uses another tokenizer than --dataset {a.dataset}")
        teacher.to(env.device).eval().requires_grad_(False)
    if a.embed_noise > 0:  # NEFTune: noise on the input embeddings, in training only
        def add_noise(module, inputs, out):
            if not module.training:
                return out
            scale = a.embed_noise / math.sqrt(out.size(-2) * out.size(-1))  # alpha / sqrt(T * C)
            return out + torch.empty_like(out).uniform_(-scale, scale)
        net.transformer.wte.register_forward_hook(add_noise)
    return SimpleNamespace(net=net, args=args, teacher=teacher, disp_layers=disp_layers)


def get_lr(it, a):
    """Linear warmup, then cosine decay from learning_rate to min_lr at lr_decay_iters, then min_lr."""
    if it < a.warmup_iters:
        return a.learning_rate * (it + 1) / (a.warmup_iters + 1)
    if it >= a.lr_decay_iters:
        return a.min_lr
    ratio = (it - a.warmup_iters) / max(1, a.lr_decay_iters - a.warmup_iters)
    return a.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (a.learning_rate - a.min_lr)


def get_batch(data, a, key, device):
    """A random micro-batch that is a pure function of (seed, *key): training uses key (0, step, index), so a
    resumed run and a run split over several processes draw exactly the batches of one uninterrupted run."""
    rng = np.random.default_rng([a.seed, *key])
    ix = rng.integers(0, len(data) - a.block_size, size=a.batch_size)
    x = torch.from_numpy(np.stack([data[i:i + a.block_size] for i in ix]).astype(np.int64))
    y = torch.from_numpy(np.stack([data[i + 1:i + 1 + a.block_size] for i in ix]).astype(np.int64))
    if device.type == "cuda":  # pinned memory lets the copy overlap with compute
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


def configure_optimizer(model, a, device):
    # weight decay on matrices only: biases, norms' gains and nothing else of dim < 2 are left alone
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": a.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=a.learning_rate, betas=(a.beta1, a.beta2), fused=device.type == "cuda")


# ---------------------------------------------------------------------------------------- one step

def total_loss(ce, disp, kl, a):
    """The training objective, written here and nowhere else:

        L = (1 - alpha) CE + alpha T^2 KL(teacher || student) + lambda D

    CE the next-token cross-entropy, KL the per-token divergence of the T-softened distributions (only with
    --teacher; without one alpha is 0), D the dispersion loss (dispersion.py; only with --disp) and
    lambda = --disp_coeff, alpha = --kd_alpha, T = --kd_temperature. T^2 keeps the KL's gradient on the scale of
    CE's (Hinton et al. 2015); D stays outside the distillation mix, so alpha does not weaken it."""
    loss = ce
    if kl is not None:
        T = a.kd_temperature
        loss = (1 - a.kd_alpha) * ce + a.kd_alpha * T * T * kl
    if disp is not None:
        loss = loss + a.disp_coeff * disp
    return loss


def forward_loss(run, x, y, step, index):
    """The loss of one micro-batch and its parts (ce, disp, kd), from one forward pass of the student."""
    a, m = run.a, run.model
    with run.env.autocast:
        logits, ce, hidden = run.compiled(x, y, return_hidden=True)
        disp = kl = None
        if m.disp_layers:  # the tokens it samples are a pure function of (seed, step, micro-batch), as the batch
            seed = int(np.random.SeedSequence([a.seed, step, index]).generate_state(1)[0])
            gen = torch.Generator(device=x.device).manual_seed(seed)
            disp = dispersion.layer_dispersion(hidden, m.disp_layers, kind=a.disp, tau=a.disp_tau,
                                               max_tokens=a.disp_max_tokens or None, clamp=a.disp_clamp,
                                               lambda_norm=a.disp_lambda_norm, generator=gen)
        if m.teacher is not None:
            with torch.no_grad():
                t_logits = m.teacher(x)[0]
            V, T = run.data.meta["vocab_size"], a.kd_temperature  # only real tokens: the padded rows differ in size
            student, target = (F.log_softmax(z[..., :V].float() / T, -1) for z in (logits, t_logits))
            kl = F.kl_div(student, target, log_target=True, reduction="batchmean") / x.size(1)  # per token
        loss = total_loss(ce, disp, kl, a)
    parts = {"ce": ce.detach()} | ({"disp": disp.detach()} if disp is not None else {}) \
        | ({"kd": kl.detach()} if kl is not None else {})
    return loss, parts


def train_step(run, iter_num):
    """One optimizer step: every micro-batch of this process, gradients averaged over all, clipping, AdamW.
    -> (learning rate, {"loss", "ce", ...} averaged over the whole global batch)."""
    a, env = run.a, run.env
    lr = get_lr(iter_num, a)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    local_micro = a.gradient_accumulation_steps // env.world
    total = {}
    for micro in range(local_micro):
        index = micro * env.world + env.rank  # this micro-batch's place among all processes' micro-batches
        x, y = get_batch(run.data.train, a, (0, iter_num, index), env.device)
        if env.ddp:  # only the last micro-step needs to average gradients across processes
            run.compiled.require_backward_grad_sync = micro == local_micro - 1
        loss, parts = forward_loss(run, x, y, iter_num, index)
        env.scaler.scale(loss / local_micro).backward()
        for k, v in {"loss": loss.detach(), **parts}.items():
            total[k] = total.get(k, 0.0) + v.float() / a.gradient_accumulation_steps
    if env.ddp:
        for v in total.values():
            torch.distributed.all_reduce(v)
    total = {k: v.item() for k, v in total.items()}
    if not math.isfinite(total["loss"]):
        fail(f"loss is {total['loss']} at step {iter_num}: stopping; the last good checkpoint in {a.out_dir} "
             "is kept (try a lower --learning_rate)")
    if a.grad_clip > 0:
        env.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.compiled.parameters(), a.grad_clip)
    env.scaler.step(run.optimizer)
    env.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    return lr, total


def forget(run, iter_num):
    """Active forgetting: fresh token embeddings and Adam moments every K steps, but never after the last step,
    which would hand back a model whose embeddings are random."""
    a = run.a
    if a.forget_every and iter_num % a.forget_every == 0 and iter_num < a.max_iters:
        wte = run.model.net.transformer.wte.weight
        with torch.no_grad():
            torch.nn.init.normal_(wte, mean=0.0, std=0.02)
        run.optimizer.state.pop(wte, None)


# ---------------------------------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(run):
    """Losses on fixed batches of every split, and the cheap condensation estimate. -> {name: number}."""
    net, a, env = run.model.net, run.a, run.env
    net.eval()
    out = {}
    for split, d in [("train", run.data.train)] + list(run.data.val_sets.items()):
        # the same batches at every eval (key (1, split, k)), so successive estimates differ by the model only
        with env.autocast:
            losses = [net(*get_batch(d, a, (1, len(out), k), env.device))[1].item() for k in range(a.eval_iters)]
        out[split] = float(np.mean(losses))
    # condensation on --cond_texts fixed val windows: an estimate, not measure.py's numbers on whole texts; every
    # key measure.condensation_summary returns is logged as cond_<key>
    with env.autocast:
        cond = measure.condensation_summary(net, run.cond_idx)
    out.update({f"cond_{k}": v.item() if hasattr(v, "item") else v for k, v in cond.items()})  # numpy -> JSON
    # benchmarks (--eval_tasks) by evaluate.py's rules, on the plain model and the same items at every eval
    if run.model.bench:
        with env.autocast:
            out.update(score_in_training(net, run.model.bench, env.device))
    # more evaluation metrics go here: each adds its numbers to `out`, which log.jsonl and the eval line take as
    # they are (keys starting with "val" also get a perplexity ppl_<key>)
    net.train()
    return out


def eval_line(iter_num, ev, n_windows):
    fmt = lambda k, v: f"{k} {v:.4f}" if isinstance(v, (int, float)) else f"{k} {v}"
    losses = ", ".join(fmt(k, v) for k, v in ev.items() if not k.startswith("cond_"))
    cond = ", ".join(fmt(k, v) for k, v in ev.items() if k.startswith("cond_"))
    estimate = f"; condensation estimate on {n_windows} val windows: {cond}" if cond else ""
    return f"eval {iter_num}: {losses}{estimate}"


def benchmark_tasks(a, data, model):
    """--eval_tasks: the first --eval_task_items items of each, tokenized once, before any step (a task that is not
    prepared stops the run here, with the command that prepares it)."""
    if not a.eval_tasks:
        return []
    try:
        return tasks_for_training([t for t in a.eval_tasks.split(",") if t.strip()], a.eval_task_items,
                                  data.meta["tokenizer"], model.net.config.block_size)
    except EvalError as e:
        fail(f"--eval_tasks: {e}")


def condensation_windows(val, a, device):
    """--cond_texts windows of block_size tokens spread evenly over the val split, the same at every eval."""
    starts = np.linspace(0, len(val) - a.block_size - 1, a.cond_texts).astype(np.int64)
    return torch.from_numpy(np.stack([val[i:i + a.block_size] for i in starts]).astype(np.int64)).to(device)


def checkpoint(run, path, iter_num, tokens_seen, snapshot=False):
    """ckpt.pt holds what an exact resume needs; a --save_every snapshot is for measuring, so it leaves out the
    optimizer's moments (twice the model's size) and the RNG state."""
    ckpt = {"model": run.model.net.state_dict(), "model_args": run.model.args, "tokenizer": run.data.meta["tokenizer"],
            "iter_num": iter_num, "tokens_seen": tokens_seen, "config": vars(run.a)}
    if not snapshot:
        ckpt["optimizer"] = run.optimizer.state_dict()
        ckpt["rng_cpu"] = torch.get_rng_state()
        if run.env.device.type == "cuda":
            ckpt["rng_cuda"] = torch.cuda.get_rng_state(run.env.device)
    rundir.save_checkpoint(ckpt, path)


# ---------------------------------------------------------------------------------------- the run

def main(argv=None):
    a, given = parse_args(argv)
    resume = a.init_from == "resume"
    lock, restore_ctrl_c, env = None, lambda: None, None
    try:
        ckpt = rundir.resume_checkpoint(a, given) if resume else None
        a.lr_decay_iters = a.max_iters if a.lr_decay_iters is None else a.lr_decay_iters
        a.min_lr = a.learning_rate / 10 if a.min_lr is None else a.min_lr
        env = setup(a)
        writes = env.master and not a.bench  # --bench and the other DDP processes write nothing
        if writes:
            rundir.check_out_dir(a.out_dir, resume, a.overwrite)
        if env.ddp:
            backend = "nccl" if env.device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend, device_id=env.device if env.device.type == "cuda" else None)
        data = load_data(a, env)
        model = build_model(a, env, data, ckpt)
        model.bench = benchmark_tasks(a, data, model)
        if writes:  # only now, so that bad input leaves no trace in out_dir
            lock = rundir.lock_out_dir(a.out_dir, resume, a.overwrite)
        asked, restore_ctrl_c = rundir.catch_ctrl_c()  # from here on, Ctrl-C means: save and stop
        return train(a, env, data, model, ckpt, writes, asked)
    except rundir.RunDirError as e:
        fail(e)
    finally:
        restore_ctrl_c()
        rundir.release_lock(lock)
        if env is not None and env.ddp and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def train(a, env, data, model, ckpt, writes, asked):
    """The optimizer, then the loop: snapshot, eval and checkpoint, step, log; until max_iters or Ctrl-C."""
    optimizer = configure_optimizer(model.net, a, env.device)
    iter_num, tokens_seen = 0, 0
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        iter_num, tokens_seen = ckpt["iter_num"], ckpt["tokens_seen"]
        if a.max_iters > a.lr_decay_iters and env.master:
            print(f"note: steps past lr_decay_iters {a.lr_decay_iters} run at min_lr {a.min_lr:g} (the saved "
                  "schedule; a resume does not stretch it)")
    compiled = model.net  # checkpoints and evaluation use the plain module: no "_orig_mod." or "module." prefixes
    if a.compile:
        compiled = torch.compile(compiled)
    if env.ddp:
        ids = [env.device.index] if env.device.type == "cuda" else None
        compiled = torch.nn.parallel.DistributedDataParallel(compiled, device_ids=ids)
    run = SimpleNamespace(a=a, env=env, data=data, model=model, compiled=compiled, optimizer=optimizer,
                          cond_idx=condensation_windows(data.val_sets["val"], a, env.device),
                          peak=peak_flops(env.device, env.ptdtype))
    ckpt_path = os.path.join(a.out_dir, "ckpt.pt")
    tokens_per_step = a.batch_size * a.block_size * a.gradient_accumulation_steps
    unigram = data.meta["train_unigram_entropy"]
    if env.master:
        net, args = model.net, model.args
        print(f"model: {net.num_params() / 1e6:.2f}M parameters ({net.num_params(non_embedding=True) / 1e6:.2f}M "
              f"non-embedding), {args['n_layer']} layers x {args['n_embd']}, MLP "
              f"{args['n_inner'] or 4 * args['n_embd']}; data: {a.dataset} ({len(data.train):,} train "
              f"tokens, unigram entropy {unigram:.3f} nats); {tokens_per_step:,} tokens/step on {env.world} x "
              f"{env.device}")
    resumed_at = iter_num if ckpt is not None else None
    ev = rundir.start_run_files(a.out_dir, vars(a), a.overwrite, resumed_at) if writes else None
    evaluated_at = iter_num if ev is not None else None  # a resume does not repeat the eval its log already has
    if ckpt is not None:  # dropout and embedding noise continue the random stream where the checkpoint left it
        torch.set_rng_state(ckpt["rng_cpu"])
        if env.device.type == "cuda" and "rng_cuda" in ckpt:
            torch.cuda.set_rng_state(ckpt["rng_cuda"], env.device)
    # ------------------------------------------------------------------ the loop
    compiled.train()
    t_start = t0 = time.perf_counter()
    bench_times = []
    while True:
        saved = False
        if writes:
            if a.save_every and iter_num % a.save_every == 0:
                checkpoint(run, os.path.join(a.out_dir, f"ckpt_{iter_num:06d}.pt"), iter_num, tokens_seen, True)
            if (iter_num % a.eval_interval == 0 or iter_num == a.max_iters) and iter_num != evaluated_at:
                ev = evaluate(run)
                print(eval_line(iter_num, ev, a.cond_texts), flush=True)
                ppl = {f"ppl_{k}": math.exp(v) for k, v in ev.items() if k.startswith("val")}
                rundir.append_log(a.out_dir, {"iter": iter_num, "split": "eval", "tokens": tokens_seen, **ev, **ppl})
                checkpoint(run, ckpt_path, iter_num, tokens_seen)
                saved = True
            t0 = time.perf_counter()  # the step time should not include evaluation
        if iter_num >= a.max_iters:
            break
        if rundir.stop_asked(asked, env.ddp, env.device):
            if writes and not saved:
                checkpoint(run, ckpt_path, iter_num, tokens_seen)
            if env.ddp:  # the others wait for the save: torchrun stops every process once one has ended
                torch.distributed.barrier()
            if writes:
                print(f"interrupted: saved {ckpt_path} at step {iter_num}; continue with: "
                      f"python train.py --init_from resume --out_dir {a.out_dir}", file=sys.stderr, flush=True)
            raise SystemExit(130)
        lr, total = train_step(run, iter_num)
        iter_num += 1
        tokens_seen += tokens_per_step
        forget(run, iter_num)
        if env.device.type == "cuda":
            torch.cuda.synchronize(env.device)
        t1 = time.perf_counter()
        dt, t0 = t1 - t0, t1
        bench_times.append(dt)
        if env.master and (iter_num % a.log_interval == 0 or iter_num == a.max_iters):
            tok_s = tokens_per_step / dt
            util = step_mfu(run, tok_s)
            extras = "".join(f" {k} {v:.4f}" for k, v in total.items() if k != "loss") if len(total) > 2 else ""
            print(f"iter {iter_num}: loss {total['loss']:.4f}{extras}, lr {lr:.2e}, {dt * 1000:.1f} ms, "
                  f"{tok_s:,.0f} tok/s" + (f", mfu {100 * util:.1f}%" if util else ""), flush=True)
            if writes:
                rundir.append_log(a.out_dir, {"iter": iter_num, "split": "train", "tokens": tokens_seen, "lr": lr,
                                              "ms": dt * 1000, "tok_s": tok_s, "mfu": util, **total})
    if not env.master:
        return None
    if a.bench:
        return bench_result(run, bench_times, tokens_per_step)
    print(f"done in {time.perf_counter() - t_start:.0f} s: final val loss {ev['val']:.4f} "
          f"(unigram entropy of the training data {unigram:.4f} nats)")
    return {"val": ev["val"], "unigram_entropy": unigram, "seconds": time.perf_counter() - t_start}


def step_mfu(run, tok_s):
    """MFU of this process's steps at tok_s tokens/s (mfu.py; on a CPU a faster step raises run.peak)."""
    util, run.peak = utilisation(run.model.net.flops_per_token(run.a.block_size) * tok_s / run.env.world, run.peak,
                                 run.env.device)
    return util


def bench_result(run, step_times, tokens_per_step):
    """--bench: the median step time, leaving out the first steps (warm-up, compilation)."""
    steady = sorted(step_times[min(5, len(step_times) // 2):]) or [float("nan")]
    ms = 1000 * steady[len(steady) // 2]
    tok_s = tokens_per_step / ms * 1000
    util = step_mfu(run, tok_s)
    print(f"bench: {ms:.1f} ms/iter (median of {len(steady)}), {tok_s:,.0f} tokens/s"
          + (f", MFU {100 * util:.1f}% of {run.peak / 1e12:.2f} TFLOP/s" if util else ""))
    return {"ms_per_iter": ms, "tokens_per_s": tok_s, "mfu": util, "peak_flops": run.peak}


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # before the loop started, or a second Ctrl-C
        sys.exit("error: interrupted; nothing more was saved (the last checkpoint in --out_dir, if any, is kept)")
