"""Joint training of N prompts (and/or deep prefixes) on one frozen T5.

Every batch of B examples is repeated once per prompt (prompt-major rows), so one forward and
backward pass trains all N prompts; with ``data_order="per-prompt"`` each prompt reads its own B
examples instead (the same N·B rows). The loss is the sum over prompts of each prompt's own mean
loss, and Adafactor's statistics and the gradient clip are per prompt, so prompt n ends up exactly
where training it alone with the same seed and data order would put it.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from softprompt.data.tasks import Example, Task
from softprompt.errors import SoftpromptError
from softprompt.io.atomic import atomic_write_text
from softprompt.io.checkpoint import checkpoint_step, has_checkpoint, load_checkpoint, save_checkpoint
from softprompt.io.store import save_run
from softprompt.model import distributed
from softprompt.model.loading import FrozenT5, enable_gradient_checkpointing
from softprompt.model.losses import per_prompt_loss_sums, per_prompt_token_counts
from softprompt.model.prompted import PromptedT5
from softprompt.model.reparam import ResidualPromptBank
from softprompt.runner.metrics import classification_metrics, generation_metrics
from softprompt.runner.passes import encode_texts, plan_passes, prompt_rows, repeat_for_prompts
from softprompt.runner.scoring import generate_texts, score_choices
from softprompt.training.banks import build_prompted, own_starts
from softprompt.training.batch_order import BatchOrder, source_lengths
from softprompt.training.config import TrainConfig
from softprompt.training.optim import clip_grad_norm_per_prompt, make_bank_optimizer
from softprompt.training.run_meta import check_resume, run_meta
from softprompt.training.tracking import TrainingLog
from softprompt.training.transfer import InitChoice, apply_init_from


@dataclass
class TrainResult:
    """What a finished run reports: per-prompt best validation metric and the step it came from."""

    best_metric: list[float]
    best_step: list[int]
    stopped_early: bool


def validate(prompted: PromptedT5, task: Task, examples: Sequence[Example], cfg: TrainConfig) -> list[float]:
    """Each prompt's validation score on the task's primary metric (a built-in task's official one); the banks in
    evaluation mode (no dropout in residual prompts' MLPs)."""
    banks = _banks(prompted).values()
    for bank in banks:
        bank.eval()
    try:
        return _scores(prompted, task, examples, cfg)
    finally:
        for bank in banks:
            bank.train()


def _scores(prompted: PromptedT5, task: Task, examples: Sequence[Example], cfg: TrainConfig) -> list[float]:
    ids = list(range(prompted.n_prompts))
    if task.kind == "generation":
        generations = generate_texts(prompted, examples, ids, cfg.max_source_length, cfg.max_tokens, **cfg.decoding)
        refs = [list(e.references) or [e.target] for e in examples]
        return [generation_metrics(texts, refs)[task.metric] for texts in generations.texts]
    scores = score_choices(prompted, examples, ids, cfg.max_source_length, cfg.max_tokens).log_likelihood
    gold = np.array([e.label for e in examples])
    n_classes = scores.shape[-1]
    return [classification_metrics(gold, s.argmax(-1), n_classes)[task.metric] for s in scores]


def train(
    cfg: TrainConfig,
    frozen: FrozenT5,
    task: Task,
    train_examples: Sequence[Example],
    val_examples: Sequence[Example],
    resume: bool = False,
    progress: bool = True,
    init_choice: InitChoice | None = None,
) -> TrainResult:
    """Train ``cfg.n_prompts`` prompts jointly; write checkpoints and the final artefacts.

    ``cfg.init_from`` starts the banks from other runs' prompts (``softprompt.training.transfer``);
    ``init_choice`` holds the sources picked for ``--init-from auto``.

    >>> from softprompt.model.loading import load_frozen_t5
    >>> from softprompt.data.tasks import get_task
    >>> task = get_task("sst2")
    >>> examples = task.to_examples([{"sentence": "a gem of a film", "label": 1}, {"sentence": "a dull mess", "label": 0}])
    >>> cfg = TrainConfig(task="sst2", output_dir="runs/example", n_prompts=2, prompt_length=8, steps=2, batch_size=2, eval_every=2)
    >>> result = train(cfg, load_frozen_t5("t5-nano"), task, examples, examples, progress=False)
    >>> len(result.best_metric), Path("runs/example/softprompt.json").is_file()  # a run that load_pool and the CLI read
    (2, True)
    """
    if not train_examples:
        raise SoftpromptError("the training split is empty; check --train-file or the task's data")
    if not val_examples:
        raise SoftpromptError("the validation split is empty; check --validation-file or the task's data")
    torch.manual_seed(cfg.seed)
    prompted = build_prompted(frozen, cfg, task.label_words)
    init_from = None
    if cfg.init_from and not (
        resume and has_checkpoint(cfg.output_dir)
    ):  # a resumed run's banks come from its checkpoint
        init_from = apply_init_from(prompted, frozen.config, cfg.init_from, cfg.prompt_seeds, init_choice)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(frozen.model)
    banks = _banks(prompted)
    params = prompted.trainable_parameters()
    trainable, frozen_count = sum(p.numel() for p in params), frozen.parameter_count()
    if progress and distributed.is_main():
        tqdm.write(
            f"{cfg.model}: {frozen_count:,} frozen parameters, {trainable:,} trainable "
            f"({cfg.n_prompts} prompts; {100 * trainable / frozen_count:.3f}% of the model)"
        )
    recipes = cfg.recipes()  # each bank its own optimizer and lr, one step per batch
    optimizer = make_bank_optimizer(
        [(list(bank.parameters()), *recipes[name]) for name, bank in banks.items()], cfg.weight_decay
    )
    n = cfg.n_prompts
    state: dict[str, Any] = {
        "step": 0,
        "best_metric": [-math.inf] * n,
        "best_step": [0] * n,
        "since_best": 0,
        "history": [],
    }
    state["init_from"] = init_from  # recorded in softprompt.json; a resumed run keeps its checkpoint's record
    best = {k: v.detach().clone() for k, v in _bank_state(banks).items()}
    loaded = load_checkpoint(cfg.output_dir, optimizer) if resume else None
    if loaded is not None:
        bank_tensors, best, saved = loaded
        check_resume(cfg, saved)
        _load_bank_state(banks, bank_tensors)
        state = saved
    elif n > 1 and cfg.data_order == "shared" and _same_start(banks) and distributed.is_main():
        tqdm.write(
            f"note: all {n} prompts start at the same values and see the same batches, so they will train into {n} copies; "
            f"for an ensemble give each its own start ({own_starts(cfg, task)}) or its own batches (--data-order per-prompt)",
            file=sys.stderr,
        )
    state["config"] = cfg.to_dict()
    log = TrainingLog(
        state, cfg.log_every, task.metric, cfg.report_to, cfg.output_dir, state["config"]
    )  # trackers: main process only (accelerate)

    device = frozen.model.get_input_embeddings().weight.device
    bar = tqdm(
        total=cfg.steps,
        initial=state["step"],
        desc="training",
        disable=not (progress and distributed.is_main()),
        dynamic_ncols=True,
    )
    stopped_early = _patience_ran_out(
        cfg, state
    )  # a checkpoint of a run that stopped early: resuming must not train on
    lengths = source_lengths(prompted.tokenizer, train_examples, cfg.max_source_length) if cfg.group_by_length else None
    orders = [BatchOrder(len(train_examples), cfg.batch_size, seed, lengths) for seed in cfg.order_seeds()]
    while state["step"] < cfg.steps and not stopped_early:
        step = state["step"]
        batches = [distributed.shard([train_examples[i] for i in order.batch(step)]) for order in orders]
        if isinstance(prompted.prompts, ResidualPromptBank):
            prompted.prompts.dropout_step = step  # the step's dropout masks, the same on resume
        losses = _backward(prompted, batches, cfg, device)  # (N,) global per-prompt losses
        distributed.all_reduce_grads(params)
        grad_norms = clip_grad_norm_per_prompt(params, cfg.max_grad_norm)  # (N,) before clipping
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        # the step's one wait for the device, after its last kernel is queued; a non-finite update is
        # never saved, since nothing is written before this check
        step_losses, step_norms = torch.stack([losses.float(), grad_norms.float()]).tolist()
        if not all(map(math.isfinite, step_losses)):
            bad = [i for i, value in enumerate(step_losses) if not math.isfinite(value)]
            raise SoftpromptError(
                f"loss became non-finite at step {step + 1} for prompt(s) {bad}; the last good checkpoint "
                f"(step {checkpoint_step(cfg.output_dir)}) is kept — lower --lr or use --dtype float32"
            )
        state["step"] = step + 1
        bar.update(1)
        bar.set_postfix(loss=f"{sum(step_losses) / len(step_losses):.4f}")
        metrics = None
        if state["step"] % cfg.eval_every == 0 or state["step"] == cfg.steps:
            metrics, stopped_early = _evaluate(prompted, task, val_examples, cfg, state, banks, best, bar)
        log.record(step_losses, step_norms, [group["lr"] for group in optimizer.param_groups], metrics)
        if distributed.is_main() and (
            state["step"] % cfg.checkpoint_every == 0 or state["step"] == cfg.steps or stopped_early
        ):
            save_checkpoint(cfg.output_dir, _bank_state(banks), best, optimizer, state)
            atomic_write_text(
                Path(cfg.output_dir) / "history.json", json.dumps(state["history"], indent=1)
            )  # curves of a live run
        if stopped_early:
            break
    bar.close()
    log.close()
    if stopped_early and distributed.is_main():
        tqdm.write(
            f"stopped early at step {state['step']} of {cfg.steps}: no prompt improved its {task.metric} in the last "
            f"{cfg.patience} validations (--patience {cfg.patience}); each prompt keeps its best step",
            file=sys.stderr,
        )
    _load_bank_state(banks, best)
    if distributed.is_main():
        meta = run_meta(cfg, frozen, task, state, trainable)
        atomic_write_text(Path(cfg.output_dir) / "history.json", json.dumps(state["history"], indent=1))
        save_run(
            cfg.output_dir, meta, prompted.prompts, prompted.prefixes, cfg.keep_reparam, prompted.dept
        )  # residual prompts folded; softprompt.json last
    distributed.barrier()
    return TrainResult(state["best_metric"], state["best_step"], stopped_early)


def _backward(
    prompted: PromptedT5, batches: Sequence[Sequence[Example]], cfg: TrainConfig, device: torch.device
) -> torch.Tensor:
    """Tokenise this process's batch (one shared by all prompts, or one per prompt) and run
    ``joint_backward`` on it; returns the (N,) losses."""
    examples = [e for batch in batches for e in batch]  # per-prompt batches: prompt-major
    input_ids, mask = encode_texts(prompted.tokenizer, [e.source for e in examples], cfg.max_source_length, device)
    labels, label_mask = encode_texts(prompted.tokenizer, [e.target for e in examples], cfg.max_target_length, device)
    labels = labels.masked_fill(label_mask == 0, -100)
    return joint_backward(prompted, input_ids, mask, labels, shared=len(batches) == 1, max_tokens=cfg.max_tokens)


def joint_backward(
    prompted: PromptedT5,
    input_ids: torch.Tensor,
    mask: torch.Tensor,
    labels: torch.Tensor,
    shared: bool = True,
    max_tokens: int | None = None,
) -> torch.Tensor:
    """Forward and backward of a batch (b, T) with targets (b, S) (-100 = padding, both padded on
    the right), every example repeated for the N prompts; with ``shared=False`` the rows are
    already (N·b, ·), prompt-major, each prompt's own examples. Returns the (N,) per-prompt losses.

    Each prompt's loss is its summed token loss divided by its token count over the GLOBAL batch, so
    gradients summed across processes equal the single-process gradient. With ``max_tokens`` the
    rows run as micro-passes of at most that many tokens (rows × padded prompt + source + target
    length; rows sorted by length, as ``softprompt.runner.passes.plan_passes`` chunks them, each pass padded
    to its own longest), accumulating the same gradient (up to rounding) with less padding and a
    bounded peak memory; None: one pass.
    """
    n = prompted.n_prompts
    if shared and n > 1:  # one prompt: the rows as they are (no copy)
        input_ids, mask, labels = (repeat_for_prompts(t, n) for t in (input_ids, mask, labels))  # (N·b, ·)
    rows = prompt_rows(range(n), len(input_ids) // n, input_ids.device)  # (N·b,)
    token_count = distributed.all_reduce_sum(per_prompt_token_counts(labels, rows, n)).clamp(
        min=1
    )  # (N,) over the global batch
    loss_sum = torch.zeros(n, device=labels.device)
    for chunk, source, target in micro_passes(mask, labels, prompted.prompt_length, max_tokens):
        ids, chunk_mask, chunk_labels, chunk_rows = (
            input_ids[chunk, :source],
            mask[chunk, :source],
            labels[chunk, :target],
            rows[chunk],
        )
        decoder_input_ids = prompted.model.prepare_decoder_input_ids_from_labels(
            chunk_labels
        )  # labels not passed: no second loss
        logits = prompted(ids, chunk_mask, chunk_rows, decoder_input_ids=decoder_input_ids).logits
        chunk_sum = per_prompt_loss_sums(logits, chunk_labels, chunk_rows, n)
        del logits  # not needed by backward: keeps one logits-sized tensor off the peak
        (chunk_sum / token_count).sum().backward()
        loss_sum += chunk_sum.detach()
    return distributed.all_reduce_sum(loss_sum) / token_count


def micro_passes(
    mask: torch.Tensor, labels: torch.Tensor, prompt_length: int, max_tokens: int | None
) -> list[tuple[torch.Tensor | slice, int, int]]:
    """The passes of ``joint_backward`` over rows with source ``mask`` (R, T) and ``labels`` (R, S)
    (-100 = padding; both padded on the right): (row indices, longest source, longest target) of
    each, longest rows first, within ``max_tokens`` (rows × padded prompt + source + target length,
    planned by ``softprompt.runner.passes.plan_passes``). Without a budget, or when every row fits in one
    pass: one pass over every row as padded (``slice(None)``: views, no copy).
    """
    one_pass = [(slice(None), mask.shape[1], labels.shape[1])]
    if max_tokens is None:
        return one_pass
    sources, targets = mask.sum(dim=1).tolist(), (labels != -100).sum(dim=1).tolist()  # (R,) unpadded lengths
    plans = plan_passes([prompt_length + s + t for s, t in zip(sources, targets)], 1, max_tokens)
    if len(plans) == 1:
        return one_pass
    return [
        (
            torch.tensor(plan.examples, device=mask.device),
            max(sources[i] for i in plan.examples),
            max(1, max(targets[i] for i in plan.examples)),
        )
        for plan in plans
    ]


def _evaluate(prompted, task, val_examples, cfg, state, banks, best, bar) -> tuple[list[float], bool]:
    """Validate, keep each prompt's best weights; (each prompt's metric, whether patience ran out)."""
    metrics = validate(prompted, task, val_examples, cfg)
    improved = False
    current = _bank_state(banks)
    for i, value in enumerate(metrics):
        if value > state["best_metric"][i]:
            state["best_metric"][i], state["best_step"][i], improved = value, state["step"], True
            for name, tensor in current.items():
                best[name][i] = tensor[i].detach()
    state["since_best"] = 0 if improved else state["since_best"] + 1
    if not bar.disable:  # the main process's bar
        bar.write(f"step {state['step']}: {task.metric} " + " ".join(f"{m:.4f}" for m in metrics))
    return metrics, _patience_ran_out(cfg, state)


def _patience_ran_out(cfg: TrainConfig, state: dict[str, Any]) -> bool:
    """Whether no prompt improved in the last ``--patience`` validations (early stopping)."""
    return cfg.patience is not None and state["since_best"] >= cfg.patience


def _banks(prompted: PromptedT5) -> dict[str, torch.nn.Module]:
    return {
        name: bank
        for name, bank in (("prompts", prompted.prompts), ("prefixes", prompted.prefixes), ("dept", prompted.dept))
        if bank is not None
    }


def _bank_state(banks: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """Every bank tensor (parameters and buffers, all with the prompt index first), by name."""
    return {f"{name}.{key}": value for name, bank in banks.items() for key, value in bank.state_dict().items()}


def _same_start(banks: dict[str, torch.nn.Module]) -> bool:
    """Whether every prompt starts at the first prompt's values in every bank (then, on one data order, they stay equal)."""
    return all(torch.equal(tensor[1:], tensor[:1].expand_as(tensor[1:])) for tensor in _bank_state(banks).values())


def _load_bank_state(banks: dict[str, torch.nn.Module], tensors: dict[str, torch.Tensor]) -> None:
    for name, bank in banks.items():
        bank.load_state_dict({k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + ".")})
