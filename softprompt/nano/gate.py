"""The quality gate a t5-nano checkpoint must pass before it ships as softprompt's default model.

``python -m softprompt.nano.gate --model DIR`` runs two checks and exits non-zero if either fails:

1. **Encoder swap.** Span-corruption loss on the corpus's validation split with each example's own
   encoder input, and with the next example's (inputs rolled by one in the batch). A model whose
   decoder ignores the encoder (a unigram or plain language model) scores the same on both; the
   gate needs ``swap loss - matched loss >= --min-swap-gap`` (0.5 nats).
2. **Prompt tuning on SST-2.** Soft prompts trained with softprompt's own training loop on the
   model and on its randomly initialised twin (same architecture), scored by rank classification
   on the SST-2 dev set. The gate needs the model's mean *balanced* accuracy over prompts to beat
   both the twin's and the majority class's (0.5) by ``--margin`` (0.05; the dev set's standard
   error is about 0.017).

The default t5-nano ships only after passing both; the other sizes of its recipe are scale points,
which ``softprompt.nano.export`` ships after the first check, recording the second's outcome.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from softprompt.data.tasks import Example, get_task
from softprompt.model.loading import FrozenT5, load_frozen_t5
from softprompt.nano.corpus import TokenCorpus
from softprompt.nano.lineage import size_name
from softprompt.nano.pretrain import PretrainConfig, encoder_swap_losses, validation_batches
from softprompt.nano.probe import majority_predictions, probe_splits, tune_and_score, twin_of
from softprompt.runner.metrics import classification_metrics
from softprompt.training.config import TrainConfig

SWAP_CHECK = "encoder swap gap >= %.2f"
SST2 = Path(__file__).resolve().parents[3] / "shared" / "data" / "glue" / "sst2"


def pretrain_state(model_dir: str | Path) -> dict[str, Any]:
    """The ``state.json`` that ``softprompt.nano.pretrain`` wrote beside the weights ({} if none)."""
    path = Path(model_dir) / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def swap_check(frozen: FrozenT5, corpus: TokenCorpus, cfg: PretrainConfig, n_batches: int) -> dict[str, float]:
    """Matched and encoder-swapped span-corruption loss on the corpus's validation split."""
    return encoder_swap_losses(frozen.model, validation_batches(corpus, cfg, "span", n_batches))


def probe_config(args: argparse.Namespace, name: str, work: Path) -> TrainConfig:
    """The prompt-tuning run of the gate's SST-2 check for backbone ``name``."""
    return TrainConfig(
        model=name,
        task="sst2",
        output_dir=str(work / name),
        n_prompts=args.prompts,
        prompt_length=0 if args.deep_prefix else args.prompt_length,
        deep_prefix=args.deep_prefix,
        prefix_length=args.prompt_length,
        init="class-label",
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        prefix_lr=args.lr,
        eval_every=max(1, args.steps // 4),
        checkpoint_every=args.steps,
        seed=args.seed,
        max_source_length=64,
        max_target_length=8,
    )


def prompt_tuning_scores(
    twin: bool, name: str, work: Path, splits: tuple[list[Example], ...], args: argparse.Namespace
) -> list[dict[str, float]]:
    """Train ``args.prompts`` prompts on ``args.model`` (or its random twin) and return each one's SST-2
    dev metrics; runs in a worker process of ``args.threads`` threads."""
    torch.set_num_threads(args.threads)
    frozen = load_frozen_t5(args.model)
    frozen = twin_of(frozen, args.seed) if twin else frozen
    scores = tune_and_score(
        frozen, probe_config(args, name, work), get_task("sst2"), splits, reuse=bool(args.work)
    )  # (N, M, K)
    gold = np.array([e.label for e in splits[2]])
    return [classification_metrics(gold, s.argmax(-1), 2) for s in scores]


def summarise(metrics: list[dict[str, float]]) -> dict[str, float]:
    """Mean, min and max balanced accuracy and mean accuracy over prompts."""
    balanced = [m["balanced_accuracy"] for m in metrics]
    return {
        "balanced_accuracy": float(np.mean(balanced)),
        "min": min(balanced),
        "max": max(balanced),
        "accuracy": float(np.mean([m["accuracy"] for m in metrics])),
    }


def run_gate(args: argparse.Namespace) -> tuple[bool, dict[str, Any]]:
    """Run both checks (or only the first, with --skip-prompt-tuning); returns (passed, report)."""
    torch.set_num_threads(args.threads)
    frozen = load_frozen_t5(args.model)
    twin = twin_of(frozen, args.seed)
    state = pretrain_state(args.model)
    corpus_dir = args.corpus or state.get("corpus")
    if corpus_dir is None:
        raise SystemExit(f"{args.model} has no state.json naming its corpus; pass --corpus")
    cfg = PretrainConfig(**state.get("config", {}))
    corpus = TokenCorpus(corpus_dir)
    settings = {
        name: getattr(args, name)
        for name in (
            "prompts",
            "prompt_length",
            "deep_prefix",
            "steps",
            "batch_size",
            "train_size",
            "val_size",
            "dev_size",
            "seed",
        )
    }
    label = size_name(frozen.model.config) or "pre-trained"  # how the report names the backbone
    resolved = probe_config(args, label, Path("."))
    optimizer, lr = resolved.recipes()["prefixes" if args.deep_prefix else "prompts"]
    settings.update(optimizer=optimizer, lr=lr)
    report: dict[str, Any] = {
        "model": args.model,
        "pretrain_step": state.get("step"),
        "settings": settings,
        "swap": {},
        "sst2": {},
    }
    for name, model in ((label, frozen), ("random twin", twin)):
        report["swap"][name] = swap_check(model, corpus, cfg, args.swap_batches)
    if not args.skip_prompt_tuning:
        data = probe_splits(
            get_task("sst2"),
            Path(args.data) / "train.tsv",
            Path(args.data) / "dev.tsv",
            args.train_size,
            args.val_size,
            args.dev_size,
            args.seed,
        )
        with tempfile.TemporaryDirectory(prefix="nano-gate-") as tmp, ProcessPoolExecutor(args.workers) as pool:
            work = Path(args.work or tmp)
            runs = {
                name: pool.submit(prompt_tuning_scores, is_twin, name.replace(" ", "-"), work, data, args)
                for name, is_twin in ((label, False), ("random twin", True))
            }
            for name, run in runs.items():
                report["sst2"][name] = summarise(run.result())
        report["sst2"]["majority class"] = summarise(
            [classification_metrics(np.array([e.label for e in data[2]]), majority_predictions(data[0], data[2]), 2)]
        )
    checks = {SWAP_CHECK % args.min_swap_gap: report["swap"][label]["swap_gap"] >= args.min_swap_gap}
    if report["sst2"]:
        nano = report["sst2"][label]["balanced_accuracy"]
        for other in ("random twin", "majority class"):
            checks[f"balanced accuracy >= {other} + {args.margin:.2f}"] = (
                nano >= report["sst2"][other]["balanced_accuracy"] + args.margin
            )
    report["checks"] = checks
    return all(checks.values()) and bool(report["sst2"]), report  # a gate without its prompt-tuning check never passes


def print_report(report: dict[str, Any]) -> None:
    """The gate's table: encoder-swap losses, SST-2 scores, and each check's outcome."""
    print(f"model {report['model']} (pre-training step {report['pretrain_step']})")
    print(f"{'':16s} {'matched':>8s} {'swapped':>8s} {'gap':>7s}")
    for label, row in report["swap"].items():
        print(f"{label:16s} {row['loss']:8.3f} {row['swap_loss']:8.3f} {row['swap_gap']:7.3f}")
    if report["sst2"]:
        print(f"\nSST-2 dev {'bal.acc':>8s} {'min':>6s} {'max':>6s} {'acc':>6s}")
        for label, row in report["sst2"].items():
            print(
                f"{label:16s} {row['balanced_accuracy']:>6.3f} {row['min']:6.3f} {row['max']:6.3f} {row['accuracy']:6.3f}"
            )
    print()
    for check, ok in report["checks"].items():
        print(f"{'PASS' if ok else 'FAIL'}  {check}")


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m softprompt.nano.gate --model DIR [options]``; exit status 1 on failure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model directory (e.g. RUN/model from softprompt.nano.pretrain)")
    parser.add_argument("--corpus", help="corpus directory (default: the one the model was pre-trained on)")
    parser.add_argument("--data", default=str(SST2), help="directory with SST-2 train.tsv and dev.tsv")
    parser.add_argument("--min-swap-gap", type=float, default=0.5, help="nats")
    parser.add_argument("--margin", type=float, default=0.05, help="balanced-accuracy margin over twin and majority")
    parser.add_argument("--swap-batches", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--prompt-length", type=int, default=20, help="prompt (or, with --deep-prefix, prefix) length")
    parser.add_argument("--deep-prefix", action="store_true", help="tune deep prefixes instead of input prompts")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--lr",
        type=float,
        help="learning rate (default: softprompt train's; Adafactor 0.3 for prompts, AdamW 3e-4 for prefixes)",
    )
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--val-size", type=int, default=200)
    parser.add_argument("--dev-size", type=int, help="default: the whole dev set (872)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of each process")
    parser.add_argument("--workers", type=int, default=1, help="processes: 2 tunes the model and its twin side by side")
    parser.add_argument(
        "--work",
        help="keep the prompt runs here; a rerun scores finished runs instead of retraining them "
        "(default: a temporary directory)",
    )
    parser.add_argument("--skip-prompt-tuning", action="store_true", help="only the encoder-swap check")
    parser.add_argument("--json", help="also write the report to this file")
    args = parser.parse_args(argv)
    passed, report = run_gate(args)
    print_report(report)
    swap_ok = report["checks"][SWAP_CHECK % args.min_swap_gap]
    if args.json:
        Path(args.json).write_text(json.dumps({**report, "passed": passed, "swap_passed": swap_ok}, indent=1))
    if args.skip_prompt_tuning:
        print(
            f"\nencoder-swap check {'PASSED' if swap_ok else 'FAILED'}; prompt tuning skipped, so this is not a gate pass"
        )
        sys.exit(0 if swap_ok else 1)
    print(f"\ngate {'PASSED' if passed else 'FAILED'}")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
