"""Nearest vocabulary tokens of learned prompt vectors (Lester et al. 2021, section 7).

A soft prompt lives in the frozen model's input-embedding space, so each prompt vector can be
read through the vocabulary tokens whose embeddings are closest to it by cosine similarity.

Tokens are shown as SentencePiece pieces with the word-start marker '▁' kept as a visible
character (e.g. '▁True' is the word "True", 'True' a word piece): a leading space would be
invisible in tables and plot labels. A byte vocabulary (ByT5) is read as bytes: a printable ASCII
byte as itself, any other as ``<0xNN>`` (``softprompt.model.tokens``).

The search runs over the vocabulary in chunks of rows, merging each chunk's top-k into the running
top-k, so its memory is bounded by the chunk (M x ``VOCAB_CHUNK`` similarities), not the vocabulary:
a 256k vocabulary (mT5, umT5, T5Gemma) costs the same memory as T5's 32k.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.decomposition import PCA

from analysis.figures import check_plot_path, save_png_and_svg
from softprompt.errors import SoftpromptError
from softprompt.model.tokens import byte_offset, token_names

VOCAB_CHUNK = 16384  # vocabulary rows per similarity block
_DISPLAY = {
    "pieces": "SentencePiece pieces; '▁' marks the start of a word",
    "bytes": "bytes (ByT5): a printable ASCII byte as itself, any other as <0xNN>",
}
_SENTINEL = re.compile(r"<extra_id_\d+>")
_EPS = 1e-12  # norm clamp: a zero vector gets similarity 0 to everything instead of NaN


def nearest_neighbors(
    vectors: torch.Tensor,
    embeddings: torch.Tensor,
    top_k: int = 5,
    exclude_ids: Sequence[int] = (),
    chunk: int = VOCAB_CHUNK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k vocabulary tokens of every prompt vector by cosine similarity, most similar first.

    vectors: (N, P, d) prompt vectors; embeddings: (V, d) the model's input-embedding matrix.
    Float32 products (N*P, d) @ (d, ``chunk``) over the vocabulary in chunks, each chunk's top-k merged
    into the running top-k (memory bounded by the chunk). Ids in ``exclude_ids`` are never
    returned; ids >= V are ignored, so a list made for a larger vocabulary still applies.
    Returns (similarities (N, P, k), token_ids (N, P, k)).

    >>> from softprompt.model.loading import load_frozen_t5
    >>> frozen = load_frozen_t5("t5-nano")
    >>> embeddings = frozen.model.get_input_embeddings().weight  # (V, d)
    >>> prompt = embeddings[frozen.tokenizer("great film", add_special_tokens=False).input_ids][None]  # (1, 2, d): real tokens
    >>> similarities, token_ids = nearest_neighbors(prompt, embeddings, top_k=3)
    >>> frozen.tokenizer.convert_ids_to_tokens(token_ids[0, :, 0]), similarities[0, :, 0].round(decimals=3).tolist()
    (['▁great', '▁film'], [1.0, 1.0])
    """
    if vectors.dim() != 3:
        raise SoftpromptError(
            f"prompt vectors must have shape (N, P, d), got {tuple(vectors.shape)}; "
            "use vectors.unsqueeze(0) for a single prompt"
        )
    if embeddings.dim() != 2 or embeddings.shape[1] != vectors.shape[2]:
        raise SoftpromptError(
            f"embeddings must have shape (V, {vectors.shape[2]}) to match the prompt vectors, "
            f"got {tuple(embeddings.shape)}; pass the same model's input-embedding matrix"
        )
    n, p, d = vectors.shape
    vocab = embeddings.shape[0]
    if any(i < 0 for i in exclude_ids):
        raise SoftpromptError("exclude_ids must be non-negative token ids; drop the negative ones")
    excluded = sorted({int(i) for i in exclude_ids if i < vocab})
    if not 1 <= top_k <= vocab - len(excluded):
        raise SoftpromptError(
            f"top_k must be between 1 and {vocab - len(excluded)} "
            f"(vocabulary {vocab} minus {len(excluded)} excluded ids), got {top_k}"
        )
    if chunk < 1:
        raise SoftpromptError(f"chunk must be a positive number of vocabulary rows, got {chunk}")
    with torch.no_grad():
        x = vectors.reshape(n * p, d).float()  # (M, d)
        x = x / x.norm(dim=1, keepdim=True).clamp_min(_EPS)  # (M, d) unit rows
        excluded = torch.tensor(excluded, dtype=torch.long, device=x.device)
        block = x.new_empty(n * p * min(chunk, vocab))  # room for (M, C) similarities, reused for every chunk
        values = x.new_full((n * p, 0), float("-inf"))  # running top-k: (M, <=k)
        ids = torch.zeros((n * p, 0), dtype=torch.long, device=x.device)
        for start in range(0, vocab, chunk):
            e = embeddings[start : start + chunk].to(device=x.device, dtype=torch.float32)  # (C, d)
            sims = torch.mm(x, e.T, out=block[: n * p * e.shape[0]].view(n * p, e.shape[0]))  # (M, C)
            sims.div_(e.norm(dim=1).clamp_min(_EPS))  # (M, C) cosine similarities
            inside = excluded[(excluded >= start) & (excluded < start + e.shape[0])] - start
            sims[:, inside] = float("-inf")
            best, where = sims.topk(min(top_k, e.shape[0]), dim=1)  # (M, <=k) this chunk's best
            values, order = torch.cat([values, best], dim=1).topk(min(top_k, values.shape[1] + best.shape[1]), dim=1)
            ids = torch.cat([ids, where + start], dim=1).gather(1, order)  # (M, <=k)
    return values.reshape(n, p, top_k), ids.reshape(n, p, top_k)


def special_token_ids(tokenizer, num_rows: int | None = None) -> list[int]:
    """Ids that are not real vocabulary: pad/eos/unk, sentinels <extra_id_*>, unused rows.

    Unused rows are ids from len(tokenizer) up to ``num_rows`` (the embedding matrix's row
    count); by default len(tokenizer) rounded up to a multiple of 128, T5's padding
    (32100 tokens -> 32128 rows).
    """
    ids = set(tokenizer.all_special_ids)
    ids |= {tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id} - {None}
    ids |= {i for token, i in tokenizer.get_vocab().items() if _SENTINEL.fullmatch(token)}
    rows = num_rows if num_rows is not None else -(-len(tokenizer) // 128) * 128
    ids |= set(range(len(tokenizer), rows))
    return sorted(ids)


def neighbor_report(
    similarities: torch.Tensor,
    token_ids: torch.Tensor,
    tokenizer,
    label_token_ids: Sequence[int] = (),
    prompt_indices: Sequence[int] | None = None,
) -> dict:
    """JSON-serialisable report of the neighbours of each prompt position, with summary statistics.

    similarities, token_ids: (N, P, k) from ``nearest_neighbors``. ``label_token_ids`` are the
    task's verbalizer tokens; ``prompt_indices`` picks which prompts to report (default all),
    and prompts keep their original index as name. Summary: positions with a label token in
    their top-k, distinct tokens and the 10 most repeated ones, mean top-1 similarity and,
    for several prompts, the Jaccard overlap of their sets of top-k token ids.

    >>> from softprompt.model.loading import load_frozen_t5
    >>> from softprompt.io.store import load_banks
    >>> frozen = load_frozen_t5("t5-nano")
    >>> _, prompts, _ = load_banks("runs/sst2", frozen.config)  # a trained run: 3 prompts of 8 vectors
    >>> report = neighbor_report(*nearest_neighbors(prompts.weight, frozen.model.get_input_embeddings().weight), frozen.tokenizer)
    >>> len(report["prompts"]), len(report["prompts"][0]["positions"]), len(report["prompts"][0]["positions"][0]["neighbors"])
    (3, 8, 5)
    >>> print(format_neighbor_table(report))  # doctest: +ELLIPSIS
    p0 pos 0 | ...
    """
    if token_ids.dim() != 3 or similarities.shape != token_ids.shape:
        raise SoftpromptError(
            f"similarities and token_ids must both have shape (N, P, k), got "
            f"{tuple(similarities.shape)} and {tuple(token_ids.shape)}; pass nearest_neighbors' output"
        )
    n, p, k = token_ids.shape
    chosen = list(range(n)) if prompt_indices is None else [int(i) for i in prompt_indices]
    if not chosen or any(not 0 <= i < n for i in chosen):
        raise SoftpromptError(f"prompt_indices must be a non-empty list of indices in [0, {n}), got {chosen}")
    sims = similarities.detach().float().cpu()[chosen].tolist()  # (N', P, k)
    ids = token_ids.detach().cpu()[chosen].tolist()  # (N', P, k)

    counts = Counter(t for prompt in ids for row in prompt for t in row)
    names = dict(zip(counts, token_names(tokenizer, list(counts))))
    prompts = [
        {
            "prompt": c,
            "positions": [
                {
                    "position": j,
                    "neighbors": [{"token": names[t], "id": t, "similarity": s} for t, s in zip(ids[a][j], sims[a][j])],
                }
                for j in range(p)
            ],
        }
        for a, c in enumerate(chosen)
    ]

    labels = {int(t) for t in label_token_ids}
    n_positions = len(chosen) * p
    n_label = sum(bool(labels & set(row)) for prompt in ids for row in prompt)
    summary = {
        "n_prompts": len(chosen),
        "prompt_length": p,
        "top_k": k,
        "n_positions": n_positions,
        "label_positions": n_label if labels else None,
        "label_fraction": n_label / n_positions if labels else None,
        "distinct_tokens": len(counts),
        "most_common": [{"token": names[t], "id": t, "count": c} for t, c in counts.most_common(10)],
        "mean_top1_similarity": sum(row[0] for prompt in sims for row in prompt) / n_positions,
        "overlap": _overlap([{t for row in prompt for t in row} for prompt in ids]),
    }
    return {
        "format": "softprompt.neighbors/1",
        "token_display": _DISPLAY["bytes" if byte_offset(tokenizer) is not None else "pieces"],
        "prompts": prompts,
        "summary": summary,
    }


def _overlap(sets: list[set[int]]) -> dict | None:
    """Jaccard matrix of the prompts' neighbour-id sets and its off-diagonal mean (None for one prompt)."""
    if len(sets) < 2:
        return None
    jaccard = [[len(a & b) / len(a | b) for b in sets] for a in sets]
    off = [jaccard[i][j] for i in range(len(sets)) for j in range(len(sets)) if i != j]
    return {"jaccard": jaccard, "mean_off_diagonal": sum(off) / len(off)}


def format_neighbor_table(report: dict) -> str:
    """Plain-text table: one line per prompt position ("p0 pos 3 | ▁True 0.91 | ..."), then a summary."""
    lines = [
        f"p{prompt['prompt']} pos {pos['position']} | "
        + " | ".join(f"{nb['token']} {nb['similarity']:.2f}" for nb in pos["neighbors"])
        for prompt in report["prompts"]
        for pos in prompt["positions"]
    ]
    s = report["summary"]
    k = s["top_k"]
    if s["label_positions"] is None:
        label_line = "n/a (no label token ids given)"
    else:
        label_line = f"{s['label_positions']}/{s['n_positions']} ({100 * s['label_fraction']:.1f}%)"
    repeated = ", ".join(f"{m['token']} ×{m['count']}" for m in s["most_common"])
    lines += [
        "",
        f"summary: {s['n_prompts']} prompt(s) × {s['prompt_length']} positions, top-{k} neighbours",
        f"  positions with a label token in their top-{k}: {label_line}",
        f"  distinct tokens: {s['distinct_tokens']}",
        f"  most repeated: {repeated}",
        f"  mean top-1 similarity: {s['mean_top1_similarity']:.3f}",
    ]
    if s["overlap"] is not None:
        names = [f"p{prompt['prompt']}" for prompt in report["prompts"]]
        width = max(5, *(len(name) for name in names))
        lines.append(
            f"  prompt overlap (Jaccard of top-{k} token sets), "
            f"mean off-diagonal {s['overlap']['mean_off_diagonal']:.3f}:"
        )
        lines.append("    " + " " * width + "".join(f"{name:>{width + 1}}" for name in names))
        for name, row in zip(names, s["overlap"]["jaccard"]):
            lines.append(f"    {name:<{width}}" + "".join(f"{v:>{width + 1}.2f}" for v in row))
    return "\n".join(lines)


def plot_neighbors(
    vectors: torch.Tensor,
    embeddings: torch.Tensor,
    token_ids: torch.Tensor,
    tokenizer,
    path: str,
    max_labels: int = 60,
) -> None:
    """2-D PCA picture of the prompt vectors (coloured by prompt) and their neighbour tokens (grey, labelled).

    vectors (N, P, d), embeddings (V, d), token_ids (N, P, k). Both kinds of vector are scaled
    to unit length before the PCA so that distances in the picture follow cosine similarity.
    Only the ``max_labels`` most frequent neighbours get a text label. Writes a PNG at
    ``path`` (.png or .svg) and the other format beside it.
    """
    out = check_plot_path(path)
    n, p, d = vectors.shape
    counts = Counter(token_ids.reshape(-1).tolist())
    unique = sorted(counts, key=lambda t: (-counts[t], t))  # most frequent first
    prompts = vectors.detach().reshape(n * p, d).float().cpu()  # (N*P, d)
    points = torch.cat([prompts, embeddings.detach()[unique].float().cpu()])  # (N*P + U, d)
    points = points / points.norm(dim=1, keepdim=True).clamp_min(_EPS)
    pca = PCA(n_components=2).fit(points.numpy())
    xy = pca.transform(points.numpy())  # (N*P + U, 2)
    prompt_xy, token_xy = xy[: n * p].reshape(n, p, 2), xy[n * p :]

    fig = Figure(figsize=(10, 8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(token_xy[:, 0], token_xy[:, 1], s=8, color="0.6", label="neighbour tokens", zorder=1)
    colors = [f"C{i % 10}" for i in range(n)]
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    for i in range(n):
        ax.scatter(
            prompt_xy[i, :, 0],
            prompt_xy[i, :, 1],
            s=36,
            color=colors[i],
            marker=markers[i // 10 % len(markers)],
            edgecolors="white",
            linewidths=0.5,
            label=f"prompt {i}",
            zorder=2,
            alpha=0.85,
        )
    shown = unique[:max_labels]
    for name, (tx, ty) in zip(token_names(tokenizer, shown), token_xy[: len(shown)]):
        ax.annotate(name, (tx, ty), xytext=(3, 3), textcoords="offset points", fontsize=7, color="0.2", zorder=3)
    var = 100 * pca.explained_variance_ratio_
    ax.set_xlabel(f"PC1 ({var[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC2 ({var[1]:.0f}% of variance)")
    ax.set_title(
        f"Soft-prompt vectors and their nearest vocabulary tokens (cosine, PCA)\n"
        f"{n} prompt(s) × {p} positions, top-{token_ids.shape[-1]}; "
        f"{len(shown)} of {len(unique)} neighbour tokens labelled (most frequent first)",
        fontsize=10,
    )
    ax.legend(loc="best", fontsize=8, markerscale=1.2, ncol=1 + n // 12)
    ax.grid(alpha=0.3)
    fig.tight_layout()

    save_png_and_svg(fig, out, "--plot")
