"""A tokenized parallel corpus on disk: every pair's piece ids in flat files, read pair by pair.

A corpus of millions of pairs does not fit in memory as Python objects (a list of ids per
sentence costs about 30 times the ids themselves). The store keeps, for each side, the ids
of every pair one after another in one file and where each pair starts in another (mapped
into memory); a batch reads only its own pairs' ids from the file, so they stay in the
operating system's page cache, shared by every process, and never count as the process's
memory. (A memory map of the ids would: batches draw pairs from all over the file, and the
pages read ahead around them would make the whole store resident within a few hundred
updates.)
It is written once, streaming the text in chunks that SentencePiece encodes on every core,
and holds every pair, even those with an empty side: which pairs train is decided when the
batches are made (`seqcli.corpus`), so nothing is filtered out of sight.

Layout of a store folder:
    src.ids, tgt.ids        the ids of every pair, one after another (uint16, or int32)
    src.starts, tgt.starts  int64: where pair i's ids begin; one more value at the end
    src.text, tgt.text      with subword sampling only: the UTF-8 text, to segment anew
    src.text_starts, ...    where each line's text begins
    store.json              format, pairs, dtype, the tokenizers' SHA-256 and the sources
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO, overload

import numpy as np

from seqcli.errors import DataError, RunDirError
from seqcli.textio import open_input, write_text_atomic
from seqcli.tokenizer import Sampling, Tokenizer

FORMAT = "seqcli-store-1"
STORE_FILE = "store.json"
CHUNK_LINES = 20_000  # pairs encoded at a time: memory stays flat, SentencePiece uses every core
SIDES = ("src", "tgt")


@dataclass(frozen=True)
class Example:
    """One training pair as piece ids, without BOS/EOS."""

    src: list[int]
    tgt: list[int]


def ids_dtype(vocab_size: int) -> np.dtype[Any]:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.int32)


def write_store(
    folder: Path,
    sources: tuple[Path, Path],
    tokenizers: tuple[Tokenizer, Tokenizer],
    keep_text: bool = False,
    chunk_lines: int = CHUNK_LINES,
) -> None:
    """Encode the aligned lines of sources (src, tgt) into a store in folder, chunk by chunk;
    the folder appears complete or not at all. keep_text: also keep the text (subword sampling
    segments it anew each epoch)."""
    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    dtype = ids_dtype(max(t.vocab_size for t in tokenizers))
    files: dict[str, BinaryIO] = {name: open(partial / name, "wb") for name in _file_names(keep_text)}  # noqa: SIM115
    try:
        pairs = _write_chunks(files, sources, tokenizers, dtype, keep_text, chunk_lines)
    except BaseException:
        for handle in files.values():
            handle.close()
        shutil.rmtree(partial, ignore_errors=True)
        if not any(folder.parent.iterdir()):  # the run directory this began: leave nothing behind
            folder.parent.rmdir()
        raise
    for handle in files.values():
        handle.close()
    meta = {
        "format": FORMAT,
        "pairs": pairs,
        "dtype": dtype.name,
        "sources": [str(p) for p in sources],
        "tokenizers": [t.sha256 for t in tokenizers],
        "text": keep_text,
    }
    write_text_atomic(partial / STORE_FILE, json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


def _write_chunks(
    files: dict[str, BinaryIO],
    sources: tuple[Path, Path],
    tokenizers: tuple[Tokenizer, Tokenizer],
    dtype: np.dtype[Any],
    keep_text: bool,
    chunk_lines: int,
) -> int:
    """Encode and append every chunk of pairs to the store's files; returns the pairs written."""
    totals = {"src": 0, "tgt": 0, "src.text": 0, "tgt.text": 0}
    pairs = 0
    for side in SIDES:
        np.zeros(1, np.int64).tofile(files[f"{side}.starts"])
        if keep_text:
            np.zeros(1, np.int64).tofile(files[f"{side}.text_starts"])
    for chunk in _aligned_chunks(sources, chunk_lines):
        pairs += len(chunk[0])
        for side, lines, tokenizer in zip(SIDES, chunk, tokenizers, strict=True):
            ids = tokenizer.encode(lines)
            lengths = np.fromiter(map(len, ids), np.int64, len(ids))
            np.fromiter(chain.from_iterable(ids), dtype, int(lengths.sum())).tofile(files[f"{side}.ids"])
            (totals[side] + np.cumsum(lengths)).tofile(files[f"{side}.starts"])
            totals[side] += int(lengths.sum())
            if keep_text:
                encoded = [line.encode("utf-8") for line in lines]
                files[f"{side}.text"].write(b"".join(encoded))
                sizes = np.fromiter(map(len, encoded), np.int64, len(encoded))
                (totals[f"{side}.text"] + np.cumsum(sizes)).tofile(files[f"{side}.text_starts"])
                totals[f"{side}.text"] += int(sizes.sum())
    if pairs == 0:
        raise DataError(f"{sources[0]}: file is empty")
    return pairs


def _file_names(keep_text: bool) -> list[str]:
    names = [f"{side}.{part}" for side in SIDES for part in ("ids", "starts")]
    return names + (
        [f"{side}.{part}" for side in SIDES for part in ("text", "text_starts")] if keep_text else []
    )


def _aligned_chunks(sources: tuple[Path, Path], chunk_lines: int) -> Iterator[tuple[list[str], list[str]]]:
    """Chunks of aligned lines of the two files; files of different lengths are a DataError."""
    with open_input(sources[0]) as src_lines, open_input(sources[1]) as tgt_lines:
        read = 0
        while True:
            src = [line for _, line in zip(range(chunk_lines), src_lines, strict=False)]
            tgt = [line for _, line in zip(range(len(src) or 1), tgt_lines, strict=False)]
            if len(src) != len(tgt):  # one file ended: count what the other has left
                src_total = read + len(src) + sum(1 for _ in src_lines)
                tgt_total = read + len(tgt) + sum(1 for _ in tgt_lines)
                counts = f"{sources[0]} has {src_total} lines but {sources[1]} has {tgt_total}"
                raise DataError(f"{counts}: parallel files must align")
            if not src:
                return
            read += len(src)
            yield src, tgt


class Examples(Sequence[Example]):
    """Pairs by index; a slice gives a list. Subclasses say how to build one pair."""

    def example(self, index: int) -> Example:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> Example: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Example]: ...
    def __getitem__(self, index: int | slice) -> Example | Sequence[Example]:
        if isinstance(index, slice):
            return [self.example(i) for i in range(*index.indices(len(self)))]
        return self.example(index)


class TokenStore(Examples):
    """A written store: pairs by index, and each side's lengths."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        try:
            self.meta = json.loads((self.folder / STORE_FILE).read_text())
        except (OSError, ValueError):
            raise RunDirError(f"{self.folder}: not a complete token store") from None
        if self.meta.get("format") != FORMAT:
            raise RunDirError(
                f"{self.folder}: token store format {self.meta.get('format')!r}, expected {FORMAT!r}"
            )
        dtype = np.dtype(self.meta["dtype"])
        self.ids = {side: Slices(self.folder / f"{side}.ids", dtype) for side in SIDES}
        self.starts = {side: self._map(f"{side}.starts", np.dtype(np.int64)) for side in SIDES}
        self.lengths = {side: np.diff(self.starts[side]).astype(np.int32) for side in SIDES}  # (n,) each

    def _map(self, name: str, dtype: np.dtype[Any]) -> np.ndarray:
        path = self.folder / name
        if path.stat().st_size == 0:
            return np.zeros(0, dtype)
        return np.memmap(path, dtype=dtype, mode="r")

    def matches(self, sources: tuple[Path, Path], tokenizers: tuple[Tokenizer, Tokenizer]) -> bool:
        """Whether this store was written from these files with these tokenizers."""
        return self.meta["sources"] == [str(p) for p in sources] and self.meta["tokenizers"] == [
            t.sha256 for t in tokenizers
        ]

    def __len__(self) -> int:
        return int(self.meta["pairs"])

    def example(self, index: int) -> Example:
        return Example(*(self._ids(side, index).tolist() for side in SIDES))

    def _ids(self, side: str, index: int) -> np.ndarray:
        starts = self.starts[side]
        return self.ids[side].read(int(starts[index]), int(starts[index + 1]))

    def text(self, side: str) -> tuple[Slices, np.ndarray]:
        """One side's text as UTF-8 bytes and where each line starts (stores written with keep_text)."""
        if not self.meta.get("text"):
            raise RunDirError(f"{self.folder}: the store keeps no text")
        return Slices(self.folder / f"{side}.text", np.dtype(np.uint8)), self._map(
            f"{side}.text_starts", np.dtype(np.int64)
        )


class Slices:
    """A flat file of one dtype, read a slice at a time with os.pread (no memory map)."""

    def __init__(self, path: Path, dtype: np.dtype[Any]):
        self.file = open(path, "rb", buffering=0)  # noqa: SIM115 (open as long as the store is)
        self.dtype = dtype

    def __del__(self) -> None:
        if hasattr(self, "file"):
            self.file.close()

    def read(self, start: int, end: int) -> np.ndarray:
        """Items start..end-1."""
        return np.frombuffer(self.read_bytes(start, end), self.dtype)

    def read_bytes(self, start: int, end: int) -> bytes:
        """Items start..end-1 as the file holds them."""
        size = self.dtype.itemsize
        return os.pread(self.file.fileno(), (end - start) * size, start * size)


class SampledExamples(Examples):
    """The pairs of a store segmented anew by sampling (subword regularization), the same way for
    the same seed and index: an epoch's segmentation without holding the corpus in memory."""

    def __init__(self, store: TokenStore, tokenizers: tuple[Tokenizer, Tokenizer], sampling: Sampling):
        self.store, self.tokenizers, self.sampling = store, tokenizers, sampling
        self.texts = {side: store.text(side) for side in SIDES}

    def __len__(self) -> int:
        return len(self.store)

    def example(self, index: int) -> Example:
        sides = []
        for side, tokenizer in zip(SIDES, self.tokenizers, strict=True):
            blob, starts = self.texts[side]
            line = blob.read_bytes(int(starts[index]), int(starts[index + 1])).decode("utf-8")
            sampling = Sampling(
                self.sampling.alpha, self.sampling.nbest_size, self.sampling.seed * 1_000_003 + index
            )
            sides.append(tokenizer.encode([line], sampling)[0])
        return Example(*sides)
