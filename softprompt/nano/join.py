"""Join a pre-training lineage run on a GPU host into run folders here.

``tools/gpu_pretrain.sh`` runs a lineage on a GPU and writes to its ``--out`` folder: the latest stage's
weights in parts (``model.safetensors.part*``, checked by ``model.sha256``), every stage's state, config and log
(``lineage.tar.gz``), and the SHA-256 of every stage's weights taken there (``weights.sha256`` inside the
archive). ``join`` rebuilds ``DEST/stageN/model`` from them; each earlier stage, whose weights stayed on the GPU
host, keeps its digest beside its state, which ``softprompt.nano.export`` checks the next stage's ``init_from``
against. Paths recorded on the GPU host are made to point here: each stage's ``init_from`` at the stage folder in
``DEST`` (the GPU host's path kept as ``made_at``) and, given ``--corpus``, the corpus (checked against the digest
of the manifest the lineage was trained on).

    bash tools/gpu_pretrain.sh --join results gpu-lineage --corpus nano-corpus
    python -m softprompt.nano.join results gpu-lineage --corpus nano-corpus    # the same
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tarfile
from pathlib import Path

from softprompt.errors import SoftpromptError
from softprompt.io.atomic import atomic_write_text
from softprompt.nano.checkpoints import DIGEST_WHERE_MADE
from softprompt.nano.export import corpus_manifest

WEIGHTS = "model.safetensors"


def join(files: str | Path, dest: str | Path, corpus: str | Path | None = None) -> Path:
    """Rebuild the lineage in ``files`` (what ``tools/gpu_pretrain.sh --out`` wrote) in ``dest`` (see the module
    docstring); returns the latest stage's model folder.

    >>> join("results", "/data/gpu-lineage", corpus="nano-corpus")  # doctest: +SKIP
    PosixPath('/data/gpu-lineage/stage5/model')
    """
    files, dest = Path(files), Path(dest).resolve()
    if not all((files / name).is_file() for name in ("model.sha256", "lineage.tar.gz")):
        raise SoftpromptError(
            f"{files} holds no model.sha256 and lineage.tar.gz; give the folder of files that "
            "tools/gpu_pretrain.sh --out wrote"
        )
    digest, latest = (files / "model.sha256").read_text().split()  # "HASH  stageN/model/model.safetensors"
    parts = sorted(files.glob(f"{WEIGHTS}.part*"), key=lambda path: int(path.name.rsplit("part", 1)[1]))
    joined = b"".join(part.read_bytes() for part in parts)
    if hashlib.sha256(joined).hexdigest() != digest:
        raise SoftpromptError(
            f"the weights joined from {len(parts)} parts in {files} do not match model.sha256; fetch the files again"
        )
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(files / "lineage.tar.gz") as archive:
        members = archive.getmembers()
        if any(
            Path(m.name).is_absolute() or ".." in Path(m.name).parts or not (m.isfile() or m.isdir()) for m in members
        ):
            raise SoftpromptError(
                f"{files}/lineage.tar.gz holds links or paths outside its folder; it is not what gpu_pretrain.sh packs"
            )
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python < 3.10.12: the check above alone
        archive.extractall(dest, members, **safe)
    temporary = (dest / latest).with_suffix(".tmp")
    temporary.write_bytes(joined)
    temporary.replace(dest / latest)
    made = dest / DIGEST_WHERE_MADE
    for line in made.read_text().splitlines() if made.is_file() else []:  # lineages packed before the digests: none
        stage_digest, path = line.split()
        if not (dest / path).is_file():
            atomic_write_text((dest / path).parent / DIGEST_WHERE_MADE, f"{stage_digest}  {WEIGHTS}\n")
    for state_file in sorted(dest.glob("stage*/model/state.json")):
        relocate(state_file, dest, Path(corpus).resolve() if corpus else None)
    return (dest / latest).parent


def relocate(state_file: Path, dest: Path, corpus: Path | None) -> None:
    """Point ``state_file``'s ``init_from`` at its stage in ``dest`` and, given, its corpus at ``corpus``."""
    state = json.loads(state_file.read_text())
    origin = state.get("init_from")
    stage = re.search(r"(stage\d+)/model$", origin["path"]) if origin else None
    if stage and (dest / stage[1] / "model").is_dir():
        state["init_from"] = {
            **origin,
            "path": str(dest / stage[1] / "model"),
            "made_at": origin.get("made_at", origin["path"]),
        }
    if corpus is not None:
        state["corpus"] = str(corpus)
        corpus_manifest(state)  # the very corpus, or an error
    atomic_write_text(state_file, json.dumps(state, indent=1))


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", help="the folder tools/gpu_pretrain.sh --out wrote")
    parser.add_argument("dest", help="where the stage folders go")
    parser.add_argument(
        "--corpus", help="the pre-training corpus here (python -m softprompt.nano.corpus), which export reads"
    )
    args = parser.parse_args(argv)
    try:
        print(f"joined: {join(args.files, args.dest, args.corpus)}")
    except SoftpromptError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
