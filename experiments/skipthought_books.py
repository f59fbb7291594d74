"""Skip-thought vectors on the public-domain books: train, then next-sentence retrieval on held-out books.

Splits by book (held-out books are never seen in training), trains with `seqcli train
--task skip-thought`, embeds the held-out sentences with `seqcli embed`, and ranks each
sentence's true successor among N candidates from the same book by cosine similarity, for
the skip-thought vectors and for the bag-of-words baseline (mean of the same model's piece
embeddings). Writes the figures with their provenance to a result file, and the Markdown page
from it (keeping the page's hand-written reading); --from-results writes only the page.

    .venv/bin/python -m experiments.skipthought_books --books ../shared/data/books \
        --work runs/skipthought-books --minutes 35
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.provenance import provenance, write_result
from seqcli.retrieval import next_sentence_ranks, summarize
from seqcli.sentences import read_documents
from seqcli.skipthought import SentenceEncoder
from seqcli.textio import read_lines

VALID_BOOKS = ("time_machine", "jekyll_and_hyde")
TEST_BOOKS = ("treasure_island", "war_of_the_worlds")
READING = "## Reading"  # the page's hand-written part, kept when the figures are written again
MODEL_ARGS = (
    "--cell", "gru", "--unidirectional", "--embedding-size", "128", "--hidden-size", "256",
    "--encoder-layers", "1", "--decoder-layers", "1", "--dropout", "0.0", "--vocab-size", "2000",
    "--batch-tokens", "2400", "--label-smoothing", "0.0", "--lr", "0.002",
    "--set", "data.max_tokens_per_sentence=40",
)  # fmt: skip


def seqcli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "seqcli", *args], check=True)


def split_books(books: Path, work: Path) -> dict[str, list[Path]]:
    """Sentence files for train / valid / test, one document per book."""
    held_out = set(VALID_BOOKS + TEST_BOOKS)
    parts = {
        "train": sorted(p for p in books.glob("*.txt") if p.stem not in held_out and p.stem != "README"),
        "valid": [books / f"{name}.txt" for name in VALID_BOOKS],
        "test": [books / f"{name}.txt" for name in TEST_BOOKS],
    }
    for part, paths in parts.items():
        seqcli("data", "sentences", *map(str, paths), "--output", str(work / f"{part}.txt"))
    return parts


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Train (unless the run is there), embed the held-out books and rank their successors."""
    args.work.mkdir(parents=True, exist_ok=True)
    parts = split_books(args.books, args.work)
    run_dir = args.work / "run"
    started = time.monotonic()
    if not (run_dir / "best.safetensors").exists():
        seqcli(
            "train", "--task", "skip-thought", "--device", "cpu",
            "--train", str(args.work / "train.txt"), "--valid", str(args.work / "valid.txt"),
            *MODEL_ARGS, "--max-minutes", str(args.minutes), "--eval-every", "1000", "--out", str(run_dir),
        )  # fmt: skip
    train_seconds = time.monotonic() - started
    documents = read_documents(read_lines(args.work / "test.txt"))
    sentences = [s for d in documents for s in d]
    sizes = [len(d) for d in documents]
    encoder = SentenceEncoder.from_run_dir(run_dir, torch.device("cpu"))
    vectors = {
        "skip-thought (seqcli)": encoder.embed(sentences),
        "bag of words (mean embedding)": encoder.embed_bag_of_words(sentences),
    }
    log = [json.loads(line) for line in read_lines(run_dir / "log.jsonl")]
    rows = []
    for n in args.candidates:
        for name, matrix in vectors.items():
            result = summarize(next_sentence_ranks(matrix, sizes, n, seed=0), n)
            rows.append(
                {
                    "vectors": name,
                    "candidates": n,
                    "queries": result.queries,
                    "mean_rank": round(result.mean_rank, 2),
                    "recall_at_1": round(result.recall_at_1, 3),
                    "mrr": round(result.mean_reciprocal_rank, 3),
                    "chance_mean_rank": result.chance_mean_rank,
                    "chance_recall_at_1": result.chance_recall_at_1,
                }
            )
    return {
        "minutes": args.minutes,
        "train_books": len(parts["train"]),
        "train_sentences": sum(1 for line in read_lines(args.work / "train.txt") if line.strip()),
        "valid_books": list(VALID_BOOKS),
        "test_books": list(TEST_BOOKS),
        "test_sentences": len(sentences),
        "model_args": list(MODEL_ARGS),
        "updates": log[-1]["step"],
        "train_minutes": round(train_seconds / 60, 1),
        "best_valid_loss": round(min(r["valid_loss"] for r in log), 3),
        "rows": rows,
    }


def report(figures: dict[str, Any], results: Path) -> str:
    """The Markdown page, from a result file's figures."""
    where = figures["provenance"]
    commit = where["commit"] or where["recorded_in_commit"]  # a recovered file names where it was recorded
    code = f"at commit `{commit[:7]}`" if where["commit"] else f"(figures recorded in commit `{commit[:7]}`)"
    lines = [
        "# Skip-thought vectors on the books: next-sentence retrieval",
        "",
        f"Training: {figures['train_books']} books, {figures['train_sentences']:,} sentences; validation: "
        f"{', '.join(figures['valid_books'])}; test (held out): {', '.join(figures['test_books'])}, "
        f"{figures['test_sentences']:,} sentences.",
        f"Model: {' '.join(figures['model_args'])}; {figures['updates']:,} updates in "
        f"{figures['train_minutes']:.1f} min (this invocation) on the CPU; best validation loss "
        f"{figures['best_valid_loss']:.3f} per target piece.",
        f"Measured {where['date'][:10]} {code} "
        f"on {where['hardware']['cpu']} ({where['hardware']['cores']} cores); figures, hardware and "
        f"command: `{results}`.",
        "",
        "For each held-out sentence, its true successor is ranked among N candidates (the successor",
        "and N - 1 other sentences of the same book) by cosine similarity to the sentence's vector.",
        "",
        "| vectors | N | queries | mean rank | recall@1 | MRR | chance mean rank | chance recall@1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in figures["rows"]:
        lines.append(
            f"| {row['vectors']} | {row['candidates']} | {row['queries']:,} | {row['mean_rank']:.2f} | "
            f"{row['recall_at_1']:.3f} | {row['mrr']:.3f} | {row['chance_mean_rank']:.1f} | "
            f"{row['chance_recall_at_1']:.3f} |"
        )
    command = f"python -m experiments.skipthought_books --minutes {figures['minutes']:g}"
    lines += ["", "Reproduce (the books from ../shared/data/books):", "", "```sh", command, "```", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=Path, default=Path("../shared/data/books"))
    parser.add_argument("--work", type=Path, default=Path("runs/skipthought-books"))
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--candidates", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/skipthought-books.json"))
    parser.add_argument("--report", type=Path, default=Path("docs/skipthought.md"))
    parser.add_argument("--from-results", action="store_true", help="Only write the report from --results.")
    args = parser.parse_args()
    if not args.from_results:
        started = provenance()
        write_result(args.results, measure(args), started)
    figures = json.loads(args.results.read_text(encoding="utf-8"))
    page = report(figures, args.results)
    old = args.report.read_text(encoding="utf-8") if args.report.exists() else ""
    reading = old[old.index(READING) :] if READING in old else ""  # the hand-written reading stays
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(page + ("\n" + reading if reading else ""), encoding="utf-8")
    print(page)


if __name__ == "__main__":
    main()
