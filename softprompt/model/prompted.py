"""A frozen T5 driven by a prompt bank and/or a prefix bank, with a prompt id per row.

Rows of one batch may use different prompts: the input prompt is a gather ``bank[prompt_ids]``
prepended to the input embeddings, the deep prefix a gather handed to the attention kernels
(see ``softprompt.model.attention``). This is what joint training of N prompts, batched ensembles and
mixed-task serving are built on.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from softprompt.model.attention import attention_sites, install_prefix_attention
from softprompt.model.beam_cache import CACHE_ARGUMENT, beam_search_cache
from softprompt.model.dept import DeptBank
from softprompt.model.families import family_of
from softprompt.model.loading import FrozenT5
from softprompt.model.losses import sequence_log_probs
from softprompt.model.prefixes import PrefixBank
from softprompt.model.prompts import PromptBank


class PromptedT5(nn.Module):
    """A frozen T5 plus trainable banks; every call takes per-row ``prompt_ids`` of shape (B,).

    >>> from softprompt.model.loading import load_frozen_t5
    >>> frozen = load_frozen_t5("t5-nano")
    >>> prompted = PromptedT5(frozen, PromptBank(n_prompts=3, length=20, d_model=frozen.config.d_model))
    >>> batch = frozen.tokenizer(["sst2 sentence: a gem", "sst2 sentence: a mess"], return_tensors="pt", padding=True)
    >>> labels = frozen.tokenizer(["positive", "negative"], return_tensors="pt").input_ids
    >>> out = prompted(batch.input_ids, batch.attention_mask, prompt_ids=torch.tensor([0, 2]), labels=labels)
    >>> out.loss.backward()  # row 0 reads prompt 0, row 1 prompt 2: only they get a gradient
    >>> prompted.prompts.weight.grad.abs().sum(dim=(1, 2)).ne(0).tolist()
    [True, False, True]
    """

    def __init__(
        self,
        frozen: FrozenT5,
        prompts: PromptBank | None = None,
        prefixes: PrefixBank | None = None,
        dept: DeptBank | None = None,
    ):
        super().__init__()
        if prompts is None and prefixes is None:
            raise ValueError("PromptedT5 needs a prompt bank, a prefix bank, or both")
        if prompts is not None and prefixes is not None and prompts.n_prompts != prefixes.n_prompts:
            raise ValueError(f"prompt bank has {prompts.n_prompts} prompts, prefix bank {prefixes.n_prompts}")
        self.model = frozen.model
        self.tokenizer = frozen.tokenizer
        self.name = frozen.name
        self.prompts = prompts
        self.prefixes = prefixes
        self.dept = dept  # DePT: a low-rank update of the rows' input token embeddings (softprompt.model.dept)
        self.context = install_prefix_attention(self.model)
        self.input_scale = frozen.geometry.input_scale  # T5Gemma 2's embedding layer scales token rows itself
        device = self.model.get_input_embeddings().weight.device  # banks live with the input embeddings
        for bank in (prompts, prefixes, dept):
            if bank is not None:
                bank.to(device)

    def to(self, *args, **kwargs) -> PromptedT5:
        """Move the banks only: the frozen model stays where it was loaded (it may span devices)."""
        for bank in (self.prompts, self.prefixes, self.dept):
            if bank is not None:
                bank.to(*args, **kwargs)
        return self

    @property
    def n_prompts(self) -> int:
        return (self.prompts or self.prefixes).n_prompts

    @property
    def prompt_length(self) -> int:
        """Input-prompt vectors in front of every row's input (0 without a prompt bank)."""
        return 0 if self.prompts is None else self.prompts.weight.shape[1]

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The banks' parameters (the base model is frozen)."""
        banks = (self.prompts, self.prefixes, self.dept)
        return [p for bank in banks if bank is not None for p in bank.parameters()]

    def select(self, prompt_ids: torch.Tensor) -> None:
        """Route the deep prefixes of ``prompt_ids`` (B,) to the attention kernels for the next calls."""
        self.context.kv = self.prefixes(prompt_ids) if self.prefixes is not None else {}

    def embed(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Input embeddings with the rows' prompts in front: (B, P+T, d) and mask (B, P+T). Prompts and DePT updates
        live in embedding-table space; they are scaled as the embedding layer scales table rows (``input_scale``)."""
        embeds = self.model.get_input_embeddings()(input_ids)  # (B, T, d)
        if self.dept is not None:  # DePT: each row's own update of its first s token embeddings
            embeds = embeds + self._scaled(self.dept(prompt_ids, embeds.shape[1]), embeds.dtype)  # (B, T, d)
        if self.prompts is None:
            return embeds, attention_mask
        prompt = self._scaled(self.prompts(prompt_ids), embeds.dtype)  # (B, P, d)
        ones = attention_mask.new_ones(prompt.shape[:2])
        return torch.cat([prompt, embeds], dim=1), torch.cat([ones, attention_mask], dim=1)

    def _scaled(self, vectors: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Table-space ``vectors`` as the embedding layer hands table rows to the encoder, in ``dtype``."""
        vectors = vectors.to(dtype)
        return vectors if self.input_scale == 1.0 else vectors * torch.tensor(self.input_scale, dtype=dtype)

    def encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_ids: torch.Tensor
    ) -> tuple[BaseModelOutput, torch.Tensor]:
        """Run the encoder once: (encoder outputs (B, P+T, d), extended mask (B, P+T))."""
        self.select(prompt_ids)
        embeds, mask = self.embed(input_ids, attention_mask, prompt_ids)
        return self.model.get_encoder()(inputs_embeds=embeds, attention_mask=mask), mask

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        prompt_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
    ):
        """Seq2seq forward (loss when ``labels`` are given, logits) with per-row prompts."""
        self.select(prompt_ids)
        embeds, mask = self.embed(input_ids, attention_mask, prompt_ids)
        return self.model(
            inputs_embeds=embeds,
            attention_mask=mask,
            labels=labels,
            decoder_input_ids=decoder_input_ids,
            use_cache=False,
        )

    @torch.no_grad()
    def generate(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_ids: torch.Tensor, **generate_kwargs
    ) -> torch.Tensor:
        """``model.generate`` with per-row prompts; returns the generated token ids (B·num_return_sequences, S).
        Beam search runs on a cache with one copy of each row's cross-attention keys/values, projected once and
        never reordered (``softprompt.model.beam_cache``)."""
        encoder_outputs, mask = self.encode(input_ids, attention_mask, prompt_ids)
        config = self.model.generation_config
        beams = generate_kwargs.get("num_beams") or config.num_beams or 1
        if (
            beams > 1
            and family_of(self.model.config).cross_rows != "repeated"  # T5Gemma 2: a copy per beam, generate()'s own
            and generate_kwargs.get("use_cache", config.use_cache) is not False
            and CACHE_ARGUMENT not in generate_kwargs
        ):
            generate_kwargs[CACHE_ARGUMENT] = beam_search_cache(self.model, encoder_outputs.last_hidden_state)
        return self.model.generate(encoder_outputs=encoder_outputs, attention_mask=mask, **generate_kwargs)

    @torch.no_grad()
    def score(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        prompt_ids: torch.Tensor,
        choice_ids: torch.Tensor,
        choice_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Sum of token log-probabilities of K candidate targets per row: (B, K).

        ``choice_ids`` / ``choice_mask`` are (B, K, S) (targets end with EOS, padded). The encoder
        runs once per row and only the decoder runs per candidate (B·K rows); every cross-attention
        projects keys/values once per encoder row and the K candidates' queries of a row attend as
        one sequence (``attention._fold_candidates``): no K copies of them are made (but for T5Gemma 2, whose merged
        attention joins each decoder row's keys to its own copy of the encoder's).
        """
        batch, k, length = choice_ids.shape
        encoder_outputs, mask = self.encode(input_ids, attention_mask, prompt_ids)
        hidden = encoder_outputs.last_hidden_state  # (B, P+T, d)
        labels = choice_ids.reshape(batch * k, length).masked_fill(~choice_mask.reshape(batch * k, length).bool(), -100)
        cross_rows, cache = family_of(self.model.config).cross_rows, {"use_cache": False}
        if cross_rows == "projected":  # umT5 would project B·K rows of cross-attention keys/values: it finds B rows
            cache = {CACHE_ARGUMENT: beam_search_cache(self.model, hidden), "use_cache": True}
        elif cross_rows == "repeated":  # T5Gemma 2's merged attention: each decoder row beside its own encoder row
            hidden, mask = hidden.repeat_interleave(k, dim=0), mask.repeat_interleave(k, dim=0)  # (B·K, P+T, ...)
        logits = self.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden),  # each cross-attention projects B rows
            attention_mask=mask,  # (B, P+T) (T5Gemma 2: B·K)
            decoder_input_ids=self.model.prepare_decoder_input_ids_from_labels(labels),  # (B·K, S)
            **cache,
        ).logits  # (B·K, S, V)
        return sequence_log_probs(logits, labels).view(batch, k)

    @torch.no_grad()
    def real_word_prefix(self, text: str, length: int) -> dict[str, torch.Tensor]:
        """Keys/values the frozen model computes for ``text`` at every site (Li & Liang's real-word
        init): site -> (L, 2, Hkv, Pp, d), the text's tokens tiled or trimmed to ``length``. They are taken as the
        attention kernel receives them, the frame prefixes are held in (T5Gemma: keys rotated by the text's own
        positions, then used unrotated like every prefix key)."""
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids.to(
            self.model.get_input_embeddings().weight.device
        )
        self.context.kv, self.context.captured = {}, {}
        try:
            self.model(input_ids=ids, decoder_input_ids=ids, use_cache=False)
            captured = self.context.captured
        finally:
            self.context.captured = None
        repeats, t = -(-length // ids.shape[1]), ids.shape[1]
        out = {}
        for site, modules in attention_sites(self.model).items():
            # (2, Hkv, T, d); T5Gemma 2's merged attention saw [decoder keys; encoder keys]: the cross site's are last
            part = slice(-t, None) if site == "cross" else slice(0, t)
            per_layer = [torch.stack(captured[(site, layer)])[:, 0, :, part] for layer in range(len(modules))]
            kv = torch.stack(per_layer).float()  # (L, 2, Hkv, T, d)
            out[site] = kv.repeat(1, 1, 1, repeats, 1)[..., :length, :]
        return out
