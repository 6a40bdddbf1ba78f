"""
Train a GPT-2 (from scratch, from a checkpoint, or from GPT-2's weights) with an optional dispersion loss.

    python train.py                                      # the bundled Austen corpus, a small char-level model, CPU
    python train.py --disp angular --disp_coeff 0.1      # the same with the paper's dispersion loss
    torchrun --standalone --nproc_per_node 8 train.py --dataset fineweb_edu ...   # several GPUs with DDP

Every default lives in build_parser(); `python train.py --help` explains each flag.
"""

import argparse
import json
import math
import os
import sys
import time
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F

import dispersion
import measure
from data import prepare as dataprep
from load import load_gpt
from model import GPT, GPTConfig, load_checkpoint


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0], allow_abbrev=False,
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
    g.add_argument("--max_iters", type=int, default=1500, help="optimizer steps in all")
    g.add_argument("--learning_rate", type=float, default=2e-3, help="peak learning rate")
    g.add_argument("--min_lr", type=float, default=None, help="end of the cosine decay; default learning_rate / 10")
    g.add_argument("--warmup_iters", type=int, default=100, help="steps of linear learning-rate warmup")
    g.add_argument("--lr_decay_iters", type=int, default=None, help="length of warmup + cosine; default max_iters")
    g.add_argument("--weight_decay", type=float, default=0.1, help="AdamW decay of the matrices (not biases, norms)")
    g.add_argument("--beta1", type=float, default=0.9, help="AdamW beta1")
    g.add_argument("--beta2", type=float, default=0.95, help="AdamW beta2")
    g.add_argument("--grad_clip", type=float, default=1.0, help="clip the gradient norm to this; 0 disables")
    g = p.add_argument_group("dispersion loss (dispersion.py): loss = CE + disp_coeff * dispersion")
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
    g.add_argument("--kd_alpha", type=float, default=0.5, help="loss = (1-a) CE + a T^2 KL(teacher || student)")
    g.add_argument("--kd_temperature", type=float, default=2.0, help="T, softening both distributions")
    g.add_argument("--embed_noise", type=float, default=0.0, help="NEFTune alpha: uniform noise of scale "
                   "alpha / sqrt(T * C) on the input embeddings while training")
    g.add_argument("--forget_every", type=int, default=0, help="re-initialise the token embeddings every K steps")
    g = p.add_argument_group("run")
    g.add_argument("--init_from", default="scratch",
                   help="scratch | resume (out_dir/ckpt.pt) | a checkpoint or run dir | a GPT-2 name or directory")
    g.add_argument("--out_dir", default="out", help="checkpoints, log.jsonl and config.json go here")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    g.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                   help="autocast dtype; auto is bfloat16 on GPUs that have it, else float32")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the model; default on with CUDA")
    g.add_argument("--seed", type=int, default=1337, help="seeds the initialisation, the batches and dropout")
    g.add_argument("--eval_interval", type=int, default=250, help="estimate losses and condensation every N steps")
    g.add_argument("--eval_iters", type=int, default=20, help="batches per loss estimate")
    g.add_argument("--cond_texts", type=int, default=8, help="fixed val sequences for in-training condensation")
    g.add_argument("--log_interval", type=int, default=10, help="print and log a line every N steps")
    g.add_argument("--save_every", type=int, default=0, help="also keep out_dir/ckpt_<iter>.pt every N steps, from 0")
    g.add_argument("--bench", action="store_true", help="time --max_iters steps (no eval, no checkpoint) and exit")
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
    for name in ("batch_size", "gradient_accumulation_steps", "eval_interval", "eval_iters", "log_interval"):
        if getattr(a, name) < 1:
            fail(f"--{name} must be at least 1, got {getattr(a, name)}")
    for name in ("max_iters", "warmup_iters", "save_every", "forget_every", "cond_texts", "disp_max_tokens"):
        if getattr(a, name) < 0:
            fail(f"--{name} must not be negative, got {getattr(a, name)}")
    if not 0 <= a.kd_alpha <= 1:
        fail("--kd_alpha must be in [0, 1]")
    if a.learning_rate <= 0 or a.disp_tau <= 0 or a.kd_temperature <= 0 or a.disp_coeff < 0 or a.embed_noise < 0:
        fail("--learning_rate, --disp_tau and --kd_temperature must be positive; --disp_coeff, --embed_noise >= 0")
    if not 0 < a.disp_clamp < 1 or a.disp_lambda_norm < 0:
        fail("--disp_clamp must be in (0, 1) and --disp_lambda_norm >= 0")


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


def peak_flops(device, dtype):
    """Peak FLOP/s for MFU: known bf16 tensor-core peaks of datacenter GPUs, or on CPU a float32 matmul measured
    here and now (so the CPU figure says how close we come to what this machine's BLAS can do)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peak in (("H100", 989e12), ("H200", 989e12), ("A100", 312e12)):
            if key in name and dtype in (torch.bfloat16, torch.float16):
                return peak
        return None
    if device.type != "cpu":
        return None
    n = 1024
    gen = torch.Generator().manual_seed(0)  # not the global RNG: a resumed run must draw what the original drew
    x, y = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    times = []
    for _ in range(20):  # the fastest of several: a busy moment on a shared machine must not lower the peak
        t0 = time.perf_counter()
        x @ y
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / min(times)


def save_checkpoint(ckpt, path):
    """Write to a temporary file, then rename: a kill at any moment leaves the previous checkpoint whole."""
    tmp = path + ".tmp"
    torch.save(ckpt, tmp)
    os.replace(tmp, path)


def load_weights(spec, dropout=0.0):
    """A trained model to start from or distil from (load.py: our checkpoints, run directories or GPT-2 weights).
    -> (model, its tokenizer spec)."""
    return load_gpt(spec, dropout)


def main(argv=None):
    parser = build_parser()
    parser.error = lambda msg: fail(f"{msg} (see python train.py --help)")  # one line, not argparse's usage block
    a = parser.parse_args(argv)
    check_args(a)
    a.lr_decay_iters = a.max_iters if a.lr_decay_iters is None else a.lr_decay_iters
    a.min_lr = a.learning_rate / 10 if a.min_lr is None else a.min_lr
    # ------------------------------------------------------------------ processes and device
    ddp = int(os.environ.get("RANK", -1)) != -1  # launched by torchrun
    rank, world = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if ddp else (0, 1)
    master = rank == 0
    if a.gradient_accumulation_steps % world:
        fail(f"--gradient_accumulation_steps {a.gradient_accumulation_steps} is not divisible by {world} processes")
    if a.device == "auto":
        a.device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if ddp and a.device.startswith("cuda"):
        a.device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    try:
        device = torch.device(a.device)
    except RuntimeError:
        fail(f"unknown --device {a.device}")
    if device.type == "cuda" and not torch.cuda.is_available():
        fail("--device cuda, but no CUDA GPU is available")
    if a.dtype == "auto":
        a.dtype = "bfloat16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    ptdtype = getattr(torch, a.dtype)
    if a.compile is None:
        a.compile = device.type == "cuda"
    if ddp:
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    # ------------------------------------------------------------------ data
    try:
        names = [a.dataset] + list(filter(None, a.eval_datasets.split(",")))
        if master:  # the bundled corpora prepare themselves on first use (a few seconds)
            for name in names:
                if name.removesuffix("_char") in dataprep.BUNDLED_SOURCES and not dataprep.is_prepared(name):
                    dataprep.prepare_source(name)
        if ddp:
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
    # ------------------------------------------------------------------ model
    ckpt = None
    if a.init_from == "scratch":
        vocab = 64 * math.ceil(meta["vocab_size"] / 64)  # padded to a multiple of 64 for faster matmuls
        model_args = dict(block_size=a.block_size, vocab_size=vocab, n_layer=a.n_layer, n_head=a.n_head,
                          n_embd=a.n_embd, n_inner=a.n_inner, dropout=a.dropout, bias=a.bias)
        torch.manual_seed(a.seed)
        model = GPT(GPTConfig(**model_args))
    elif a.init_from == "resume":
        try:
            ckpt = load_checkpoint(os.path.join(a.out_dir, "ckpt.pt"))
            model = GPT.from_checkpoint(ckpt)
        except (FileNotFoundError, ValueError, RuntimeError) as e:
            fail(f"cannot resume: {e}")
        model_args = ckpt["model_args"]
    else:  # mid-training: trained weights, a fresh optimizer and schedule
        try:
            model, tokenizer = load_weights(a.init_from, a.dropout)
        except (FileNotFoundError, ValueError, RuntimeError) as e:
            fail(f"--init_from: {e}")
        if tokenizer != meta["tokenizer"]:
            fail(f"--init_from {a.init_from} uses another tokenizer than --dataset {a.dataset}")
        model_args = {f: getattr(model.config, f) for f in GPTConfig.__dataclass_fields__}
    if a.block_size > model.config.block_size:
        fail(f"--block_size {a.block_size} is beyond the model's {model.config.block_size} positions")
    if meta["vocab_size"] > model.config.vocab_size:
        fail(f"{a.dataset} has {meta['vocab_size']} tokens, the model only {model.config.vocab_size}")
    model.to(device)
    disp_layers = []
    if a.disp != "none":
        try:
            disp_layers = dispersion.parse_layers(a.disp_layers, model.config.n_layer)
        except ValueError as e:
            fail(f"--disp_layers: {e}")
    teacher = None
    if a.teacher:
        try:
            teacher, teacher_tok = load_weights(a.teacher)
        except (FileNotFoundError, ValueError, RuntimeError) as e:
            fail(f"--teacher: {e}")
        if teacher_tok != meta["tokenizer"]:
            fail(f"--teacher {a.teacher} uses another tokenizer than --dataset {a.dataset}")
        teacher.to(device).eval().requires_grad_(False)
    optimizer = configure_optimizer(model, a, device)
    iter_num, tokens_seen = 0, 0
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        iter_num, tokens_seen = ckpt["iter_num"], ckpt["tokens_seen"]
    raw_model = model  # checkpoints and evaluation use the plain module: no "_orig_mod." or "module." prefixes
    if a.compile:
        model = torch.compile(model)
    if ddp:
        ids = [device.index] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    autocast = torch.autocast(device.type, dtype=ptdtype) if ptdtype != torch.float32 else nullcontext()
    scaler = torch.amp.GradScaler(device.type, enabled=ptdtype == torch.float16)
    if a.embed_noise > 0:  # NEFTune: noise on the input embeddings, in training only
        def add_noise(module, inputs, out):
            if not module.training:
                return out
            scale = a.embed_noise / math.sqrt(out.size(-2) * out.size(-1))  # alpha / sqrt(T * C)
            return out + torch.empty_like(out).uniform_(-scale, scale)
        raw_model.transformer.wte.register_forward_hook(add_noise)
    # ------------------------------------------------------------------ helpers that close over the run
    local_micro = a.gradient_accumulation_steps // world
    tokens_per_step = a.batch_size * a.block_size * a.gradient_accumulation_steps
    unigram = meta["train_unigram_entropy"]
    cond_val = val_sets["val"]
    cond_starts = np.linspace(0, len(cond_val) - a.block_size - 1, a.cond_texts).astype(np.int64)
    cond_idx = torch.from_numpy(np.stack([cond_val[i:i + a.block_size] for i in cond_starts]).astype(np.int64))
    peak = peak_flops(device, ptdtype)
    log_path = os.path.join(a.out_dir, "log.jsonl")
    if master:
        n_params = raw_model.num_params()
        print(f"model: {n_params / 1e6:.2f}M parameters ({raw_model.num_params(non_embedding=True) / 1e6:.2f}M "
              f"non-embedding), {model_args['n_layer']} layers x {model_args['n_embd']}, MLP "
              f"{model_args['n_inner'] or 4 * model_args['n_embd']}; data: {a.dataset} ({len(train_data):,} train "
              f"tokens, unigram entropy {unigram:.3f} nats); {tokens_per_step:,} tokens/step on {world} x {device}")
    if master and not a.bench:
        os.makedirs(a.out_dir, exist_ok=True)
        with open(os.path.join(a.out_dir, "config.json"), "w") as f:
            json.dump(vars(a), f, indent=1)

    def log(record):
        if master and not a.bench:
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def forward_loss(x, y, step, index):
        """CE, plus the dispersion and distillation terms when asked for, from one forward pass."""
        with autocast:
            logits, ce, hidden = model(x, y, return_hidden=True)
            loss, parts = ce, {"ce": ce.detach()}
            if disp_layers:
                seed = int(np.random.SeedSequence([a.seed, step, index]).generate_state(1)[0])
                gen = torch.Generator(device=x.device).manual_seed(seed)
                disp = dispersion.layer_dispersion(hidden, disp_layers, kind=a.disp, tau=a.disp_tau,
                                                   max_tokens=a.disp_max_tokens or None, clamp=a.disp_clamp,
                                                   lambda_norm=a.disp_lambda_norm, generator=gen)
                loss, parts["disp"] = loss + a.disp_coeff * disp, disp.detach()
            if teacher is not None:
                with torch.no_grad():
                    t_logits = teacher(x)[0]
                V, T = meta["vocab_size"], a.kd_temperature  # only real tokens: the padded rows differ in size
                student, target = (F.log_softmax(z[..., :V].float() / T, -1) for z in (logits, t_logits))
                kl = F.kl_div(student, target, log_target=True, reduction="batchmean") / x.size(1)  # per token
                loss, parts["kd"] = (1 - a.kd_alpha) * loss + a.kd_alpha * T * T * kl, kl.detach()
        return loss, parts

    @torch.no_grad()
    def evaluate():
        raw_model.eval()
        out = {}
        for split, d in [("train", train_data)] + list(val_sets.items()):
            # the same batches at every eval (key (1, split, k)), so successive estimates differ by the model only
            with autocast:
                losses = [raw_model(*get_batch(d, a, (1, len(out), k), device))[1].item() for k in range(a.eval_iters)]
            out[split] = float(np.mean(losses))
        with autocast:
            out.update(measure.condensation_summary(raw_model, cond_idx.to(device)))
        raw_model.train()
        return out

    def checkpoint(path):
        ckpt = {"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(), "model_args": model_args,
                "tokenizer": meta["tokenizer"], "iter_num": iter_num, "tokens_seen": tokens_seen, "config": vars(a),
                "rng_cpu": torch.get_rng_state()}
        if device.type == "cuda":
            ckpt["rng_cuda"] = torch.cuda.get_rng_state(device)
        save_checkpoint(ckpt, path)

    # ------------------------------------------------------------------ the loop
    if ckpt is not None:  # dropout and embedding noise continue the random stream where the checkpoint left it
        torch.set_rng_state(ckpt["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in ckpt:
            torch.cuda.set_rng_state(ckpt["rng_cuda"], device)
    model.train()
    t_start = t0 = time.perf_counter()
    bench_times = []
    while True:
        if master and not a.bench:
            if a.save_every and iter_num % a.save_every == 0:
                checkpoint(os.path.join(a.out_dir, f"ckpt_{iter_num:06d}.pt"))
            if iter_num % a.eval_interval == 0 or iter_num == a.max_iters:
                ev = evaluate()
                print(f"eval {iter_num}: " + ", ".join(f"{k} {v:.4f}" for k, v in ev.items()), flush=True)
                log({"iter": iter_num, "split": "eval", "tokens": tokens_seen, **ev,
                     **{f"ppl_{k}": math.exp(v) for k, v in ev.items() if k.startswith("val")}})
                checkpoint(os.path.join(a.out_dir, "ckpt.pt"))
            t0 = time.perf_counter()  # the step time should not include evaluation
        if iter_num >= a.max_iters:
            break
        lr = get_lr(iter_num, a)
        for group in optimizer.param_groups:
            group["lr"] = lr
        total = {}
        for micro in range(local_micro):
            index = micro * world + rank  # this micro-batch's place among all processes' micro-batches
            x, y = get_batch(train_data, a, (0, iter_num, index), device)
            if ddp:  # only the last micro-step needs to average gradients across processes
                model.require_backward_grad_sync = micro == local_micro - 1
            loss, parts = forward_loss(x, y, iter_num, index)
            scaler.scale(loss / local_micro).backward()
            for k, v in {"loss": loss.detach(), **parts}.items():
                total[k] = total.get(k, 0.0) + v.float() / a.gradient_accumulation_steps
        if ddp:
            for v in total.values():
                torch.distributed.all_reduce(v)
        total = {k: v.item() for k, v in total.items()}
        if not math.isfinite(total["loss"]):
            fail(f"loss is {total['loss']} at step {iter_num}: stopping; the last good checkpoint in {a.out_dir} "
                 "is kept (try a lower --learning_rate)")
        if a.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        iter_num += 1
        tokens_seen += tokens_per_step
        # active forgetting: fresh token embeddings every K steps, but never on the last step, which would hand
        # back a model whose embeddings are random
        if a.forget_every and iter_num % a.forget_every == 0 and iter_num < a.max_iters:
            wte = raw_model.transformer.wte.weight
            with torch.no_grad():
                torch.nn.init.normal_(wte, mean=0.0, std=0.02)
            optimizer.state.pop(wte, None)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t1 = time.perf_counter()
        dt, t0 = t1 - t0, t1
        bench_times.append(dt)
        if master and (iter_num % a.log_interval == 0 or iter_num == a.max_iters):
            tok_s = tokens_per_step / dt
            mfu = raw_model.flops_per_token(a.block_size) * tok_s / (peak * world) if peak else None
            extras = "".join(f" {k} {v:.4f}" for k, v in total.items() if k != "loss") if len(total) > 2 else ""
            print(f"iter {iter_num}: loss {total['loss']:.4f}{extras}, lr {lr:.2e}, {dt * 1000:.1f} ms, "
                  f"{tok_s:,.0f} tok/s" + (f", mfu {100 * mfu:.1f}%" if mfu else ""), flush=True)
            log({"iter": iter_num, "split": "train", "tokens": tokens_seen, "lr": lr, "ms": dt * 1000,
                 "tok_s": tok_s, "mfu": mfu, **total})
    result = None
    if master and a.bench:
        steady = sorted(bench_times[min(5, len(bench_times) // 2):]) or [float("nan")]  # skip warm-up/compile steps
        ms = 1000 * steady[len(steady) // 2]
        tok_s = tokens_per_step / ms * 1000
        mfu = raw_model.flops_per_token(a.block_size) * tok_s / (peak * world) if peak else None
        print(f"bench: {ms:.1f} ms/iter (median of {len(steady)}), {tok_s:,.0f} tokens/s"
              + (f", MFU {100 * mfu:.1f}% of {peak / 1e12:.2f} TFLOP/s" if mfu else ""))
        result = {"ms_per_iter": ms, "tokens_per_s": tok_s, "mfu": mfu, "peak_flops": peak}
    elif master:
        print(f"done in {time.perf_counter() - t_start:.0f} s: final val loss {ev['val']:.4f} "
              f"(unigram entropy of the training data {unigram:.4f} nats)")
        result = {"val": ev["val"], "unigram_entropy": unigram, "seconds": time.perf_counter() - t_start}
    if ddp:
        torch.distributed.destroy_process_group()
    return result


if __name__ == "__main__":
    main()
