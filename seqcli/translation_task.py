"""Translation as a training task: parallel batches, scheduled teacher forcing, BLEU on validation."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seqcli import checkpoint
from seqcli.config import Config, parse_alphas
from seqcli.corpus import (
    Batch,
    Example,
    bucket_batches,
    collate,
    corpus_paths,
    encode_parallel,
    length_batches,
    read_parallel,
)
from seqcli.errors import DataError
from seqcli.kernels import KERNELS
from seqcli.levels import count_lines, resolve
from seqcli.loss import Reinforce
from seqcli.metrics import score
from seqcli.model.attention import Readout
from seqcli.model.hard_attention import MixtureOutput
from seqcli.model.seq2seq import Seq2Seq
from seqcli.store import SampledExamples, TokenStore, write_store
from seqcli.task import BatchLoss, BestRule, TaskSetting
from seqcli.teacher import TeacherForcingSchedule, draw_gold_mask, mix_predictions
from seqcli.textio import open_input
from seqcli.tokenizer import Sampling, Tokenizer, TokenizerSpec, check_model_choice, train_sentencepiece
from seqcli.translate import DEFAULT_LENGTH_OFFSET, Translator
from seqcli.tune import PenaltyResult, best_alpha, tune_length_penalty
from seqcli.vocab import PAD_ID, UNK_ID

# A beam search over the validation sources (one alpha of the length-penalty search), in
# validations (the validation loss and a greedy search), for the time budget. Measured on the
# en-de CPU recipe: beam 5 took 3.0x (one thread) and 3.2x (two) the greedy search's time over
# valid (benchmarks/beam_pass.py, benchmarks/results/beam-pass-cpu.json); a validation also
# computes the loss, so 3 errs on the side of finishing within --max-minutes.
BEAM_PASS_IN_VALIDATIONS = 3.0


STORE_DIR = "train.store"  # the run's training corpus as piece ids (seqcli.store)


def stream_lines(*paths: Path) -> Iterator[str]:
    """The lines of the files one after the other, read as they are used."""
    for path in paths:
        with open_input(path) as lines:
            yield from lines


def prepare_tokenizers(config: Config, sources: tuple[Path, Path]) -> tuple[Tokenizer, Tokenizer]:
    """Load the given SentencePiece models, or train them on the training corpus (streamed)."""
    tok = config.tokenizer
    check_model_choice(tok.joint, tok.src_model, tok.tgt_model)
    spec = TokenizerSpec(tok.type, tok.vocab_size, tok.character_coverage)
    if tok.joint:
        given = tok.src_model or tok.tgt_model
        joint = (
            Tokenizer.load(Path(given))
            if given
            else Tokenizer(train_sentencepiece(stream_lines(*sources), spec))
        )
        return joint, joint
    src, tgt = (
        Tokenizer.load(Path(model)) if model else Tokenizer(train_sentencepiece(stream_lines(path), spec))
        for model, path in ((tok.src_model, sources[0]), (tok.tgt_model, sources[1]))
    )
    return src, tgt


def usable_pairs(
    src_lengths: np.ndarray, tgt_lengths: np.ndarray, limit: int
) -> tuple[np.ndarray, list[str]]:
    """The pairs training can use (no empty side, no side over a limit above 0), and a sentence
    for each kind of pair left out, naming its count, its share and the option to change."""
    empty = (src_lengths == 0) | (tgt_lengths == 0)
    too_long = ~empty & (np.maximum(src_lengths, tgt_lengths) > limit) if limit else np.zeros_like(empty)
    total = len(src_lengths)
    said = []
    if empty.any():
        count = int(empty.sum())
        said.append(
            f"{count:,} of {total:,} training pairs ({count / total:.2%}) have an empty side and are left out"
        )
    if too_long.any():
        count = int(too_long.sum())
        share = f"{count:,} of {total:,} training pairs ({count / total:.2%})"
        said.append(
            f"{share} have a side longer than {limit} pieces and are left out;"
            " --set data.max_tokens_per_sentence=0 keeps them"
        )
    return np.nonzero(~(empty | too_long))[0], said


def output_length_offset(src_lengths: np.ndarray, tgt_lengths: np.ndarray, ratio: float) -> int:
    """The smallest decode.max_length_offset (at least the default) with which every training
    target, EOS included, fits in ceil(ratio x its source) + offset steps."""
    if not len(src_lengths):
        return DEFAULT_LENGTH_OFFSET
    needed = tgt_lengths + 1 - np.ceil(ratio * src_lengths)
    return max(DEFAULT_LENGTH_OFFSET, int(needed.max()))


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
            self.model, self.src_tokenizer, self.tgt_tokenizer, self.config.decode, self.device
        )

    def _load_data(self, tokenizers: tuple[Tokenizer, Tokenizer] | None) -> None:
        """Tokenizers, the training corpus as a token store in the run directory (written once,
        by rank 0 of a job), the pairs training uses, and the validation set in memory."""
        data, world = self.config.data, self.setting.world
        if not data.train or not data.valid:
            raise DataError("--train and --valid: both corpus prefixes are needed")
        sources = corpus_paths(data.train, data.src_lang, data.tgt_lang)
        for path in sources:
            if not path.is_file():
                raise DataError(f"{path}: file not found")
        self.valid_src, self.valid_tgt = read_parallel(data.valid, data.src_lang, data.tgt_lang)
        tok = self.config.tokenizer
        left_to_data = tok.type == "auto" or not tok.vocab_size  # else nothing to read here
        if tokenizers is None and left_to_data and not (tok.src_model or tok.tgt_model):
            level = resolve(tok.type, tok.vocab_size, tok.joint, sources, count_lines(sources[0]))
            if level is not None:  # what the config left to the data, decided and stored
                tok = replace(tok, type=level.type, vocab_size=level.vocab_size, joint=level.joint)
                self.config = replace(self.config, tokenizer=tok)
        self.src_tokenizer, self.tgt_tokenizer = tokenizers or world.from_main(
            lambda: prepare_tokenizers(self.config, sources)
        )
        folder = self.setting.run_dir / STORE_DIR
        keep_text = bool(self.config.tokenizer.sampling_alpha)
        world.from_main(lambda: self._write_store(folder, sources, keep_text))
        self.store = TokenStore(folder)
        src_lengths, tgt_lengths = self.store.lengths["src"], self.store.lengths["tgt"]
        self.usable, self.warnings = usable_pairs(src_lengths, tgt_lengths, data.max_tokens_per_sentence)
        if not len(self.usable):
            raise DataError(f"{data.train}: no usable training pairs ({'; '.join(self.warnings)})")
        if self.config.decode.max_length_offset < 0:  # from the data: the longest output fits
            offset = output_length_offset(
                src_lengths[self.usable], tgt_lengths[self.usable], self.config.decode.max_length_ratio
            )
            self.config = replace(self.config, decode=replace(self.config.decode, max_length_offset=offset))
        self.train_items: Sequence[Example] = self.store
        # Validation loss uses every pair; only truly empty ones are skipped.
        self.valid_data = encode_parallel(
            self.valid_src, self.valid_tgt, self.src_tokenizer, self.tgt_tokenizer, 10**9
        )

    def _write_store(self, folder: Path, sources: tuple[Path, Path], keep_text: bool) -> None:
        """Write the store unless the run has one from these files and tokenizers."""
        tokenizers = (self.src_tokenizer, self.tgt_tokenizer)
        if (folder / "store.json").exists() and TokenStore(folder).matches(sources, tokenizers):
            return
        write_store(folder, sources, tokenizers, keep_text)

    def info(self) -> dict[str, object]:
        return {
            "parameters": self.model.count_parameters(),
            "train_pairs": len(self.usable),
            "left_out": len(self.store) - len(self.usable),
            "src_vocab": self.src_tokenizer.vocab_size,
            "tgt_vocab": self.tgt_tokenizer.vocab_size,
        }

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The epoch's batches of `train_items`, made from the pairs' lengths; with subword
        sampling each pair is segmented anew when a batch reads it, the same way for the same
        seed, epoch and pair (so a resume is exact)."""
        cfg, tok = self.config.train, self.config.tokenizer
        seed = cfg.seed * 1000 + epoch
        if tok.sampling_alpha:
            sampling = Sampling(tok.sampling_alpha, tok.sampling_nbest, seed=seed)
            self.train_items = SampledExamples(self.store, self.tokenizers, sampling)
        lengths = self.store.lengths["src"], self.store.lengths["tgt"]
        return length_batches(*lengths, cfg.batching, cfg.batch_tokens, seed, self.usable)  # type: ignore[return-value]

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
        reinforce = self.config.train.hard_attention_estimator == "reinforce"
        # The loss inside autocast too: hard attention's output layer runs when its loss asks.
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.setting.use_bf16):
            output = self._forward(model, batch, use_gold, real)
            if isinstance(output, MixtureOutput) and reinforce:  # reports the sampled read-out's loss
                sampler, loss = self.setting.sampler, self.kernels.sequence_loss
                loss_sum, objective = self.reinforce(output, targets, smoothing, sampler, loss)
            else:
                loss_sum = objective = self.kernels.sequence_loss(output.logits, targets, smoothing)
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
