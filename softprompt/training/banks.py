"""A run's banks: the PromptedT5 a ``TrainConfig`` describes, its input prompts, deep prefixes and DePT updates freshly
initialised, and the options that would give each of its prompts its own start."""

from __future__ import annotations

from collections.abc import Sequence

from softprompt.data.tasks import Task
from softprompt.errors import SoftpromptError
from softprompt.model.dept import DeptBank
from softprompt.model.loading import FrozenT5
from softprompt.model.prefixes import PrefixBank, PrefixShape
from softprompt.model.prompted import PromptedT5
from softprompt.model.prompts import PromptBank, init_bank, parse_init
from softprompt.model.reparam import ResidualPromptBank
from softprompt.training.config import TrainConfig


def build_prompted(frozen: FrozenT5, cfg: TrainConfig, label_words: Sequence[str] = ()) -> PromptedT5:
    """A PromptedT5 with freshly initialised banks as ``cfg`` describes: input prompts (plain, or reparameterised by
    residual MLPs), deep prefixes, DePT updates."""
    prompts = prefixes = dept = None
    d_model = frozen.geometry.d_model
    if cfg.prompt_length:
        if cfg.prompt_reparam == "residual":
            prompts = ResidualPromptBank(
                cfg.n_prompts, cfg.prompt_length, d_model, cfg.prompt_reparam_hidden, cfg.prompt_reparam_dropout
            )
            prompts.init_mlp(cfg.prompt_seeds)
        else:
            prompts = PromptBank(cfg.n_prompts, cfg.prompt_length, d_model)
        embeddings = frozen.model.get_input_embeddings().weight
        init_bank(prompts, cfg.init, embeddings, frozen.tokenizer, cfg.prompt_seeds, label_words)
    if cfg.deep_prefix:
        shape = PrefixShape.for_config(frozen.config, cfg.prefix_length, cfg.prefix_sites)
        prefixes = PrefixBank(cfg.n_prompts, shape, cfg.reparam_dim, cfg.reparam_hidden)
    if cfg.dept_rank:  # s = the longest source the run feeds
        dept = DeptBank(cfg.n_prompts, cfg.max_source_length, cfg.dept_rank, d_model)
        dept.init_random(cfg.prompt_seeds)
    prompted = PromptedT5(frozen, prompts, prefixes, dept)
    if prefixes is not None:
        if cfg.prefix_init != "random":
            values = prompted.real_word_prefix(prefix_init_text(cfg.prefix_init, label_words), cfg.prefix_length)
            prefixes.init_values({s: values[s] for s in shape.sites}, cfg.prompt_seeds)
        else:
            prefixes.init_random(cfg.prompt_seeds)
    return prompted


def prefix_init_text(spec: str, label_words: Sequence[str]) -> str:
    """The words whose activations start a deep prefix: ``text:"..."``'s text, or the task's label words."""
    method, text = parse_init(spec)
    if method != "class-label":
        return text
    if not label_words:
        raise SoftpromptError(
            '--prefix-init class-label needs a task with label words; use --prefix-init random or text:"..."'
        )
    return " ".join(label_words)


def own_starts(cfg: TrainConfig, task: Task) -> str:
    """The options that would give each prompt of this run its own start, for the "N copies" note."""
    if cfg.init_from:
        return "--init-from: one source per prompt"
    starts = []
    if cfg.prompt_length:  # class-label shares a start only where its label words leave no room for sampled tokens
        starts.append(
            "a --prompt-length longer than the label words, or --init sampled-vocab"
            if cfg.init == "class-label"
            else "--init class-label or --init sampled-vocab"
            if task.kind == "classification"
            else "--init sampled-vocab"
        )
    if cfg.deep_prefix:
        starts.append("deep prefixes: --reparam-dim > 0 or --prefix-init random")
    return "; ".join(starts)
