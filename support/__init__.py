"""
The machinery that the scripts share, kept out of the science files' way: each script calls it in a line.

    load.py      open any MODEL argument (our checkpoints, GPT-2 names or folders, hf: models)
    rundir.py    a folder written whole: train.py's run folder (lock, atomic checkpoints, resume) and results
    progress.py  one progress line for every long loop
    mfu.py       model FLOP utilisation
    plots.py     the figures
"""
