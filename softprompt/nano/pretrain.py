"""Pre-train t5-nano: T5 span corruption, then a short LM-adaptation (prefix LM) phase, optionally
mixed with supervised text-to-text tasks (``softprompt.nano.mixture``).

``python -m softprompt.nano.pretrain --corpus DIR --out DIR --minutes M`` trains a T5 v1.1-style
model (gated-GELU, no dropout, tied embeddings, the T5 vocabulary) on a corpus built by
``softprompt.nano.corpus``, with the nanoT5 optimiser (AdamW whose update is scaled by each
parameter's RMS, no weight decay), linear warmup and cosine decay. Batches are a function of
(seed, step) alone, so a run is deterministic and a resumed run continues exactly where an
uninterrupted one would be. ``OUT/model`` is rewritten every ``--checkpoint-minutes``: a loadable
Hugging Face T5 directory (config, safetensors weights, tokenizer) plus ``optimizer.safetensors``
and ``state.json``; ``OUT/log.jsonl`` holds the loss curves, with validation losses and the
encoder-swap gap (loss with other examples' encoder inputs minus matched loss).

Objectives per step: a share ``--mixture-share`` of the steps (drawn from (seed, step)) are batches
of the supervised mixture; the others are span corruption before the LM-adaptation phase (the last
``--lm-fraction`` of the steps; before it, a share ``--lm-share`` of them are prefix LM too) and
prefix LM inside it. ``--init-from DIR`` starts from a trained model's weights (e.g. the shipped
t5-nano) instead of a random initialisation, with a fresh optimiser and schedule.

    python -m softprompt.nano.pretrain --corpus nano-corpus --out nano-v2 --init-from softprompt/assets/t5-nano \
        --steps 1500 --lr 5e-3 --warmup 100 --lm-fraction 0 --lm-share 0.5 --mixture-share 0.5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from transformers import T5Config, T5ForConditionalGeneration

from softprompt.errors import SoftpromptError
from softprompt.io.atomic import atomic_write_text
from softprompt.model.loading import load_tokenizer
from softprompt.nano.checkpoints import load_checkpoint, restore_optimizer, save_checkpoint, weights_sha256
from softprompt.nano.corpus import TokenCorpus, window_starts
from softprompt.nano.mixture import Mixture, fetch_mixture
from softprompt.nano.objectives import EOS, PAD, prefix_lm_split, random_spans_noise_mask, span_corrupt, span_lengths
from softprompt.nano.optim import RMSScaledAdamW

CALIBRATION_STEPS = 20  # with no --steps, the schedule's length is set from these steps' speed


@dataclass
class PretrainConfig:
    """Model shape, objectives and optimisation of a pre-training run (stored in ``state.json``)."""

    d_model: int = 192
    d_ff: int = 512
    d_kv: int = 48
    num_heads: int = 4
    num_layers: int = 3
    input_length: int = 64  # encoder tokens per example, EOS included
    batch_size: int = 64
    noise_density: float = 0.15
    mean_span: float = 3.0
    lm_fraction: float = 0.2  # last share of the steps: prefix-LM instead of span corruption
    lm_target_length: int = 32
    lm_share: float = 0.0  # before the LM phase: share of the non-mixture steps that are prefix LM
    mixture_share: float = 0.0  # share of all steps that are supervised-mixture batches
    mixture_tasks: str = ""  # comma-separated mixture sources (softprompt.nano.mixture.SOURCES); "" = every source
    lr: float = 2e-2
    final_lr: float = 1e-5
    warmup: int = 200
    max_grad_norm: float = 1.0
    steps: int | None = None  # schedule length; None: estimated from --minutes
    seed: int = 0
    bf16: bool = True

    def t5_config(self) -> T5Config:
        """The T5 v1.1-style architecture (gated GELU, no dropout, tied embeddings)."""
        return T5Config(
            vocab_size=32128,
            d_model=self.d_model,
            d_ff=self.d_ff,
            d_kv=self.d_kv,
            num_heads=self.num_heads,
            num_layers=self.num_layers,
            num_decoder_layers=self.num_layers,
            feed_forward_proj="gated-gelu",
            dropout_rate=0.0,
            decoder_start_token_id=PAD,
            pad_token_id=PAD,
            eos_token_id=EOS,
        )


# ----------------------------------------------------------------------------- data


def make_batch(
    tokens: np.ndarray, starts: np.ndarray, cfg: PretrainConfig, objective: str, rng: np.random.Generator
) -> dict[str, torch.Tensor]:
    """Encoder inputs, attention mask and labels of one batch of ``objective`` ("span" or "lm")."""
    if objective == "span":
        raw, _ = span_lengths(cfg.input_length, cfg.noise_density, cfg.mean_span)
        pairs = [
            span_corrupt(tokens[s : s + raw], random_spans_noise_mask(raw, cfg.noise_density, cfg.mean_span, rng))
            for s in starts
        ]
    else:
        prefix = cfg.input_length - 1
        splits = rng.integers(prefix // 2, prefix + 1, size=len(starts))
        pairs = [
            prefix_lm_split(tokens[s : s + prefix + cfg.lm_target_length], k, cfg.lm_target_length)
            for s, k in zip(starts, splits)
        ]
    inputs = np.full((len(pairs), cfg.input_length), PAD, dtype=np.int64)
    for row, (source, _) in enumerate(pairs):
        inputs[row, : len(source)] = source
    input_ids = torch.from_numpy(inputs)
    return {
        "input_ids": input_ids,
        "attention_mask": (input_ids != PAD).long(),
        "labels": torch.from_numpy(np.stack([target for _, target in pairs])),
    }


def mixture_batch(
    mixture: Mixture, tokenizer, cfg: PretrainConfig, rng: np.random.Generator, split: str = "train"
) -> dict[str, torch.Tensor]:
    """A batch of supervised (instruction + text -> label word) examples, inputs cut to ``input_length``."""
    sources, targets = zip(*mixture.examples(cfg.batch_size, rng, split))
    inputs = tokenizer(
        list(sources), max_length=cfg.input_length, truncation=True, padding="max_length", return_tensors="pt"
    )
    labels = tokenizer(list(targets), padding="longest", return_tensors="pt")
    return {
        "input_ids": inputs["input_ids"],
        "attention_mask": inputs["attention_mask"],
        "labels": labels["input_ids"].masked_fill(labels["attention_mask"] == 0, -100),
    }  # (B, S) -100 = padding


def step_objective(cfg: PretrainConfig, step: int, total: int) -> str:
    """``"span"``, ``"lm"`` or ``"mixture"``: the objective of training step ``step``, from (seed, step)."""
    lm_phase = step >= lm_start_step(cfg, total)
    if not (cfg.mixture_share or cfg.lm_share):
        return "lm" if lm_phase else "span"
    draw = np.random.default_rng([cfg.seed, step, 1]).random(2)
    if draw[0] < cfg.mixture_share:
        return "mixture"
    return "lm" if lm_phase or draw[1] < cfg.lm_share else "span"


def window_length(cfg: PretrainConfig, objective: str) -> int:
    """Raw corpus tokens one example of ``objective`` reads."""
    if objective == "span":
        return span_lengths(cfg.input_length, cfg.noise_density, cfg.mean_span)[0]
    return cfg.input_length - 1 + cfg.lm_target_length


def training_batch(
    corpus: TokenCorpus, cfg: PretrainConfig, step: int, total: int, mixture: tuple[Mixture, Any] | None = None
) -> tuple[str, dict[str, torch.Tensor]]:
    """The objective and batch of training step ``step`` (0-based), a function of (seed, step);
    ``mixture`` is (the mixture, a tokenizer), needed when ``cfg.mixture_share`` > 0."""
    objective, rng = step_objective(cfg, step, total), np.random.default_rng([cfg.seed, step])
    if objective == "mixture":
        return objective, mixture_batch(*mixture, cfg, rng)
    plain = not (cfg.mixture_share or cfg.lm_share)  # the original schedule: each phase reads its windows in order
    index = step - lm_start_step(cfg, total) if plain and objective == "lm" else step
    tokens = corpus.splits["train"]
    starts = window_starts(len(tokens), window_length(cfg, objective), cfg.batch_size, index, cfg.seed)
    return objective, make_batch(tokens, starts, cfg, objective, rng)


def lm_start_step(cfg: PretrainConfig, total: int) -> int:
    """First step of the LM-adaptation phase."""
    return total - int(round(cfg.lm_fraction * total))


def validation_batches(
    corpus: TokenCorpus, cfg: PretrainConfig, objective: str, n_batches: int
) -> list[dict[str, torch.Tensor]]:
    """A fixed set of validation batches of ``objective``: consecutive windows, fixed noise."""
    tokens, window = corpus.splits["validation"], window_length(cfg, objective)
    n_windows = len(tokens) // window - 1
    rng = np.random.default_rng([cfg.seed, 2**31])
    return [
        make_batch(
            tokens, np.arange(b * cfg.batch_size, (b + 1) * cfg.batch_size) % n_windows * window, cfg, objective, rng
        )
        for b in range(max(1, min(n_batches, n_windows // cfg.batch_size)))
    ]


# ----------------------------------------------------------------------------- optimisation


def learning_rate(cfg: PretrainConfig, step: int, total: int) -> float:
    """Linear warmup to ``cfg.lr`` over ``cfg.warmup`` steps, then cosine decay to ``cfg.final_lr`` at ``total``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, total - cfg.warmup))
    return cfg.final_lr + (cfg.lr - cfg.final_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on ``device`` when asked (parameters and optimiser stay float32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


@torch.no_grad()
def encoder_swap_losses(
    model: T5ForConditionalGeneration, batches: list[dict[str, torch.Tensor]], bf16: bool = False
) -> dict[str, float]:
    """Mean loss with each example's own encoder input and with the next example's (rolled by one
    in the batch), and their difference: how much the decoder relies on the encoder."""
    device, was_training = model.device, model.training
    model.eval()
    matched = swapped = 0.0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast(device, bf16):
            matched += model(**batch).loss.item()
            swapped += model(
                input_ids=batch["input_ids"].roll(1, 0),
                attention_mask=batch["attention_mask"].roll(1, 0),
                labels=batch["labels"],
            ).loss.item()
    model.train(was_training)
    matched, swapped = matched / len(batches), swapped / len(batches)
    return {"loss": matched, "swap_loss": swapped, "swap_gap": swapped - matched}


# ----------------------------------------------------------------------------- the run


def initial_model(
    cfg: PretrainConfig, init_from: str | Path | None
) -> tuple[T5ForConditionalGeneration, PretrainConfig, dict[str, Any] | None]:
    """(model, cfg, provenance) of a fresh run: random weights, or ``init_from``'s weights in float32 with
    ``cfg``'s architecture fields taken from that model; provenance names the source and its weights' SHA-256."""
    torch.manual_seed(cfg.seed)
    if init_from is None:
        return T5ForConditionalGeneration(cfg.t5_config()), cfg, None
    model = T5ForConditionalGeneration.from_pretrained(init_from, dtype=torch.float32)
    c = model.config
    cfg = dataclasses.replace(
        cfg, d_model=c.d_model, d_ff=c.d_ff, d_kv=c.d_kv, num_heads=c.num_heads, num_layers=c.num_layers
    )
    return model, cfg, {"path": str(Path(init_from).resolve()), "weights_sha256": weights_sha256(init_from)}


def device_name(device: torch.device) -> str:
    """What runs a stage, as its model card names it: ``CPU``, or the GPU's name (e.g. ``NVIDIA H200``)."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type.upper()


def pretrain(
    corpus_dir: str | Path,
    out: str | Path,
    cfg: PretrainConfig,
    minutes: float | None = None,
    device: str = "cpu",
    log_every: int = 10,
    eval_every: int = 250,
    eval_batches: int = 4,
    checkpoint_minutes: float = 5.0,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    """Train (or resume, if ``out`` holds a checkpoint) until the schedule ends or ``minutes`` pass;
    returns the final state. On resume the stored configuration wins over ``cfg`` (and ``init_from``)."""
    out, started, torch_device = Path(out), time.monotonic(), torch.device(device)
    out.mkdir(parents=True, exist_ok=True)
    corpus, loaded = TokenCorpus(corpus_dir), load_checkpoint(out)
    if loaded is None:
        if cfg.steps is None and (minutes is None or cfg.warmup < CALIBRATION_STEPS):
            raise SystemExit(f"give --steps, or --minutes with --warmup >= {CALIBRATION_STEPS} to size the schedule")
        model, cfg, origin = initial_model(cfg, init_from)
        tensors, state = (
            {},
            {
                "step": 0,
                "total_steps": cfg.steps,
                "config": dataclasses.asdict(cfg),
                "corpus": str(Path(corpus_dir).resolve()),
                "corpus_manifest_sha256": corpus.manifest_sha256,
                "input_tokens": 0,
                "target_tokens": 0,
                "train_seconds": 0.0,
            },
        )
        if origin is not None:
            state["init_from"] = origin
    else:
        model, tensors, state = loaded
        cfg = PretrainConfig(**state["config"])
    # every device the run has trained on (runs from before this record ran on the CPU)
    state["devices"] = list(
        dict.fromkeys([*state.get("devices", ["CPU"] if state["step"] else []), device_name(torch_device)])
    )
    mixture = None
    if cfg.mixture_share:
        mixture = (fetch_mixture(cfg.mixture_tasks.split(",") if cfg.mixture_tasks else None), load_tokenizer())
        trained_on = {row["source"]: row.get("rows_sha256") for row in state.get("mixture", [])}
        if any(digest not in (None, mixture[0].digests.get(name)) for name, digest in trained_on.items()):
            raise SystemExit(f"the cached mixture rows differ from those {out} was trained on; restore them to resume")
        state["mixture"] = mixture[0].table()
    model.to(torch_device).train()
    params, optimizer = list(model.parameters()), RMSScaledAdamW(model.parameters(), lr=cfg.lr)
    restore_optimizer(optimizer, model, tensors, state.pop("optimizer_steps", 0))
    log_path = out / "log.jsonl"  # drop lines a crash left beyond the checkpoint
    lines = log_path.read_text().splitlines() if log_path.is_file() else []
    atomic_write_text(log_path, "".join(line + "\n" for line in lines if json.loads(line)["step"] <= state["step"]))
    validation = {objective: validation_batches(corpus, cfg, objective, eval_batches) for objective in ("span", "lm")}
    if mixture is not None:  # fixed validation examples of the mixture's own validation split
        rng = np.random.default_rng([cfg.seed, 2**31])
        validation["mixture"] = [mixture_batch(*mixture, cfg, rng, "validation") for _ in range(eval_batches)]
    last_checkpoint, window = time.monotonic(), [0.0, 0.0, 0]  # loss sum, seconds, steps since the last log line
    with open(log_path, "a") as log:
        while state["total_steps"] is None or state["step"] < state["total_steps"]:
            step, tick = state["step"], time.monotonic()
            total = state["total_steps"] or 10**9  # None only while calibrating, inside the warmup
            objective, batch = training_batch(corpus, cfg, step, total, mixture)
            lr = learning_rate(cfg, step, total)
            loss = train_step(model, optimizer, params, {k: v.to(torch_device) for k, v in batch.items()}, lr, cfg)
            seconds = time.monotonic() - tick
            state["step"], state["train_seconds"] = step + 1, state["train_seconds"] + seconds
            state["input_tokens"] += batch["input_ids"].numel()
            state["target_tokens"] += batch["labels"].numel()
            window = [window[0] + loss, window[1] + seconds, window[2] + 1]
            if state["total_steps"] is None and state["step"] == CALIBRATION_STEPS:
                state["total_steps"] = CALIBRATION_STEPS + int(
                    0.9 * (minutes * 60 - (time.monotonic() - started)) * window[2] / window[1]
                )
                print(f"{window[1] / window[2]:.3f} s/step: schedule set to {state['total_steps']} steps", flush=True)
            done = state["step"] == state["total_steps"]
            if state["step"] % log_every == 0 or done:
                _log(
                    log,
                    {
                        "step": state["step"],
                        "phase": objective,
                        "loss": window[0] / window[2],
                        "lr": lr,
                        "input_tokens": state["input_tokens"],
                        "input_tokens_per_s": window[2] * batch["input_ids"].numel() / window[1],
                        "elapsed_s": round(state["train_seconds"], 1),
                    },
                )
                window = [0.0, 0.0, 0]
            if state["step"] % eval_every == 0 or done:
                state["eval"] = {
                    objective: encoder_swap_losses(model, batches, cfg.bf16)
                    for objective, batches in validation.items()
                }
                _log(log, {"step": state["step"], "eval": state["eval"]})
            out_of_time = minutes is not None and time.monotonic() - started >= minutes * 60
            if done or out_of_time or time.monotonic() - last_checkpoint >= checkpoint_minutes * 60:
                save_checkpoint(out, model, optimizer, state)
                last_checkpoint = time.monotonic()
            if out_of_time:
                break
    return state


def train_step(
    model: T5ForConditionalGeneration,
    optimizer: RMSScaledAdamW,
    params: list[torch.Tensor],
    batch: dict[str, torch.Tensor],
    lr: float,
    cfg: PretrainConfig,
) -> float:
    """One optimisation step at learning rate ``lr``; returns the batch loss."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast(model.device, cfg.bf16):
        loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def _log(handle, record: dict[str, Any]) -> None:
    """Append ``record`` to the JSONL log and print it."""
    handle.write(json.dumps(record) + "\n")
    handle.flush()
    print(json.dumps(record), flush=True)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m softprompt.nano.pretrain --corpus DIR --out DIR --minutes M [options]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, help="directory written by python -m softprompt.nano.corpus")
    parser.add_argument("--out", required=True, help="run directory; an existing checkpoint there is resumed")
    parser.add_argument("--minutes", type=float, help="wall-clock budget of this invocation (checkpoint, then stop)")
    parser.add_argument("--steps", type=int, help="schedule length; default: as many steps as --minutes allows")
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16", help="bf16 autocast or plain float32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1 is fastest on a shared 2-core machine)")
    parser.add_argument(
        "--init-from",
        help="start from this model directory's weights (e.g. softprompt/assets/t5-nano); "
        "architecture flags are then taken from it",
    )
    for flag, default in (
        ("--log-every", 10),
        ("--eval-every", 250),
        ("--eval-batches", 4),
        ("--checkpoint-minutes", 5.0),
    ):
        parser.add_argument(flag, type=type(default), default=default)
    for field in dataclasses.fields(PretrainConfig):
        if field.name not in ("steps", "bf16"):
            parser.add_argument("--" + field.name.replace("_", "-"), type=type(field.default), default=field.default)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    transformers.utils.logging.disable_progress_bar()  # no "Writing model shards" bars in the run's log
    names = {f.name for f in dataclasses.fields(PretrainConfig)} - {"bf16"}
    cfg = PretrainConfig(**{k: v for k, v in vars(args).items() if k in names}, bf16=args.dtype == "bf16")
    if args.minutes is None and args.steps is None and not (Path(args.out) / "model").is_dir():
        parser.error("give --minutes or --steps")
    try:
        state = pretrain(
            args.corpus,
            args.out,
            cfg,
            args.minutes,
            args.device,
            args.log_every,
            args.eval_every,
            args.eval_batches,
            args.checkpoint_minutes,
            args.init_from,
        )
    except SoftpromptError as error:  # e.g. an unknown --mixture-tasks name
        sys.exit(f"error: {error}")
    print(f"stopped at step {state['step']} of {state['total_steps']}; model: {Path(args.out) / 'model'}")


if __name__ == "__main__":
    main()
