"""Experiment 7: skip-thought next-sentence retrieval on the books, over seeds at a fixed budget.

The setting of experiments/skipthought_books.py (books split by book, the same model, N
candidates from the same held-out book, skip-thought vectors against the bag-of-words mean of
the same model's piece embeddings), but every seed trains for the same number of updates
instead of one long timed run, so that the spread over seeds is affordable. One SentencePiece
model serves every seed, and the candidates are drawn once, so seeds differ only in training.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.shared_data import shared_data
from experiments.claims.common import (
    in_workers,
    load_json,
    mean_sd,
    new_figure,
    save_figure,
    spread,
    table,
    train_model,
    write_json,
)
from experiments.skipthought_books import MODEL_ARGS, split_books

CANDIDATES = (10, 100)
# result key -> (table label, figure label)
VECTORS = {
    "skip-thought": ("skip-thought", "skip-thought"),
    "bag-of-words": ("bag of words (mean embedding)", "bag of words"),
}
# Columns of the table: result key, heading, digits.
MEASURES = (("recall_at_1", "recall@1", 3), ("mrr", "MRR", 3), ("mean_rank", "mean rank", 2))
FIGURE = "skipthought-seeds.png"


def settings(tiny: bool) -> dict[str, int]:
    """Updates per seed, and sentences kept per book (0 = all): the full setting or a smoke run.

    The full setting is sized for three seeds on two single-thread workers of a 2-core machine
    in about a quarter of an hour; a smoke run keeps just enough sentences per held-out book for
    N = 100 candidates.
    """
    return {"steps": 5, "sentences_per_book": 110} if tiny else {"steps": 1000, "sentences_per_book": 0}


def model_settings() -> dict[str, dict[str, Any]]:
    """MODEL_ARGS, the long run's `seqcli train` flags, as config values: both train one model."""
    from seqcli.cli.train import flagged_fields, parse_set
    from seqcli.config import merge

    # flag -> (section, field, a switch's value or the type that parses the next argument)
    flags: dict[str, tuple[str, str, Any]] = {}
    for section, spec, kind in flagged_fields():
        names = spec.metadata["flag"].split("/")
        if len(names) == 2:  # a pair of switches, e.g. --bidirectional/--unidirectional
            flags[names[0]], flags[names[1]] = (section, spec.name, True), (section, spec.name, False)
        else:
            flags[names[0]] = (section, spec.name, kind)
    values: dict[str, dict[str, Any]] = {}
    args = iter(MODEL_ARGS)
    for arg in args:
        if arg == "--set":
            values = merge(values, parse_set([next(args)]))
            continue
        section, name, value = flags[arg]
        values.setdefault(section, {})[name] = value if isinstance(value, bool) else value(next(args))
    return values


def _write_documents(path: Path, documents: list[list[str]]) -> None:
    path.write_text("".join("".join(s + "\n" for s in d) + "\n" for d in documents), encoding="utf-8")


def prepare(books: Path, data: Path, sentences_per_book: int) -> dict[str, Any]:
    """train/valid/test sentence files split by book (as the long run), cut for a smoke run.

    Returns what the report says about the data: books and sentences per part.
    """
    from seqcli.sentences import read_documents
    from seqcli.textio import read_lines

    record_path = data / "data.json"
    wanted = {"books": str(books.resolve()), "sentences_per_book": sentences_per_book}
    if record_path.exists() and load_json(record_path)["wanted"] == wanted:
        return load_json(record_path)
    data.mkdir(parents=True, exist_ok=True)
    parts = split_books(books, data)
    record: dict[str, Any] = {"wanted": wanted}
    for part, paths in parts.items():
        documents = read_documents(read_lines(data / f"{part}.txt"))
        if sentences_per_book:
            documents = [d[:sentences_per_book] for d in documents]
            _write_documents(data / f"{part}.txt", documents)
        record[part] = {"books": [p.stem for p in paths], "sentences": sum(map(len, documents))}
    write_json(record_path, record)
    return record


def run_config(data: Path, seed: int, steps: int) -> dict[str, Any]:
    """The long run's model and data settings with a fixed number of updates and one validation."""
    from seqcli.config import merge

    fixed = {
        "data": {"task": "skip-thought", "train": str(data / "train.txt"), "valid": str(data / "valid.txt")},
        "train": {"max_steps": steps, "max_minutes": 0.0, "eval_every": steps, "seed": seed},
    }
    return merge(model_settings(), fixed)


def tokenizer_model(data: Path) -> Path:
    """One SentencePiece model on the training sentences, as every run would train it, shared."""
    path = data / "spm.model"
    if not path.exists():
        from seqcli.config import config_from_dict
        from seqcli.textio import read_lines
        from seqcli.tokenizer import TokenizerSpec, train_sentencepiece

        spec = config_from_dict(model_settings()).tokenizer
        lines = read_lines(data / "train.txt")
        path.write_bytes(
            train_sentencepiece(
                lines,
                TokenizerSpec(spec.type.replace("auto", "unigram"), spec.vocab_size, spec.character_coverage),
            )
        )
    return path


def chance(n: int) -> dict[str, float]:
    """What ranking at random gives: the rank is uniform over 1..n."""
    return {"recall_at_1": 1 / n, "mrr": sum(1 / k for k in range(1, n + 1)) / n, "mean_rank": (n + 1) / 2}


def evaluate(run_dir: Path, data: Path) -> dict[str, dict[str, dict[str, float]]]:
    """vectors -> N -> recall@1, MRR, mean rank and queries on the test books (cached in the run)."""
    cache = run_dir / "retrieval.json"
    if cache.exists():
        return load_json(cache)
    import torch

    from seqcli.retrieval import next_sentence_ranks, summarize
    from seqcli.sentences import read_documents
    from seqcli.skipthought import SentenceEncoder
    from seqcli.textio import read_lines

    torch.set_num_threads(1)
    documents = read_documents(read_lines(data / "test.txt"))
    sentences = [s for d in documents for s in d]
    sizes = [len(d) for d in documents]
    encoder = SentenceEncoder.from_run_dir(run_dir, torch.device("cpu"))
    matrices = {
        "skip-thought": encoder.embed(sentences),
        "bag-of-words": encoder.embed_bag_of_words(sentences),
    }
    result: dict[str, dict[str, dict[str, float]]] = {}
    for name, matrix in matrices.items():
        result[name] = {}
        for n in CANDIDATES:
            # seed=0 for every model: the same queries meet the same candidates.
            scores = summarize(next_sentence_ranks(matrix, sizes, n, seed=0), n)
            result[name][str(n)] = {
                "queries": scores.queries,
                "recall_at_1": scores.recall_at_1,
                "mrr": scores.mean_reciprocal_rank,
                "mean_rank": scores.mean_rank,
            }
    write_json(cache, result)
    return result


def train_and_evaluate(seed: int, steps: int, data: Path) -> dict[str, Any]:
    """One seed: train (or reuse) its model, then rank on the test books. Runs in a worker."""
    run_dir = data.parent / f"seed{seed}-{steps}updates"
    record = train_model(run_config(data, seed, steps), run_dir, str(tokenizer_model(data)))
    return {"seed": seed, **record, "retrieval": evaluate(run_dir, data)}


def run(work: Path, seeds: list[int], workers: int, tiny: bool, books: Path | None = None) -> dict[str, Any]:
    """Train and evaluate every seed; writes work/skipthought/results.json and returns it."""
    start = time.monotonic()
    setting = settings(tiny)
    data = work / "skipthought" / ("data-tiny" if tiny else "data")
    corpus = prepare(books or shared_data("books"), data, setting["sentences_per_book"])
    tokenizer_model(data)  # once here, not once per worker
    runs = in_workers(train_and_evaluate, [(seed, setting["steps"], data) for seed in seeds], workers)
    results = {
        "setting": {
            **setting,
            "seeds": seeds,
            "workers": workers,
            "tiny": tiny,
            "model_args": " ".join(MODEL_ARGS),
            "candidates": list(CANDIDATES),
            **{part: corpus[part] for part in ("train", "valid", "test")},
        },
        "runs": runs,
        "chance": {str(n): chance(n) for n in CANDIDATES},
        "seconds": round(time.monotonic() - start, 1),
    }
    write_json(work / "skipthought" / "results.json", results)
    return results


def _values(results: dict[str, Any], vectors: str, n: int, measure: str) -> list[float]:
    return [r["retrieval"][vectors][str(n)][measure] for r in results["runs"]]


def _figure(results: dict[str, Any], path: Path) -> None:
    """recall@1 and MRR at N = 10: each seed's two vectors joined by a line, the mean as a bar."""
    n = CANDIDATES[0]
    figure, _ = new_figure(8.0, 3.6)
    figure.clear()
    for axes, (measure, label, _digits) in zip(figure.subplots(1, 2), MEASURES[:2], strict=True):
        columns = [_values(results, name, n, measure) for name in VECTORS]
        for seed_values in zip(*columns, strict=True):
            axes.plot(range(len(VECTORS)), seed_values, color="grey", alpha=0.6, marker="o")
        for x, column in enumerate(columns):
            axes.hlines(mean_sd(column)[0], x - 0.2, x + 0.2, color="black", linewidth=2.5)
        axes.axhline(results["chance"][str(n)][measure], color="tab:red", linestyle="--", label="chance")
        axes.set_xticks(range(len(VECTORS)), [short for _, short in VECTORS.values()])
        axes.set_xlim(-0.5, len(VECTORS) - 0.5)
        axes.set_title(f"{label}, N = {n}")
        axes.legend(loc="lower right")
    figure.suptitle(f"{len(results['runs'])} seeds (grey: one seed; black: mean)")
    save_figure(figure, path)


def _setting(results: dict[str, Any]) -> str:
    """The paragraph that says what was trained and measured, from the results."""
    setting, runs = results["setting"], results["runs"]
    train, valid, test = setting["train"], setting["valid"], setting["test"]
    minutes = mean_sd([r["seconds"] / 60 for r in runs])[0]
    queries = sorted({runs[0]["retrieval"]["skip-thought"][str(n)]["queries"] for n in CANDIDATES})
    return (
        f"{len(runs)} seeds ({', '.join(str(r['seed']) for r in runs)}), each trained for "
        f"{setting['steps']:,} updates (mean {minutes:.1f} min per run on one CPU thread, "
        f"{setting['workers']} at a time) on {len(train['books'])} books "
        f"({train['sentences']:,} sentences), validated on {', '.join(valid['books'])}, with one "
        f"SentencePiece model for all seeds. Model: `{setting['model_args']}`. Each sentence of the "
        f"held-out {', '.join(test['books'])} ({test['sentences']:,} sentences; "
        f"{', '.join(f'{q:,}' for q in queries)} queries) ranks its true successor among N candidates "
        "from the same book by cosine similarity, with the model's skip-thought vectors and with the "
        "bag-of-words mean of its piece embeddings; the candidates are the same for every seed. "
        "Mean ± sd over seeds:"
    )


def section(results: dict[str, Any], figures: Path) -> list[str]:
    """Section 7 of docs/experiments.md: the setting, mean ± sd per vectors and N, the figure."""
    _figure(results, figures / FIGURE)
    rows = []
    for n in CANDIDATES:
        for name, (label, _) in VECTORS.items():
            cells = [spread(_values(results, name, n, key), digits) for key, _, digits in MEASURES]
            rows.append([label, str(n), *cells])
        chance_row = results["chance"][str(n)]
        rows.append(["chance", str(n), *(f"{chance_row[key]:.{digits}f}" for key, _, digits in MEASURES)])
    return [
        "## 7. Skip-thought vectors: next-sentence retrieval over seeds",
        "",
        _setting(results),
        "",
        *table(["vectors", "N", *(heading for _, heading, _ in MEASURES)], rows),
        "The single longer run of the same model (one seed, trained for a time limit rather than a "
        "number of updates) is in [skipthought.md](skipthought.md).",
        "",
        f"![recall@1 and MRR at N = {CANDIDATES[0]} per seed, skip-thought against bag of words]"
        f"(figures/{FIGURE})",
        "",
        "READING: skipthought",
        "",
    ]
