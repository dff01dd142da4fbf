"""Every example in a docstring of ``softprompt``, ``ensembles`` and ``analysis`` runs and shows what it says.

The examples use the shipped t5-nano (local files, no hub). Those that start from a trained run
read ``runs/sst2``, which ``example_workdir`` trains here for two steps (3 input prompts of 8
vectors; the scores are not the point, the calls and shapes are) and evaluates to
``results/sst2.json``, in a temporary folder that is the examples' working directory. An example
may be marked ``+SKIP`` only if it cannot run here: it downloads from PyPI, or runs for hours.
"""

import doctest
import importlib
import io
import pkgutil

import pytest

import analysis
import ensembles
import softprompt

MODULES = sorted(
    module.name
    for package in (softprompt, ensembles, analysis)
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# What a user imports; each must show a runnable (not skipped) example.
ENTRY_POINTS = [
    "softprompt.model.loading.load_frozen_t5",
    "softprompt.model.random_models.random_t5",
    "softprompt.model.prompts.PromptBank",
    "softprompt.model.prefixes.PrefixBank",
    "softprompt.model.prompted.PromptedT5",
    "softprompt.training.config.TrainConfig",
    "softprompt.training.loop.train",
    "softprompt.data.tasks.get_task",
    "softprompt.io.store.load_banks",
    "softprompt.training.transfer.apply_init_from",
    "softprompt.io.peft.export_peft",
    "softprompt.io.peft.import_peft",
    "ensembles.pool.load_pool",
    "softprompt.runner.scoring.score_choices",
    "softprompt.runner.scoring.generate_texts",
    "ensembles.pipeline.run_ensemble_eval",
    "ensembles.pipeline.predict",
    "ensembles.voting.majority_vote",
    "ensembles.voting.confidence_vote",
    "analysis.neighbors.nearest_neighbors",
    "analysis.neighbors.neighbor_report",
    "analysis.similarity.prompt_similarity",
    "analysis.similarity.retrieve",
    "analysis.scale.plot_scale",
    "analysis.history.plot_history",
    "softprompt.serve.catalog.Catalog",
    "softprompt.serve.worker.BatchingWorker",
    "softprompt.serve.engine.Engine",
    "softprompt.serve.metrics.ServeMetrics",
]


@pytest.fixture(scope="module")
def example_workdir(tmp_path_factory):
    """A folder holding ``runs/sst2`` (t5-nano, 3 input prompts, 2 steps) and its report ``results/sst2.json``."""
    from ensembles.pipeline import run_ensemble_eval, write_outputs
    from ensembles.pool import load_pool
    from softprompt.data.tasks import get_task
    from softprompt.model.loading import load_frozen_t5
    from softprompt.training.config import TrainConfig
    from softprompt.training.loop import train

    workdir = tmp_path_factory.mktemp("examples")
    frozen, task = load_frozen_t5("t5-nano"), get_task("sst2")
    examples = task.to_examples(
        [{"sentence": "a gem of a film", "label": 1}, {"sentence": "a dull, tired mess", "label": 0}]
    )
    cfg = TrainConfig(
        task="sst2",
        output_dir=str(workdir / "runs" / "sst2"),
        n_prompts=3,
        prompt_length=8,
        steps=2,
        batch_size=2,
        eval_every=2,
    )
    train(cfg, frozen, task, examples, examples, progress=False)
    core = run_ensemble_eval(load_pool([cfg.output_dir], frozen), task, examples, "validation", ["majority"])
    write_outputs(core, workdir / "results" / "sst2.json")
    return workdir


def run_examples(module) -> tuple[doctest.TestResults, str]:
    """Run every docstring example of ``module``; (results, the failure report)."""
    runner, report = doctest.DocTestRunner(optionflags=FLAGS), io.StringIO()
    for test in doctest.DocTestFinder().find(module, module.__name__):
        runner.run(test, out=report.write)
    return runner.summarize(verbose=False), report.getvalue()


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, example_workdir, monkeypatch):
    monkeypatch.chdir(example_workdir)
    results, report = run_examples(importlib.import_module(name))
    assert results.failed == 0, report


@pytest.mark.parametrize("path", ENTRY_POINTS)
def test_entry_point_shows_a_runnable_example(path):
    module, name = path.rsplit(".", 1)
    docstring = getattr(importlib.import_module(module), name).__doc__ or ""
    examples = doctest.DocTestParser().get_examples(docstring)
    assert any(not example.options.get(doctest.SKIP) for example in examples), (
        f"{path}: no runnable >>> example in its docstring"
    )
