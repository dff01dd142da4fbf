"""The equal-time batch-size pilot (softprompt.nano.batch_pilot), on tiny random-weight models built
in-process and a synthetic corpus: the arms' recipes, their runs and the summary table."""

import dataclasses

import pytest

from softprompt.errors import SoftpromptError
from softprompt.nano import batch_pilot
from tests.softprompt.nano.helpers import TINY


def test_arm_config_scales_stage_one_and_sizes_its_schedule_to_the_time():
    recipe, big = batch_pilot.arm_config("t5-nano", 64, 80, 17.0), batch_pilot.arm_config("t5-nano", 256, 80, 12.5)
    assert (recipe.batch_size, recipe.lr, recipe.warmup, recipe.steps) == (64, 2e-2, 200, 1360)
    assert (big.batch_size, big.warmup, big.steps) == (256, 50, 1000) and big.lr == pytest.approx(4e-2)
    assert batch_pilot.arm_config("t5-nano", 64, 1, 17.0).steps == 201  # never shorter than the warmup
    with pytest.raises(SoftpromptError, match="multiples of 64"):
        batch_pilot.arm_config("t5-nano", 100, 80, 10.0)


def test_arms_run_and_the_summary_compares_them_at_equal_training_time(tiny_corpus, tmp_path):
    shape = {
        k: TINY[k] for k in ("d_model", "d_ff", "d_kv", "num_heads", "num_layers", "input_length", "lm_target_length")
    }
    arms = {}
    for batch, steps in ((64, 8), (128, 4)):
        cfg = dataclasses.replace(batch_pilot.arm_config("t5-nano-s", batch, 1, 1.0), **shape, bf16=False)
        arms[batch] = dataclasses.replace(
            cfg, batch_size=batch // 16, steps=steps, warmup=2
        )  # tiny batches, same ratio
        state = batch_pilot.run_arm(tiny_corpus, tmp_path / f"b{batch}", arms[batch], 60, "cpu")
        assert state["step"] == steps
    points = batch_pilot.curve(tmp_path / "b64")
    assert [p["step"] for p in points] == list(range(1, 9))  # one validation point per step (8 // EVALS)
    assert all(p["seconds"] >= 0 and p["span"] > 0 and p["lm"] > 0 for p in points)
    assert batch_pilot.at_seconds(points, "span", points[-1]["seconds"] + 1) is None
    synthetic = [{"seconds": 10.0, "span": 5.0}, {"seconds": 20.0, "span": 4.0}]
    assert batch_pilot.at_seconds(synthetic, "span", 15.0) == pytest.approx(4.5)
    table = batch_pilot.summary(tmp_path, arms, 1, "cpu").splitlines()
    assert table[0] == "# stage 1 at equal training time (1 s per arm, cpu)"
    rows = {line.split("|")[1].strip(): line for line in table[4:]}
    assert set(rows) == {"64", "128"} and "8 / 8" in rows["64"] and "4 / 4" in rows["128"]
    assert f"{points[-1]['span']:.3f} / {points[-1]['lm']:.3f}" in rows["64"]


def test_command_line_refuses_rates_that_do_not_match_the_batches(tmp_path):
    with pytest.raises(SystemExit, match="one --rates value per --batches value"):
        batch_pilot.main(
            ["--corpus", str(tmp_path), "--out", str(tmp_path / "p"), "--batches", "64,256", "--rates", "17"]
        )
    with pytest.raises(SystemExit, match="bad --batches/--rates"):
        batch_pilot.main(
            ["--corpus", str(tmp_path), "--out", str(tmp_path / "p"), "--batches", "64,512"]
        )  # no H200 rate
