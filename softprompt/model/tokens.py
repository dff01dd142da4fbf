"""What a tokenizer's ids stand for: SentencePiece pieces (T5, mT5, umT5, UL2), or bytes (ByT5).

ByT5 reads text as UTF-8 bytes: ids 0-2 are pad, eos and unk, ids 3-258 the bytes 0x00-0xff, the rest sentinels
(``<extra_id_*>``). It keeps no piece scores, so "frequent tokens" are the printable ASCII bytes, and a byte is
shown as itself when it is a printable ASCII character, else as ``<0xNN>`` (a byte of a multi-byte character).

>>> from transformers import ByT5Tokenizer
>>> byt5 = ByT5Tokenizer()
>>> token_names(byt5, byt5("é!", add_special_tokens=False).input_ids)
['<0xC3>', '<0xA9>', '!']
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import ByT5Tokenizer, PreTrainedTokenizerBase

PRINTABLE_ASCII = range(0x21, 0x7F)  # '!' .. '~': shown as themselves
TEXT_BYTES = range(0x20, 0x7F)  # space .. '~': the frequent bytes of (mostly Latin-script) text


def byte_offset(tokenizer: PreTrainedTokenizerBase) -> int | None:
    """The id of byte 0x00 in a byte-level tokenizer (ByT5: 3); None for a vocabulary of pieces."""
    return tokenizer.offset if isinstance(tokenizer, ByT5Tokenizer) else None


def text_byte_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids of the bytes of ordinary text (printable ASCII and space) in a byte-level tokenizer."""
    offset = byte_offset(tokenizer)
    if offset is None:
        raise ValueError(f"{type(tokenizer).__name__} is not a byte-level tokenizer")
    return [offset + byte for byte in TEXT_BYTES]


def token_names(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int]) -> list[str]:
    """Readable names of ``ids``: SentencePiece pieces ('▁' kept), bytes as themselves or ``<0xNN>``, and
    ``<unused N>`` for an id the tokenizer has no token for (embedding rows beyond it)."""
    offset, size = byte_offset(tokenizer), len(tokenizer)
    names = []
    for i, token in zip(ids, tokenizer.convert_ids_to_tokens(list(ids))):
        if offset is not None and 0 <= i - offset < 256:
            byte = i - offset
            names.append(chr(byte) if byte in PRINTABLE_ASCII else f"<0x{byte:02X}>")
        else:
            names.append(token if token is not None and i < size else f"<unused {i}>")
    return names
