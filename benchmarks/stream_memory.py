"""Memory and completeness of `seqcli translate` on a long stream through a pipe.

Feeds N generated lines (dates, every seventh line empty) to `seqcli translate RUN_DIR` as a
separate process, samples its resident memory while it runs, and checks that exactly N lines
come back with empty lines kept. Prints and saves: lines in/out, seconds, lines/second, peak
RSS, and RSS after 10% and at the end of the input (flat memory means these stay close).

    python benchmarks/stream_memory.py --run-dir runs/dates --lines 100000 \\
        --out benchmarks/results/stream-100k.json
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

from process_memory import memory_mib
from provenance import provenance, write_result

from seqcli.toydata import generate_dates


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started = provenance()
    lines = [src if i % 7 else "" for i, (src, _) in enumerate(generate_dates(args.lines, seed=99))]
    process = subprocess.Popen(
        [sys.executable, "-m", "seqcli", "translate", args.run_dir, "--beam-size", str(args.beam_size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    fed = {"n": 0}
    samples: list[tuple[int, float]] = []

    def feed() -> None:
        assert process.stdin is not None
        for line in lines:
            process.stdin.write(line + "\n")
            fed["n"] += 1
        process.stdin.close()

    start = time.perf_counter()
    threading.Thread(target=feed, daemon=True).start()
    outputs: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        outputs.extend(line.rstrip("\n") for line in process.stdout)

    reader = threading.Thread(target=read)
    reader.start()
    while reader.is_alive():
        rss = memory_mib(process.pid)
        if rss is None:
            break
        samples.append((len(outputs), rss))
        time.sleep(0.2)
    reader.join()
    process.wait()
    seconds = time.perf_counter() - start
    done_tenth = [rss for n, rss in samples if n >= args.lines // 10]
    figures = {
        "lines_in": args.lines,
        "lines_out": len(outputs),
        "empty_lines_kept": all((o == "") == (i == "") for i, o in zip(lines, outputs, strict=False)),
        "exit_code": process.returncode,
        "seconds": round(seconds, 1),
        "lines_per_second": round(len(outputs) / seconds, 1),
        "peak_rss_mib": round(max(rss for _, rss in samples), 1),
        "rss_after_10_percent_mib": round(done_tenth[0], 1) if done_tenth else None,
        "rss_at_end_mib": round(samples[-1][1], 1) if samples else None,
        "beam_size": args.beam_size,
    }
    for key, value in figures.items():
        print(f"{key:<26} {value}")
    if args.out:
        write_result(args.out, figures, started)
    if figures["lines_out"] != args.lines or process.returncode != 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
