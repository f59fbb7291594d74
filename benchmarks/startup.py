"""Start-up latency of the seqcli command, as a user meets it.

  * `seqcli --help`: from process start to exit (torch must not be imported for it);
  * `seqcli evaluate` on a 100-line file: sacreBLEU only, no torch either;
  * `echo LINE | seqcli translate RUN_DIR --device cpu`: from process start to the first
    output line (import, loading the run directory, one search, the write).

Each is run --repeats times as a separate process; the median and the worst are reported.

    python benchmarks/startup.py --run-dir runs/compare-joeynmt/seqcli-run --line "Ein Hund läuft." \\
        --out benchmarks/results/startup-cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provenance import provenance, write_result  # noqa: E402

SEQCLI = [sys.executable, "-m", "seqcli"]


def time_to_first_line(command: list[str], stdin_text: str | None) -> float:
    """Seconds from starting the process to its first line on stdout (or to its exit)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if stdin_text is not None:
        assert process.stdin is not None
        process.stdin.write(stdin_text)
        process.stdin.close()
    assert process.stdout is not None
    first = process.stdout.readline()
    seconds = time.perf_counter() - start
    process.stdout.read()
    if process.wait() != 0 or not first:
        sys.exit(f"startup: {' '.join(command)} failed")
    return seconds


def measure(command: list[str], stdin_text: str | None, repeats: int) -> dict[str, float]:
    time_to_first_line(command, stdin_text)  # warm the file cache
    runs = [time_to_first_line(command, stdin_text) for _ in range(repeats)]
    return {"median_seconds": round(statistics.median(runs), 3), "max_seconds": round(max(runs), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", required=True, type=Path, help="A trained run directory.")
    parser.add_argument("--line", default="Ein Mann fährt mit dem Fahrrad.", help="The line to translate.")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started = provenance()
    with tempfile.TemporaryDirectory() as tmp:
        ref, hyp = Path(tmp) / "ref.txt", Path(tmp) / "hyp.txt"
        ref.write_text("".join(f"a small test sentence number {i} .\n" for i in range(100)))
        hyp.write_text("".join(f"a test sentence number {i} .\n" for i in range(100)))
        figures = {
            "machine": {"cpu_cores": os.cpu_count(), "load_average_at_start": round(os.getloadavg()[0], 2)},
            "help": measure([*SEQCLI, "--help"], None, args.repeats),
            "evaluate_100_lines": measure(
                [*SEQCLI, "evaluate", "--ref", str(ref), str(hyp)], None, args.repeats
            ),
            "translate_first_line": measure(
                [*SEQCLI, "translate", str(args.run_dir), "--device", "cpu"], args.line + "\n", args.repeats
            ),
            "run_dir": str(args.run_dir),
        }
    print(json.dumps(figures, indent=2))
    if args.out:
        write_result(args.out, figures, started)


if __name__ == "__main__":
    main()
