"""Benchmark: softprompt's prompt-tuning train step vs PEFT prompt tuning, joint vs separate runs, peak memory.

(a) One train step of ours (PromptedT5 + PerPromptAdafactor, one prompt; the same operations as
    ``softprompt.training.loop``, single process: ``train.joint_backward`` (rows repeated for the prompts,
    forward, per-prompt token-mean losses, backward), per-prompt gradient clip, optimizer step,
    zero_grad) vs one PEFT step
    (``get_peft_model(PromptTuningConfig(SEQ_2_SEQ_LM, num_virtual_tokens=P))`` + transformers
    Adafactor(lr=0.3, scale_parameter=False, relative_step=False, warmup_init=False), loss.backward(),
    clip_grad_norm_(1.0), step, zero_grad). Same data; PEFT wraps a deep copy of our frozen model
    (identical weights, checked), both in eval mode (dropout off), and the PEFT prompt starts
    from ours, so the two losses must agree (checked: fp32 to 1e-4 relative; bf16 atol 0.05,
    rtol 0.02, as the two sides round differently).
(b) N prompts trained jointly (one step over N·B rows) vs N separate runs (N steps of B rows, each
    its own one-prompt bank and optimizer), at per-prompt batch sizes ``--joint-batches``.
(c) Peak memory of one step, ours vs PEFT, three ways on the CPU (two on CUDA):
    * the key: peak of live tensor bytes during one (warm) step, over the bytes live at its start,
      from the torch profiler's memory timeline (every CPU-allocator allocation and free; exact and
      deterministic, unlike RSS); on CUDA, in process, ``torch.cuda.max_memory_allocated`` over the
      bytes allocated before the step (``common.cuda_peak_bytes``), under the same key;
    * not on CUDA: resident-set growth: each side in ``--mem-runs`` fresh subprocesses
      (alternating), Linux VmHWM after ``--mem-steps`` steps minus VmRSS once the model, optimizer
      and data exist (VmHWM reset through /proc/self/clear_refs; ru_maxrss growth would hide under
      the model-init peak); median over runs. glibc arenas make this vary by about +-10% run to run;
    * bytes of the activations autograd saves for backward (saved_tensors_hooks; frozen weights
      excluded).
(d) Length-aware batching (``softprompt train --group-by-length``): train steps (ours, one prompt)
    over the same ``--epoch-examples`` examples of mixed lengths (long-tailed, 16..256 tokens;
    default 10 mega-batches of 50 batches), each batch padded to its longest, in the order
    ``softprompt.training.batch_order.BatchOrder`` draws with and without grouping by length (each batch
    padded on the CPU and moved to the device within its step, as training does): the share of
    padded input tokens over the whole epoch (counted), and the time of the same ``--epoch-steps``
    evenly spaced steps of the epoch on both sides, whose ratio estimates the time-per-epoch ratio
    (the timed steps' padded shares are printed beside the epoch's to show they are typical).
(e) Data orders and micro-passes (``softprompt train --data-order``, ``--max-tokens``): on (d)'s
    examples, ``--n-prompts`` prompts at (b)'s first per-prompt batch size B, five ways over the same
    ``--order-steps`` evenly spaced steps: a joint step on one shared batch (``shared``, the
    default: B examples repeated N times) and on N per-prompt batches (``per-prompt``: N·B distinct
    examples), each as one pass padded to its longest and in micro-passes of at most
    ``--order-max-tokens`` tokens (rows sorted by length, each pass padded to its own longest, one
    accumulated gradient), and N separate one-prompt steps on the per-prompt batches (each padded
    to its own longest). Prompt i's batches are ``BatchOrder(seed + i)``'s, as training draws
    them; no grouping by length.
Model: a random T5 (``common.model_for``) of t5-small shape, fp32 on the CPU, by default;
``--shape tiny|small|base|large``, ``--device`` and ``--dtype`` (``common.add_model_args``) choose
another; the data goes to that device, and PEFT wraps a deep copy there in the same dtype.
Utilisation: model FLOPs of a step over its time, as a fraction of the matmul peak measured in the
same process on the same device and dtype (``common.matmul_peak``). A step with a frozen model
costs about twice its forward: backward computes activation gradients only, no weight-gradient
GEMMs; reported for (a) ours and (b) the joint step.
Timings are interleaved (see ``benchmarks/common.py``). Ends with one ``RESULT {json}`` line (with
``device``, ``dtype``, ``shape`` and ``matmul_peak_gflops``; ``peak_rss_over_peft`` not on CUDA).

    python -m benchmarks.train_bench [--batch 32 --length 128 --target-length 4 --prompt-length 20]
    python -m benchmarks.train_bench --quick
    python -m benchmarks.train_bench --device cuda --dtype bfloat16 --shape base
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from benchmarks.common import (
    DTYPES,
    ROOT,
    TIMING_HEADERS,
    add_common_args,
    add_model_args,
    emit_result,
    interleaved,
    matmul_peak,
    model_for,
    print_table,
    random_ids,
    random_targets,
    ratio,
    setup,
    shape_name,
    step_peak_bytes,
    t5_decoder_flops,
    t5_encoder_flops,
    timing_row,
    utilisation,
    utilisation_line,
)
from softprompt.model.losses import per_prompt_loss
from softprompt.model.prompted import PromptedT5
from softprompt.model.prompts import PromptBank
from softprompt.runner.passes import prompt_rows
from softprompt.training.batch_order import MEGA_BATCHES, BatchOrder
from softprompt.training.config import DATA_ORDERS
from softprompt.training.loop import joint_backward, micro_passes
from softprompt.training.optim import PerPromptAdafactor, clip_grad_norm_per_prompt

MAX_GRAD_NORM = 1.0
LR = 0.3


# --- the two training steps -------------------------------------------------------------------------


class OursTrainer:
    """``n`` prompts on a frozen model, stepped exactly as ``softprompt.training.loop.train`` does."""

    def __init__(self, frozen, n_prompts: int, prompt_length: int, seed: int) -> None:
        bank = PromptBank(n_prompts, prompt_length, frozen.config.d_model)
        with torch.no_grad():
            bank.weight.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(seed))
        self.prompted = PromptedT5(frozen, bank)
        self.params = self.prompted.trainable_parameters()
        self.optimizer = PerPromptAdafactor(self.params, lr=LR, weight_decay=1e-5)
        self.n = n_prompts

    def step(self, input_ids, mask, labels, shared: bool = True, max_tokens: int | None = None) -> torch.Tensor:
        """One step; ``shared=False``: the rows are already (N·b, ·), each prompt's own examples;
        ``max_tokens``: micro-passes as ``softprompt train --max-tokens``."""
        losses = joint_backward(
            self.prompted, input_ids, mask, labels, shared, max_tokens
        )  # train.py's own forward/backward
        grad_norms = clip_grad_norm_per_prompt(self.params, MAX_GRAD_NORM)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        step_losses, _ = torch.stack([losses.float(), grad_norms.float()]).tolist()  # train.py's one sync per step
        if not all(map(math.isfinite, step_losses)):  # train.py checks this every step too
            raise RuntimeError("non-finite loss")
        return losses

    def loss(self, input_ids, mask, labels) -> torch.Tensor:
        rows = prompt_rows(range(self.n), input_ids.shape[0], input_ids.device)
        with torch.no_grad():
            logits = self.prompted(input_ids, mask, rows, labels=labels).logits
            return per_prompt_loss(logits, labels, rows, self.n)


class PeftTrainer:
    """PEFT prompt tuning on ``model`` (mutated by PEFT) with transformers' Adafactor."""

    def __init__(self, model, prompt_length: int, init: torch.Tensor | None = None) -> None:
        from peft import PromptTuningConfig, TaskType, get_peft_model
        from transformers.optimization import Adafactor

        config = PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=prompt_length)
        self.model = get_peft_model(model, config)
        self.model.eval()  # dropout off, as on our side (our frozen model is in eval mode)
        embedding = self.model.prompt_encoder["default"].embedding.weight
        if init is not None:
            with torch.no_grad():
                embedding[: init.shape[0]] = (
                    init  # encoder rows; PEFT reserves P more rows for a decoder it never uses here
                )
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = Adafactor(self.params, scale_parameter=False, relative_step=False, warmup_init=False, lr=LR)

    def step(self, input_ids, mask, labels) -> torch.Tensor:
        loss = self.model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, MAX_GRAD_NORM)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def loss(self, input_ids, mask, labels) -> torch.Tensor:
        with torch.no_grad():
            return self.model(input_ids=input_ids, attention_mask=mask, labels=labels).loss


def make_data(
    seed: int, batch: int, length: int, target_length: int, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random (batch, length) input ids ending with EOS, their mask and (batch, target_length)
    targets, on ``device`` (drawn on the CPU: the same data on every device)."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = random_ids(generator, batch, length)
    input_ids[:, -1] = 1  # EOS, as the tokenizer ends every source
    targets = random_targets(generator, batch, target_length)
    input_ids = input_ids.to(device)
    return input_ids, torch.ones_like(input_ids), targets.to(device)


def build_side(side: str, args, frozen=None):
    frozen = frozen if frozen is not None else model_for(args)
    if side == "ours":
        return OursTrainer(frozen, 1, args.prompt_length, args.seed)
    return PeftTrainer(frozen.model, args.prompt_length)


def train_step_flops(config, rows: int, input_length: int, target_length: int) -> float:
    """Matmul FLOPs of one train step over ``rows`` sequences of ``input_length`` (prompt + input) tokens
    and ``target_length`` target tokens: twice the forward, as the frozen model's backward computes
    activation gradients only (no weight-gradient GEMMs)."""
    return 2 * (
        t5_encoder_flops(config, rows, input_length) + t5_decoder_flops(config, rows, target_length, input_length)
    )


# --- length-aware batching ----------------------------------------------------------------------------


def mixed_lengths(generator: torch.Generator, n: int, low: int = 16, high: int = 256) -> list[int]:
    """``n`` long-tailed input lengths in [low, high]: log-normal with median about 66 tokens, like
    natural-text inputs (many short, a few long)."""
    return (torch.randn(n, generator=generator) * 0.6 + 4.2).exp().clamp(low, high).long().tolist()


def mixed_examples(
    generator: torch.Generator, lengths: list[int], target_length: int
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Random inputs of the given lengths (each ending with EOS) and (n, target_length) targets."""
    inputs = [random_ids(generator, 1, length)[0] for length in lengths]
    for ids in inputs:
        ids[-1] = 1  # EOS, as the tokenizer ends every source
    return inputs, random_targets(generator, len(lengths), target_length)


def padded_batch(inputs: list[torch.Tensor], indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) ids right-padded (0) to the batch's longest input and their mask, as ``encode_texts`` pads."""
    ids = torch.nn.utils.rnn.pad_sequence([inputs[i] for i in indices], batch_first=True)
    mask = torch.nn.utils.rnn.pad_sequence([torch.ones_like(inputs[i]) for i in indices], batch_first=True)
    return ids, mask


def padded_share(batches: Iterable[list[int]], lengths: list[int]) -> float:
    """Padded tokens over all input token slots of ``batches`` (example indices), each padded to its longest."""
    slots = real = 0
    for batch in batches:
        batch_lengths = [lengths[i] for i in batch]
        slots, real = slots + max(batch_lengths) * len(batch_lengths), real + sum(batch_lengths)
    return 1 - real / slots


def mixed_data(args) -> tuple[list[int], list[torch.Tensor], torch.Tensor]:
    """(d) and (e)'s ``--epoch-examples`` examples: their lengths, inputs and targets."""
    generator = torch.Generator().manual_seed(args.seed)
    lengths = mixed_lengths(generator, args.epoch_examples)
    return (lengths, *mixed_examples(generator, lengths, args.target_length))


def evenly_spaced(count: int, total: int) -> list[int]:
    """``count`` step indices spread evenly over ``total`` steps (the same steps on every side)."""
    return [int((i + 0.5) * total / count) for i in range(count)]


def length_case(frozen, args) -> dict[str, float]:
    """(d): print the padded shares and the time of ``--epoch-steps`` evenly spaced steps of an epoch
    grouped by length and not (each batch padded on the CPU, then moved to ``--device`` within the
    step, as training does); returns the RESULT values."""
    lengths, inputs, targets = mixed_data(args)
    orders = {
        "grouped": BatchOrder(len(lengths), args.batch, args.seed, lengths),
        "off": BatchOrder(len(lengths), args.batch, args.seed),
    }
    trainers = {side: OursTrainer(frozen, 1, args.prompt_length, args.seed) for side in orders}
    epoch_steps = len(lengths) // args.batch
    timed = evenly_spaced(args.epoch_steps, epoch_steps)

    def run(side: str) -> None:
        for step in timed:
            indices = orders[side].batch(step)
            batch = (*padded_batch(inputs, indices), targets[indices])
            trainers[side].step(*(tensor.to(args.device) for tensor in batch))

    times = interleaved({side: lambda side=side: run(side) for side in orders}, args.epoch_repeats)
    share = {side: padded_share(map(order.batch, range(epoch_steps)), lengths) for side, order in orders.items()}
    timed_share = {side: padded_share(map(order.batch, timed), lengths) for side, order in orders.items()}
    label = f"(d) {args.epoch_steps} of {epoch_steps} steps, grouped by length / not, B={args.batch}"
    print_table(
        TIMING_HEADERS,
        [timing_row(label, times["grouped"], times["off"])],
        f"length-aware batching: {len(lengths)} examples of 16..256 tokens (median {sorted(lengths)[len(lengths) // 2]}), "
        f"mega-batches of {MEGA_BATCHES} batches; time of the same evenly spaced steps, which estimates the epoch's ratio",
    )
    print(
        f"padded input tokens per epoch: grouped {100 * share['grouped']:.1f}%, not grouped {100 * share['off']:.1f}% "
        f"(timed steps: {100 * timed_share['grouped']:.1f}%, {100 * timed_share['off']:.1f}%)"
    )
    return {
        "group_by_length_over_off": ratio(times["grouped"], times["off"]),
        "padded_share_grouped": share["grouped"],
        "padded_share_off": share["off"],
    }


def data_order_case(frozen, batch: int, args) -> dict[str, float]:
    """(e): time the same evenly spaced steps on shared and on per-prompt batches, each as one pass
    and in micro-passes, and as N separate one-prompt steps on the per-prompt batches; print the
    padded shares; returns the RESULT values."""
    lengths, inputs, targets = mixed_data(args)
    n, budget = args.n_prompts, args.order_max_tokens
    orders = [BatchOrder(len(lengths), batch, args.seed + i) for i in range(n)]
    joint = {
        (order, max_tokens): OursTrainer(frozen, n, args.prompt_length, args.seed)
        for order in DATA_ORDERS
        for max_tokens in (None, budget)
    }
    separate = [OursTrainer(frozen, 1, args.prompt_length, args.seed + i) for i in range(n)]
    steps = evenly_spaced(args.order_steps, len(lengths) // batch)

    def step_data(indices: list[int]) -> tuple[torch.Tensor, ...]:
        return tuple(tensor.to(args.device) for tensor in (*padded_batch(inputs, indices), targets[indices]))

    def examples(
        order: str, step: int
    ) -> list[int]:  # the B shared examples, or the (N·B,) per-prompt ones, prompt-major
        return orders[0].batch(step) if order == "shared" else [index for o in orders for index in o.batch(step)]

    def run_joint(order: str, max_tokens: int | None) -> None:
        for step in steps:
            joint[order, max_tokens].step(
                *step_data(examples(order, step)), shared=order == "shared", max_tokens=max_tokens
            )

    def run_separate() -> None:
        for step in steps:
            for order, trainer in zip(orders, separate):
                trainer.step(*step_data(order.batch(step)))

    def passes(
        order: str, max_tokens: int | None, step: int
    ) -> list[list[int]]:  # each pass's examples, as joint_backward plans them
        rows = examples(order, step) * (n if order == "shared" else 1)  # (N·B,) prompt-major
        mask, labels = padded_batch(inputs, rows)[1], targets[rows]
        return [
            [rows[row] for row in torch.arange(len(rows))[chunk].tolist()]
            for chunk, _, _ in micro_passes(mask, labels, args.prompt_length, max_tokens)
        ]

    names = {
        (order, max_tokens): order if max_tokens is None else f"{order} --max-tokens {max_tokens}"
        for order, max_tokens in joint
    }
    sides = {names[key]: lambda key=key: run_joint(*key) for key in joint} | {"separate": run_separate}
    times = interleaved(sides, args.epoch_repeats)
    share = {
        names[key]: padded_share((rows for step in steps for rows in passes(*key, step)), lengths) for key in joint
    }
    share["separate"] = padded_share((order.batch(step) for step in steps for order in orders), lengths)
    label = f"(e) {len(steps)} steps, {n} prompts, B={batch}"
    print_table(
        TIMING_HEADERS,
        [timing_row(f"{label}: {name} / {n} separate", times[name], times["separate"]) for name in names.values()]
        + [
            timing_row(
                f"{label}: {names['per-prompt', key]} / shared", times[names["per-prompt", key]], times["shared"]
            )
            for key in (None, budget)
        ],
        "data orders on (d)'s mixed-length examples (--data-order shared | per-prompt, one pass or --max-tokens, and separate runs)",
    )
    print(
        "padded input tokens of the timed steps: "
        + ", ".join(f"{side} {100 * value:.1f}%" for side, value in share.items())
    )
    keys = {
        (order, max_tokens): order.replace("-", "_") + ("" if max_tokens is None else "_micro")
        for order, max_tokens in joint
    }
    return {
        **{f"{keys[key]}_over_separate_mixed": ratio(times[name], times["separate"]) for key, name in names.items()},
        **{
            f"{keys['per-prompt', key]}_over_shared": ratio(times[names["per-prompt", key]], times["shared"])
            for key in (None, budget)
        },
        **{f"padded_share_{keys[key]}": share[name] for key, name in names.items()},
        "padded_share_separate": share["separate"],
        "order_max_tokens": budget,
    }


# --- memory ------------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def memory_child(side: str, args) -> None:
    """In a fresh process: resident-set growth of ``--mem-steps`` train steps of one side."""
    setup(args)
    trainer = build_side(side, args)
    data = make_data(args.seed, args.batch, args.length, args.target_length, args.device)
    gc.collect()
    base_rss = _status_kib("VmRSS")
    base_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        hwm_reset = True
    except OSError:
        hwm_reset = False
    for _ in range(args.mem_steps):
        trainer.step(*data)
    out = {
        "side": side,
        "base_rss_kib": base_rss,
        "hwm_reset": hwm_reset,
        "peak_growth_kib": (_status_kib("VmHWM") - base_rss) if hwm_reset else None,
        "maxrss_growth_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_maxrss,
    }
    print("MEM " + json.dumps(out), flush=True)


def run_memory_child(side: str, args) -> dict:
    command = [
        sys.executable,
        "-m",
        "benchmarks.train_bench",
        "--mem-child",
        side,
        "--batch",
        str(args.batch),
        "--length",
        str(args.length),
        "--target-length",
        str(args.target_length),
        "--prompt-length",
        str(args.prompt_length),
        "--seed",
        str(args.seed),
        "--mem-steps",
        str(args.mem_steps),
        "--device",
        args.device,
        "--dtype",
        args.dtype,
    ]
    if args.shape is not None:
        command += ["--shape", args.shape]
    if args.quick:
        command.append("--quick")
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    if args.default_malloc:
        command.append("--default-malloc")
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("MEM ")]
    if done.returncode or not lines:
        raise RuntimeError(f"memory child {side} failed:\n{done.stdout}\n{done.stderr}")
    result = json.loads(lines[-1][4:])
    growth = result["peak_growth_kib"] if result["peak_growth_kib"] is not None else result["maxrss_growth_kib"]
    result["growth_mib"] = growth / 1024
    return result


def rss_runs(args) -> dict[str, list[dict]]:
    """``--mem-runs`` memory subprocesses per side, the sides alternating first."""
    runs: dict[str, list[dict]] = {"ours": [], "peft": []}
    for index in range(args.mem_runs):
        for side in ("ours", "peft") if index % 2 == 0 else ("peft", "ours"):
            runs[side].append(run_memory_child(side, args))
    return runs


def saved_activation_bytes(forward_backward, frozen_tensors) -> int:
    """Bytes of distinct storages autograd saves for backward during ``forward_backward()`` (a
    forward and its backward, which frees them); storages of frozen weights are not counted."""
    excluded = {t.untyped_storage().data_ptr() for t in frozen_tensors}
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in excluded:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        forward_backward()
    return sum(storages.values())


def memory_case(
    ours: OursTrainer, peft: PeftTrainer, frozen_models: Sequence[torch.nn.Module], data: tuple[torch.Tensor, ...], args
) -> dict[str, float]:
    """(c): print the memory table of one step, ours vs PEFT; returns the RESULT values. The key
    (``peak_mem_over_peft``) and saved activations on every device; RSS growth in subprocesses
    (``peak_rss_over_peft``) not on CUDA."""
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    runs = None if cuda else rss_runs(args)
    peak = {
        "ours": step_peak_bytes(lambda: ours.step(*data), device),
        "peft": step_peak_bytes(lambda: peft.step(*data), device),
    }
    frozen_tensors = [tensor for model in frozen_models for tensor in (*model.parameters(), *model.buffers())]
    saved = {
        "ours": saved_activation_bytes(lambda: joint_backward(ours.prompted, *data), frozen_tensors),
        "peft": saved_activation_bytes(
            lambda: peft.model(input_ids=data[0], attention_mask=data[1], labels=data[2]).loss.backward(),
            frozen_tensors,
        ),
    }
    ours.optimizer.zero_grad(set_to_none=True)
    peft.optimizer.zero_grad(set_to_none=True)
    mib = 2**20
    values = {"peak_mem_over_peft": peak["ours"] / peak["peft"]}
    key = (
        "peak allocated, MiB (CUDA max_memory_allocated; the key)"
        if cuda
        else "peak live tensors, MiB (profiler; the key)"
    )
    rows = [
        [
            key,
            f"{peak['ours'] / mib:.1f}",
            f"{peak['peft'] / mib:.1f}",
            f"{values['peak_mem_over_peft']:.3f}",
            "<= 1.00",
            "yes" if values["peak_mem_over_peft"] <= 1.0 else "NO",
        ]
    ]
    title = f"memory, batch {args.batch}"
    if runs is not None:
        rss = {side: statistics.median(r["growth_mib"] for r in results) for side, results in runs.items()}
        values["peak_rss_over_peft"] = rss["ours"] / rss["peft"]
        method = (
            "VmHWM - VmRSS" if all(r["hwm_reset"] for results in runs.values() for r in results) else "ru_maxrss growth"
        )
        rows.append(
            [
                f"peak RSS growth, MiB ({method}), median of {args.mem_runs}",
                f"{rss['ours']:.0f}",
                f"{rss['peft']:.0f}",
                f"{values['peak_rss_over_peft']:.3f}",
                "",
                "",
            ]
        )
        spread = {side: "/".join(f"{r['growth_mib']:.0f}" for r in results) for side, results in runs.items()}
        title += (
            f" (RSS runs ours {spread['ours']} MiB, PEFT {spread['peft']} MiB; "
            f"baseline RSS {runs['ours'][0]['base_rss_kib'] / 1024:.0f} MiB)"
        )
    values["saved_activations_over_peft"] = saved["ours"] / saved["peft"]
    rows.append(
        [
            "saved activations, MiB (autograd hooks)",
            f"{saved['ours'] / mib:.1f}",
            f"{saved['peft'] / mib:.1f}",
            f"{values['saved_activations_over_peft']:.3f}",
            "",
            "",
        ]
    )
    print_table(["memory (one step)", "ours", "PEFT", "ratio", "target", "met"], rows, title)
    return values


# --- main --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--batch", type=int, default=None, help="examples per step in (a) and (c) (default 32; quick 8)"
    )
    parser.add_argument("--length", type=int, default=None, help="input tokens (default 128; quick 32)")
    parser.add_argument("--target-length", type=int, default=4, help="target tokens, EOS included")
    parser.add_argument("--prompt-length", type=int, default=20, help="soft prompt length P")
    parser.add_argument("--n-prompts", type=int, default=5, help="prompts trained jointly in (b)")
    parser.add_argument(
        "--joint-batches", default=None, help="per-prompt batch sizes for (b) (default 8,32; quick 2,4)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per case (default 5; quick 2)")
    parser.add_argument(
        "--big-repeats",
        type=int,
        default=None,
        help="timed rounds for (b) cases above 64 joint rows (default 3; quick 2)",
    )
    parser.add_argument(
        "--epoch-examples",
        type=int,
        default=None,
        help="examples of mixed length in (d) (default 10 mega-batches: 500 batches)",
    )
    parser.add_argument(
        "--epoch-steps",
        type=int,
        default=None,
        help="evenly spaced steps of (d)'s epoch timed per side (default 16; quick 4)",
    )
    parser.add_argument(
        "--epoch-repeats", type=int, default=None, help="timed rounds in (d) and (e) (default 3; quick 2)"
    )
    parser.add_argument(
        "--order-steps", type=int, default=None, help="evenly spaced steps timed per side in (e) (default 6; quick 4)"
    )
    parser.add_argument(
        "--order-max-tokens",
        type=int,
        default=None,
        help="tokens per micro-pass in (e), as softprompt train --max-tokens (default 2048; quick 512)",
    )
    parser.add_argument("--mem-steps", type=int, default=2, help="steps per memory subprocess")
    parser.add_argument(
        "--mem-runs", type=int, default=None, help="memory subprocesses per side, not on CUDA (default 3; quick 1)"
    )
    add_common_args(parser)
    add_model_args(parser)
    parser.add_argument("--mem-child", choices=("ours", "peft"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    quick = args.quick
    args.batch = args.batch or (8 if quick else 32)
    args.length = args.length or (32 if quick else 128)
    args.repeats = args.repeats or (2 if quick else 5)
    args.big_repeats = args.big_repeats or (2 if quick else 3)
    args.mem_runs = args.mem_runs or (1 if quick else 3)
    args.epoch_examples = args.epoch_examples or 10 * MEGA_BATCHES * args.batch
    args.epoch_steps = args.epoch_steps or (4 if quick else 16)
    args.epoch_repeats = args.epoch_repeats or (2 if quick else 3)
    args.order_steps = args.order_steps or (4 if quick else 6)
    args.order_max_tokens = args.order_max_tokens or (512 if quick else 2048)
    joint_batches = [int(b) for b in (args.joint_batches or ("2,4" if quick else "8,32")).split(",")]
    if args.mem_child:
        memory_child(args.mem_child, args)
        return
    env = setup(args)
    device = torch.device(args.device)
    started = time.perf_counter()
    print(
        f"{env}; model {shape_name(args)} shape on {device}; "
        f"batch {args.batch}, input {args.length}, target {args.target_length}, P={args.prompt_length}"
    )

    frozen = model_for(args)
    peak_flops = matmul_peak(DTYPES[args.dtype], device)
    peft_base = copy.deepcopy(frozen.model)  # separate instance: PEFT mutates the model it wraps
    same = all(torch.equal(a, b) for a, b in zip(frozen.model.state_dict().values(), peft_base.state_dict().values()))
    if not same:
        raise SystemExit("the PEFT copy's weights differ from ours")
    ours = OursTrainer(frozen, 1, args.prompt_length, args.seed)
    peft = PeftTrainer(peft_base, args.prompt_length, init=ours.prompted.prompts.weight[0].detach())
    data = make_data(args.seed, args.batch, args.length, args.target_length, device)
    loss_ours, loss_peft = ours.loss(*data).item(), peft.loss(*data).item()
    print(f"check: identical weights; initial loss ours {loss_ours:.6f}, PEFT {loss_peft:.6f}")
    atol, rtol = (0.05, 0.02) if args.dtype != "float32" else (1e-4, 1e-4)  # bf16: the two sides round differently
    if abs(loss_ours - loss_peft) > max(atol, rtol * abs(loss_peft)):
        raise SystemExit("ours and PEFT compute different losses on the same prompt and data")

    # (a) one step, one prompt
    times = interleaved({"ours": lambda: ours.step(*data), "peft": lambda: peft.step(*data)}, args.repeats)
    rows = [timing_row(f"(a) train step, B={args.batch}", times["ours"], times["peft"], 1.0)]
    step_over_peft = ratio(times["ours"], times["peft"])
    input_length = args.prompt_length + args.length
    used = {
        f"step_B{args.batch}": (
            train_step_flops(frozen.config, args.batch, input_length, args.target_length),
            min(times["ours"]),
        )
    }

    # (b) N prompts jointly vs N separate one-prompt runs
    joint = OursTrainer(frozen, args.n_prompts, args.prompt_length, args.seed)
    separate = [OursTrainer(frozen, 1, args.prompt_length, args.seed + 1 + i) for i in range(args.n_prompts)]
    joint_ratios = {}
    for batch in joint_batches:
        bdata = make_data(args.seed + batch, batch, args.length, args.target_length, device)
        repeats = args.repeats if batch * args.n_prompts <= 64 else args.big_repeats

        def run_separate(bdata=bdata):
            for trainer in separate:
                trainer.step(*bdata)

        times = interleaved({"joint": lambda bdata=bdata: joint.step(*bdata), "separate": run_separate}, repeats)
        target = 0.85 if batch <= 8 else 1.0
        rows.append(
            timing_row(
                f"(b) {args.n_prompts} joint / {args.n_prompts} separate, B={batch}",
                times["joint"],
                times["separate"],
                target,
            )
        )
        joint_ratios[batch] = ratio(times["joint"], times["separate"])
        joint_flops = train_step_flops(frozen.config, args.n_prompts * batch, input_length, args.target_length)
        used[f"joint{args.n_prompts}_B{batch}"] = (joint_flops, min(times["joint"]))
    print_table(TIMING_HEADERS, rows, "time (baseline: (a) PEFT step; (b) separate runs)")
    print()
    for name, (flops, seconds) in used.items():
        print(utilisation_line(name, flops, seconds, peak_flops))

    # (c) memory
    memory_values = memory_case(ours, peft, [frozen.model, peft_base], data, args)
    length_values = length_case(frozen, args)
    order_values = data_order_case(frozen, joint_batches[0], args)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    emit_result(
        {
            "step_over_peft": step_over_peft,
            **{f"joint{args.n_prompts}_over_separate{args.n_prompts}_B{b}": r for b, r in joint_ratios.items()},
            **memory_values,
            **length_values,
            **order_values,
            **{
                f"utilisation_{name}": utilisation(flops, seconds, peak_flops)
                for name, (flops, seconds) in used.items()
            },
            "matmul_peak_gflops": peak_flops / 1e9,
            "device": str(device),
            "dtype": args.dtype,
            "shape": shape_name(args),
        }
    )


if __name__ == "__main__":
    main()
