"""Load encoder-decoders of the T5 family frozen, by hub name, short alias or local directory.

The family (``softprompt.model.families``: t5 with ByT5 and UL2, mt5, umt5, t5gemma, t5gemma2) is read from the
config and picks the transformers class and the attention implementation; the tokenizer is checked to fit the model
(``check_vocab``, ``check_tokenizer_reads``).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from softprompt.errors import SoftpromptError
from softprompt.model.distributed import default_device
from softprompt.model.families import family_name, geometry_of, model_family
from softprompt.model.hub import ask_hub, first_line
from softprompt.model.layouts import Geometry

ASSETS = Path(__file__).resolve().parents[1] / "assets"  # softprompt/assets
TOKENIZER_DIR = ASSETS / "t5-tokenizer"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")  # the vendored tokenizer, also in each embedded model
NANO_DIR = ASSETS / "t5-nano"  # the embedded pre-trained default (docs/t5-nano.md)
# Pre-trained T5s shipped inside the package, by name: the default and the other sizes
# of its recipe (softprompt.nano.lineage.SIZES) for offline model-scale curves.
EMBEDDED: dict[str, Path] = {"t5-nano": NANO_DIR, "t5-nano-s": ASSETS / "t5-nano-s", "t5-nano-m": ASSETS / "t5-nano-m"}

# Short names. T5 v1.1 checkpoints only saw span corruption, so the bare size names that have no
# original-T5 checkpoint (xl, xxl) resolve to the LM-adapted v1.1 checkpoints that Lester et al.
# prompt-tune; the original sizes keep their own hub names (t5-small ... t5-11b).
ALIASES: dict[str, str] = {
    **{f"t5-{s}": f"google-t5/t5-{s}" for s in ("small", "base", "large", "3b", "11b")},
    "t5-xl": "google/t5-xl-lm-adapt",
    "t5-xxl": "google/t5-xxl-lm-adapt",
    **{f"t5-lm-{s}": f"google/t5-{s}-lm-adapt" for s in ("small", "base", "large", "xl", "xxl")},
    **{f"t5-v1_1-{s}": f"google/t5-v1_1-{s}" for s in ("small", "base", "large", "xl", "xxl")},
    **{f"flan-t5-{s}": f"google/flan-t5-{s}" for s in ("small", "base", "large", "xl", "xxl")},
    **{f"mt5-{s}": f"google/mt5-{s}" for s in ("small", "base", "large", "xl", "xxl")},
    **{f"byt5-{s}": f"google/byt5-{s}" for s in ("small", "base", "large", "xl", "xxl")},
    **{f"umt5-{s}": f"google/umt5-{s}" for s in ("small", "base", "xl", "xxl")},  # umT5 has no "large"
    "ul2": "google/ul2",
    "flan-ul2": "google/flan-ul2",
    # T5Gemma (gated on the hub: accept Gemma's licence there first). Seen on the hub: 2b-2b and 9b-9b in all four
    # variants, 9b-2b-prefixlm, b-b-prefixlm-it, s-s-prefixlm-it, xl-xl-ul2; the others are named by the model card's
    # statement that every size comes pretrained with PrefixLM and with UL2, each also instruction-tuned (-it).
    **{
        f"t5gemma-{size}-{objective}{tuned}": f"google/t5gemma-{size}-{objective}{tuned}"
        for size in ("2b-2b", "9b-2b", "9b-9b", "s-s", "b-b", "l-l", "ml-ml", "xl-xl")
        for objective in ("prefixlm", "ul2")
        for tuned in ("", "-it")
    },
    # T5Gemma 2: the three pre-trained sizes of its release (no instruction-tuned checkpoints were released)
    **{f"t5gemma2-{size}": f"google/t5gemma-2-{size}" for size in ("270m-270m", "1b-1b", "4b-4b")},
}

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass
class FrozenT5:
    """A frozen encoder-decoder of the T5 family, its tokenizer, and the name it was loaded by."""

    model: PreTrainedModel  # T5ForConditionalGeneration or its family's class (families.FAMILIES)
    tokenizer: PreTrainedTokenizerBase
    name: str

    @property
    def config(self) -> PretrainedConfig:
        return self.model.config

    @property
    def family(self) -> str:
        """The model's family (``softprompt.model.families``): t5, mt5, umt5, t5gemma or t5gemma2."""
        return family_name(self.config)

    @property
    def geometry(self) -> Geometry:
        """What the banks must match: ``d_model`` (prompt width), vocabulary, each site's layers, heads, head size."""
        return geometry_of(self.config)

    def parameter_count(self) -> int:
        """Number of (frozen) base-model parameters."""
        return sum(p.numel() for p in self.model.parameters())


def resolve_model_name(name: str) -> str:
    """Map a short alias (``t5-xl``) to its hub id; local directories and other names pass through."""
    if os.path.isdir(name):
        return name
    if name in EMBEDDED:
        directory = EMBEDDED[name]
        if not (directory / "config.json").is_file():
            raise SoftpromptError(
                f"{name}'s files are missing from this installation ({directory}); reinstall softprompt "
                "or pass --model with a hub name (e.g. t5-small) or a local T5 directory"
            )
        return str(directory)
    return ALIASES.get(name, name)


def model_typo_hint(name: str) -> str:
    """``"did you mean 't5-nano'? "`` when ``name`` is likely a typo of an embedded model, an alias or a hub id they
    stand for (``google/flan-t5-bse``), else ""."""
    known = sorted(set(ALIASES.values())) if "/" in name else [*EMBEDDED, *ALIASES]
    if name in known:
        return ""
    close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.85)
    return f"did you mean {close[0]!r}? " if close else ""


def check_model_available(name: str) -> str:
    """Where ``name`` loads from (``resolve_model_name``), checked to be there without downloading anything.

    A local directory needs a config and weights. A hub model is there when the local Hugging Face cache has its config,
    or else the hub answers one request for it (no retries); when it does not, one line says whether the name is
    wrong or the hub is out of reach, instead of half a minute of huggingface_hub retries. A download is left to
    ``load_frozen_t5``.
    """
    source = resolve_model_name(name)
    _check_local_dir(source)
    if not os.path.isdir(source):
        _check_hub_model(name, source)
    return source


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    """Turn off gradients for every parameter and put the model in eval mode (dropout off)."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


def load_frozen_t5(
    name: str,
    dtype: str = "float32",
    device: str = "cpu",
    attn_implementation: str | None = None,
    device_map: str | None = None,
    texts: Sequence[str] = (),
) -> FrozenT5:
    """Load an encoder-decoder of the T5 family and its tokenizer, frozen, in ``dtype`` on ``device``.

    ``device="auto"``: this process's GPU under ``accelerate launch`` / the only GPU, else the CPU.
    ``device_map="auto"``: spread a model too large for one device over all of them (accelerate).
    The family (``softprompt.model.families``) picks the class and, when ``attn_implementation`` is None, the attention
    (sdpa, but eager for T5Gemma, which has no other); a model type outside it, or an implementation the family does
    not run, is one line. T5Gemma's (and T5Gemma 2's) Gemma tokenizer is set to T5's convention
    (``eos_after_every_text``). The tokenizer must fit the model (``check_vocab``) and read ``texts``, the first
    inputs the model will see (``check_tokenizer_reads``).

    >>> frozen = load_frozen_t5("t5-nano")  # the embedded default; or a hub name ("t5-xl") or a local directory
    >>> frozen.config.d_model, any(p.requires_grad for p in frozen.model.parameters())
    (192, False)
    """
    if dtype not in DTYPES:
        raise SoftpromptError(f"unknown --dtype {dtype!r}; use one of: {', '.join(DTYPES)}")
    target = resolve_device(device) if device_map is None else None
    source = check_model_available(name)
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError, KeyError) as error:  # missing/invalid config.json, unknown model_type
        raise SoftpromptError(
            f"cannot load model config for {name!r} ({first_line(error)}); {model_typo_hint(name)}pass a local directory "
            "with config.json and weights, or a hub name while online"
        ) from None
    family = model_family(config, name)
    attention = attn_implementation or family.attention[0]
    if attention not in family.attention:
        raise SoftpromptError(
            f"{name!r} is a {family.name} model, which runs attn_implementation {' or '.join(family.attention)} only, "
            f"not {attention!r}"
        )
    try:
        model = family.model_class.from_pretrained(
            source, dtype=DTYPES[dtype], attn_implementation=attention, device_map=device_map
        )
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:  # missing, truncated or mismatched weights
        raise SoftpromptError(
            f"cannot load weights for {name!r} ({first_line(error)}); the weight files are missing or corrupted, "
            "re-save the model with save_pretrained() or download it again"
        ) from None
    tokenizer = load_tokenizer(source)
    if family.eos_tokens:
        eos_after_every_text(tokenizer)
    check_vocab(tokenizer, model.config, name)
    check_tokenizer_reads(tokenizer, texts, name)
    if DTYPES[dtype] != torch.float32:
        keep_wo_in_fp32(model)
    if target is not None:
        model = model.to(target)
    return FrozenT5(freeze(model), tokenizer, name)


def resolve_device(device: str) -> torch.device:
    """``"auto"``: this process's device (``distributed.default_device``); else ``device``, checked to exist here."""
    if device == "auto":
        return default_device()
    try:
        target = torch.device(device)
    except RuntimeError:
        raise SoftpromptError(f"unknown --device {device!r}; use auto, cpu, cuda or cuda:N") from None
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if target.type == "cuda" and (target.index or 0) >= count:
        found = f"{count} CUDA device(s)" if count else "no CUDA device (or a CPU-only torch)"
        raise SoftpromptError(f"--device {device}: this machine has {found}; use --device auto or cpu")
    return target


def keep_wo_in_fp32(model: PreTrainedModel) -> None:
    """Upcast the feed-forward output projections (``wo``) to fp32, as T5 needs in half precision.

    T5 was trained in bf16 but its ``wo`` activations overflow in fp16 and lose precision in bf16;
    transformers upcasts them for fp16 only. Its feed-forward casts its input to ``wo``'s dtype.
    """
    for name, module in model.named_modules():
        if name.endswith(".wo"):
            module.float()


def enable_gradient_checkpointing(model: PreTrainedModel) -> None:
    """Recompute activations in the backward pass instead of storing them (for prompts and prefixes).

    transformers only checkpoints in training mode, so the model is put in training mode with every
    dropout probability set to zero: the frozen model computes exactly what it computes in eval.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if hasattr(module, "dropout") and isinstance(module.dropout, float):  # T5Attention's attention dropout
            module.dropout = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):  # T5Gemma's attention dropout
            module.attention_dropout = 0.0
    # transformers 5.24 renamed gradient_checkpointing_enable (the old name warns, and goes in v6)
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()


def load_tokenizer(source: str | os.PathLike = TOKENIZER_DIR) -> PreTrainedTokenizerBase:
    """The tokenizer stored with ``source``; the vendored T5 vocabulary when a directory has no tokenizer files
    (``check_vocab`` then refuses it for a model of another vocabulary)."""
    if os.path.isdir(source) and not _has_tokenizer(Path(source)):
        source = TOKENIZER_DIR
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise SoftpromptError(f"cannot load tokenizer from {str(source)!r}: {first_line(error)}") from None


def eos_after_every_text(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Set a Gemma-style tokenizer (BOS in front of every text, nothing after it, padding on the left) to the
    convention of T5's, which softprompt's data follows: EOS after every input and target (a target's EOS is what
    generation learns to stop at and what rank classification scores last), no BOS, padding on the right (labels and
    prompts in front assume it). T5Gemma's and T5Gemma 2's decoders start from BOS themselves.

    >>> from transformers import GemmaTokenizer
    >>> gemma = GemmaTokenizer(add_bos_token=True)  # Gemma's special tokens alone: pad 0, eos 1, bos 2, unk 3
    >>> gemma("<unk>").input_ids, eos_after_every_text(gemma)("<unk>").input_ids, gemma.padding_side
    ([2, 3], [3, 1], 'right')
    """
    tokenizer.add_bos_token = False
    tokenizer.add_eos_token = True
    tokenizer.padding_side = "right"
    return tokenizer


def check_vocab(tokenizer: PreTrainedTokenizerBase, config: PretrainedConfig, name: str) -> None:
    """Fail when the tokenizer cannot serve the model: it can emit ids the model has no embedding for, or it has
    far fewer tokens (under half) than the model has embedding rows, as a tokenizer built without its vocabulary
    file has (T5's: 104 tokens that read every word as <unk>). Checkpoints pad their rows a little beyond their
    tokenizer (T5: 32100 tokens, 32128 rows), never to twice its size."""
    vocab_size = geometry_of(config).vocab_size  # the encoder's embedding rows (T5Gemma: its encoder config's)
    if len(tokenizer) > vocab_size:
        raise SoftpromptError(
            f"tokenizer of {name!r} has {len(tokenizer)} tokens but the model's vocabulary has "
            f"{vocab_size}; use the tokenizer the model was trained with"
        )
    if 2 * len(tokenizer) < vocab_size:
        raise SoftpromptError(
            f"tokenizer of {name!r} has {len(tokenizer)} tokens for the model's {vocab_size} embedding rows, "
            "so it is not the model's own (one built without its vocabulary file reads every word as <unk>); save "
            "the tokenizer the model was trained with beside it (tokenizer.save_pretrained(DIR))"
        )


def check_tokenizer_reads(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], name: str, sample: int = 32
) -> None:
    """Fail when the tokenizer reads most words of the first ``sample`` texts as its unknown token: it does not fit
    the inputs (or the model). A tokenizer without an unknown token (ByT5's bytes) reads everything."""
    unknown_id = tokenizer.unk_token_id
    words = [word for text in list(texts)[:sample] for word in text.split()]
    if unknown_id is None or not words:
        return
    unknown = sum(unknown_id in ids for ids in tokenizer(words, add_special_tokens=False).input_ids)
    if 2 * unknown > len(words):
        raise SoftpromptError(
            f"the tokenizer of {name!r} reads {unknown} of the first {len(words)} input words as "
            f"{tokenizer.unk_token}; it does not fit these inputs: use the tokenizer the model was trained with "
            "(saved beside the model) or a model whose vocabulary covers the inputs' language"
        )


def save_model_dir(frozen: FrozenT5, directory: str | os.PathLike) -> None:
    """Write model weights (safetensors), config and tokenizer to ``directory``."""
    frozen.model.save_pretrained(directory)
    frozen.tokenizer.save_pretrained(directory)


def _check_local_dir(source: str) -> None:
    path = Path(source)
    looks_local = path.is_absolute() or source.startswith(".") or path.exists()
    if not looks_local:
        return
    if not path.is_dir():
        raise SoftpromptError(f"model directory {source!r} does not exist; pass a hub name or an existing directory")
    if not (path / "config.json").is_file():
        raise SoftpromptError(f"model directory {source!r} has no config.json; save it with save_pretrained()")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise SoftpromptError(
            f"model directory {source!r} has no weights (*.safetensors); save it with save_pretrained()"
        )


def _check_hub_model(name: str, repo_id: str) -> None:
    answer, hint = ask_hub(repo_id, "config.json"), model_typo_hint(name)
    if answer.status == "invalid":
        raise SoftpromptError(
            f"model {name!r} is neither a local directory nor a hub name ({answer.detail}); "
            f"{hint}pass a local T5 directory or a hub name such as google/flan-t5-base"
        )
    if answer.status == "offline":
        raise SoftpromptError(
            f"model {name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; {hint}"
            f"download it while online (hf download {repo_id}), or pass a local T5 directory"
        )
    if answer.status == "not found":
        raise SoftpromptError(
            f"model {name!r} is neither a local directory nor a model on the Hugging Face hub; "
            f"{hint}check the spelling, log in (hf auth login) if it is private, or pass a local T5 directory"
        )
    if answer.status == "unreachable":
        raise SoftpromptError(
            f"cannot reach the Hugging Face hub for model {name!r} ({answer.detail}) and it is not in the local cache; "
            f"{hint}to work offline, download it while online (hf download {repo_id}) and set HF_HUB_OFFLINE=1, or pass "
            "a local T5 directory"
        )


def _has_tokenizer(path: Path) -> bool:
    """Whether ``path`` holds tokenizer files (a vocabulary, or ByT5's config alone: bytes need no vocabulary file)."""
    return any((path / name).is_file() for name in ("tokenizer.json", "spiece.model", "tokenizer_config.json"))
