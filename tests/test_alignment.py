"""`seqcli translate --attention-plot DIR --alignments FILE` and the Pharaoh format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from cli_helpers import run_cli

from seqcli.alignment import pharaoh

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_pharaoh_takes_each_target_rows_argmax() -> None:
    weights = np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.0, 0.0, 1.0]])  # (T=3, S=3)
    assert pharaoh(weights) == "1-0 0-1 2-2"


def test_heatmaps_are_pngs_and_alignments_have_one_line_per_input_line(
    trained_run: Path, toy_dir: Path, tmp_path: Path
) -> None:
    sources = (toy_dir / "test.src").read_text(encoding="utf-8").splitlines()[:3]
    lines = [sources[0], "", sources[1], sources[2]]
    plots, links = tmp_path / "plots", tmp_path / "links.txt"
    result = run_cli(
        "translate", str(trained_run), "--attention-plot", str(plots), "--alignments", str(links),
        input_text="\n".join(lines) + "\n",
    )  # fmt: skip
    plain = run_cli("translate", str(trained_run), input_text="\n".join(lines) + "\n")
    assert result.stdout == plain.stdout  # the same translations, with or without the extras
    alignment_lines = links.read_text(encoding="utf-8").split("\n")[:-1]
    assert len(alignment_lines) == len(lines) and alignment_lines[1] == ""
    for line, translation in zip(alignment_lines, result.stdout.splitlines(), strict=True):
        if translation:
            assert all(int(pair.split("-")[0]) >= 0 for pair in line.split())
            assert [int(pair.split("-")[1]) for pair in line.split()] == list(range(len(line.split())))
    assert sorted(p.name for p in plots.iterdir()) == ["000001.png", "000003.png", "000004.png"]
    for png in plots.iterdir():
        data = png.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR"
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width > 100 and height > 100
