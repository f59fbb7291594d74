"""What a beam-5 pass over the validation sources costs beside a greedy one: the ratio that
`seqcli train`'s time budget reserves for each length penalty tuned at the end of training
(seqcli/translation_task.py, BEAM_PASS_IN_VALIDATIONS, counted in validations).

    python benchmarks/beam_pass.py --run RUN --valid ../shared/data/multi30k/valid --src-lang en

Each setting runs `seqcli translate --timings` over the valid sources (the search time it
reports), greedy and beam 5 taking turns, --repeats times, at each thread count. A validation
also computes the validation loss (one teacher-forced pass, not timed here), so the ratio to a
whole validation is a little lower than the ratio printed. Writes benchmarks/results/beam-pass-cpu.json.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

from provenance import REPO, provenance, write_result


def search_seconds(run: Path, source: Path, beam: int, threads: int) -> float:
    """The generation seconds `seqcli translate --timings` reports for the whole file."""
    command = [sys.executable, "-m", "seqcli", "translate", str(run), "--input", str(source)]
    command += ["--output", "/dev/null", "--beam-size", str(beam), "--threads", str(threads), "--timings"]
    stderr = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO).stderr
    found = re.search(r"generation ([\d.]+) s", stderr)
    if found is None:
        raise SystemExit(f"no timings in: {stderr}")
    return float(found[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--valid", type=Path, required=True, help="the valid prefix (PREFIX.SRC_LANG)")
    parser.add_argument("--src-lang", required=True)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "beam-pass-cpu.json")
    args = parser.parse_args()

    started = provenance()
    source = Path(f"{args.valid}.{args.src_lang}")
    rows = []
    for threads in args.threads:
        greedy, beam = [], []
        for _ in range(args.repeats):
            greedy.append(search_seconds(args.run, source, 1, threads))
            beam.append(search_seconds(args.run, source, 5, threads))
        ratio = statistics.median(beam) / statistics.median(greedy)
        rows.append(
            {"threads": threads, "greedy_seconds": greedy, "beam5_seconds": beam, "ratio": round(ratio, 2)}
        )
        print(f"threads {threads}: greedy {greedy} s, beam 5 {beam} s, ratio of medians {ratio:.2f}")
    write_result(args.out, {"run": str(args.run), "source": str(source), "rows": rows}, started)


if __name__ == "__main__":
    main()
