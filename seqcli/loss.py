"""Training objectives: label-smoothed cross-entropy over target pieces; hard attention's REINFORCE term."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from seqcli.model.hard_attention import PositionChoice
from seqcli.vocab import PAD_ID


def sequence_loss(logits: Tensor, tgt_out: Tensor, label_smoothing: float) -> Tensor:
    """Label-smoothed cross-entropy summed over the real target positions (padding ignored).

    With l = log_softmax(z) over the vocabulary V and smoothing eps, a position with gold
    token y costs -(1 - eps) * l_y - eps * mean_v l_v (Szegedy et al. 2016).
    logits (B, T, V) or (N, V), tgt_out (B, T) or (N,) -> scalar.
    """
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        tgt_out.reshape(-1),
        ignore_index=PAD_ID,
        label_smoothing=label_smoothing,
        reduction="sum",
    )


@dataclass
class HardAttentionObjective:
    """The REINFORCE term that trains hard attention's scores (Xu et al. 2015, eq. 11-12).

    The context is the encoder state at a sampled position s_t ~ p(s | step t), so the loss
    L = -log p(y | s) has no gradient with respect to the attention scores. The score-function
    identity gives one:

        d E_s[log p(y | s)] / dW = E_s[ log p(y | s) * d log p(s) / dW ]

    estimated with the one sample drawn in the forward pass. Three choices keep its variance
    workable:
      * the reward of the choice at step t is that step's gold log-likelihood
        r_t = log p(y_t | y_<t, s_<=t) (detached), not the whole sentence's; this credits each
        choice with what it did at its own step and ignores its later effect through the
        recurrent state (a bias traded for much lower variance on long targets);
      * a baseline b, the moving average of the batch-mean reward (b <- decay * b +
        (1 - decay) * mean r), is subtracted: r_t - b has the same expected gradient and a
        smaller spread;
      * an entropy bonus lambda * H[p(. | step t)] keeps the distribution from collapsing
        onto one position before the scores mean anything.

    The surrogate whose gradient is the estimate, summed over real target positions:
        -sum_t [(r_t - b) * log p(s_t) + lambda * H_t]
    """

    entropy_weight: float = 0.01
    decay: float = 0.9
    baseline: float | None = None  # None until the first batch sets it

    def __call__(self, choice: PositionChoice, logits: Tensor, tgt_out: Tensor) -> Tensor:
        """choice (B, T), logits (B, T, V), tgt_out (B, T) -> scalar surrogate loss (a sum)."""
        is_real = tgt_out != PAD_ID  # (B, T)
        log_probs = torch.log_softmax(logits.detach().float(), dim=-1)  # (B, T, V)
        reward = log_probs.gather(2, tgt_out.unsqueeze(-1)).squeeze(-1)  # (B, T)
        mean_reward = float(reward[is_real].mean()) if is_real.any() else 0.0
        baseline = mean_reward if self.baseline is None else self.baseline
        advantage = (reward - baseline).masked_fill(~is_real, 0.0)  # (B, T)
        self.baseline = self.decay * baseline + (1 - self.decay) * mean_reward
        surrogate = advantage * choice.log_prob + self.entropy_weight * choice.entropy  # (B, T)
        return -surrogate.masked_fill(~is_real, 0.0).sum()
