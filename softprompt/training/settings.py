"""The training settings, declared once, by concern: each field carries its default and its ``--help`` text.

``softprompt.training.config.TrainConfig`` is all of them in one flat object (validated there, in one place); the
command line generates train's and sweep's options from these fields (``softprompt.cli.config_options``), so an option
is declared here and nowhere else. Light on purpose (no torch): the CLI reads these fields at start-up.

A field's metadata holds ``help`` and, where the command line differs from a plain ``--kebab-name VALUE``:
``choices``, ``path`` (a file or folder), ``multiple`` (a repeatable option), ``cli_default`` (the command line's
default, resolved later: ``--init auto``) or ``option=False`` (a setting with no option of its own).

>>> [f.name for f in fields(PrefixSettings)][:3]
['deep_prefix', 'prefix_length', 'prefix_sites']
>>> PREFIX_ONLY[:2], PROMPT_ONLY, AUTO_ONLY  # a concern's settings that count only in runs that use it
(('prefix_length', 'prefix_sites'), ('init', 'optimizer', 'lr'), ('library', 'probe_steps'))
>>> fields(PromptSettings)[0].metadata["help"]
'input prompt length P (0 = deep prefix only)'
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from softprompt.data.tasks import GENERATION_METRICS, classification_metric_names
from softprompt.model.decoding import DECODING_DEFAULTS

# written out (the modules that own them import torch; tests check they agree): softprompt.training.optim.OPTIMIZERS,
# softprompt.model.attention.SITES, softprompt.model.reparam.REPARAMS
OPTIMIZERS = ("adafactor", "adamw")
SITES = ("encoder", "decoder", "cross")
DTYPES = ("float32", "bfloat16")
# shared: every prompt reads the step's one batch (drawn from --seed); per-prompt: prompt i reads its own batches,
# drawn from its prompt seed, so a joint run equals N separate one-prompt runs (softprompt.training.loop.joint_backward)
DATA_ORDERS = ("shared", "per-prompt")
REPARAMS = ("none", "residual")  # softprompt.model.reparam.REPARAMS
PREFIX_INITS = ("random", "class-label", 'text:"..."')  # class-label: the label words' real-word activations

MODEL_HELP = (
    "embedded model (t5-nano, or its siblings t5-nano-s, t5-nano-m: pre-trained here, shipped inside the package; "
    "runs offline), hub name of a T5-family model, short alias (t5-small … t5-11b, t5-xl/t5-xxl = LM-adapted v1.1, "
    "t5-lm-*, flan-t5-*, mt5-*, umt5-*, byt5-*, ul2, flan-ul2) or local directory"
)
TASK_HELP = (
    "built-in task (boolq, cb, copa, rte, wic, wsc, multirc, sst2, mrpc, qqp, e2e_nlg, webnlg, xsum) or 'custom'"
)
TASK_METRIC_HELP = (
    "custom task: primary metric, which picks each prompt's best validation step and the best prompt in "
    f"reports; classification: {', '.join(classification_metric_names(2))} (f1: two label words only); "
    f"generation: {', '.join(GENERATION_METRICS)} [default: accuracy; bleu]"
)


def setting(default: Any, help: str, **cli: Any) -> Any:
    """A dataclass field holding ``default``, with its ``help`` text and command-line form (``cli``) as metadata."""
    metadata = {"help": help, **cli}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class ModelSettings:
    """The frozen model and where it runs."""

    model: str = setting("t5-nano", MODEL_HELP)
    dtype: str = setting("float32", "frozen model dtype (prompts stay fp32)", choices=DTYPES)
    device: str = setting(
        "auto",
        "auto (a GPU if there is one, this process's under accelerate launch; else the CPU), cpu, cuda, cuda:1, ...",
    )
    device_map: str | None = setting(
        None, "spread a model too large for one device over all GPUs (t5-xxl)", choices=("auto",)
    )
    gradient_checkpointing: bool = setting(False, "recompute activations in backward: less memory, more compute")


@dataclass
class DataSettings:
    """The task, its data, and how much of each example the model reads."""

    task: str = setting("boolq", TASK_HELP)
    input_template: str | None = setting(None, "custom task: model input, e.g. 'review: {sentence}'")
    label_column: str | None = setting(None, "custom classification task: column holding the label")
    label_words: str | None = setting(
        None,
        "custom classification task: raw label -> word, e.g. 0=negative,1=positive [train, sweep: when the "
        "--train-file label column already holds words (ham, spam), each names itself]",
    )
    target_column: str | None = setting(None, "custom generation task: column holding the target text")
    task_name: str | None = setting(
        None,
        "custom task: its name in reports, run metadata and `softprompt serve`, e.g. spam (letters, digits, _.-) "
        "[default: custom]",
    )
    task_metric: str | None = setting(None, TASK_METRIC_HELP)  # None (and runs from before it): accuracy or bleu
    train_file: str | None = setting(
        None, "local training data (.jsonl/.json/.csv/.tsv); default: the task's hub dataset", path=True
    )
    validation_file: str | None = setting(None, "local validation data; default: the task's hub dataset", path=True)
    train_size: int | None = setting(None, "subsample the training set to this many examples (low-data runs)")
    # recorded, so a resume draws the same subset
    subsample_seed: int = setting(0, "seed of the training subsample")
    max_source_length: int = setting(
        256,
        "longest input in tokens, the prompt not counted (longer ones are truncated); ensemble-eval and predict "
        "default to it",
    )
    max_target_length: int = setting(64, "longest training target in tokens (longer ones are truncated)")


@dataclass
class RunSettings:
    """Where the run goes, how many prompts it trains and their seeds."""

    output_dir: str = setting("runs/boolq", "where artefacts and checkpoints go", path=True)
    n_prompts: int = setting(5, "prompts trained jointly in one batched pass")
    seed: int = setting(
        0,
        "data-order seed; prompt i is initialised from seed+i (with --data-order per-prompt, also draws its batches "
        "from it)",
    )
    prompt_seeds: tuple[int, ...] | None = setting(
        None, "each prompt's seed [default: seed, seed+1, ...]", option=False
    )


@dataclass
class PromptSettings:
    """Input prompts (Lester et al.): P vectors in front of the input embeddings, with their own optimiser."""

    prompt_length: int = setting(100, "input prompt length P (0 = deep prefix only)")
    init: str = setting(
        "class-label",
        'auto (class-label for classification, else sampled-vocab) | random-uniform | sampled-vocab | class-label | text:"..."',
        cli_default="auto",
    )
    optimizer: str | None = setting(
        None, "input prompts' optimizer [default: adafactor (Lester et al.)]", choices=OPTIMIZERS
    )
    lr: float | None = setting(None, "input prompts' learning rate [default: adafactor 0.3; adamw 1e-3]")


@dataclass
class VariantSettings:
    """Prompt variants: input prompts reparameterised by a residual MLP, or a shorter prompt plus DePT's update."""

    prompt_reparam: str = setting(
        "none",
        "residual: train each input prompt through its own bottleneck MLP with LayerNorm and a skip (Razdaibiedina et "
        "al. 2023), folded into plain prompts when training ends",
        choices=REPARAMS,
    )
    prompt_reparam_hidden: int = setting(128, "--prompt-reparam residual: the MLP's bottleneck size m")
    prompt_reparam_dropout: float = setting(0.0, "--prompt-reparam residual: dropout on the MLP's output")
    dept_rank: int = setting(
        0,
        "DePT (Shi & Lipani 2024): rank r of each prompt's low-rank update A (s×r) @ B (r×d) of the first s = "
        "--max-source-length input token embeddings, trained next to a (shorter) prompt (0 = off)",
    )
    dept_lr: float = setting(1e-4, "DePT update's learning rate (its own AdamW)")


@dataclass
class PrefixSettings:
    """Deep prefixes (Li & Liang): keys and values at every attention layer, through an MLP, with their own optimiser."""

    deep_prefix: bool = setting(False, "also train key/value prefixes at every attention layer (Li & Liang)")
    prefix_length: int = setting(10, "deep prefix length Pp")
    prefix_sites: tuple[str, ...] = setting(SITES, "attention sites that get prefixes (comma-separated)")
    prefix_init: str = setting(
        "random",
        'random | class-label | text:"..." (class-label and text: the real-word activations of the label words or '
        "the text, Li & Liang)",
    )
    reparam_dim: int = setting(512, "prefix MLP input size k (0 = train prefixes directly)")
    reparam_hidden: int = setting(512, "prefix MLP hidden size")
    keep_reparam: bool = setting(
        False,
        "also save the unfolded prefix MLP (prefixes_reparam.safetensors) and residual prompt MLPs "
        "(prompts_reparam.safetensors); inference loads the folded prefixes and prompts",
    )
    prefix_optimizer: str | None = setting(
        None,
        "deep prefixes' optimizer, stepped with the prompts' [default: adamw (Li & Liang)]",
        choices=OPTIMIZERS,
    )
    prefix_lr: float | None = setting(None, "deep prefixes' learning rate [default: adamw 3e-4; adafactor 0.3]")


@dataclass
class OptimSettings:
    """Steps, batches and the gradient: what every bank's update shares."""

    steps: int = setting(30000, "training steps")
    batch_size: int = setting(32, "examples per step (each repeated once per prompt)")
    group_by_length: bool = setting(
        False,
        "draw each batch from examples of similar input length, so batches pad less (faster on inputs of mixed "
        "length): shuffle, cut into mega-batches of 50 batches, sort each by token length, longest batch first; the "
        "same order per --seed, also on --resume",
    )
    data_order: str = setting(
        "shared",
        "shared: every prompt sees the same batch each step; per-prompt: prompt i draws its own batches from --seed + "
        "i, so the run equals N separate one-prompt runs with seeds --seed .. --seed+N-1 (independent ensemble "
        "members, as Lester et al.'s); a step then holds N·B distinct examples, which pad to their longest unless "
        "--max-tokens splits them",
        choices=DATA_ORDERS,
    )
    max_tokens: int | None = setting(
        None,
        "tokens per pass (rows × padded prompt + source + target length): a step's N·B rows run as passes of similar "
        "length, accumulating the same gradient, so a step pads less and its peak memory is bounded (e.g. 2048 on "
        "CPU; on a GPU the largest that fits); validation passes too [default: a step is one pass; validation 8,192 "
        "on CPU, 65,536 on CUDA]",
    )
    weight_decay: float = setting(1e-5, "weight decay of every bank's optimizer")
    max_grad_norm: float = setting(1.0, "per-prompt gradient-norm clip")


@dataclass
class ValidationSettings:
    """When the run validates (keeping each prompt's best step), stops early and checkpoints."""

    eval_every: int = setting(1000, "validate every k steps (best step kept per prompt)")
    eval_size: int | None = setting(None, "validate on at most this many examples")
    patience: int | None = setting(None, "stop after this many validations without improvement")
    checkpoint_every: int = setting(1000, "checkpoint every k steps (for --resume)")
    decoding: dict[str, Any] = setting(
        DECODING_DEFAULTS,
        "generation tasks: how validation decodes (--max-new-tokens, --num-beams, --no-repeat-ngram-size); a setting "
        "left out is its default",
        option=False,
    )


@dataclass
class TransferSettings:
    """Prompt transfer (SPoT): start from other runs' prompts, or from the library prompts closest to a probe."""

    init_from: tuple[str, ...] = setting(
        (),
        "start from trained prompts (SPoT): RUN (all its prompts) or RUN#i, repeatable; one source for every prompt "
        "or one per prompt; 'auto': the --library prompts closest to a short probe",
        multiple=True,
    )
    library: tuple[str, ...] = setting(
        (),
        "--init-from auto: run directories to retrieve the source prompts from (repeatable)",
        multiple=True,
        path=True,
    )
    probe_steps: int = setting(100, "--init-from auto: training steps of the target probe compared with the library")


@dataclass
class LoggingSettings:
    """What a run records about itself: they never change what it trains."""

    log_every: int = setting(
        10, "add each prompt's training loss, gradient norm and the lr to the run's history every k steps"
    )
    report_to: tuple[str, ...] = setting(
        (),
        "experiment trackers (accelerate): tensorboard, wandb, mlflow, comet_ml, aim, clearml, dvclive, ... "
        'comma-separated, all or none; pip install "softprompt[tracking]"',
        cli_default="none",
    )


# TrainConfig's concerns, in the order of its fields and of train's --help
CONCERNS = (
    ModelSettings,
    DataSettings,
    RunSettings,
    PromptSettings,
    VariantSettings,
    PrefixSettings,
    OptimSettings,
    ValidationSettings,
    TransferSettings,
    LoggingSettings,
)


def names(concern: type) -> tuple[str, ...]:
    """The settings a concern declares, in order."""
    return tuple(f.name for f in fields(concern))


def used_only_with(concern: type, switch: str) -> tuple[str, ...]:
    """A concern's settings other than its ``switch``: they matter only in runs that use the concern
    (``TrainConfig.differences`` compares them only then)."""
    return tuple(name for name in names(concern) if name != switch)


PROMPT_ONLY = used_only_with(PromptSettings, "prompt_length")  # counts only when either run trains input prompts
PREFIX_ONLY = used_only_with(PrefixSettings, "deep_prefix")  # counts only when either run trains deep prefixes
AUTO_ONLY = used_only_with(TransferSettings, "init_from")  # used only by --init-from auto
VARIANT_DEFAULTS = {f.name: f.default for f in fields(VariantSettings)}  # what runs from before variants trained
LOGGING_ONLY = names(LoggingSettings)  # change what a run records, never what it trains
