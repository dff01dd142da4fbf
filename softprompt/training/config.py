"""Training configuration: one flat object of every concern's settings, validated in one place."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from softprompt.errors import SoftpromptError
from softprompt.model.attention import SITES
from softprompt.model.decoding import check_decoding, complete_decoding
from softprompt.model.prompts import parse_init
from softprompt.training.optim import OPTIMIZERS
from softprompt.training.settings import (
    AUTO_ONLY,
    DATA_ORDERS,
    LOGGING_ONLY,
    PREFIX_INITS,
    PREFIX_ONLY,
    PROMPT_ONLY,
    REPARAMS,
    VARIANT_DEFAULTS,
    DataSettings,
    LoggingSettings,
    ModelSettings,
    OptimSettings,
    PrefixSettings,
    PromptSettings,
    RunSettings,
    TransferSettings,
    ValidationSettings,
    VariantSettings,
)
from softprompt.training.tracking import parse_report_to
from softprompt.training.transfer import AUTO, check_init_from

# (optimizer, deep prefixes?) -> default lr. Each bank has its own recipe (softprompt.training.optim.BankOptimizer). Input
# prompts: Lester et al.'s Adafactor 0.3. Deep prefixes: AdamW 3e-4, as Li & Liang; Adafactor's per-element steps of
# 0.3 wreck the prefix MLP (t5-nano SST-2: constant predictions at 0.3, balanced accuracy 0.68-0.71 with AdamW 3e-4;
# docs/t5-nano.md), and AdamW 3e-4 leaves input prompts where they started (the demo's neighbour table).
DEFAULT_LR = {("adafactor", False): 0.3, ("adafactor", True): 0.3, ("adamw", False): 1e-3, ("adamw", True): 3e-4}


@dataclass
class TrainConfig(
    LoggingSettings,
    TransferSettings,
    ValidationSettings,
    OptimSettings,
    PrefixSettings,
    VariantSettings,
    PromptSettings,
    RunSettings,
    DataSettings,
    ModelSettings,
):
    """Everything ``softprompt train`` needs, one flat object; defaults follow Lester et al. 2021 where they apply.

    Its fields are declared by concern in ``softprompt.training.settings`` (``CONCERNS``, in field order: the bases
    above, last first), each with its default and ``--help`` text. Every setting is checked once, here (``validate``),
    with the CLI flag's name in the message.

    >>> cfg = TrainConfig(task="sst2", n_prompts=5, prompt_length=20, deep_prefix=True)
    >>> cfg.recipes()  # each bank its own optimiser: Lester et al.'s for input prompts, Li & Liang's for prefixes
    {'prompts': ('adafactor', 0.3), 'prefixes': ('adamw', 0.0003)}
    >>> cfg.prompt_seeds  # prompt i starts from seed + i
    (0, 1, 2, 3, 4)
    >>> TrainConfig(prefix_sites="encoder,cross").prefix_sites  # a comma-separated string, as the option takes it
    ('encoder', 'cross')
    >>> TrainConfig(n_prompts=0)
    Traceback (most recent call last):
    softprompt.errors.SoftpromptError: --n-prompts must be a positive integer, got 0
    """

    def __post_init__(self) -> None:
        self.prefix_sites = _names(self.prefix_sites)
        self.optimizer = self.optimizer or "adafactor"
        self.prefix_optimizer = self.prefix_optimizer or "adamw"
        if self.lr is None:
            self.lr = DEFAULT_LR.get((self.optimizer, False), 0.3)
        if self.prefix_lr is None:
            self.prefix_lr = DEFAULT_LR.get((self.prefix_optimizer, True), 3e-4)
        if self.prompt_seeds is None:
            self.prompt_seeds = tuple(self.seed + i for i in range(self.n_prompts))
        self.prompt_seeds = tuple(self.prompt_seeds)
        self.init_from, self.library = tuple(self.init_from), tuple(self.library)
        self.report_to = parse_report_to(self.report_to)
        self.train_file, self.validation_file = (_absolute(path) for path in (self.train_file, self.validation_file))
        self.decoding = complete_decoding(self.decoding)
        self.validate()

    def validate(self) -> None:
        """Raise a one-line ``SoftpromptError`` for the first invalid setting."""
        _positive("--n-prompts", self.n_prompts)
        if self.prompt_length < 0:
            raise SoftpromptError(f"--prompt-length must be >= 0, got {self.prompt_length}")
        if self.prompt_length == 0 and not self.deep_prefix:
            raise SoftpromptError("--prompt-length 0 leaves nothing to train; use a positive length or --deep-prefix")
        if self.prompt_length:
            parse_init(self.init)
        self._validate_variants()
        if self.deep_prefix:
            _positive("--prefix-length", self.prefix_length)
            if not self.prefix_sites or any(site not in SITES for site in self.prefix_sites):
                raise SoftpromptError(
                    f"--prefix-sites must be a non-empty subset of {','.join(SITES)}, got {','.join(self.prefix_sites)}"
                )
            if self.prefix_init.startswith("text:"):
                parse_init(self.prefix_init, "--prefix-init")  # an empty text is an error
            elif self.prefix_init not in PREFIX_INITS:
                raise SoftpromptError(
                    f"--prefix-init must be one of {', '.join(PREFIX_INITS)}, got {self.prefix_init!r}"
                )
            if self.reparam_dim < 0 or self.reparam_hidden < 1:
                raise SoftpromptError("--reparam-dim must be >= 0 (0: no MLP) and --reparam-hidden >= 1")
        if self.data_order not in DATA_ORDERS:
            raise SoftpromptError(f"--data-order must be one of {', '.join(DATA_ORDERS)}, got {self.data_order!r}")
        if not isinstance(self.group_by_length, bool):
            raise SoftpromptError(f"--group-by-length is a flag: true or false, got {self.group_by_length!r}")
        for name in (
            "steps",
            "batch_size",
            "eval_every",
            "checkpoint_every",
            "log_every",
            "max_source_length",
            "max_target_length",
        ):
            _positive("--" + name.replace("_", "-"), getattr(self, name))
        for flag, name, lr in (("", self.optimizer, self.lr), ("prefix-", self.prefix_optimizer, self.prefix_lr)):
            if name not in OPTIMIZERS:
                raise SoftpromptError(f"unknown --{flag}optimizer {name!r}; use one of: {', '.join(OPTIMIZERS)}")
            if not lr > 0:
                raise SoftpromptError(f"--{flag}lr must be > 0, got {lr}")
        if self.weight_decay < 0:
            raise SoftpromptError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.max_grad_norm <= 0:
            raise SoftpromptError(f"--max-grad-norm must be > 0, got {self.max_grad_norm}")
        if len(self.prompt_seeds) != self.n_prompts:
            raise SoftpromptError(
                f"{len(self.prompt_seeds)} prompt seeds given for {self.n_prompts} prompts; give one per prompt"
            )
        check_decoding(self.decoding)
        check_init_from(self.init_from, self.library)
        _positive("--probe-steps", self.probe_steps)
        for name in ("eval_size", "patience", "train_size", "max_tokens"):
            value = getattr(self, name)
            if value is not None:
                _positive("--" + name.replace("_", "-"), value)

    def _validate_variants(self) -> None:
        """Check the prompt variants' settings (--prompt-reparam, --dept-rank): both act on input prompts."""
        if self.prompt_reparam not in REPARAMS:
            raise SoftpromptError(f"--prompt-reparam must be one of {', '.join(REPARAMS)}, got {self.prompt_reparam!r}")
        if self.dept_rank < 0:
            raise SoftpromptError(f"--dept-rank must be >= 0 (0: no DePT update), got {self.dept_rank}")
        for flag, used in (
            ("--prompt-reparam residual", self.prompt_reparam != "none"),
            ("--dept-rank", self.dept_rank),
        ):
            if used and not self.prompt_length:
                raise SoftpromptError(f"{flag} acts with input prompts; give a positive --prompt-length")
        if self.prompt_reparam != "none":
            _positive("--prompt-reparam-hidden", self.prompt_reparam_hidden)
            if not 0 <= self.prompt_reparam_dropout < 1:
                raise SoftpromptError(f"--prompt-reparam-dropout must be in [0, 1), got {self.prompt_reparam_dropout}")
        if self.dept_rank and not self.dept_lr > 0:
            raise SoftpromptError(f"--dept-lr must be > 0, got {self.dept_lr}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in artefacts and checkpoints)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def order_seeds(self) -> tuple[int, ...]:
        """The seeds of the run's data orders: one (``seed``) shared by all prompts, or one per prompt."""
        return self.prompt_seeds if self.data_order == "per-prompt" else (self.seed,)

    def recipes(self) -> dict[str, tuple[str, float]]:
        """Each bank's (optimizer, lr): ``prompts`` (input prompts, and their residual MLPs), ``prefixes`` (deep
        prefixes) and, in DePT runs, ``dept`` (the low-rank updates: AdamW, as Shi & Lipani)."""
        recipes = {"prompts": (self.optimizer, self.lr), "prefixes": (self.prefix_optimizer, self.prefix_lr)}
        return recipes | ({"dept": ("adamw", self.dept_lr)} if self.dept_rank else {})

    def differences(self, stored: dict[str, Any], ignore: Iterable[str] = ()) -> list[str]:
        """Settings in which ``stored`` (another run's ``to_dict()``, read back from JSON) differs from
        this config, except ``ignore`` and ``LOGGING_ONLY``. A concern's settings count only where either run uses it:
        ``PREFIX_ONLY`` when either trains deep prefixes, ``PROMPT_ONLY`` (the input prompts' init and recipe) when
        either trains input prompts, ``AUTO_ONLY`` (--library, --probe-steps) when either used --init-from auto."""
        # runs written before prompt transfer started from no run; before --group-by-length, drew plain shuffled batches;
        # before --data-order, one order for every prompt
        # before --subsample-seed was recorded, a run's subset was that of seed 0 unless the seed was given (not knowable)
        # before prompt variants, plain prompts
        stored = {
            "init_from": [],
            "group_by_length": False,
            "data_order": "shared",
            "subsample_seed": 0,
            **VARIANT_DEFAULTS,
            **stored,
        }
        stored |= {
            key: _absolute(stored.get(key)) for key in ("train_file", "validation_file")
        }  # earlier runs kept the path as given
        if stored.get("decoding") is not None:  # runs written before --no-repeat-ngram-size decoded without it
            stored["decoding"] = complete_decoding(stored["decoding"])
        if "prefix_optimizer" not in stored:  # runs written before per-bank optimisers used one recipe for every bank
            stored = {"prefix_optimizer": stored.get("optimizer"), "prefix_lr": stored.get("lr"), **stored}
        skip = set(ignore) | set(LOGGING_ONLY)
        skip |= set() if self.deep_prefix or stored.get("deep_prefix") else set(PREFIX_ONLY)
        skip |= set() if self.prompt_length or stored.get("prompt_length") else set(PROMPT_ONLY)
        skip |= set() if AUTO in self.init_from or AUTO in stored["init_from"] else set(AUTO_ONLY)
        mine = json.loads(json.dumps(self.to_dict()))
        return sorted(k for k in mine.keys() | stored.keys() if k not in skip and stored.get(k) != mine.get(k))


def _absolute(path: str | None) -> str | None:
    """A data file's absolute path (resumes compare files, not spellings of their paths)."""
    return str(Path(path).resolve()) if path else path


def _names(value: str | Iterable[str]) -> tuple[str, ...]:
    """``"encoder, cross"`` (or a sequence of names) -> ("encoder", "cross")."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(name.strip() for name in items if name.strip())


def _positive(flag: str, value: int) -> None:
    if value < 1:
        raise SoftpromptError(f"{flag} must be a positive integer, got {value}")
