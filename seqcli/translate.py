"""Translation: raw lines -> sorted batches -> search -> detokenized lines, in input order."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import replace
from itertools import islice
from pathlib import Path

import torch
from torch import nn

from seqcli import checkpoint
from seqcli.config import DecodeConfig
from seqcli.corpus import pad
from seqcli.device import has_native_bf16
from seqcli.errors import ConfigError, RunDirError, UsageError
from seqcli.kernels import KERNELS
from seqcli.model.seq2seq import Seq2Seq
from seqcli.search import Hypothesis, SearchTrace, beam_search, greedy_search
from seqcli.tokenizer import Tokenizer
from seqcli.vocab import BOS_ID, EOS_ID

# Lines are read and translated this many at a time, so memory stays flat on long streams
# while batches can still be sorted by length.
STREAM_CHUNK_LINES = 2000

EMPTY = Hypothesis(tokens=[], score=0.0, normalized_score=0.0)
DEFAULT_LENGTH_OFFSET = 10  # outputs may be this many pieces longer than ratio x source


def decode_with_overrides(decode: DecodeConfig, overrides: dict[str, object]) -> DecodeConfig:
    """Replace decode settings given on the command line; a bad value names its option."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return replace(decode, **given)  # type: ignore[arg-type]
    except ConfigError as error:
        raise UsageError(f"--{str(error).removeprefix('decode.').replace('_', '-')}") from None


class Translator:
    """A model with its tokenizers and search settings."""

    def __init__(
        self,
        model: Seq2Seq,
        src_tokenizer: Tokenizer,
        tgt_tokenizer: Tokenizer,
        decode: DecodeConfig,
        device: torch.device,
    ):
        self.model, self.decode, self.device = model, decode, device
        self.src_tokenizer, self.tgt_tokenizer = src_tokenizer, tgt_tokenizer
        # Time spent in search since construction (`seqcli translate --timings`).
        self.generation_seconds = 0.0
        self.sentences_searched = 0
        self.bf16 = False  # bfloat16 autocast in the search (`use_bf16`)

    def use_bf16(self) -> None:
        """Search under bfloat16 autocast (weights stay float32): only where the hardware
        multiplies in bf16, since elsewhere it is emulated and slower."""
        if not has_native_bf16(self.device):
            raise UsageError(
                f"--bf16: {self.device} has no bfloat16 matrix units (needs a CUDA GPU with bf16, "
                "or a CPU with AVX-512 BF16 or AMX)"
            )
        self.bf16 = True

    @classmethod
    def from_run_dir(
        cls, run_dir: Path, overrides: dict[str, object], device: torch.device, quantize: bool = False
    ) -> Translator:
        """Rebuild the model from RUN_DIR alone (config, tokenizers, best weights).

        overrides: decode settings that replace the stored ones (None values are ignored).
        quantize: int8 dynamic quantization of the linear and LSTM layers (CPU only).
        """
        run = checkpoint.load_run(run_dir)
        if run.config.data.task != "translation":
            raise RunDirError(f"{run_dir}: a {run.config.data.task} run; use `seqcli embed` with it")
        decode = decode_with_overrides(run.config.decode, overrides)
        parts = KERNELS[run.config.train.kernels].parts
        model = Seq2Seq(run.config.model, run.src_tokenizer.vocab_size, run.tgt_tokenizer.vocab_size, parts)
        checkpoint.load_state_into(model, run.tensors, Path(run_dir) / checkpoint.BEST)
        model.to(device).eval()
        if quantize:
            model = quantize_dynamic_int8(model, device)
        return cls(model, run.src_tokenizer, run.tgt_tokenizer, decode, device)

    def max_lengths(self, src_lengths: list[int]) -> torch.Tensor:
        """The most pieces each output may have, relative to its source length. (B,)"""
        ratio, offset = self.decode.max_length_ratio, self.decode.max_length_offset
        offset = DEFAULT_LENGTH_OFFSET if offset < 0 else offset  # not derived from training data
        return torch.tensor([max(1, math.ceil(ratio * n) + offset) for n in src_lengths], dtype=torch.long)

    @torch.inference_mode()
    def search_batch(
        self, ids: list[list[int]], decode: DecodeConfig, trace: SearchTrace | None = None
    ) -> list[list[Hypothesis]]:
        """Search one batch of non-empty source id lists (with a trace: a batch of one, whose
        steps the trace records)."""
        self.model.eval()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self._search(ids, decode, trace)

    def _search(
        self, ids: list[list[int]], decode: DecodeConfig, trace: SearchTrace | None = None
    ) -> list[list[Hypothesis]]:
        src = pad(ids).to(self.device)
        lengths = torch.tensor([len(s) for s in ids], dtype=torch.long, device=self.device)
        state, memory = self.model.encode(src, lengths)
        max_lengths = self.max_lengths([len(s) for s in ids]).to(self.device)
        if decode.beam_size == 1:
            return greedy_search(self.model.step, state, memory, BOS_ID, EOS_ID, max_lengths, trace)
        return beam_search(
            self.model.step,
            state,
            memory,
            BOS_ID,
            EOS_ID,
            max_lengths,
            beam_size=decode.beam_size,
            n_best=decode.n_best,
            alpha=decode.length_penalty,
            trace=trace,
        )

    def translate_ids(self, ids: list[list[int]], decode: DecodeConfig) -> list[list[Hypothesis]]:
        """Sort by length, search in batches, and put the results back in input order."""
        start_time = time.perf_counter()
        results: list[list[Hypothesis]] = [[EMPTY] for _ in ids]
        order = sorted((i for i, s in enumerate(ids) if s), key=lambda i: len(ids[i]))
        for start in range(0, len(order), decode.batch_size):
            chunk = order[start : start + decode.batch_size]
            for index, hypotheses in zip(
                chunk, self.search_batch([ids[i] for i in chunk], decode), strict=True
            ):
                results[index] = hypotheses
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.generation_seconds += time.perf_counter() - start_time
        self.sentences_searched += len(ids)
        return results

    def translate_lines(self, lines: list[str], beam_size: int | None = None) -> list[str]:
        """The best translation of each line."""
        decode = self.decode if beam_size is None else replace(self.decode, beam_size=beam_size, n_best=1)
        results = self.translate_ids(self.src_tokenizer.encode(lines), decode)
        return self.tgt_tokenizer.decode([hyps[0].tokens for hyps in results])

    def translate_chunk(self, lines: list[str]) -> list[str]:
        """One output line per input line; n-best hypotheses are joined by tabs, best first."""
        results = self.translate_ids(self.src_tokenizer.encode(lines), self.decode)
        return [
            "\t".join(self.tgt_tokenizer.decode([h.tokens for h in hypotheses[: self.decode.n_best]]))
            for hypotheses in results
        ]

    def translate_stream(self, lines: Iterable[str]) -> Iterator[str]:
        """`translate_chunk` over a stream, STREAM_CHUNK_LINES lines at a time."""
        iterator = iter(lines)
        while chunk := list(islice(iterator, STREAM_CHUNK_LINES)):
            yield from self.translate_chunk(chunk)


def quantize_dynamic_int8(model: Seq2Seq, device: torch.device) -> Seq2Seq:
    """int8 weights for the linear and LSTM/GRU layers, activations quantized on the fly.

    Only on a CPU: torch's dynamic quantized kernels (fbgemm/qnnpack) have no GPU version.
    Embeddings stay in float. The model is for inference only afterwards.
    """
    if device.type != "cpu":
        raise UsageError(f"--quantize: int8 dynamic quantization runs on a CPU only, not on {device}")
    from torch.ao.quantization import quantize_dynamic

    layers: set[type[nn.Module]] = {nn.Linear, nn.LSTM, nn.GRU}  # torch has no quantized vanilla RNN
    with warnings.catch_warnings():  # torch announces the move of quantization to torchao
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantiz.*deprecated")
        return quantize_dynamic(model, layers, dtype=torch.qint8)
