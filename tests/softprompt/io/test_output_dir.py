"""The output folder of a run (softprompt.io.output_dir): an old run replaced by --overwrite is deleted only once the
new run has a checkpoint, and a failed run leaves no empty folder behind. Plain files stand in for runs."""

from contextlib import nullcontext

import pytest

from softprompt.io.output_dir import output_dir_for


def _old_run(path):
    (path / "checkpoint").mkdir(parents=True)
    (path / "softprompt.json").write_text("old")
    return path


def _checkpoint(path):
    (path / "checkpoint").mkdir(exist_ok=True)
    (path / "checkpoint" / "state.json").write_text('{"step": 1}')


def test_an_overwrite_that_fails_before_its_first_checkpoint_restores_the_old_run(tmp_path):
    run = _old_run(tmp_path / "run")
    with pytest.raises(RuntimeError), output_dir_for(run, resume=False, overwrite=True):
        assert not (run / "softprompt.json").exists()  # set aside while the new run starts
        raise RuntimeError("a bad --init-from")
    assert (run / "softprompt.json").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize("fails", [False, True])
def test_an_overwrite_with_a_checkpoint_of_its_own_replaces_the_old_run(tmp_path, fails):
    run = _old_run(tmp_path / "run")
    interrupted = pytest.raises(
        KeyboardInterrupt,
        match=f"^interrupted: the checkpoint of step 1 in {run} is kept; run the same "
        "command with --resume to continue from it$",
    )
    with interrupted if fails else nullcontext(), output_dir_for(run, resume=False, overwrite=True):
        _checkpoint(run)
        if fails:  # interrupted after its first checkpoint: the new run is kept for --resume
            raise KeyboardInterrupt
    assert not (run / "softprompt.json").exists() and (run / "checkpoint" / "state.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_run_that_fails_in_a_folder_it_made_leaves_no_folder(tmp_path):
    with pytest.raises(RuntimeError), output_dir_for(tmp_path / "new", resume=False, overwrite=False):
        assert (tmp_path / "new").is_dir()
        raise RuntimeError
    assert not (tmp_path / "new").exists()


def test_an_interrupt_before_the_first_checkpoint_says_what_it_kept(tmp_path):
    run = _old_run(tmp_path / "run")
    with (
        pytest.raises(
            KeyboardInterrupt,
            match=f"^interrupted before the first checkpoint; the earlier run in {run} is back in place$",
        ),
        output_dir_for(run, resume=False, overwrite=True),
    ):
        raise KeyboardInterrupt
    with (
        pytest.raises(KeyboardInterrupt, match="^interrupted before the first checkpoint$"),
        output_dir_for(tmp_path / "new", resume=False, overwrite=False),
    ):
        raise KeyboardInterrupt
    assert (run / "softprompt.json").read_text() == "old" and not (tmp_path / "new").exists()
