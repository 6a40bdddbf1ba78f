"""
Where a training run computes: its processes (one, or torchrun's DDP), its device and its autocast dtype;
the model the steps call (compiled, DDP-wrapped) and the random streams a resume continues.
"""

import os
from contextlib import nullcontext
from types import SimpleNamespace

import torch

from support.checks import fail


def setup(args):
    """-> env: ddp, rank, world, master, device, ptdtype, autocast, scaler. Resolves args.device, args.dtype and
    args.compile where they are "auto" or unset."""
    ddp = int(os.environ.get("RANK", -1)) != -1  # launched by torchrun
    rank, world = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if ddp else (0, 1)
    if args.gradient_accumulation_steps % world:
        fail(f"--gradient_accumulation_steps {args.gradient_accumulation_steps} is not divisible by {world} "
             "processes")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if ddp and args.device.startswith("cuda"):
        args.device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    device = check_device(args.device)
    if args.dtype == "auto":
        args.dtype = "bfloat16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    ptdtype = getattr(torch, args.dtype)
    if args.compile is None:
        args.compile = device.type == "cuda"
    return SimpleNamespace(
        ddp=ddp, rank=rank, world=world, master=rank == 0, device=device, ptdtype=ptdtype,
        autocast=torch.autocast(device.type, dtype=ptdtype) if ptdtype != torch.float32 else nullcontext(),
        scaler=torch.amp.GradScaler(device.type, enabled=ptdtype == torch.float16))


def check_device(name):
    """The torch.device for --device, or one line saying why it is not there."""
    try:
        device = torch.device(name)
    except RuntimeError:
        fail(f"unknown --device {name} (cpu, cuda, cuda:N or mps)")
    if device.type == "cuda" and not torch.cuda.is_available():
        fail(f"--device {name}, but no CUDA GPU is available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        fail(f"--device {name}, but there are only {torch.cuda.device_count()} CUDA GPUs")
    if device.type == "mps" and not torch.backends.mps.is_available():
        fail(f"--device {name}, but MPS (Apple's GPU backend) is not available here")
    if device.type not in ("cpu", "cuda", "mps"):
        fail(f"--device {name} is not supported (cpu, cuda, cuda:N or mps)")
    return device


def start_processes(env):
    """torchrun's processes join one group (NCCL on GPUs, gloo on CPUs); one process needs none."""
    if env.ddp:
        backend = "nccl" if env.device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend, device_id=env.device if env.device.type == "cuda" else None)


def wrap(model, compile_model, env):
    """The model the training steps call: torch.compiled (with compile) and, under torchrun, DDP-wrapped."""
    wrapped = torch.compile(model) if compile_model else model
    if env.ddp:
        ids = [env.device.index] if env.device.type == "cuda" else None
        wrapped = torch.nn.parallel.DistributedDataParallel(wrapped, device_ids=ids)
    return wrapped


def rng_state(device):
    """The random streams a resume continues (dropout, embedding noise): {"rng_cpu", "rng_cuda" on a GPU}."""
    out = {"rng_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        out["rng_cuda"] = torch.cuda.get_rng_state(device)
    return out


def restore_rng(ckpt, device):
    torch.set_rng_state(ckpt["rng_cpu"])
    if device.type == "cuda" and "rng_cuda" in ckpt:
        torch.cuda.set_rng_state(ckpt["rng_cuda"], device)


def end_processes(env):
    if env is not None and env.ddp and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def memory_of(device):
    """The memory of the device in bytes (a CPU's physical memory), or None where it cannot be read."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if device.type == "cpu" else None
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows) or no such name
        return None


def check_memory(args, model, device):
    """Refuse a micro-batch that cannot fit, before a step runs for minutes and then fails. The bound is low on
    purpose: backward keeps at least about 16 C floats a token in every block (the norms' outputs, q, k, v, the
    attention's output, the MLP's two 4C-wide activations) and the logits twice, so a run refused here could
    never have fit."""
    cfg, B, T = model.config, args.batch_size, args.block_size
    floats = B * T * (cfg.n_layer * 16 * cfg.n_embd + 2 * cfg.vocab_size)
    need, have = 4 * floats, memory_of(device)
    if have is not None and need > have:
        fail(f"one micro-batch of {B} x {T} tokens needs at least {need / 2**30:,.1f} GiB of activations for this "
             f"model; {device} has {have / 2**30:,.1f} GiB: lower --batch_size or --block_size")
