"""Skip-thought vectors on the public-domain books: train, then next-sentence retrieval on held-out books.

Splits by book (held-out books are never seen in training), trains with `seqcli train
--task skip-thought`, embeds the held-out sentences with `seqcli embed`, and ranks each
sentence's true successor among N candidates from the same book by cosine similarity, for
the skip-thought vectors and for the bag-of-words baseline (mean of the same model's piece
embeddings). Writes a Markdown report.

    .venv/bin/python experiments/skipthought_books.py --books ../shared/data/books \
        --work runs/skipthought-books --minutes 15 --report docs/skipthought.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from seqcli.retrieval import next_sentence_ranks, summarize
from seqcli.sentences import read_documents
from seqcli.skipthought import SentenceEncoder
from seqcli.textio import read_lines

VALID_BOOKS = ("time_machine", "jekyll_and_hyde")
TEST_BOOKS = ("treasure_island", "war_of_the_worlds")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=Path, default=Path("../shared/data/books"))
    parser.add_argument("--work", type=Path, default=Path("runs/skipthought-books"))
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--candidates", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--report", type=Path, default=Path("docs/skipthought.md"))
    args = parser.parse_args()
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
    n_train = sum(1 for line in read_lines(args.work / "train.txt") if line.strip())
    lines = [
        "# Skip-thought vectors on the books: next-sentence retrieval",
        "",
        f"Training: {len(parts['train'])} books, {n_train:,} sentences; validation: "
        f"{', '.join(VALID_BOOKS)}; test (held out): {', '.join(TEST_BOOKS)}, {len(sentences):,} sentences.",
        f"Model: {' '.join(MODEL_ARGS)}; {log[-1]['step']:,} updates in {train_seconds / 60:.1f} min "
        f"(this invocation) on the CPU; best validation loss {min(r['valid_loss'] for r in log):.3f}"
        " per target piece.",
        "",
        "For each held-out sentence, its true successor is ranked among N candidates (the successor",
        "and N - 1 other sentences of the same book) by cosine similarity to the sentence's vector.",
        "",
        "| vectors | N | queries | mean rank | recall@1 | MRR | chance mean rank | chance recall@1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in args.candidates:
        for name, matrix in vectors.items():
            result = summarize(next_sentence_ranks(matrix, sizes, n, seed=0), n)
            lines.append(
                f"| {name} | {n} | {result.queries:,} | {result.mean_rank:.2f} | {result.recall_at_1:.3f} | "
                f"{result.mean_reciprocal_rank:.3f} | {result.chance_mean_rank:.1f} | "
                f"{result.chance_recall_at_1:.3f} |"
            )
    lines += ["", "Reproduce:", "", "```sh", " ".join([".venv/bin/python", *sys.argv]), "```", ""]
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
