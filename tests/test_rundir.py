"""rundir.py on its own: what tests/test_train.py's whole runs do not reach (a refused write of the config or the
log, a run that takes the folder while another loads, Ctrl-C during a checkpoint's write, the Ctrl-C handler)."""

import os
import signal

import pytest
import torch

from support import rundir


def test_refused_writes_end_in_one_line_and_leave_no_temporary_file(tmp_path):
    os.symlink("/dev/full", tmp_path / "config.json.tmp")  # a disk with no room
    with pytest.raises(rundir.RunDirError) as e:
        rundir.write_files(str(tmp_path), {"config.json": "{}"})
    assert str(e.value) == f"cannot write {tmp_path}/config.json (No space left on device)"
    assert os.listdir(tmp_path) == []
    os.symlink("/dev/full", tmp_path / "log.jsonl")
    with pytest.raises(rundir.RunDirError) as e:
        rundir.append_log(str(tmp_path), {"iter": 1})
    assert str(e.value) == (f"cannot write {tmp_path}/log.jsonl (No space left on device); the last checkpoint is "
                            "kept: fix this, then use --init_from resume")


def test_a_run_that_appears_while_loading_stops_this_one_and_frees_the_lock(tmp_path):
    out = str(tmp_path / "run")
    rundir.check_out_dir(out, resume=False, overwrite=False)  # nothing there yet
    os.makedirs(out)
    open(os.path.join(out, "log.jsonl"), "w").close()  # meanwhile another run started and wrote
    with pytest.raises(rundir.RunDirError, match="holds a run"):
        rundir.lock_out_dir(out, resume=False, overwrite=False)
    lock = rundir.lock_out_dir(out, resume=True, overwrite=False)  # the lock was let go: a resume takes it
    assert open(os.path.join(out, rundir.LOCK_FILE)).read().startswith(f"pid {os.getpid()} on ")
    rundir.release_lock(lock)


def test_ctrl_c_while_a_checkpoint_is_written_keeps_the_previous_one(tmp_path, monkeypatch):
    path = str(tmp_path / "ckpt.pt")
    rundir.save_checkpoint({"iter_num": 1}, path)
    real_save = torch.save

    def interrupted(obj, f):
        real_save(obj, f)
        with open(f, "r+b") as half:
            half.truncate(10)  # part of the file is on disk when the Ctrl-C comes
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rundir.save_checkpoint({"iter_num": 2}, path)
    assert os.listdir(tmp_path) == ["ckpt.pt"]
    assert torch.load(path)["iter_num"] == 1


def test_first_ctrl_c_asks_to_stop_and_the_second_stops_at_once(capsys):
    before = signal.getsignal(signal.SIGINT)
    asked, restore = rundir.catch_ctrl_c()
    try:
        assert not rundir.stop_asked(asked, ddp=False, device=None)
        signal.raise_signal(signal.SIGINT)
        assert rundir.stop_asked(asked, ddp=False, device=None)
        assert "Ctrl-C: saving a checkpoint at the end of this step" in capsys.readouterr().err
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    finally:
        restore()
    assert signal.getsignal(signal.SIGINT) is before
