"""
One progress line for long loops (measuring texts, preparing a corpus, scoring benchmarks, running the suite):

    for batch in progress(batches, total=len(batches), what="texts", scale=4):
        ...

prints `  texts 40/100, 6.2/s, 10 s left` at a steady pace: updated in place on a terminal, as plain lines
(at most one every `every` seconds) in a log file, and a closing line with the total time. And train.py's
lines: the run's summary, each logged step (its loss as the formula) and each eval.
"""

import sys
import time


def fmt_seconds(s):
    """12 s, 3 min 20 s, 1 h 05 min: what a person reads at a glance."""
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def progress(items, total=None, what="items", scale=1, every=None, file=None, start=0):
    """Yield from items, reporting progress; scale: how many units each item counts for (a batch of 4 texts is 4),
    total: units in all (default len(items) * scale); start: units already done before (a resumed loop)."""
    file = file or sys.stdout
    tty = getattr(file, "isatty", lambda: False)()
    every = every if every is not None else (0.5 if tty else 10.0)  # a log gets a line every 10 s, not a flood
    if total is None and hasattr(items, "__len__"):
        total = len(items) * scale
    done, t0, last = start, time.perf_counter(), None

    def line(final=False):
        elapsed = time.perf_counter() - t0
        rate = (done - start) / elapsed if elapsed > 0 else 0.0
        text = f"  {what} {done:,}" + (f"/{total:,}" if total else "") + f", {rate:,.1f}/s"
        if final:
            text += f", done in {fmt_seconds(elapsed)}"
        elif total and rate > 0:
            text += f", {fmt_seconds((total - done) / rate)} left"
        end = "\n" if final or not tty else ""
        print(("\r" if tty else "") + text.ljust(60 if tty else 0), end=end, file=file, flush=True)

    for item in items:
        yield item
        done += scale
        now = time.perf_counter()
        if last is None or now - last >= every:
            if last is not None or tty:  # no line for the very first item of a log: nothing is known yet
                line()
            last = now
    line(final=True)


def ticker(total, what):
    """The same line moved by hand, for a loop that is not a loop over items (measure.py's passes over texts):
    tick(n) once n more of the total units are done."""
    line = progress(range(total), what=what)
    next(line, None)  # starts its clock; each later next() counts one unit as done
    return lambda n: [next(line, None) for _ in range(n)]


def byte_meter(total, what, file=None, every=None):
    """The line for a transfer of total bytes (None: unknown), `  model.safetensors 1.20/6.43 GB, 35.1 MB/s, 2 min
    40 s left`, paced as progress() paces its line (stderr by default: a script's output stays clean): add(n) as n
    more bytes arrive; add(0, final="done in") closes it, saying so."""
    file = file or sys.stderr
    tty = getattr(file, "isatty", lambda: False)()
    every = every if every is not None else (0.5 if tty else 10.0)
    unit, scale = ("GB", 1e9) if (total or 0) >= 1e9 else ("MB", 1e6)
    t0 = time.perf_counter()
    state = {"done": 0, "last": t0, "width": 60}

    def add(n, final=None):
        state["done"] += n
        now = time.perf_counter()
        if final is None and now - state["last"] < every:
            return
        state["last"], elapsed, done = now, now - t0, state["done"]
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"  {what} {done / scale:,.2f}" + (f"/{total / scale:,.2f}" if total else "")
        text += f" {unit}, {rate / 1e6:,.1f} MB/s"
        if final:
            text += f", {final} {fmt_seconds(elapsed)}"
        elif total and rate > 0:
            text += f", {fmt_seconds((total - done) / rate)} left"
        state["width"] = max(state["width"], len(text))  # a shorter line still covers the last one
        end = "\n" if final or not tty else ""
        print(("\r" if tty else "") + text.ljust(state["width"] if tty else 0), end=end, file=file, flush=True)
    return add


# ------------------------------------------------------------------ train.py's lines

def summary_line(run):
    """train.py's first line: the model, the data and the batch."""
    args, m, model = run.args, run.model_args, run.model
    tokens_per_step = args.batch_size * args.block_size * args.gradient_accumulation_steps
    unigram = run.data.meta["train_unigram_entropy"]
    return (f"model: {model.num_params() / 1e6:.2f}M parameters "
            f"({model.num_params(non_embedding=True) / 1e6:.2f}M non-embedding), "
            f"{m['n_layer']} layers x {m['n_embd']}, MLP {m['n_inner'] or 4 * m['n_embd']}; "
            f"data: {args.dataset} "
            f"({len(run.data.train):,} train tokens, unigram entropy {unigram:.3f} nats); "
            f"{tokens_per_step:,} tokens/step on {run.env.world} x {run.env.device}")


def step_line(it, lr, logged, dt, tok_s, util, args):
    """The step's log line, the loss as its formula: so it reads why loss < ce (the angular D is a
    log-mean-exp of minus the angles, a negative number)."""
    parts = [f"ce {logged['ce']:.4f}"]
    if "kl" in logged:
        parts = [f"{1 - args.kd_alpha:g} x ce {logged['ce']:.4f}",
                 f"{args.kd_alpha:g} x {args.kd_temperature:g}^2 x kl {logged['kl']:.4f}"]
    if "disp" in logged:
        parts.append(f"{args.disp_coeff:g} x disp {logged['disp']:.4f}")
    mfu = f", mfu {100 * util:.1f}%" if util else ""
    return (f"iter {it}: loss {logged['loss']:.4f} = {' + '.join(parts)}, lr {lr:.2e}, "
            f"{dt * 1000:.1f} ms, {tok_s:,.0f} tok/s{mfu}")


def eval_line(it, ev, n_windows, cond):
    """train.py's eval line: the losses, then the condensation estimate (ev's keys in cond)."""
    fmt = lambda k, v: f"{k} {v:.4f}" if isinstance(v, (int, float)) else f"{k} {v}"
    losses = ", ".join(fmt(k, v) for k, v in ev.items() if k not in cond)
    estimate = ", ".join(fmt(k, ev[k]) for k in cond)
    return f"eval {it}: {losses}; condensation estimate on {n_windows} val windows: {estimate}"
