"""The shared corpora that benchmarks and experiments read by default: $SEQCLI_SHARED_DATA, else
../shared/data beside the repository (the same place the tests look).

    from shared_data import shared_data                     # a script in benchmarks/
    from benchmarks.shared_data import shared_data          # a module run with python -m
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_data(*parts: str) -> Path:
    """$SEQCLI_SHARED_DATA (or ../shared/data) joined with parts, e.g. shared_data("multi30k")."""
    return Path(os.environ.get("SEQCLI_SHARED_DATA", REPO.parent / "shared" / "data")).joinpath(*parts)
