"""Encoder: embeddings and a recurrent stack over source sequences of mixed lengths."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seqcli.config import ModelConfig
from seqcli.model.cells import Cell, RNNState
from seqcli.model.dropout import make_dropout
from seqcli.model.parts import REFERENCE, Parts
from seqcli.vocab import PAD_ID


@dataclass
class EncoderOutput:
    """What the decoder reads from the encoder.

    states (B, S, H): top-layer outputs, both directions concatenated;
    mask (B, S): True at real source positions;
    final: the last state of every layer, directions concatenated, each (L, B, H).
    """

    states: Tensor
    mask: Tensor
    final: RNNState


class Encoder(nn.Module):
    """Embed source ids and run a uni- or bidirectional recurrent stack over them."""

    def __init__(
        self,
        cell: type[Cell],
        vocab_size: int,
        embedding_size: int,
        hidden_size: int,
        num_layers: int,
        bidirectional: bool,
        dropout: float,
        embedding_dropout: float,
        padding_idx: int,
        output_dropout: float | None = None,
        variational: bool = False,
        parts: Parts = REFERENCE,
    ):
        super().__init__()
        self.cell = cell
        self.directions = 2 if bidirectional else 1
        self.output_size = hidden_size
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=padding_idx)
        self.embedding_dropout = make_dropout(embedding_dropout, variational, parts.dropout)
        self.rnn = cell.build(
            embedding_size, hidden_size // self.directions, num_layers, dropout, bidirectional
        )
        output_p = dropout if output_dropout is None else output_dropout
        self.output_dropout = make_dropout(output_p, variational, parts.dropout)

    @classmethod
    def from_config(cls, config: ModelConfig, vocab_size: int, parts: Parts = REFERENCE) -> Encoder:
        """The encoder a ModelConfig describes (shared by the translation and skip-thought models)."""
        return cls(
            parts.cells[config.cell],
            vocab_size,
            config.embedding_size,
            config.hidden_size,
            config.encoder_layers,
            config.bidirectional,
            config.dropout,
            config.embedding_dropout,
            PAD_ID,
            output_dropout=config.dropout if config.dropout_placement == "output" else 0.0,
            variational=config.variational_dropout,
            parts=parts,
        )

    def forward(self, src: Tensor, src_lengths: Tensor) -> EncoderOutput:
        """src (B, S) ids, src_lengths (B,) -> EncoderOutput."""
        embedded = self.embedding_dropout(self.embedding(src))  # (B, S, E)
        states, final = self.cell.run(self.rnn, embedded, src_lengths, None)  # (B, S, H)
        mask = torch.arange(src.size(1), device=src.device)[None, :] < src_lengths[:, None]  # (B, S)
        joined = tuple(self._join_directions(t) for t in final)  # each (L, B, H)
        return EncoderOutput(self.output_dropout(states), mask, joined)

    def _join_directions(self, final: Tensor) -> Tensor:
        """(L * D, B, H / D) -> (L, B, H), forward and backward side by side."""
        layers_times_dirs, batch, size = final.shape
        layers = layers_times_dirs // self.directions
        final = final.view(layers, self.directions, batch, size)
        return final.transpose(1, 2).reshape(layers, batch, size * self.directions)
