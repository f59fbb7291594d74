"""SentencePiece models: training, loading, encoding and decoding with fixed special ids."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from seqcli.errors import DataError, UsageError
from seqcli.textio import atomic_open
from seqcli.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID

__all__ = ["BOS_ID", "EOS_ID", "PAD_ID", "UNK_ID", "Tokenizer", "TokenizerSpec", "train_sentencepiece"]


@dataclass(frozen=True)
class TokenizerSpec:
    """How to train a SentencePiece model."""

    type: str = "unigram"  # unigram, bpe, char or word
    vocab_size: int = 8000
    character_coverage: float = 1.0
    byte_fallback: bool = False  # unknown characters become UTF-8 byte pieces instead of <unk>


# SentencePiece learns from at most this many lines, a uniform sample of a larger corpus. Its
# memory grows with the characters it learns from (a suffix array over all of them), and this
# bound keeps the whole of `seqcli train` under 2 GiB on corpora of any size
# (benchmarks/scale.py); a larger sample changes an 8,000-piece vocabulary little.
SENTENCEPIECE_SAMPLE = 1_000_000


def train_sentencepiece(sentences: Iterable[str], spec: TokenizerSpec) -> bytes:
    """Train a model on sentences and return its serialized bytes.

    The vocabulary size is a soft limit, so a small corpus gets a smaller vocabulary
    instead of an error. A word model keeps each whitespace token whole (digits and changes
    of script included); words outside its vocabulary become <unk>.
    """
    writer = io.BytesIO()
    whole_words = spec.type == "word"
    try:
        with open(os.devnull, "w") as quiet:
            spm.SentencePieceTrainer.train(
                sentence_iterator=(s for s in sentences if s.strip()),  # streamed; it samples
                model_writer=writer,
                model_type=spec.type,
                vocab_size=spec.vocab_size,
                character_coverage=spec.character_coverage,
                hard_vocab_limit=False,
                byte_fallback=spec.byte_fallback,
                max_sentencepiece_length=512 if whole_words else 16,
                split_by_number=not whole_words,
                split_by_unicode_script=not whole_words,
                max_sentence_length=1 << 20,  # long lines are learned from, not skipped
                pad_id=PAD_ID,
                unk_id=UNK_ID,
                bos_id=BOS_ID,
                eos_id=EOS_ID,
                input_sentence_size=SENTENCEPIECE_SAMPLE,
                shuffle_input_sentence=True,
                num_threads=os.cpu_count() or 1,
                logstream=quiet,
            )
    except RuntimeError as error:
        raise DataError(f"SentencePiece training failed: {error}") from None
    return writer.getvalue()


@dataclass(frozen=True)
class Sampling:
    """Subword regularization (Kudo 2018): sample a segmentation among the nbest_size best
    (-1: all) with probabilities smoothed by alpha (small: near uniform; 1: the model's)."""

    alpha: float
    nbest_size: int
    seed: int


class Tokenizer:
    """A loaded SentencePiece model with the project's special ids."""

    def __init__(self, model_bytes: bytes, name: str = "<memory>"):
        self.model_bytes = model_bytes
        self.name = name
        self._processor = spm.SentencePieceProcessor()
        try:
            self._processor.LoadFromSerializedProto(model_bytes)
        except (RuntimeError, OSError):
            raise DataError(f"{name}: not a SentencePiece model") from None
        expected = (PAD_ID, UNK_ID, BOS_ID, EOS_ID)
        actual = (
            self._processor.pad_id(),
            self._processor.unk_id(),
            self._processor.bos_id(),
            self._processor.eos_id(),
        )
        if actual != expected:
            raise DataError(
                f"{name}: special ids pad/unk/bos/eos are {actual}, seqcli needs {expected}"
                " (train the model with `seqcli tokenize train`)"
            )

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        try:
            return cls(Path(path).read_bytes(), str(path))
        except FileNotFoundError:
            raise DataError(f"{path}: SentencePiece model not found") from None

    def save(self, path: Path) -> None:
        with atomic_open(path, "wb") as handle:
            handle.write(self.model_bytes)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.model_bytes).hexdigest()

    @property
    def vocab_size(self) -> int:
        return self._processor.get_piece_size()

    def encode(self, lines: list[str], sampling: Sampling | None = None) -> list[list[int]]:
        """Ids of the best segmentation of each line, or of a sampled one (unigram models)."""
        if sampling is None:
            return self._processor.encode(lines, out_type=int)
        # One thread: sentencepiece's generator is then seeded for the whole list, and the
        # same seed gives the same segmentations.
        spm.set_random_generator_seed(sampling.seed)
        return self._processor.encode(
            lines,
            out_type=int,
            enable_sampling=True,
            alpha=sampling.alpha,
            nbest_size=sampling.nbest_size,
            num_threads=1,
        )

    def encode_pieces(self, lines: list[str]) -> list[list[str]]:
        return self._processor.encode(lines, out_type=str)

    def decode(self, ids: list[list[int]]) -> list[str]:
        return self._processor.decode(ids)

    def decode_pieces(self, pieces: list[list[str]]) -> list[str]:
        return self._processor.decode_pieces(pieces)

    def normalize(self, line: str) -> str:
        """The text as the model sees it (NFKC, whitespace collapsed), in surface form."""
        # The normalizer marks spaces (and a dummy prefix) with U+2581, as pieces do.
        return self._processor.normalize(line).replace("\u2581", " ").removeprefix(" ")

    def pieces_to_ids(self, pieces: list[str]) -> list[int]:
        return [self._processor.piece_to_id(p) for p in pieces]

    def ids_to_pieces(self, ids: list[int]) -> list[str]:
        return [self._processor.id_to_piece(i) for i in ids]


def check_model_choice(joint: bool, src_model: str, tgt_model: str) -> None:
    """Existing models: either one for both sides, or one per side."""
    if joint and src_model and tgt_model and src_model != tgt_model:
        raise UsageError("--src-model/--tgt-model: two different models given with a joint tokenizer")
