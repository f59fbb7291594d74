"""Two generated tasks whose answers are known: reversal at lengths real corpora lack (how far a
fixed-vector encoder carries a string, with and without attention), and a rewriting task in
which the form of every target word is written to the right of its source word (what a
backward encoder adds)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from experiments.claims.common import (
    in_workers,
    log,
    mean_sd,
    plot_with_spread,
    save_figure,
    spread,
    table,
    train_model,
    write_json,
)

Pair = tuple[str, str]
Bucket = tuple[int, int]  # lowest and highest target length in symbols, both included

SYMBOLS = "abcdefghijklmnopqrst"  # the reversal task's alphabet
STEMS = "abcdefghij"  # the rewriting task's source words
FORMS = {"X": "1", "Y": "2"}  # marker -> the ending of the stems before it (back to the marker before)
MARKER_RATE = 0.25

LENGTH_BUCKETS: list[Bucket] = [(5, 15), (16, 25), (26, 35), (36, 45), (46, 60)]
DIRECTION_BUCKETS: list[Bucket] = [(4, 6), (7, 9), (10, 12)]
ATTENTIONS = ("none", "additive", "general")
ENCODERS = {"unidirectional": False, "bidirectional": True}

SMALL_MODEL = {
    "embedding_size": 32,
    "hidden_size": 64,  # the decoder's; a bidirectional encoder has half per direction
    "encoder_layers": 1,
    "decoder_layers": 1,
    "dropout": 0.0,
    "input_feeding": False,
}
LENGTH_MODEL = {**SMALL_MODEL, "cell": "gru", "bidirectional": True}
DIRECTIONS_MODEL = {**SMALL_MODEL, "cell": "lstm", "attention": "general"}


@dataclass(frozen=True)
class Scale:
    """How much data and training every run of one experiment gets."""

    train_pairs: int
    valid_pairs: int
    test_per_bucket: int
    updates: int
    batch_tokens: int
    learning_rate: float = 0.005


LENGTH_SCALE = Scale(train_pairs=20000, valid_pairs=100, test_per_bucket=100, updates=800, batch_tokens=2000)
DIRECTIONS_SCALE = Scale(
    train_pairs=20000, valid_pairs=100, test_per_bucket=200, updates=1000, batch_tokens=1000
)
TINY_SCALE = Scale(train_pairs=200, valid_pairs=10, test_per_bucket=10, updates=5, batch_tokens=400)


# --- the tasks ---------------------------------------------------------------------------


def reversal_pair(rng: random.Random, length: int) -> Pair:
    """A string of `length` random symbols and the same string backwards."""
    tokens = [rng.choice(SYMBOLS) for _ in range(length)]
    return " ".join(tokens), " ".join(reversed(tokens))


def form_pair(rng: random.Random, length: int) -> Pair:
    """`length` stems with markers among them -> every stem in the form of the next marker after
    it, markers dropped.

    "c a X b Y" -> "c1 a1 b2": which form a target word takes is written only to the right of its
    stem, where a left-to-right encoder has not yet read when it passes the stem. The source
    always ends with a marker; one follows each other stem with probability MARKER_RATE.
    """
    src: list[str] = []
    tgt: list[str] = []
    waiting: list[str] = []  # stems whose marker has not come yet
    for position in range(length):
        stem = rng.choice(STEMS)
        src.append(stem)
        waiting.append(stem)
        if position == length - 1 or rng.random() < MARKER_RATE:
            marker = rng.choice(sorted(FORMS))
            src.append(marker)
            tgt += [waiting_stem + FORMS[marker] for waiting_stem in waiting]
            waiting = []
    return " ".join(src), " ".join(tgt)


def write_task(
    out: Path, make_pair: Callable[[random.Random, int], Pair], buckets: list[Bucket], scale: Scale, seed: int
) -> None:
    """train/valid pairs of every length the buckets span; test with scale.test_per_bucket per bucket.

    Files are PREFIX.src and PREFIX.tgt, one pair per line; nothing is rewritten when present.
    """
    from seqcli.textio import write_text_atomic

    if (out / "test.tgt").exists():
        return
    rng = random.Random(seed)
    low, high = buckets[0][0], buckets[-1][1]
    splits: dict[str, list[Pair]] = {
        "train": [make_pair(rng, rng.randint(low, high)) for _ in range(scale.train_pairs)],
        "valid": [make_pair(rng, rng.randint(low, high)) for _ in range(scale.valid_pairs)],
        "test": [make_pair(rng, rng.randint(a, b)) for a, b in buckets for _ in range(scale.test_per_bucket)],
    }
    out.mkdir(parents=True, exist_ok=True)
    for split, pairs in splits.items():
        write_text_atomic(out / f"{split}.src", "".join(src + "\n" for src, _ in pairs))
        write_text_atomic(out / f"{split}.tgt", "".join(tgt + "\n" for _, tgt in pairs))


# --- scores ------------------------------------------------------------------------------

# A score of one output against its reference: (hits, total) to be summed over a bucket.
Score = Callable[[list[str], list[str]], tuple[int, int]]


def exact_match(hyp: list[str], ref: list[str]) -> tuple[int, int]:
    return int(hyp == ref), 1


def symbol_hits(hyp: list[str], ref: list[str]) -> tuple[int, int]:
    """Symbols equal to the reference at the same position, over the longer of the two."""
    return sum(h == r for h, r in zip(hyp, ref, strict=False)), max(len(hyp), len(ref), 1)


def form_hits(hyp: list[str], ref: list[str]) -> tuple[int, int]:
    """Words with the reference's ending at the same position, over the longer of the two:
    whether each form follows its marker, whatever happens to the stems."""
    return sum(h[-1] == r[-1] for h, r in zip(hyp, ref, strict=False)), max(len(hyp), len(ref), 1)


def by_bucket(hyps: list[str], refs: list[str], buckets: list[Bucket], score: Score) -> list[float]:
    """The score (%) of the outputs in each bucket of reference length."""
    result = []
    for low, high in buckets:
        hits = total = 0
        for hyp, ref in zip(hyps, refs, strict=True):
            if low <= len(ref.split()) <= high:
                h, t = score(hyp.split(), ref.split())
                hits, total = hits + h, total + t
        result.append(round(100.0 * hits / max(total, 1), 2))
    return result


# --- training and evaluation of one run --------------------------------------------------


def run_config(data: Path, model: dict[str, Any], scale: Scale, seed: int) -> dict[str, Any]:
    """A seqcli config: validation only once, at the end; greedy search."""
    return {
        "data": {"train": str(data / "train"), "valid": str(data / "valid")},
        "tokenizer": {"vocab_size": 60, "joint": True},
        "model": model,
        "train": {
            "seed": seed,
            "max_steps": scale.updates,
            "eval_every": scale.updates,
            "patience": 100,
            "max_minutes": 0.0,
            "batch_tokens": scale.batch_tokens,
            "learning_rate": scale.learning_rate,
            "label_smoothing": 0.0,
        },
        "decode": {"beam_size": 1},
    }


def train_and_translate(
    config: dict[str, Any], run_dir: Path, data: Path
) -> tuple[dict[str, Any], list[str]]:
    """Train (or reuse) one run; its record and its greedy outputs for data/test.src."""
    import torch

    from seqcli.textio import read_lines
    from seqcli.translate import Translator

    record = train_model(config, run_dir)
    torch.set_num_threads(1)
    translator = Translator.from_run_dir(run_dir, {}, torch.device("cpu"))
    return record, translator.translate_lines(read_lines(data / "test.src"), beam_size=1)


def run_summary(
    name: str, seed: int, record: dict[str, Any], scores: dict[str, list[float]]
) -> dict[str, Any]:
    return {
        "config": name,
        "seed": seed,
        "seconds": record["seconds"],
        "updates": record["updates"],
        "parameters": record["parameters"],
        **scores,
    }


def length_job(attention: str, seed: int, root: Path, scale: Scale) -> dict[str, Any]:
    """Train and score one reversal model; data and runs under root."""
    from seqcli.textio import read_lines

    data = root / "data"
    config = run_config(data, {**LENGTH_MODEL, "attention": attention}, scale, seed)
    record, hyps = train_and_translate(config, root / f"{attention}-seed{seed}", data)
    refs = read_lines(data / "test.tgt")
    scores = {
        "exact": by_bucket(hyps, refs, LENGTH_BUCKETS, exact_match),
        "symbols": by_bucket(hyps, refs, LENGTH_BUCKETS, symbol_hits),
    }
    return run_summary(attention, seed, record, scores)


def directions_job(encoder: str, seed: int, root: Path, scale: Scale) -> dict[str, Any]:
    """Train and score one rewriting model; data and runs under root."""
    from seqcli.textio import read_lines

    data = root / "data"
    config = run_config(data, {**DIRECTIONS_MODEL, "bidirectional": ENCODERS[encoder]}, scale, seed)
    record, hyps = train_and_translate(config, root / f"{encoder}-seed{seed}", data)
    refs = read_lines(data / "test.tgt")
    scores = {
        "exact": by_bucket(hyps, refs, DIRECTION_BUCKETS, exact_match),
        "forms": by_bucket(hyps, refs, DIRECTION_BUCKETS, form_hits),
    }
    return run_summary(encoder, seed, record, scores)


def run_grid(
    job: Callable[..., dict[str, Any]],
    names: Sequence[str],
    seeds: list[int],
    root: Path,
    scale: Scale,
    workers: int,
) -> list[dict[str, Any]]:
    jobs = [(name, seed, root, scale) for seed in seeds for name in names]
    experiment = job.__name__.removesuffix("_job")
    log(f"{experiment}: {len(jobs)} runs of {scale.updates} updates, {workers} at a time")
    return in_workers(job, jobs, workers)


# --- the two experiments -----------------------------------------------------------------


def experiment_root(work: Path, name: str, tiny: bool) -> Path:
    """Where data and runs go; a smoke run's apart, so it never stands in for a full one."""
    return work / name / "tiny" if tiny else work / name


def run_length(work: Path, seeds: list[int], workers: int, tiny: bool) -> dict[str, Any]:
    """Reversal of 5-60 random symbols: attention none, additive and general; every seed."""
    scale, root = (TINY_SCALE if tiny else LENGTH_SCALE), experiment_root(work, "length", tiny)
    write_task(root / "data", reversal_pair, LENGTH_BUCKETS, scale, seed=11)
    results = {
        "scale": asdict(scale),
        "model": LENGTH_MODEL,
        "symbols": len(SYMBOLS),
        "buckets": LENGTH_BUCKETS,
        "configs": list(ATTENTIONS),
        "seeds": seeds,
        "runs": run_grid(length_job, ATTENTIONS, seeds, root, scale, workers),
    }
    write_json(work / "length" / "results.json", results)
    return results


def run_directions(work: Path, seeds: list[int], workers: int, tiny: bool) -> dict[str, Any]:
    """Stems rewritten by the marker after them: unidirectional vs bidirectional encoder; every seed."""
    scale, root = (TINY_SCALE if tiny else DIRECTIONS_SCALE), experiment_root(work, "directions", tiny)
    write_task(root / "data", form_pair, DIRECTION_BUCKETS, scale, seed=12)
    results = {
        "scale": asdict(scale),
        "model": DIRECTIONS_MODEL,
        "stems": len(STEMS),
        "marker_rate": MARKER_RATE,
        "buckets": DIRECTION_BUCKETS,
        "configs": list(ENCODERS),
        "seeds": seeds,
        "runs": run_grid(directions_job, list(ENCODERS), seeds, root, scale, workers),
    }
    write_json(work / "directions" / "results.json", results)
    return results


# --- report sections ---------------------------------------------------------------------


def runs_of(results: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [run for run in results["runs"] if run["config"] == name]


def score_rows(results: dict[str, Any], measures: dict[str, str]) -> list[list[str]]:
    """One row per configuration and measure: mean ± sd over seeds in every bucket; the first
    row of a configuration also holds its mean training seconds."""
    rows = []
    for name in results["configs"]:
        runs = runs_of(results, name)
        seconds = f"{mean_sd([run['seconds'] for run in runs])[0]:.0f}"
        for i, (key, label) in enumerate(measures.items()):
            cells = [spread(column) for column in zip(*(run[key] for run in runs), strict=True)]
            rows.append([name, label, seconds if i == 0 else "", *cells])
    return rows


def draw_by_bucket(results: dict[str, Any], measures: dict[str, str], legend: str, path: Path) -> None:
    """One panel per measure, one line per configuration with the seeds' min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buckets = results["buckets"]
    x = [(low + high) / 2 for low, high in buckets]
    figure, panels = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.6), sharey=True)
    for axes, (key, label) in zip(panels, measures.items(), strict=True):
        for name in results["configs"]:
            plot_with_spread(axes, x, [run[key] for run in runs_of(results, name)], name)
        axes.set_title(label)
        axes.set_xlabel("length (symbols)")
        axes.set_xticks(x, [f"{low}-{high}" for low, high in buckets])
        axes.set_ylim(-2, 102)
        axes.grid(alpha=0.3)
    panels[0].set_ylabel("% (mean; band: min-max over seeds)")
    panels[0].legend(title=legend)
    save_figure(figure, path)


def bucket_header(first: str, results: dict[str, Any]) -> list[str]:
    return [first, "measure", "seconds", *(f"len {low}-{high}" for low, high in results["buckets"])]


def training_line(results: dict[str, Any]) -> str:
    scale, seeds = results["scale"], results["seeds"]
    return (
        f"{scale['updates']} updates of about {scale['batch_tokens']} tokens, Adam at "
        f"{scale['learning_rate']}, one torch thread; {len(seeds)} seeds ({', '.join(map(str, seeds))}) "
        "on one generated data set (a seed changes initialisation and batch order); greedy search."
    )


def section_length(results: dict[str, Any], figures: Path) -> list[str]:
    measures = {"exact": "exact match", "symbols": "symbol accuracy"}
    draw_by_bucket(results, measures, "attention", figures / "length-sweep.png")
    scale, model, buckets = results["scale"], results["model"], results["buckets"]
    low, high = buckets[0][0], buckets[-1][1]
    return [
        "### Synthetic length sweep",
        "",
        f"Reverse a string of {low}-{high} random symbols ({results['symbols']} kinds), trained on "
        f"{scale['train_pairs']:,} pairs of every length in that range and tested on "
        f"{scale['test_per_bucket']} new pairs per length bucket.",
        f"{model['cell'].upper()}, bidirectional encoder ({model['hidden_size'] // 2} per direction), "
        f"{model['encoder_layers']} layer, hidden {model['hidden_size']}, embedding "
        f"{model['embedding_size']}, no input feeding; attention none (the decoder sees only the "
        "encoder's final states), additive (Bahdanau) or general (Luong).",
        training_line(results),
        "Accuracy in % as mean ± sd over seeds; symbol accuracy counts output symbols equal to the",
        "reference at the same position, over the longer of the two; seconds: mean training time.",
        "",
        *table(bucket_header("attention", results), score_rows(results, measures)),
        "![Exact match and symbol accuracy by length, one line per attention](figures/length-sweep.png)",
        "",
        "READING: length",
        "",
    ]


def section_directions(results: dict[str, Any], figures: Path) -> list[str]:
    measures = {"exact": "exact match", "forms": "correct form"}
    draw_by_bucket(results, measures, "encoder", figures / "directions-synthetic.png")
    scale, model, buckets = results["scale"], results["model"], results["buckets"]
    low, high = buckets[0][0], buckets[-1][1]
    return [
        "### A task that needs right-hand context",
        "",
        f"The source is {low}-{high} stems ({results['stems']} kinds) with markers, X or Y, among them: "
        f"one after a stem with probability {results['marker_rate']}, and always one at the end. The",
        "target rewrites every stem in the form of the next marker after it and drops the markers",
        "(`c a X b Y` -> `c1 a1 b2`). A left-to-right encoder's state at a stem has not yet read",
        "its marker; the backward half of a bidirectional one has.",
        f"{model['cell'].upper()}, {model['attention']} (Luong) attention, {model['encoder_layers']} "
        f"layer, hidden {model['hidden_size']} (bidirectional: {model['hidden_size'] // 2} per "
        f"direction), embedding {model['embedding_size']}, no input feeding; "
        f"{scale['train_pairs']:,} training pairs, {scale['test_per_bucket']} test pairs per length bucket.",
        training_line(results),
        "Accuracy in % as mean ± sd over seeds; correct form: output words with the reference's ending",
        "at the same position, over the longer of the two (stems aside); seconds: mean training time.",
        "",
        *table(bucket_header("encoder", results), score_rows(results, measures)),
        "![Exact match and correct form by length, one line per encoder](figures/directions-synthetic.png)",
        "",
        "READING: directions",
        "",
    ]
