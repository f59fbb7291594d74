"""Seeing attention: a teacher-forced pass over a chosen output, heatmaps and Pharaoh alignments.

After search, the decoder is run once more over the best hypothesis with its own tokens as
input, and the attention weights of every step are kept: row j of the (T + 1, S) matrix is
where target piece j (the last row: end of sentence) looked in the source.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import torch

from seqcli.corpus import pad
from seqcli.errors import UsageError
from seqcli.translate import Translator
from seqcli.vocab import BOS_ID


@dataclass(frozen=True)
class AttentionRecord:
    """One translated line: its pieces, and weights (T + 1, S): row j for target piece j, the
    last row for the end of sentence."""

    translation: str
    src_pieces: list[str]
    tgt_pieces: list[str]
    weights: np.ndarray


@torch.inference_mode()
def forced_attention(
    translator: Translator, src_ids: list[list[int]], tgt_ids: list[list[int]]
) -> list[np.ndarray]:
    """Per non-empty source, the (len(tgt) + 1, len(src)) attention weights of a teacher-forced pass."""
    model, device = translator.model, translator.device
    if not model.decoder.attention.reads_query:  # the fixed context weighs no source position
        raise UsageError(
            "--attention-plot/--alignments: this run's model has no attention (model.attention none)"
        )
    model.eval()
    src = pad(src_ids).to(device)  # (B, S)
    lengths = torch.tensor([len(s) for s in src_ids], dtype=torch.long, device=device)
    tgt_in = pad([[BOS_ID] + t for t in tgt_ids]).to(device)  # (B, T + 1)
    state, memory = model.encode(src, lengths)
    rows: list[torch.Tensor] = []
    for t in range(tgt_in.size(1)):
        _, state = model.step(tgt_in[:, t], state, memory)
        assert state.attention is not None  # every attention module returns weights
        rows.append(state.attention)  # (B, S)
    weights = torch.stack(rows, dim=1).float().cpu().numpy()  # (B, T + 1, S)
    return [weights[b, : len(t) + 1, : len(s)] for b, (s, t) in enumerate(zip(src_ids, tgt_ids, strict=True))]


def best_attention(
    translator: Translator, src_ids: list[list[int]], best: list[list[int]]
) -> dict[int, np.ndarray]:
    """`forced_attention` of each non-empty source with its best hypothesis, batch by batch:
    line index -> (len(best) + 1, len(src)) weights."""
    present = [i for i, ids in enumerate(src_ids) if ids]
    weights: dict[int, np.ndarray] = {}
    for start in range(0, len(present), translator.decode.batch_size):
        rows = present[start : start + translator.decode.batch_size]
        found = forced_attention(translator, [src_ids[i] for i in rows], [best[i] for i in rows])
        weights.update(zip(rows, found, strict=True))
    return weights


def attend_chunk(translator: Translator, chunk: list[str]) -> Iterator[AttentionRecord | None]:
    """The best translation of each line with its attention; None for an empty line."""
    src_ids = translator.src_tokenizer.encode(chunk)
    best = [hyps[0].tokens for hyps in translator.translate_ids(src_ids, translator.decode)]
    texts = translator.tgt_tokenizer.decode(best)
    weights = best_attention(translator, src_ids, best)
    for i, ids in enumerate(src_ids):
        if not ids:
            yield None
            continue
        yield AttentionRecord(
            texts[i],
            translator.src_tokenizer.ids_to_pieces(ids),
            translator.tgt_tokenizer.ids_to_pieces(best[i]),
            weights[i],
        )


def pharaoh(weights: np.ndarray) -> str:
    """Hard alignment 'i-j' (source i, target j, 0-based), i the argmax of row j; weights (T, S)."""
    return " ".join(f"{int(i)}-{j}" for j, i in enumerate(weights.argmax(axis=1)))


def plot_attention(record: AttentionRecord, path: Path) -> None:
    """A heatmap PNG: source pieces along x, target pieces (and </s>) along y."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: only plotting needs it
    from matplotlib.figure import Figure

    n_tgt, n_src = record.weights.shape
    figure = Figure(figsize=(max(3.0, 0.35 * n_src + 1.5), max(2.5, 0.35 * n_tgt + 1.2)))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.imshow(record.weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(n_src), record.src_pieces, rotation=90, fontsize=8)
    axes.set_yticks(range(n_tgt), [*record.tgt_pieces, "</s>"], fontsize=8)
    axes.set_xlabel("source")
    axes.set_ylabel("target")
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)


def write_attention(
    translator: Translator,
    chunks: Iterable[list[str]],
    out: TextIO,
    plot_dir: Path | None,
    alignments: TextIO | None,
) -> None:
    """Translations to out, and per line a heatmap (plot_dir/NNNNNN.png) and/or an alignment
    line; each chunk of lines is answered (and flushed) before the next is read."""
    if plot_dir is not None:
        plot_dir.mkdir(parents=True, exist_ok=True)
    number = 0
    for chunk in chunks:
        for record in attend_chunk(translator, chunk):
            number += 1
            out.write((record.translation if record else "") + "\n")
            if alignments is not None:
                alignments.write((pharaoh(record.weights[:-1]) if record else "") + "\n")
            if plot_dir is not None and record is not None:
                plot_attention(record, plot_dir / f"{number:06d}.png")
        out.flush()
        if alignments is not None:
            alignments.flush()
