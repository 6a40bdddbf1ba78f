"""
A run folder (train.py's --out_dir) holds one run, and never half of one:

- its files: ckpt.pt (what an exact resume needs), ckpt_<iter>.pt snapshots, log.jsonl and config.json. A new run
  stops where they are, unless it resumes them or is told to --overwrite them;
- its lock, train.lock: held by one train.py at a time, and released by the kernel however that process ends;
- every file written whole: a temporary file renamed into place, so a kill at any moment leaves the previous
  version intact, and a full disk ends in one line, not a half-written checkpoint;
- a log that agrees with its checkpoint: a resume cuts log.jsonl back to the checkpoint's step, so every
  (iter, split) appears once;
- a resume that continues the run it resumes: its saved flags, and no flag that would change it unasked;
- a Ctrl-C that stops the run at the end of a step, where train.py can save it.

Whatever goes wrong raises RunDirError, whose text is one line for the user; train.py prints it as `error: ...`.
"""

import glob
import json
import os
import shutil
import signal
import socket
import sys
import threading

import torch

from support.checks import check_writable
from support.load import load_checkpoint, open_model

try:
    import fcntl  # file locks, released by the kernel when their process dies; not on Windows
except ImportError:
    fcntl = None

RUN_FILES = ("ckpt.pt", "log.jsonl", "config.json", "ckpt_[0-9]*.pt")  # what makes a folder hold a run
LOCK_FILE = "train.lock"

# A resumed run is the run it continues: these flags change what it computes, so on --init_from resume they come
# from the checkpoint, and one given with another value stops the run unless --allow_changes is given. --max_iters
# may grow freely: the schedule stays the saved one (lr_decay_iters included), so a longer run ends at min_lr.
RUN_FLAGS = ("dataset", "seed", "batch_size", "gradient_accumulation_steps", "block_size", "dropout", "learning_rate",
             "min_lr", "warmup_iters", "lr_decay_iters", "weight_decay", "beta1", "beta2", "grad_clip", "disp",
             "disp_coeff", "disp_tau", "disp_layers", "disp_max_tokens", "disp_clamp", "disp_lambda_norm", "teacher",
             "kd_alpha", "kd_temperature", "embed_noise", "forget_every")
MODEL_FLAGS = ("n_layer", "n_head", "n_embd", "n_inner", "bias")  # fixed by the checkpoint's weights
NOT_SAVED = ("init_from", "out_dir", "device", "dtype", "compile", "bench", "overwrite", "allow_changes")  # per call


class RunDirError(Exception):
    """Bad input or a refusing disk: the message is the one line the user sees."""


def run_files(out_dir):
    return sorted({os.path.basename(f) for pattern in RUN_FILES for f in glob.glob(os.path.join(out_dir, pattern))})


def check_out_dir(out_dir, resume, overwrite):
    """One folder, one run: a new run stops where an old one is, unless told to --overwrite it."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise RunDirError(f"--out_dir {out_dir} is a file, not a folder")
    old = run_files(out_dir)
    if old and not resume and not overwrite:
        files = ", ".join(old[:3]) + (", ..." if len(old) > 3 else "")
        if "ckpt.pt" not in old:  # killed before its first checkpoint: there is nothing to resume
            raise RunDirError(f"--out_dir {out_dir} holds a run that stopped before its first checkpoint "
                              f"({files}): start it again with --overwrite, or choose another --out_dir")
        raise RunDirError(f"--out_dir {out_dir} already holds a run ({files}): continue it with --init_from "
                          "resume, choose another --out_dir, or add --overwrite to delete it")
    writable = check_writable(out_dir, "--out_dir")
    if writable:
        raise RunDirError(writable)


def lock_out_dir(out_dir, resume, overwrite):
    """Make out_dir and hold its lock for the rest of the run, so that two runs never share a folder.
    -> the lock (an open file)."""
    try:
        os.makedirs(out_dir, exist_ok=True)
        lock = open(os.path.join(out_dir, LOCK_FILE), "a+")
    except OSError as e:
        raise RunDirError(f"--out_dir {out_dir} is not writable ({e.strerror})")
    take_lock(lock, out_dir)
    try:
        check_out_dir(out_dir, resume, overwrite)  # again: a run may have started here while this one was loading
    except RunDirError:
        release_lock(lock)
        raise
    return lock


def take_lock(lock, out_dir):
    """An exclusive lock on out_dir/train.lock, whose text names the holder. The kernel releases the lock when its
    process ends, however it ends, so the file a killed run leaves behind is taken over: it never blocks a folder.
    (Without file locks, on Windows or some network file systems, the file only names the last run.)"""
    if fcntl is not None:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            lock.close()
            raise RunDirError(f"--out_dir {out_dir} is in use by a running train.py ({holder}): wait for it, or "
                              "choose another --out_dir")
        except OSError:
            pass
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    lock.flush()
    return lock


def release_lock(lock):
    if lock is not None and not lock.closed:
        lock.seek(0)
        lock.truncate()  # an empty lock file names no holder; the next run takes it
        lock.close()


def start_run_files(out_dir, config, overwrite, resumed_at):
    """Before a run writes: --overwrite deletes the old run's files (only now, after its weights may have been read
    for --init_from or --teacher); a resume (resumed_at, the checkpoint's step) cuts log.jsonl back to that step;
    config.json gets the run's flags. -> the log's eval record at the checkpoint's step, if there is one."""
    log_path = os.path.join(out_dir, "log.jsonl")
    kept, at_step = [], None
    if overwrite:
        for f in run_files(out_dir):
            os.remove(os.path.join(out_dir, f))
    elif resumed_at is not None and os.path.exists(log_path):
        with open(log_path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:  # a line cut short by a kill: nothing after it was written whole
                    break
                if record["iter"] <= resumed_at:
                    kept.append(record)
        at_step = next((r for r in kept if r["iter"] == resumed_at and r["split"] == "eval"), None)
    write_files(out_dir, {"config.json": json.dumps(config, indent=1)} |
                ({"log.jsonl": "".join(json.dumps(r) + "\n" for r in kept)} if resumed_at is not None else {}))
    return at_step


def write_files(out_dir, contents):
    """Write each file whole (a temporary file, then a rename), with one line if the disk refuses."""
    for name, text in contents.items():
        path = os.path.join(out_dir, name)
        try:
            with open(path + ".tmp", "w") as f:
                f.write(text)
            os.replace(path + ".tmp", path)
        except OSError as e:
            remove_quietly(path + ".tmp")
            raise RunDirError(f"cannot write {path} ({e.strerror})")


def append_log(out_dir, record):
    path = os.path.join(out_dir, "log.jsonl")
    try:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as e:
        raise RunDirError(f"cannot write {path} ({e.strerror}); the last checkpoint is kept: fix this, then use "
                          "--init_from resume")


def save_checkpoint(ckpt, path):
    """Write to a temporary file, then rename: a kill at any moment leaves the previous checkpoint whole, and a
    failed write (a full disk) leaves no temporary file behind."""
    tmp = path + ".tmp"
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch.save reports a full disk as a RuntimeError
        remove_quietly(tmp)
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free / 2**20
        reason = e.strerror if isinstance(e, OSError) and e.strerror else "the write failed"
        raise RunDirError(f"cannot write {path} ({reason}; {free:,.0f} MiB free on its disk); the previous "
                          "checkpoint is kept: fix this, then use --init_from resume")
    except BaseException:  # Ctrl-C mid-write: no half-written file
        remove_quietly(tmp)
        raise


def remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def catch_ctrl_c():
    """The first Ctrl-C asks the loop to stop at the end of the step (and save); a second stops at once.
    -> (a list that is non-empty once asked, a function that puts the old handler back)."""
    asked = []
    if threading.current_thread() is not threading.main_thread():  # signals reach only the main thread
        return asked, lambda: None

    def handler(signum, frame):
        if asked:
            raise KeyboardInterrupt
        asked.append(signum)
        print("\nCtrl-C: saving a checkpoint at the end of this step (Ctrl-C again stops without one)",
              file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    return asked, lambda: signal.signal(signal.SIGINT, previous)


def stop_asked(asked, ddp, device):
    """Has a Ctrl-C come? With DDP, asked of every process, so that all of them stop at the same step."""
    if not ddp:
        return bool(asked)
    flag = torch.tensor([float(bool(asked))], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return flag.item() > 0


def check_model_flags(args, given, shape, start):
    """Trained weights fix the model's shape: a model flag given with another value stops the run with one line
    (start says what fixes it), and every model flag takes the weights' value, so config.json says what the model
    is."""
    fixed = [f"--{k} {getattr(args, k)}" for k in MODEL_FLAGS if k in given and getattr(args, k) != shape.get(k)]
    if fixed:
        raise RunDirError(f"{start} with {', '.join(fixed)}: the checkpoint's weights fix the model to "
                          + ", ".join(f"{k} {shape.get(k)}" for k in MODEL_FLAGS))
    for k in MODEL_FLAGS:
        setattr(args, k, shape.get(k))


def resume_checkpoint(args, given):
    """Read out_dir/ckpt.pt for --init_from resume and take the run's saved flags for every flag not given; a flag
    given that changes the run (RUN_FLAGS) stops it unless --allow_changes; the model's shape never changes."""
    path = os.path.join(args.out_dir, "ckpt.pt")
    try:
        ckpt = load_checkpoint(path)
        open_model(path)  # checks, without building the model, that its weights fit its model_args
    except FileNotFoundError as e:
        if any(glob.glob(os.path.join(args.out_dir, "ckpt_[0-9]*.pt"))):
            raise RunDirError(f"cannot resume: {e} (the ckpt_NNNNNN.pt snapshots hold weights only: start a new "
                              "run from one with --init_from PATH)")
        raise RunDirError(f"cannot resume: {e}")
    except ValueError as e:
        raise RunDirError(f"cannot resume: {e}")
    if "optimizer" not in ckpt:  # a --save_every snapshot copied over ckpt.pt: weights without optimizer state
        raise RunDirError(f"cannot resume: {path} is a --save_every snapshot (weights only, no optimizer or RNG "
                          f"state); start a new run from its weights with --init_from {path}")
    saved = ckpt.get("config", {})
    check_model_flags(args, given, ckpt["model_args"], "cannot resume")
    for k, v in saved.items():
        if hasattr(args, k) and k not in given and k not in NOT_SAVED + MODEL_FLAGS:
            setattr(args, k, v)
    changed = [f"--{k} {getattr(args, k)} (the run has {saved[k]})" for k in RUN_FLAGS
               if k in given and k in saved and getattr(args, k) != saved[k]]
    if changed and not args.allow_changes:
        raise RunDirError(f"resuming with {'; '.join(changed)} would change the run: leave the flag out to keep the run's own "
             "value, or add --allow_changes if you mean it")
    if args.max_iters < ckpt["iter_num"]:
        raise RunDirError(f"--max_iters {args.max_iters} is behind the checkpoint, which is at step {ckpt['iter_num']}")
    return ckpt


def schedule_note(args, it):
    """What a resumed run that grew --max_iters past the saved schedule's end does (a resume does not stretch the
    schedule: no uninterrupted run would have the stretched one). -> a note, or None."""
    if args.max_iters <= args.lr_decay_iters or it >= args.max_iters:
        return None
    if args.warmup_iters <= args.lr_decay_iters:
        return (f"note: steps past lr_decay_iters {args.lr_decay_iters} run at min_lr {args.min_lr:g} (the saved "
                "schedule; a resume does not stretch it)")
    return (f"note: the saved schedule's warmup ({args.warmup_iters} steps) outlasts its lr_decay_iters "
            f"{args.lr_decay_iters}: the learning rate keeps rising until step {args.warmup_iters}, then runs at min_lr "
            f"{args.min_lr:g} (a resume does not stretch the schedule)")


def stop_run(writes, ckpt_path, it, ddp):
    """After a Ctrl-C, once ckpt.pt holds this step: the other processes wait for the save (torchrun stops every
    process once one has ended), then the run ends with the command that continues it."""
    if ddp:
        torch.distributed.barrier()
    if writes:
        print(f"interrupted: saved {ckpt_path} at step {it}; continue with: python train.py --init_from resume "
              f"--out_dir {os.path.dirname(ckpt_path)}", file=sys.stderr, flush=True)
    raise SystemExit(130)
