"""The prompt bank: N input-embedding soft prompts (Lester et al. 2021) and their initialisers."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from softprompt.errors import SoftpromptError
from softprompt.model.tokens import byte_offset, text_byte_ids

INITS = ("random-uniform", "sampled-vocab", "class-label", 'text:"..."')
BYTE_PIECE = re.compile(r"<0x[0-9A-F]{2}>")  # a byte-fallback piece of a BPE vocabulary (Gemma's)
N_FREQUENT = 5000


class PromptBank(nn.Module):
    """N soft prompts of P vectors each, one fp32 parameter ``weight`` of shape (N, P, d_model).

    >>> bank = PromptBank(n_prompts=5, length=20, d_model=192)
    >>> bank(torch.tensor([0, 3, 3])).shape  # one prompt per row: (B, P, d)
    torch.Size([3, 20, 192])
    """

    def __init__(self, n_prompts: int, length: int, d_model: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_prompts, length, d_model))

    @property
    def n_prompts(self) -> int:
        return self.weight.shape[0]

    @property
    def length(self) -> int:
        return self.weight.shape[1]

    def forward(self, prompt_ids: torch.Tensor) -> torch.Tensor:
        """Gather one prompt per row: (B,) ids -> (B, P, d). ``index_select``, not ``weight[ids]``: its backward
        adds the rows' gradients in a fixed order, where indexing's adds them in parallel in any order on the CPU."""
        return self.weight.index_select(0, prompt_ids)


def frequent_token_ids(tokenizer: PreTrainedTokenizerBase, n: int = N_FREQUENT) -> torch.Tensor:
    """The ``n`` most frequent ordinary pieces of a SentencePiece vocabulary, or the bytes of text of a byte
    tokenizer (ByT5: its printable ASCII bytes and space, ``softprompt.model.tokens``).

    "Frequent" means highest unigram log-probability in a Unigram model (the score stored with each piece in
    tokenizer.json), the closest thing to corpus frequency that the vocabulary keeps; in a BPE model (Gemma's,
    T5Gemma's) the earliest merges, which come first in its ids. Special and added tokens (pad, eos, unk, Gemma's
    byte pieces and unused slots), sentinels (``<extra_id_*>``) and the bare word-boundary piece are excluded. ByT5
    keeps no scores; its pool is the bytes of ordinary (mostly Latin-script) text.
    """
    if byte_offset(tokenizer) is not None:
        return torch.tensor(text_byte_ids(tokenizer)[:n])
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise SoftpromptError(
            f"sampled-vocab init needs a SentencePiece (Unigram or BPE) tokenizer or a byte tokenizer, "
            f"not {type(tokenizer).__name__}; use --init random-uniform"
        )
    return torch.tensor(_frequent_ids(backend.to_str(), tuple(tokenizer.all_special_ids), n))


@lru_cache(maxsize=4)
def _frequent_ids(serialized: str, special_ids: tuple[int, ...], n: int) -> list[int]:
    spec = json.loads(serialized)
    model, excluded = spec["model"], {*special_ids, *(token["id"] for token in spec.get("added_tokens") or ())}
    vocab = model.get("vocab")
    if model.get("type") == "BPE" and isinstance(vocab, dict):  # earliest merges first: score -id; no byte pieces
        pieces = ((piece, index, -index) for piece, index in vocab.items() if not BYTE_PIECE.fullmatch(piece))
    elif vocab and isinstance(vocab, list) and isinstance(vocab[0], list):  # Unigram: piece scores
        pieces = ((piece, index, score) for index, (piece, score) in enumerate(vocab))
    else:
        raise SoftpromptError(
            "sampled-vocab init needs a SentencePiece (Unigram or BPE) tokenizer or a byte tokenizer; "
            "use --init random-uniform"
        )
    scored = [
        (score, index)
        for piece, index, score in pieces
        if index not in excluded and not piece.startswith("<extra_id_") and piece not in ("▁", "<unk>", "<pad>", "</s>")
    ]
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    return [index for _, index in scored[:n]]


def parse_init(spec: str, flag: str = "--init") -> tuple[str, str | None]:
    """Split an init spec into (method, text): ``text:"summarize"`` -> ("text", "summarize"); ``flag`` names the option."""
    if spec.startswith("text:"):
        text = spec[len("text:") :].strip().strip('"').strip("'")
        if not text:
            raise SoftpromptError(f'{flag} text:"..." needs a non-empty string, e.g. {flag} text:"classify the review"')
        return "text", text
    if spec not in INITS:
        raise SoftpromptError(f"unknown init {spec!r}; use one of: {', '.join(INITS)}")
    return spec, None


def initial_prompt(
    spec: str,
    length: int,
    embeddings: torch.Tensor,
    tokenizer: PreTrainedTokenizerBase,
    seed: int,
    label_words: Sequence[str] = (),
) -> torch.Tensor:
    """One prompt's initial values, (P, d), from an init spec and its own seed.

    ``embeddings`` is the frozen model's input embedding matrix (V, d).
    """
    method, text = parse_init(spec)
    generator = torch.Generator().manual_seed(seed)
    embeddings = embeddings.detach().float().cpu()
    if method == "random-uniform":
        return torch.rand(length, embeddings.shape[1], generator=generator) - 0.5  # U[-0.5, 0.5]
    if method == "text":
        ids = tokenizer(text, add_special_tokens=False).input_ids
        repeats = -(-length // len(ids))
        return embeddings[torch.tensor((ids * repeats)[:length])].clone()
    sampled = _sampled_vocab(length, embeddings, tokenizer, generator)
    if method == "class-label":
        if not label_words:
            raise SoftpromptError("class-label init needs a task with label words; use --init sampled-vocab")
        for position, word in enumerate(label_words[:length]):
            ids = tokenizer(word, add_special_tokens=False).input_ids
            sampled[position] = embeddings[torch.tensor(ids)].mean(dim=0)  # multi-token labels averaged
    return sampled


def _sampled_vocab(
    length: int, embeddings: torch.Tensor, tokenizer: PreTrainedTokenizerBase, generator: torch.Generator
) -> torch.Tensor:
    pool = frequent_token_ids(tokenizer)
    if not len(pool):
        raise SoftpromptError(
            "sampled-vocab init found no ordinary tokens in the tokenizer (only special tokens and sentinels); "
            "use the model's own tokenizer, or --init random-uniform"
        )
    picks = pool[torch.randint(len(pool), (length,), generator=generator)]
    return embeddings[picks].clone()


def init_bank(
    bank: PromptBank,
    spec: str,
    embeddings: torch.Tensor,
    tokenizer: PreTrainedTokenizerBase,
    seeds: Sequence[int],
    label_words: Sequence[str] = (),
) -> None:
    """Initialise every prompt of ``bank`` in place, prompt i from ``seeds[i]``."""
    with torch.no_grad():
        for index, seed in enumerate(seeds):
            bank.weight[index] = initial_prompt(spec, bank.length, embeddings, tokenizer, seed, label_words)
