"""`seqcli evaluate` gives sacreBLEU's own scores, in both BLEU flavours."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import run_cli

REFERENCES = [
    "Two young, White males are outside near many bushes.",
    "A man in a blue shirt is standing on a ladder cleaning windows.",
    "Several men in hard hats are operating a giant pulley system.",
    "A little girl climbing into a wooden playhouse.",
]
HYPOTHESES = [
    "two young white men are outside near some bushes .",
    "A man in a blue shirt stands on a ladder and cleans windows.",
    "Several men wearing hard hats operate a giant pulley system.",
    "A girl climbs into a wooden playhouse .",
]


def sacrebleu_cli(ref: Path, hyp: Path, *options: str) -> float:
    """The score sacreBLEU's own command prints."""
    command = shutil.which("sacrebleu", path=str(Path(sys.executable).parent)) or "sacrebleu"
    result = subprocess.run(
        [command, str(ref), "-i", str(hyp), "-m", "bleu", "-b", "-w", "2", *options],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(result.stdout.strip())


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [([], []), (["--lowercase", "--tokenize", "intl"], ["--lowercase", "--tokenize", "intl"])],
    ids=["cased-13a", "lowercased-intl"],
)
def test_evaluate_equals_the_sacrebleu_command(tmp_path: Path, ours: list[str], theirs: list[str]) -> None:
    ref, hyp = tmp_path / "ref.en", tmp_path / "hyp.en"
    ref.write_text("\n".join(REFERENCES) + "\n")
    hyp.write_text("\n".join(HYPOTHESES) + "\n")
    scores = json.loads(run_cli("evaluate", "--ref", str(ref), str(hyp), "--json", *ours).stdout)
    assert scores["bleu"] == sacrebleu_cli(ref, hyp, *theirs)
    assert ("case:lc" in scores["bleu_signature"]) == ("--lowercase" in ours)


def test_the_flavours_differ_and_unknown_tokenizers_are_refused(tmp_path: Path) -> None:
    ref, hyp = tmp_path / "ref.en", tmp_path / "hyp.en"
    ref.write_text("\n".join(REFERENCES) + "\n")
    hyp.write_text("\n".join(HYPOTHESES) + "\n")
    cased = json.loads(run_cli("evaluate", "--ref", str(ref), str(hyp), "--json").stdout)["bleu"]
    lowered = json.loads(run_cli("evaluate", "--ref", str(ref), str(hyp), "--json", "--lowercase").stdout)
    assert lowered["bleu"] > cased  # "two young white" matches "Two young, White" only lowercased
    result = run_cli("evaluate", "--ref", str(ref), str(hyp), "--tokenize", "ja-mecab", check=False)
    assert result.returncode == 2 and "--tokenize ja-mecab: expected one of 13a" in result.stderr
