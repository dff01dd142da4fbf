"""Analysis commands of the ``softprompt`` command line (neighbors, similarity, retrieve, plot-scale, plot-history); ``softprompt.cli.app`` registers them."""

from __future__ import annotations

import json

import click

from softprompt.errors import SoftpromptError


@click.command()
@click.argument("run_dir", type=click.Path())
@click.option("--prompt", "which", default="all", show_default=True, help="prompt index (0..N-1) or 'all'")
@click.option("--top-k", default=5, show_default=True)
@click.option(
    "--exclude-special/--include-special",
    default=True,
    show_default=True,
    help="skip pad/eos/unk/sentinels and unused rows",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--plot", type=click.Path(), help="write a 2-D PCA picture of prompts and neighbours (.png/.svg)")
@click.option("--model", help="override the model recorded in the run")
def neighbors(run_dir, which, top_k, exclude_special, fmt, plot, model) -> None:
    """Nearest vocabulary tokens (cosine) of every learned prompt vector (Lester et al. §7)."""
    from analysis.figures import check_plot_path
    from analysis.neighbors import (
        format_neighbor_table,
        nearest_neighbors,
        neighbor_report,
        plot_neighbors,
        special_token_ids,
    )
    from analysis.similarity import dept_note
    from softprompt.io.store import load_banks, read_meta
    from softprompt.model.loading import load_frozen_t5

    if plot:
        check_plot_path(plot)  # before any work
    meta = read_meta(run_dir)
    if not meta.get("prompts"):
        raise SoftpromptError(
            f"{run_dir} holds only deep prefixes: they live in per-layer key/value space, not the vocabulary's "
            "embedding space, so they have no nearest tokens; train with --prompt-length > 0 to analyse input prompts"
        )
    frozen = load_frozen_t5(model or meta["model"]["name"])
    _, bank, _ = load_banks(run_dir, frozen.config)
    indices = list(range(bank.n_prompts))
    if which != "all":
        if not which.isdigit() or int(which) >= bank.n_prompts:
            raise SoftpromptError(f"--prompt must be 'all' or an index in 0..{bank.n_prompts - 1}, got {which!r}")
        indices = [int(which)]
    if top_k < 1:
        raise SoftpromptError(f"--top-k must be a positive integer, got {top_k}")
    embeddings = frozen.model.get_input_embeddings().weight.data
    exclude = special_token_ids(frozen.tokenizer, embeddings.shape[0]) if exclude_special else ()
    candidates = embeddings.shape[0] - len({int(i) for i in exclude if 0 <= i < embeddings.shape[0]})
    if top_k > candidates:
        raise SoftpromptError(
            f"--top-k {top_k} is more than the {candidates} vocabulary tokens to rank; give at most {candidates}"
        )
    sims, ids = nearest_neighbors(bank.weight.data, embeddings, top_k, exclude)  # (N, P, k)
    label_ids = [
        i
        for word in meta["task"].get("label_words", [])
        for i in frozen.tokenizer(word, add_special_tokens=False).input_ids
    ]
    report = neighbor_report(sims, ids, frozen.tokenizer, label_ids, indices)
    click.echo(json.dumps(report, indent=1) if fmt == "json" else format_neighbor_table(report))
    note = dept_note(run_dir, meta)
    if note:
        click.echo(note, err=True)
    if plot:
        plot_neighbors(bank.weight.data[indices], embeddings, ids[indices], frozen.tokenizer, plot)
        click.echo(f"wrote {plot}", err=True)


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option(
    "--metric",
    type=click.Choice(["cosine-mean", "cosine-max"]),
    default="cosine-mean",
    show_default=True,
    help="cosine of average token vectors | largest cosine over token pairs",
)
@click.option(
    "--bank",
    type=click.Choice(["prompts", "prefixes"]),
    default="prompts",
    show_default=True,
    help="compare input prompts or deep prefixes",
)
@click.option("--output", type=click.Path(), help="write the matrices as JSON (.json) and CSV beside it")
@click.option("--plot", type=click.Path(), help="labelled heatmap (.png/.svg; the other format is written beside it)")
def similarity(runs, metric, bank, output, plot) -> None:
    """Task-by-task and prompt-by-prompt similarity of trained prompts (Vu et al. 2022, SPoT).

    Example: softprompt similarity runs/boolq runs/rte runs/sst2 --output sim.json --plot sim.png
    """
    from analysis.figures import check_plot_path
    from analysis.similarity import (
        format_similarity,
        load_run_vectors,
        plot_similarity,
        similarity_report,
        write_similarity,
    )

    if plot:
        check_plot_path(plot)
    report = similarity_report(load_run_vectors(runs, bank), metric)
    click.echo(format_similarity(report))
    for path in write_similarity(report, output) if output else []:
        click.echo(f"wrote {path}", err=True)
    if plot:
        plot_similarity(report, plot)
        click.echo(f"wrote {plot}", err=True)


@click.command()
@click.option(
    "--target", required=True, help="run whose prompt is matched: RUN#i (prompt i) or RUN (mean over its prompts)"
)
@click.option(
    "--library",
    multiple=True,
    required=True,
    type=click.Path(),
    help="run directory of the prompt library (repeatable)",
)
@click.option("--top", default=3, show_default=True, help="how many library prompts to print")
@click.option("--metric", type=click.Choice(["cosine-mean", "cosine-max"]), default="cosine-mean", show_default=True)
@click.option(
    "--bank",
    type=click.Choice(["prompts", "prefixes"]),
    default="prompts",
    show_default=True,
    help="compare input prompts or deep prefixes",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def retrieve(target, library, top, metric, bank, fmt) -> None:
    """Rank a library's prompts by similarity to a (briefly trained) target prompt (SPoT retrieval).

    Example: softprompt retrieve --target runs/sst2-probe#0 --library runs/boolq --library runs/rte --top 3
    """
    from analysis.similarity import format_ranking
    from analysis.similarity import retrieve as rank

    if top < 1:
        raise SoftpromptError(f"--top must be a positive integer, got {top}")
    ranking = rank(target, library, metric, bank)
    click.echo(json.dumps(ranking[:top], indent=1) if fmt == "json" else format_ranking(ranking, top))


@click.command("plot-scale")
@click.argument("results", nargs=-1, required=True, type=click.Path())
@click.option("--metric", default="accuracy", show_default=True, help="metric to plot")
@click.option(
    "--x",
    default="model_params",
    show_default=True,
    help="settings key on the x axis (model_params, prompt_length, train_size, ...)",
)
@click.option(
    "--reference", type=click.Path(), help="CSV of reference points: label,x,y (e.g. model tuning numbers from a paper)"
)
@click.option("--title", help="plot title")
@click.option(
    "--output",
    "--out",
    "out",
    default="scale.png",
    show_default=True,
    type=click.Path(),
    help=".png or .svg (the other format is written beside it)",
)
def plot_scale(results, metric, x, reference, title, out) -> None:
    """Score vs. model size (or any swept setting): mean ± std, best single prompt, each ensemble rule."""
    from analysis.scale import load_results
    from analysis.scale import plot_scale as draw

    draw(load_results(results), metric, out, x=x, reference_csv=reference, title=title)
    click.echo(f"wrote {out}")


@click.command("plot-history")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--title", help="plot title")
@click.option(
    "--output",
    "--out",
    "out",
    default="curves.png",
    show_default=True,
    type=click.Path(),
    help=".png or .svg (the other format is written beside it)",
)
def plot_history(runs, title, out) -> None:
    """Training loss and validation metric against step: one line per prompt, best step starred,
    several runs side by side (works on a run still training).

    Example: softprompt plot-history runs/class-label runs/random --output curves.png
    """
    from analysis.history import plot_history as draw

    draw(runs, out, title=title)
    click.echo(f"wrote {out}")


ANALYSIS_COMMANDS = (neighbors, similarity, retrieve, plot_scale, plot_history)
