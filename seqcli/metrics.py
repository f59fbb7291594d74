"""Corpus BLEU and chrF from sacrebleu, with their signatures, and exact match."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sacrebleu.metrics import BLEU, CHRF

from seqcli.errors import DataError, UsageError


@dataclass(frozen=True)
class Scores:
    bleu: float
    chrf: float
    exact_match: float  # percentage of lines identical to their reference
    bleu_signature: str
    chrf_signature: str
    lines: int

    def to_dict(self) -> dict[str, float | str | int]:
        return asdict(self)


def exact_match(hypotheses: list[str], references: list[str]) -> float:
    """Percentage of hypotheses equal to their reference after stripping outer whitespace."""
    if not references:
        return 0.0
    same = sum(h.strip() == r.strip() for h, r in zip(hypotheses, references, strict=True))
    return 100.0 * same / len(references)


# sacreBLEU's tokenizers that need nothing beyond sacrebleu itself (no MeCab, no download).
BLEU_TOKENIZERS = ("13a", "intl", "char", "zh", "none")


def score(
    hypotheses: list[str],
    references: list[str],
    ref_name: str = "references",
    lowercase: bool = False,
    tokenize: str = "13a",
) -> Scores:
    """Corpus BLEU on detokenized text (by default cased, sacreBLEU's 13a tokenizer; the
    lowercased, tokenized flavour of older papers with lowercase and tokenize) and chrF. The
    BLEU signature names the flavour."""
    if tokenize not in BLEU_TOKENIZERS:
        raise UsageError(f"--tokenize {tokenize}: expected one of {', '.join(BLEU_TOKENIZERS)}")
    if len(hypotheses) != len(references):
        raise DataError(f"{ref_name} has {len(references)} lines but the hypotheses have {len(hypotheses)}")
    # force: score pre-tokenized text as given, without sacreBLEU's stderr warning about lines that
    # end in " ." (it would repeat at every validation on such a corpus); the scores and the
    # signature are the same either way.
    bleu, chrf = BLEU(force=True, lowercase=lowercase, tokenize=tokenize), CHRF()
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    return Scores(
        bleu=round(bleu_score.score, 2),
        chrf=round(chrf_score.score, 2),
        exact_match=round(exact_match(hypotheses, references), 2),
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
        lines=len(references),
    )
