"""PEFT commands of the ``softprompt`` command line (export-peft, import-peft): one prompt of a run to an HF PEFT
prompt-tuning adapter and back; ``softprompt.cli.app`` registers them."""

from __future__ import annotations

import click


@click.command("export-peft")
@click.argument("run_dir", type=click.Path())
@click.option("--prompt", "prompt_index", default=0, show_default=True, help="which prompt of the run (0..N-1)")
@click.option("--output-dir", "--out", "out", required=True, type=click.Path(), help="adapter directory to write")
@click.option("--base-model", help="base model name/path to record (default: the run's model)")
@click.option("--overwrite", is_flag=True, help="replace an existing adapter in --output-dir")
def export_peft(run_dir, prompt_index, out, base_model, overwrite) -> None:
    """Write one prompt as an HF PEFT prompt-tuning adapter (PeftModel.from_pretrained loads it).

    Deep prefixes cannot be represented in PEFT (it never reaches T5's encoder and drops
    cross-attention prefixes); runs with prefixes export their input prompt only, and say so.
    """
    from softprompt.io.peft import export_peft as export

    for note in export(run_dir, prompt_index, out, base_model, overwrite):
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote PEFT adapter to {out}")


@click.command("import-peft")
@click.argument("adapter_dir", type=click.Path())
@click.option(
    "--output-dir", "--out", "out", required=True, type=click.Path(), help="softprompt run directory to write"
)
@click.option(
    "--task", "task_name", required=True, help="task the prompt was trained for (built-in name or a custom name)"
)
@click.option(
    "--label-words",
    help="a custom classification task's label words in label order, e.g. negative,positive "
    "(or as train takes them: 0=negative,1=positive); without: a custom generation task",
)
@click.option("--model", help="base model name/path (default: the adapter's base_model_name_or_path)")
@click.option("--overwrite", is_flag=True, help="replace an existing run in --output-dir")
def import_peft(adapter_dir, out, task_name, label_words, model, overwrite) -> None:
    """Turn an HF PEFT prompt-tuning adapter into a one-prompt softprompt run."""
    from softprompt.data.custom import parse_label_words
    from softprompt.data.tasks import TASKS, closest_task
    from softprompt.io.peft import import_peft as do_import

    words = None
    if label_words:
        words = (
            list(parse_label_words(label_words).values())
            if "=" in label_words
            else [w.strip() for w in label_words.split(",") if w.strip()]
        )
    do_import(adapter_dir, out, task_name, words, model, overwrite)
    close = closest_task(task_name)
    if task_name.lower() not in TASKS and (
        close or not words
    ):  # a typo, or a classification prompt imported as generation
        kind = "classification task" if words else "generation task (give --label-words for a classification prompt)"
        click.echo(
            f"note: {task_name!r} is not a built-in task"
            + (f" (did you mean {close!r}?)" if close else "")
            + f"; imported as a custom {kind}",
            err=True,
        )
    click.echo(f"wrote softprompt run to {out}")


PEFT_COMMANDS = (export_peft, import_peft)
