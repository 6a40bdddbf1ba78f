"""
The machinery that the scripts share, kept out of the science files' way: each script calls it in a line.

    load.py      open any MODEL argument (our checkpoints, GPT-2 names or folders, hf: models); results folders
    hub.py       Hugging Face's files: the cache, GPT-2 downloaded on first use, safetensors and .bin weights
    rundir.py    train.py's run folder: its lock, atomic checkpoints, a resume that continues the run, Ctrl-C
    device.py    where a run computes: one process or torchrun's, the device, autocast, a memory check, the
                 compiled or DDP-wrapped model, the random streams a resume continues
    checks.py    command-line checks: one line for bad input, finite numbers, writable output folders, --disp_layers
    progress.py  one progress line for every long loop, and train.py's printed lines
    outputs.py   measure.py's files (condensation.json, the CSVs, a README of the columns) and its printed table
    fast.py      measure.py's hand-written fast paths, each tested equal to the plain computation
    mfu.py       model FLOP utilisation
    plots.py     the figures
"""
