"""Translation as a training task: parallel batches, scheduled teacher forcing, BLEU on validation."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seqcli import checkpoint
from seqcli.config import Config, parse_alphas
from seqcli.corpus import (
    Batch,
    EncodedCorpus,
    Example,
    bucket_batches,
    collate,
    encode_parallel,
    make_batches,
    read_parallel,
)
from seqcli.errors import DataError
from seqcli.kernels import KERNELS
from seqcli.loss import Reinforce
from seqcli.metrics import score
from seqcli.model.attention import Readout
from seqcli.model.hard_attention import MixtureOutput
from seqcli.model.seq2seq import Seq2Seq
from seqcli.task import BatchLoss, BestRule, TaskSetting
from seqcli.teacher import TeacherForcingSchedule, draw_gold_mask, mix_predictions
from seqcli.tokenizer import Sampling, Tokenizer, TokenizerSpec, check_model_choice, train_sentencepiece
from seqcli.translate import Translator
from seqcli.tune import PenaltyResult, best_alpha, tune_length_penalty
from seqcli.vocab import PAD_ID, UNK_ID

# A beam search over the validation sources (one alpha of the length-penalty search), in
# validations (the validation loss and a greedy search), for the time budget.
BEAM_PASS_IN_VALIDATIONS = 2.0


def prepare_tokenizers(
    config: Config, src_lines: list[str], tgt_lines: list[str]
) -> tuple[Tokenizer, Tokenizer]:
    """Load the given SentencePiece models, or train them on the training corpus."""
    tok = config.tokenizer
    check_model_choice(tok.joint, tok.src_model, tok.tgt_model)
    spec = TokenizerSpec(tok.type, tok.vocab_size, tok.character_coverage)
    if tok.joint:
        given = tok.src_model or tok.tgt_model
        joint = (
            Tokenizer.load(Path(given))
            if given
            else Tokenizer(train_sentencepiece(src_lines + tgt_lines, spec))
        )
        return joint, joint
    src = (
        Tokenizer.load(Path(tok.src_model))
        if tok.src_model
        else Tokenizer(train_sentencepiece(src_lines, spec))
    )
    tgt = (
        Tokenizer.load(Path(tok.tgt_model))
        if tok.tgt_model
        else Tokenizer(train_sentencepiece(tgt_lines, spec))
    )
    return src, tgt


def drop_words(src: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Source word dropout: each real token of src (B, S) becomes <unk> with probability p, so
    the model learns not to lean on any one source piece."""
    dropped = (torch.rand(src.shape, generator=generator) < p) & (src != PAD_ID)
    return src.masked_fill(dropped, UNK_ID)


class TranslationTask:
    """An attentional encoder-decoder on a parallel corpus; best = highest validation BLEU."""

    best = BestRule("valid_bleu", higher_is_better=True)

    def __init__(self, config: Config, setting: TaskSetting, tokenizers: tuple[Tokenizer, Tokenizer] | None):
        self.config, self.setting, self.device = config, setting, setting.device
        self.schedule = TeacherForcingSchedule(
            config.train.teacher_forcing,
            config.train.tf_start,
            config.train.tf_min,
            config.train.tf_slope,
            config.train.tf_k,
        )
        self._load_data(tokenizers)
        self.tokenizers = (self.src_tokenizer, self.tgt_tokenizer)
        self.kernels = KERNELS[config.train.kernels]
        src_vocab, tgt_vocab = self.src_tokenizer.vocab_size, self.tgt_tokenizer.vocab_size
        self.model = Seq2Seq(config.model, src_vocab, tgt_vocab, self.kernels.parts).to(self.device)
        self.reinforce = Reinforce(config.train.hard_attention_entropy)
        self.translator = Translator(
            self.model, self.src_tokenizer, self.tgt_tokenizer, config.decode, self.device
        )

    def _load_data(self, tokenizers: tuple[Tokenizer, Tokenizer] | None) -> None:
        data = self.config.data
        if not data.train or not data.valid:
            raise DataError("--train and --valid: both corpus prefixes are needed")
        src_lines, tgt_lines = read_parallel(data.train, data.src_lang, data.tgt_lang)
        self.train_lines = (src_lines, tgt_lines)  # re-segmented each epoch with subword sampling
        self.valid_src, self.valid_tgt = read_parallel(data.valid, data.src_lang, data.tgt_lang)
        self.src_tokenizer, self.tgt_tokenizer = tokenizers or self.setting.world.from_main(
            lambda: prepare_tokenizers(self.config, src_lines, tgt_lines)
        )
        self.train_data: EncodedCorpus = encode_parallel(
            src_lines, tgt_lines, self.src_tokenizer, self.tgt_tokenizer, data.max_tokens_per_sentence
        )
        if not self.train_data.examples:
            raise DataError(f"{data.train}: no usable training pairs after length filtering")
        # Validation loss uses every pair; only truly empty ones are skipped.
        self.valid_data = encode_parallel(
            self.valid_src, self.valid_tgt, self.src_tokenizer, self.tgt_tokenizer, 10**9
        )

    @property
    def train_items(self) -> list[Example]:
        return self.train_data.examples

    def info(self) -> dict[str, object]:
        return {
            "parameters": self.model.count_parameters(),
            "train_pairs": len(self.train_data.examples),
            "filtered_pairs": self.train_data.n_filtered,
            "src_vocab": self.src_tokenizer.vocab_size,
            "tgt_vocab": self.tgt_tokenizer.vocab_size,
        }

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The epoch's batches of `train_items`; with subword sampling the training pairs are
        first segmented anew, the same way for the same seed and epoch (so a resume is exact)."""
        cfg, tok = self.config.train, self.config.tokenizer
        if tok.sampling_alpha:
            sampling = Sampling(tok.sampling_alpha, tok.sampling_nbest, seed=cfg.seed * 1000 + epoch)
            self.train_data = encode_parallel(
                *self.train_lines,
                self.src_tokenizer,
                self.tgt_tokenizer,
                self.config.data.max_tokens_per_sentence,
                sampling,
            )
        return make_batches(
            self.train_data.examples, cfg.batching, cfg.batch_tokens, seed=cfg.seed * 1000 + epoch
        )

    def gold_probability(self, step: int) -> float:
        return self.schedule.gold_probability(step)

    def batch_loss(self, model: nn.Module, items: Sequence[Example], step: int) -> BatchLoss:
        """The label-smoothed loss of one batch, fed gold tokens with the schedule's probability;
        hard attention trained by REINFORCE has its own objective (the reported loss stays the
        likelihood's)."""
        batch = collate(list(items))
        if self.config.train.word_dropout:
            batch = replace(
                batch, src=drop_words(batch.src, self.config.train.word_dropout, self.setting.sampler)
            )
        batch = batch.to(self.device)
        shape = (batch.tgt_in.size(0), batch.tgt_in.size(1))  # (B, T)
        use_gold = draw_gold_mask(shape, self.gold_probability(step), self.setting.sampler)
        if use_gold is not None:
            use_gold = use_gold.to(self.device)
        real = batch.tgt_out != PAD_ID  # (B, T): logits for these only
        targets = batch.tgt_out[real]  # (N,)
        smoothing = self.config.train.label_smoothing
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.setting.use_bf16):
            output = self._forward(model, batch, use_gold, real)
        loss_sum = self.kernels.sequence_loss(output.logits, targets, smoothing)
        objective = loss_sum
        if isinstance(output, MixtureOutput) and self.config.train.hard_attention_estimator == "reinforce":
            sampler, loss = self.setting.sampler, self.kernels.sequence_loss
            objective = self.reinforce(output, targets, smoothing, sampler, loss)
        return BatchLoss(loss_sum, batch.n_tgt_tokens, objective)

    def _forward(
        self, model: nn.Module, batch: Batch, use_gold: torch.Tensor | None, real: torch.Tensor
    ) -> Readout:
        """The training pass, with scheduled sampling's coin flips use_gold (B, T) if any;
        logits for the positions in real (B, T) only."""
        if use_gold is None or self.config.train.scheduled_sampling == "sequential":
            return model(batch.src, batch.src_lengths, batch.tgt_in, use_gold, real)
        with torch.no_grad():  # parallel: a first pass guesses every position at once
            guesses = self.model(batch.src, batch.src_lengths, batch.tgt_in).logits.argmax(-1)  # (B, T)
        tgt_in = mix_predictions(batch.tgt_in, guesses, use_gold)
        return model(batch.src, batch.src_lengths, tgt_in, None, real)

    @torch.inference_mode()
    def validation_loss(self) -> float:
        """Teacher-forced loss per target token on the validation set (no label smoothing)."""
        self.model.eval()
        total, tokens = 0.0, 0
        batches = bucket_batches(self.valid_data.examples, self.config.train.batch_tokens, seed=0)
        for indices in batches:
            batch = collate([self.valid_data.examples[i] for i in indices]).to(self.device)
            real = batch.tgt_out != PAD_ID
            logits = self.model(batch.src, batch.src_lengths, batch.tgt_in, real=real).logits
            total += self.kernels.sequence_loss(logits, batch.tgt_out[real], 0.0).item()
            tokens += batch.n_tgt_tokens
        self.model.train()
        return total / max(tokens, 1)

    def validation_scores(self) -> tuple[float, float, float]:
        """BLEU, chrF and exact match of searched translations of the validation sources."""
        hypotheses = self.translator.translate_lines(
            self.valid_src, beam_size=self.config.train.eval_beam_size
        )
        self.model.train()
        scores = score(hypotheses, self.valid_tgt)
        return scores.bleu, scores.chrf, scores.exact_match

    def validate(self) -> dict[str, float]:
        valid_loss = self.validation_loss()
        bleu, chrf, exact = self.validation_scores()
        return {
            "valid_loss": round(valid_loss, 4),
            "valid_bleu": bleu,
            "valid_chrf": chrf,
            "valid_exact_match": exact,
        }

    def state(self) -> dict[str, Any]:
        # REINFORCE's baseline averages past rewards: the next updates depend on it.
        return {"attention_baseline": self.reinforce.baseline}

    def load_state(self, state: dict[str, Any]) -> None:
        self.reinforce.baseline = state.get("attention_baseline")

    def after_training(
        self, run_dir: Path, seconds_left: Callable[[], float], note: Callable[[str], None]
    ) -> dict[str, object]:
        """Beam search on valid with each alpha of train.tune_length_penalty (the best weights are
        loaded); the best alpha becomes decode.length_penalty in RUN_DIR/config.toml. Alphas that
        would pass the time budget are not tried."""
        alphas = parse_alphas(self.config.train.tune_length_penalty, "train.tune_length_penalty")
        if not alphas:
            return {}
        beam = self.config.decode.beam_size
        results: list[PenaltyResult] = []
        alpha_seconds = 0.0  # the last alpha's search: the next one is judged to take as long
        for alpha in alphas:
            if results and alpha_seconds > seconds_left():
                note(f"--max-minutes: {len(results)} of {len(alphas)} length penalties tried "
                     f"({seconds_left():.0f} s left, one takes {alpha_seconds:.0f} s)")  # fmt: skip
                break
            note(f"length penalty {alpha:g}: beam {beam} on valid")
            started = time.monotonic()
            results += tune_length_penalty(self.translator, self.valid_src, self.valid_tgt, [alpha])
            alpha_seconds = time.monotonic() - started
        best = best_alpha(results)
        self.config = replace(self.config, decode=replace(self.config.decode, length_penalty=best.alpha))
        self.translator.decode = self.config.decode
        stored = checkpoint.load_config(run_dir)
        checkpoint.save_config(
            run_dir, replace(stored, decode=replace(stored.decode, length_penalty=best.alpha))
        )
        note(f"length penalty {best.alpha:g} (valid BLEU {best.scores.bleu:.2f}) stored")
        return {
            "length_penalty": {
                "beam_size": beam,
                "valid_bleu": {f"{r.alpha:g}": r.scores.bleu for r in results},
                "chosen": best.alpha,
            }
        }

    def after_training_in_validations(self) -> float:
        alphas = parse_alphas(self.config.train.tune_length_penalty, "train.tune_length_penalty")
        return BEAM_PASS_IN_VALIDATIONS * len(alphas)
