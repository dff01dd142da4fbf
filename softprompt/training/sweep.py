"""Grid sweeps: train and ensemble-evaluate every (model, prompt length, init, train size, seed).

One result file per cell under ``<out>/results/``; a cell whose result exists is skipped, and a
cell interrupted mid-training resumes from its checkpoint, so re-running the same command
continues the sweep. A finished cell is reused only for the training settings and vote rules it
was run with: a rerun with others is refused, not answered with the old results. The results
feed ``softprompt plot-scale`` (model size on x, or any swept setting with ``--x``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ensembles.evaluate import read_report
from ensembles.pipeline import check_settings, run_ensemble_eval, write_outputs
from ensembles.pool import load_pool
from ensembles.settings import EvalConfig
from ensembles.voting import parse_rules
from softprompt.data.loading import load_examples
from softprompt.data.tasks import Task
from softprompt.errors import SoftpromptError
from softprompt.io.checkpoint import has_checkpoint
from softprompt.io.output_dir import prepare_output_dir
from softprompt.io.store import META, read_meta
from softprompt.model.loading import check_model_available, load_frozen_t5
from softprompt.training.config import TrainConfig
from softprompt.training.loop import train
from softprompt.training.run_meta import RESUMABLE_CHANGES


@dataclass(frozen=True)
class Cell:
    """One point of the grid."""

    model: str
    prompt_length: int
    init: str
    train_size: int | None
    subsample_seed: int

    @property
    def name(self) -> str:
        size = "all" if self.train_size is None else str(self.train_size)
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.model.strip("/").split("/")[-1])
        init = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.init)[:40]
        return f"{slug}__P{self.prompt_length}__{init}__n{size}__s{self.subsample_seed}"


def grid(
    models: Sequence[str],
    prompt_lengths: Sequence[int],
    inits: Sequence[str],
    train_sizes: Sequence[int | None] = (None,),
    subsample_seeds: Sequence[int] = (0,),
) -> list[Cell]:
    """Every combination, model-major (all cells of one model before loading the next)."""
    return [Cell(*values) for values in itertools.product(models, prompt_lengths, inits, train_sizes, subsample_seeds)]


def run_sweep(
    cells: Sequence[Cell],
    base: TrainConfig,
    task: Task,
    out_dir: Path,
    train_file: str | None,
    validation_file: str | None,
    rules: Sequence[str],
    echo: Callable[[str], None] = print,
    progress: bool = True,
) -> list[Path]:
    """Run every cell not yet done; returns the result files of all cells."""
    check_settings(rules, task.kind, _evaluation(base))  # before any cell trains
    rules = parse_rules(rules, task.kind)
    for model in dict.fromkeys(cell.model for cell in cells if not _result_file(out_dir, cell).is_file()):
        check_model_available(model)  # a misspelt or unreachable model fails before the first cell trains
    results = []
    val_examples = load_examples(task, "validation", validation_file, base.eval_size, 0, grouped=True)
    frozen = None
    for index, cell in enumerate(cells, start=1):
        result = _result_file(out_dir, cell)
        results.append(result)
        run_dir = out_dir / "runs" / cell.name
        cfg = replace(
            base,
            model=cell.model,
            prompt_length=cell.prompt_length,
            init=cell.init,
            train_size=cell.train_size,
            subsample_seed=cell.subsample_seed,
            output_dir=str(run_dir),
            prompt_seeds=None,
        )  # re-validated
        if result.is_file():
            _check_unchanged(cfg, run_dir, result)
            _check_evaluated(rules, run_dir, result)
            echo(f"[{index}/{len(cells)}] {cell.name}: done, skipped")
            continue
        echo(f"[{index}/{len(cells)}] {cell.name}")
        if frozen is None or frozen.name != cell.model:
            frozen = load_frozen_t5(cell.model, base.dtype, base.device, device_map=base.device_map)
        resume = has_checkpoint(run_dir)
        prepare_output_dir(run_dir, resume=resume, overwrite=True)
        train_examples = load_examples(task, "train", train_file, cfg.train_size, cfg.subsample_seed)
        train(cfg, frozen, task, train_examples, val_examples, resume=resume, progress=progress)
        core = run_ensemble_eval(
            load_pool([str(run_dir)], frozen),
            task,
            val_examples,
            "validation",
            rules,
            _evaluation(cfg),
            settings={
                "train_size": cell.train_size,
                "subsample_seed": cell.subsample_seed,
                "cell": cell.name,
                "vote": ",".join(rules),
            },  # compared when the cell is skipped
        )
        write_outputs(core, result)
    return results


def _evaluation(cfg: TrainConfig) -> EvalConfig:
    """A cell's evaluation: as its training validated (input length, token budget, decoding)."""
    return EvalConfig(max_length=cfg.max_source_length, max_tokens=cfg.max_tokens, **cfg.decoding)


def _result_file(out_dir: Path, cell: Cell) -> Path:
    return out_dir / "results" / f"{cell.name}.json"


def _check_unchanged(cfg: TrainConfig, run_dir: Path, result: Path) -> None:
    """A finished cell counts only for the settings it was trained with: a rerun of the sweep with other settings
    (say --steps) is refused rather than answered with the old results."""
    if not (run_dir / META).is_file():
        return
    differing = cfg.differences(read_meta(run_dir)["train_args"], ignore=RESUMABLE_CHANGES - {"steps"})
    if differing:
        raise SoftpromptError(
            f"{result} was trained with other settings ({', '.join(differing)}); use another --output-dir for the new "
            f"settings, or delete {result} and {run_dir} to rerun that cell"
        )


def _check_evaluated(rules: Sequence[str], run_dir: Path, result: Path) -> None:
    """A finished cell counts only for the vote rules it was evaluated with: a rerun with other rules (say --vote
    logprob_sum) is refused rather than skipped without them. The other evaluation settings (--max-source-length,
    decoding, the validation data) are training settings, compared by ``_check_unchanged``."""
    report = read_report(result)
    recorded = report["settings"].get("vote")
    done = (
        recorded.split(",") if isinstance(recorded, str) else list(report["ensembles"])
    )  # reports before "vote" was recorded
    if set(done) != set(rules):
        # with its checkpoint, a cell whose result is deleted resumes at its last step: evaluated again, not retrained
        again = "re-evaluate that cell's trained prompts" if has_checkpoint(run_dir) else "rerun that cell"
        raise SoftpromptError(
            f"{result} was evaluated with other settings (vote: {','.join(done)} → {','.join(rules)}); use another --output-dir "
            f"for the new settings, or delete {result} to {again}"
        )
