"""The quality gate (softprompt.nano.gate): span-corruption and prompt checks against a random twin."""

import json

import pytest

from softprompt.nano import gate
from softprompt.nano.pretrain import PretrainConfig, pretrain
from tests.conftest import TEST_DATA
from tests.softprompt.nano.helpers import TINY


def test_gate_reports_and_fails_an_untrained_model(tiny_corpus, tmp_path, capsys):
    pretrain(tiny_corpus, tmp_path / "run", PretrainConfig(**TINY))
    report_file = tmp_path / "gate.json"
    argv = [
        "--model",
        str(tmp_path / "run" / "model"),
        "--data",
        str(TEST_DATA / "glue" / "sst2"),
        "--steps",
        "2",
        "--train-size",
        "16",
        "--val-size",
        "8",
        "--dev-size",
        "16",
        "--prompts",
        "2",
        "--prompt-length",
        "2",
        "--swap-batches",
        "1",
        "--json",
        str(report_file),
    ]
    reports = []
    # model and twin tuned side by side; tuned one after the other; then the first runs kept and scored, not retrained
    for workers, work in (("2", "side"), ("1", "serial"), ("1", "side")):
        with pytest.raises(SystemExit) as exit_info:
            gate.main(argv + ["--workers", workers, "--work", str(tmp_path / work)])
        assert exit_info.value.code == 1
        assert sorted(p.name for p in (tmp_path / work).iterdir()) == ["pre-trained", "random-twin"]
        reports.append(json.loads(report_file.read_text()))
    assert reports[0] == reports[1] == reports[2]
    report = reports[0]
    assert (
        not report["passed"]
        and not report["swap_passed"]
        and set(report["sst2"]) == {"pre-trained", "random twin", "majority class"}
    )
    assert report["sst2"]["majority class"]["balanced_accuracy"] == 0.5
    assert "FAIL  encoder swap gap >= 0.50" in capsys.readouterr().out


def test_swap_check_alone_is_never_a_gate_pass(tiny_corpus, tmp_path, capsys):
    pretrain(tiny_corpus, tmp_path / "run", PretrainConfig(**TINY))
    report_file = tmp_path / "swap.json"
    with pytest.raises(SystemExit) as exit_info:  # a threshold any model meets: the swap check passes
        gate.main(
            [
                "--model",
                str(tmp_path / "run" / "model"),
                "--skip-prompt-tuning",
                "--swap-batches",
                "1",
                "--min-swap-gap",
                "-100",
                "--json",
                str(report_file),
            ]
        )
    assert exit_info.value.code == 0
    report = json.loads(report_file.read_text())
    assert (
        report["passed"] is False and report["swap_passed"] is True and not report["sst2"]
    )  # so export refuses it, even as a scale point
    assert "not a gate pass" in capsys.readouterr().out
