"""Frozen dataclasses holding every option, filled from TOML and command-line overrides."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

from seqcli.errors import ConfigError

CELLS = ("lstm", "gru", "rnn", "mingru", "minlstm")
ATTENTIONS = ("general", "dot", "additive", "none", "hard")
BRIDGES = ("bridge", "last", "zeros")
SCHEDULES = ("constant", "linear", "exponential", "inverse_sigmoid")
SAMPLING_MODES = ("sequential", "parallel")
RNN_INITS = ("torch", "xavier")
DROPOUT_PLACEMENTS = ("output", "input")
BATCHINGS = ("buckets", "random")
TOKENIZER_TYPES = ("auto", "unigram", "bpe", "word", "char")
TASKS = ("translation", "skip-thought")
LR_SCHEDULES = ("constant", "inverse_sqrt", "cosine")
KERNELS = ("fast", "reference")
ESTIMATORS = ("exact", "reinforce")

T = TypeVar("T")


def option(
    default: T, help: str = "", *, flag: str | None = None, choices: tuple[str, ...] | None = None
) -> T:
    """A config field declared once: its default, its `seqcli train` flag and help, its choices.

    flag: the command-line spelling ("--lr", or "--joint/--separate" for a pair of switches);
    None keeps the field to TOML and --set. choices: the values validation accepts; the same
    tuple is listed in the flag's help and in the error message.
    """
    metadata = {"help": help, "flag": flag, "choices": choices}
    return field(default=default, metadata=metadata)


def _check_choices(section: str, config: Any) -> None:
    """Every field declared with choices holds one of them."""
    for spec in fields(config):
        choices = spec.metadata.get("choices")
        if choices is not None:
            _check_choice(section, spec.name, getattr(config, spec.name), choices)


def _check_choice(section: str, name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{section}.{name}: {value!r} is not one of {', '.join(choices)}")


def _check_range(section: str, name: str, value: float, low: float, high: float | None = None) -> None:
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{section}.{name}: {value} must be {bound}")


def parse_alphas(text: str, where: str) -> list[float]:
    """Comma-separated numbers ("0,0.6,1.0") -> floats; "" -> none."""
    try:
        return [float(a) for a in text.split(",")] if text.strip() else []
    except ValueError:
        raise ConfigError(f"{where} {text}: expected comma-separated numbers, e.g. 0,0.6,1.0") from None


@dataclass(frozen=True)
class DataConfig:
    """Where the parallel corpus is and how it is filtered."""

    task: str = option(
        "translation",
        "What to train; skip-thought reads --train/--valid as sentence files, not corpus prefixes.",
        flag="--task",
        choices=TASKS,
    )
    train: str = option("", "Training corpus prefix (PREFIX.SRC_LANG, PREFIX.TGT_LANG).", flag="--train")
    valid: str = option("", "Validation corpus prefix.", flag="--valid")
    src_lang: str = option("src", "Source file suffix, e.g. de.", flag="--src-lang")
    tgt_lang: str = option("tgt", "Target file suffix, e.g. en.", flag="--tgt-lang")
    # Training pairs with a side longer than this many pieces are left out (and said so on
    # stderr); 0: none is, the longest pair sets the length.
    max_tokens_per_sentence: int = 0

    def __post_init__(self) -> None:
        _check_range("data", "max_tokens_per_sentence", self.max_tokens_per_sentence, 0)
        _check_choices("data", self)


@dataclass(frozen=True)
class TokenizerConfig:
    """SentencePiece models: trained on the training corpus unless paths are given.

    type "auto" and vocab_size 0 are decided from the training corpus (seqcli.levels): word
    level for small closed vocabularies, unigram subwords for natural language.
    """

    type: str = option(
        "auto",
        "Vocabulary level: whole words, characters or SentencePiece subwords (auto: from the data).",
        flag="--tokenizer-type",
        choices=TOKENIZER_TYPES,
    )
    vocab_size: int = option(0, "Vocabulary size, an upper bound (0: from the data).", flag="--vocab-size")
    joint: bool = option(True, "One SentencePiece model for both sides, or two.", flag="--joint/--separate")
    character_coverage: float = 1.0
    # Subword regularization: the training side is re-segmented each epoch, validation and
    # translation keep the single best segmentation. A unigram model samples among its
    # segmentations (sampling_nbest -1: all of them) with smoothing alpha (Kudo 2018); a BPE
    # model skips each merge with probability alpha (BPE-dropout, Provilkov et al. 2020). 0 = off.
    sampling_alpha: float = option(
        0.0,
        "Subword sampling for training: unigram smoothing or BPE-dropout rate (0 = off).",
        flag="--subword-sampling",
    )
    sampling_nbest: int = -1
    # An existing SentencePiece model to use instead of training one.
    src_model: str = option("", "Existing SentencePiece model for the source (or both).", flag="--src-spm")
    tgt_model: str = option("", "Existing SentencePiece model for the target.", flag="--tgt-spm")

    def __post_init__(self) -> None:
        _check_choices("tokenizer", self)
        if self.vocab_size:
            _check_range("tokenizer", "vocab_size", self.vocab_size, 8)
        _check_range("tokenizer", "character_coverage", self.character_coverage, 0.9, 1.0)
        _check_range("tokenizer", "sampling_alpha", self.sampling_alpha, 0.0, 1.0)
        if self.sampling_alpha and self.type in ("char", "word"):
            raise ConfigError(
                f"tokenizer.sampling_alpha: a {self.type} model has one segmentation;"
                " sampling needs unigram or bpe"
            )
        if self.sampling_nbest == 0 or self.sampling_nbest < -1:
            raise ConfigError(
                f"tokenizer.sampling_nbest: {self.sampling_nbest} must be -1 (all) or at least 1"
            )


@dataclass(frozen=True)
class ModelConfig:
    """The encoder-decoder architecture; stored with every checkpoint."""

    cell: str = option("lstm", "Recurrent cell.", flag="--cell", choices=CELLS)
    embedding_size: int = option(256, "Embedding size.", flag="--embedding-size")
    # Each encoder direction gets hidden_size // directions.
    hidden_size: int = option(512, "Decoder hidden size (encoder: half per direction).", flag="--hidden-size")
    encoder_layers: int = option(2, "Encoder layers.", flag="--encoder-layers")
    decoder_layers: int = option(2, "Decoder layers.", flag="--decoder-layers")
    bidirectional: bool = option(True, "Encoder direction.", flag="--bidirectional/--unidirectional")
    attention: str = option("general", "Attention.", flag="--attention", choices=ATTENTIONS)
    input_feeding: bool = option(True, "Feed attentional vectors.", flag="--input-feeding/--no-input-feeding")
    bridge: str = option("bridge", "Decoder start.", flag="--bridge", choices=BRIDGES)
    dropout: float = option(0.3, "Dropout between layers and before the output.", flag="--dropout")
    embedding_dropout: float = 0.0
    # Variational dropout (Gal and Ghahramani 2016): the encoder's embedding and output dropout
    # and the decoder's embedding dropout draw one mask per sentence, the same at every step,
    # where a whole sequence passes at once (the encoder; the teacher-forced decoder without
    # input feeding); a pass step by step draws a mask per step.
    variational_dropout: bool = False
    # tied_embeddings: the output layer shares the target embedding's weights (through a
    # projection to embedding_size when that differs from hidden_size); shared_embeddings:
    # the source and target embeddings are one matrix (needs one joint vocabulary). Both
    # together: three-way tying.
    tied_embeddings: bool = False
    shared_embeddings: bool = False
    # Where model.dropout applies besides between RNN layers: "output" on the encoder states
    # and on the attentional vector before the output layer; "input" on the attentional
    # vector fed back into the decoder RNN and on [h; c] before the combine layer (where
    # JoeyNMT puts it). Neither touches the recurrent connections.
    dropout_placement: str = option("output", choices=DROPOUT_PLACEMENTS)
    # RNN weights: "torch" keeps PyTorch's uniform(+-1/sqrt(H)) for weights and biases;
    # "xavier" draws each gate's input and recurrent matrix from Glorot's uniform, zeroes the
    # biases and starts the LSTM forget gates at forget_bias (Jozefowicz et al. 2015).
    rnn_init: str = option("torch", choices=RNN_INITS)
    forget_bias: float = 1.0

    def __post_init__(self) -> None:
        _check_choices("model", self)
        for name in ("embedding_size", "hidden_size", "encoder_layers", "decoder_layers"):
            _check_range("model", name, getattr(self, name), 1)
        _check_range("model", "dropout", self.dropout, 0.0, 0.99)
        _check_range("model", "embedding_dropout", self.embedding_dropout, 0.0, 0.99)
        if self.bidirectional and self.hidden_size % 2:
            raise ConfigError("model.hidden_size: must be even for a bidirectional encoder")


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation, teacher forcing, validation and stopping rules."""

    seed: int = option(1, "Random seed.", flag="--seed")
    learning_rate: float = option(0.001, "Adam learning rate.", flag="--lr")
    batch_tokens: int = option(
        4096, "Tokens per batch (padded with buckets, real with random).", flag="--batch-tokens"
    )
    # "buckets": pairs of similar length together (little padding, fewest steps: the fastest);
    # "random": pairs in random order, padding skipped (more learnt in the first updates).
    batching: str = option(
        "buckets",
        "Batch composition (buckets: similar lengths together; random: mixed lengths).",
        flag="--batching",
        choices=BATCHINGS,
    )
    # The update is normalised by the tokens of all its batches.
    accum_steps: int = option(
        1,
        "Batches per update and process; the update covers accum-steps x processes batches.",
        flag="--accum-steps",
    )
    max_steps: int = option(100000, "Stop after this many updates.", flag="--max-steps")
    max_epochs: int = option(100, "Stop after this many passes over the data.", flag="--max-epochs")
    max_minutes: float = option(0.0, "Stop after this many minutes (0 = no limit).", flag="--max-minutes")
    clip_norm: float = 1.0
    label_smoothing: float = option(0.1, "Label smoothing (0 = off).", flag="--label-smoothing")
    eval_every: int = option(500, "Validate every N updates.", flag="--eval-every")
    patience: int = option(10, "Stop after N validations without a better BLEU.", flag="--patience")
    eval_beam_size: int = 1
    # Scheduled sampling (Bengio et al. 2015): probability of feeding the gold token.
    teacher_forcing: str = option(
        "constant", "Gold-token probability schedule.", flag="--teacher-forcing", choices=SCHEDULES
    )
    tf_start: float = option(
        1.0, "Gold-token probability at the start (constant: always).", flag="--tf-start"
    )
    tf_min: float = option(0.0, "Floor of linear/exponential decay.", flag="--tf-min")
    tf_slope: float = option(1e-4, "Linear decay per update.", flag="--tf-slope")
    # exponential: k ** step; inverse_sigmoid: k / (k + exp(step / k))
    tf_k: float = option(0.9999, "Exponential base (<1) or inverse-sigmoid k (>=1).", flag="--tf-k")
    # How model predictions replace gold tokens when the probability is below 1:
    # sequential: each step feeds the prediction of the step before (exact, one step at a time);
    # parallel: a teacher-forced pass without gradient predicts every position at once, a
    # second pass trains on the mix (Duckworth et al. 2019); keeps the fast training paths.
    scheduled_sampling: str = option(
        "sequential",
        "How predictions replace gold tokens (sequential: exact, step by step; parallel: two passes).",
        flag="--scheduled-sampling",
        choices=SAMPLING_MODES,
    )
    # Hard attention's training (seqcli.model.hard_attention): "exact" sums over the source
    # positions (plain backpropagation); "reinforce" samples one and trains the scores by the
    # score-function estimator, with this entropy bonus.
    hard_attention_estimator: str = option(
        "exact", "How hard attention trains.", flag="--hard-attention-estimator", choices=ESTIMATORS
    )
    hard_attention_entropy: float = 0.01
    # Learning-rate decay on a plateau of validation BLEU: lr *= factor after lr_patience
    # evaluations without a better BLEU (and again after each further lr_patience); 1.0 = off.
    lr_decay_factor: float = 1.0
    lr_patience: int = 2
    min_learning_rate: float = 0.0
    keep_checkpoints: int = 0  # keep the last N evaluations' weights as step-NNNNNNNN.safetensors
    # At the end of training: the mean of the last average_last evaluation checkpoints
    # (needs keep_checkpoints >= average_last) becomes best.safetensors if its validation
    # score beats the best single checkpoint's. 0 = off.
    average_last: int = 0
    # At the end of training: beam search (decode.beam_size) on the validation set with each
    # of these comma-separated GNMT length penalties ("0,0.4,0.8"); the best becomes the run's
    # decode.length_penalty. "" = off.
    tune_length_penalty: str = ""
    # The learning rate over updates, besides the plateau decay: "constant"; "inverse_sqrt"
    # (lr * sqrt(warmup / step) after the warm-up); "cosine" (half a cosine from lr to
    # min_learning_rate over the run's budget: max_steps, or max_minutes when that is reached
    # first). Each starts with a linear warm-up of warmup_steps updates.
    lr_schedule: str = option(
        "constant", "Learning-rate schedule.", flag="--lr-schedule", choices=LR_SCHEDULES
    )
    warmup_steps: int = 0
    # Source word dropout: each training source token is replaced by <unk> with this probability.
    word_dropout: float = 0.0
    bf16: bool = False  # bfloat16 autocast of the training forward pass, where the GPU or CPU has bf16 units
    # "reference": the model is built from seqcli/model/ alone and trains with the textbook loss;
    # "fast": the same model with seqcli/fast/'s equal, faster kernels (seqcli.kernels).
    kernels: str = option(
        "fast",
        "Train with the reference code, or with equal faster kernels.",
        flag="--kernels",
        choices=KERNELS,
    )
    # Torch's CPU threads; 0: one per core not kept busy by other processes (seqcli.threads), or
    # on --resume the count the run was saved with, so that it continues exactly.
    threads: int = option(0, "Torch CPU threads (0: one per free core).", flag="--threads")

    def __post_init__(self) -> None:
        _check_choices("train", self)
        for name in ("batch_tokens", "accum_steps", "max_steps", "max_epochs", "eval_every", "patience"):
            _check_range("train", name, getattr(self, name), 1)
        _check_range("train", "lr_decay_factor", self.lr_decay_factor, 1e-6, 1.0)
        _check_range("train", "lr_patience", self.lr_patience, 1)
        _check_range("train", "min_learning_rate", self.min_learning_rate, 0.0)
        _check_range("train", "keep_checkpoints", self.keep_checkpoints, 0)
        _check_range("train", "average_last", self.average_last, 0)
        if self.average_last > self.keep_checkpoints:
            raise ConfigError(
                f"train.average_last: {self.average_last} needs train.keep_checkpoints >= {self.average_last}"
            )
        for alpha in parse_alphas(self.tune_length_penalty, "train.tune_length_penalty"):
            _check_range("train", "tune_length_penalty", alpha, 0.0)
        _check_range("train", "warmup_steps", self.warmup_steps, 0)
        _check_range("train", "threads", self.threads, 0)
        _check_range("train", "word_dropout", self.word_dropout, 0.0, 0.99)
        if self.lr_schedule != "constant" and self.lr_decay_factor < 1.0:
            raise ConfigError(
                f"train.lr_decay_factor: the plateau decay and lr_schedule {self.lr_schedule!r} "
                "both set the rate; use one"
            )
        _check_range("train", "learning_rate", self.learning_rate, 1e-9)
        _check_range("train", "label_smoothing", self.label_smoothing, 0.0, 0.99)
        _check_range("train", "tf_start", self.tf_start, 0.0, 1.0)
        _check_range("train", "tf_min", self.tf_min, 0.0, 1.0)
        _check_range("train", "max_minutes", self.max_minutes, 0.0)
        _check_range("train", "eval_beam_size", self.eval_beam_size, 1)
        _check_range("train", "hard_attention_entropy", self.hard_attention_entropy, 0.0)
        if self.teacher_forcing == "exponential":
            _check_range("train", "tf_k", self.tf_k, 0.0, 1.0)
        if self.teacher_forcing == "inverse_sigmoid":
            _check_range("train", "tf_k", self.tf_k, 1.0)


@dataclass(frozen=True)
class DecodeConfig:
    """Search settings for translation."""

    beam_size: int = 5
    n_best: int = 1
    length_penalty: float = 1.0  # GNMT alpha; 0 turns it off
    batch_size: int = 64
    max_length_ratio: float = 1.5  # output at most ratio * source pieces + offset
    # -1: from the training data, so that the longest output seen in training fits (training
    # stores the value it derives in the run's config.toml).
    max_length_offset: int = -1

    def __post_init__(self) -> None:
        _check_range("decode", "beam_size", self.beam_size, 1)
        _check_range("decode", "n_best", self.n_best, 1)
        _check_range("decode", "batch_size", self.batch_size, 1)
        _check_range("decode", "length_penalty", self.length_penalty, 0.0)
        _check_range("decode", "max_length_ratio", self.max_length_ratio, 0.0)
        _check_range("decode", "max_length_offset", self.max_length_offset, -1)
        if self.n_best > self.beam_size:
            raise ConfigError(f"decode.n_best: {self.n_best} exceeds beam_size {self.beam_size}")


@dataclass(frozen=True)
class Config:
    """Everything a run needs; the resolved copy is stored in the run directory."""

    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def __post_init__(self) -> None:
        if self.model.shared_embeddings and not self.tokenizer.joint:
            raise ConfigError(
                "model.shared_embeddings: needs tokenizer.joint (one vocabulary for both sides)"
            )


def _coerce(section: str, name: str, value: Any, kind: type) -> Any:
    """Check one TOML value against the field's type; ints are accepted for floats."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (kind is not bool and isinstance(value, bool)) or not isinstance(value, kind):
        raise ConfigError(f"{section}.{name}: expected {kind.__name__}, got {value!r}")
    return value


def _build_section(cls: type, section: str, values: dict[str, Any]) -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{section}.{unknown[0]}: unknown option (known: {', '.join(sorted(known))})")
    checked = {k: _coerce(section, k, v, hints[k]) for k, v in values.items()}
    return cls(**checked)


def config_from_dict(values: dict[str, Any]) -> Config:
    """Build a validated Config from nested dicts ({'model': {'cell': 'gru'}, ...})."""
    sections = {f.name: f for f in fields(Config)}
    unknown = sorted(set(values) - set(sections))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section (known: {', '.join(sections)})")
    built = {}
    for name in sections:
        raw = values.get(name, {})
        if not isinstance(raw, dict):
            raise ConfigError(f"{name}: expected a table of options")
        built[name] = _build_section(get_type_hints(Config)[name], name, raw)
    return Config(**built)


def config_to_dict(config: Config) -> dict[str, dict[str, Any]]:
    return dataclasses.asdict(config)


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Overlay nested override values (None means 'not given') on base values."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in overrides.items():
        for name, value in values.items():
            if value is not None:
                merged.setdefault(section, {})[name] = value
    return merged


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def dumps_toml(values: dict[str, dict[str, Any]]) -> str:
    """Write flat sections of scalars as TOML (all a Config needs)."""
    lines: list[str] = []
    for section, options in values.items():
        lines.append(f"[{section}]")
        lines += [f"{name} = {_toml_value(value)}" for name, value in options.items()]
        lines.append("")
    return "\n".join(lines)
