"""Helpers shared by the t5-nano tests: a tiny model shape, a hand-made gate file, mixture rows and their cache."""

import json
from pathlib import Path

from softprompt.nano import mixture as nano_mixture

TINY = dict(
    d_model=16,
    d_ff=32,
    d_kv=8,
    num_heads=2,
    num_layers=1,
    input_length=24,
    batch_size=4,
    lm_target_length=8,
    warmup=2,
    lm_fraction=0.34,
    steps=3,
    bf16=False,
)


def hand_made_gate(model_dir: Path, gate_file: Path, **changes) -> Path:
    """A passing gate report for ``model_dir`` (the gate itself is tested in test_gate.py), with ``changes``."""
    step = json.loads((model_dir / "state.json").read_text())["step"]
    swap = {"loss": 3.0, "swap_loss": 4.0, "swap_gap": 1.0}
    sst2 = {"balanced_accuracy": 0.7, "min": 0.65, "max": 0.75, "accuracy": 0.7}
    report = {
        "passed": True,
        "swap_passed": True,
        "pretrain_step": step,
        "swap": {"t5-nano": swap},
        "sst2": {"t5-nano": sst2},
        "checks": {"a check": True},
    }
    gate_file.write_text(json.dumps(report | changes))
    return gate_file


def mixture_rows(n: int = 60) -> dict[str, list[tuple[str, int]]]:
    """A few in-memory rows per source: skewed labels (90 % class 0), distinct texts."""
    return {
        s.name: [(f"{s.name} text number {i} " + "word " * (i % 50), 0 if i % 10 else 1) for i in range(n)]
        for s in nano_mixture.SOURCES
    }


def cached_mixture(root: Path) -> Path:
    """Write every source's rows where ``fetch_mixture`` looks, so no wheel is downloaded."""
    for name, rows in mixture_rows().items():
        path = root / "mixture" / f"{name}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root
