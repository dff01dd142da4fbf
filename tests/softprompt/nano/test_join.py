"""Bringing a lineage back from the GPU machine (tools/gpu_pretrain.sh packs, softprompt.nano.join joins) and
shipping it: only the latest stage's weights come back, the earlier stages' SHA-256 taken on the device stand in."""

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from softprompt.errors import SoftpromptError
from softprompt.nano.export import export
from softprompt.nano.join import join
from softprompt.nano.pretrain import PretrainConfig, pretrain
from tests.conftest import ROOT
from tests.softprompt.nano.helpers import TINY, hand_made_gate


@pytest.fixture
def packed(tiny_corpus, tmp_path) -> Path:
    """A two-stage tiny lineage in a work folder, packed by the real script as on the device (its stages are finished,
    so the lineage it starts skips them and, with no minutes, trains nothing), then the work folder removed, as the
    device machine is gone after a call."""
    work, out = tmp_path / "gpu-work", tmp_path / "results"
    pretrain(tiny_corpus, work / "stage1", PretrainConfig(**TINY))
    pretrain(
        tiny_corpus,
        work / "stage2",
        PretrainConfig(**(TINY | {"seed": 5, "steps": 2})),
        init_from=work / "stage1" / "model",
    )
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path)}
    run = subprocess.run(
        [
            "bash",
            ROOT / "tools" / "gpu_pretrain.sh",
            "--size",
            "t5-nano-s",
            "--minutes",
            "0",
            "--device",
            "cpu",
            "--corpus",
            tiny_corpus,
            "--out",
            out,
            "--work",
            work,
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "latest stage: stage2" in (out / "summary.txt").read_text()
    shutil.rmtree(work)
    return out


def test_a_joined_lineage_exports_with_the_device_digests_of_the_stages_that_stayed_there(
    packed, tiny_corpus, tmp_path
):
    corpus_here = shutil.copytree(tiny_corpus, tmp_path / "corpus-here")
    final = join(packed, tmp_path / "joined", corpus=corpus_here)
    assert final == tmp_path / "joined" / "stage2" / "model"
    assert not (tmp_path / "joined" / "stage1" / "model" / "model.safetensors").exists()  # stayed on the device
    state = json.loads((final / "state.json").read_text())
    assert state["init_from"]["path"] == str(tmp_path / "joined" / "stage1" / "model")
    assert state["init_from"]["made_at"] == str(tmp_path / "gpu-work" / "stage1" / "model")
    assert state["corpus"] == str(corpus_here) and state["devices"] == ["CPU"]

    out = export(final, hand_made_gate(final, tmp_path / "gate.json"), tmp_path / "t5-nano")
    card = (out / "README.md").read_text()
    assert "The weights of stage 1 stayed on the machine that trained them; their SHA-256 was checked there" in card
    assert "h of training (wall clock, CPU)." in card
    assert json.loads((out / "provenance.json").read_text())["lineage"][0]["weights_checked_where_made"] is True

    digest = tmp_path / "joined" / "stage1" / "model" / "weights.sha256"
    digest.write_text("0" * 64 + "  model.safetensors\n")  # not the weights stage 2 started from
    with pytest.raises(SoftpromptError, match="whose weights are now missing or changed"):
        export(final, tmp_path / "gate.json", tmp_path / "again")


def test_join_refuses_another_corpus_and_damaged_parts_and_export_names_a_missing_corpus(packed, tmp_path):
    other = tmp_path / "other-corpus"
    other.mkdir()
    (other / "manifest.json").write_text("{}")
    with pytest.raises(SoftpromptError, match=r"manifest\.json is missing or is not the manifest of the corpus"):
        join(packed, tmp_path / "a", corpus=other)
    final = join(packed, tmp_path / "b")  # no --corpus: the device's path stays, and export says what to do
    state = json.loads((final / "state.json").read_text())
    state["corpus"] = str(tmp_path / "gone")
    (final / "state.json").write_text(json.dumps(state))
    with pytest.raises(
        SoftpromptError, match=r"give that corpus \(a lineage from the GPU machine: tools/gpu_pretrain.sh --join"
    ):
        export(final, hand_made_gate(final, tmp_path / "gate.json"), tmp_path / "t5-nano")
    with pytest.raises(SoftpromptError, match="holds no model.sha256 and lineage.tar.gz; give the folder of files"):
        join(tmp_path / "other-corpus", tmp_path / "d")
    evil = tmp_path / "evil"
    shutil.copytree(packed, evil)
    with tarfile.open(evil / "lineage.tar.gz", "w:gz") as archive:  # a link out of the destination
        link = tarfile.TarInfo("stage1/model/state.json")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    with pytest.raises(SoftpromptError, match="holds links or paths outside its folder"):
        join(evil, tmp_path / "e")
    part = sorted(packed.glob("model.safetensors.part*"))[0]
    part.write_bytes(part.read_bytes()[:-1])
    with pytest.raises(SoftpromptError, match="do not match model.sha256; fetch the files again"):
        join(packed, tmp_path / "c")
