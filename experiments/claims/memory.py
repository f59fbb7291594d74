"""Experiment 1: how far back each recurrent cell carries what it read.

The task makes the answer depend on input T steps back: the source is three key symbols
followed by T distractors, the target is the three keys. Without attention and without input
feeding the encoder's final state is the only path from source to target, so exact match by T
shows how far each cell remembers. Each distance band (T in 1-2, 3-5, ..., 41-60) trains its own
models: trained on all distances at once, a cell that cannot bridge the long ones gets almost
no gradient from them and learns nothing at all, even for T = 1; trained band by band, accuracy
by distance shows where memory fades. Beside it, autograd measures ||dL/dh_t|| at every
encoder step t of a batch of sources of the longest distance, before and after training on the
longest band: the gradient that reaches the keys through the recurrence (Bengio et al. 1994;
Hochreiter and Schmidhuber 1997).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from experiments.claims.common import (
    in_workers,
    load_json,
    log,
    mean_sd,
    new_figure,
    plot_with_spread,
    save_figure,
    spread,
    table,
    train_model,
    write_json,
)
from seqcli import checkpoint
from seqcli.config import config_from_dict
from seqcli.corpus import Batch, collate, encode_parallel
from seqcli.errors import DataError
from seqcli.loss import sequence_loss
from seqcli.model.cells import RNNState
from seqcli.model.encoder import Encoder, EncoderOutput
from seqcli.model.seq2seq import Seq2Seq
from seqcli.textio import read_lines, write_text_atomic
from seqcli.tokenizer import Tokenizer, TokenizerSpec, train_sentencepiece
from seqcli.translate import Translator

KEYS = "abcdefgh"
DISTRACTORS = "pqrstuvw"  # disjoint from KEYS, so a key can only be read from the first steps
N_KEYS = 3
CELLS = ("rnn", "gru", "lstm", "mingru", "minlstm")
SLOWEST_FIRST = ("gru", "lstm", "rnn", "minlstm", "mingru")  # job order: workers finish close together
VOCAB_SIZE = 40  # a soft limit: SentencePiece keeps what the 16 symbols need
VALID_PAIRS = 100
MODEL = {
    "attention": "none",
    "bidirectional": False,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "hidden_size": 64,
    "embedding_size": 32,
    "dropout": 0.0,
    "input_feeding": False,
}


@dataclass(frozen=True)
class Setting:
    """The sizes of one version of the experiment (full, or tiny for the smoke test)."""

    name: str
    train_pairs: int  # per band
    bands: tuple[tuple[int, int], ...]  # each trains its own models on distances T uniform in [lo, hi]
    test_distances: tuple[int, ...]  # each tested with the models of the band it falls in
    test_pairs: int  # per test distance
    gradient_pairs: int  # the batch for gradient norms, all at the longest test distance
    updates: int
    batch_tokens: int
    learning_rate: float
    batching: str = "random"

    def band_of(self, distance: int) -> tuple[int, int]:
        return next(band for band in self.bands if band[0] <= distance <= band[1])


# Random batching mixes the band's distances in every batch.
FULL = Setting(
    "full", 20000, ((1, 2), (3, 5), (6, 10), (11, 20), (21, 40), (41, 60)),
    (1, 2, 3, 5, 8, 10, 15, 20, 30, 40, 50, 60), 200, 100, 2000, 2000, 0.002,
)  # fmt: skip
TINY = Setting("tiny", 200, ((1, 3), (4, 10)), (2, 5, 10), 10, 8, 5, 400, 0.002)


# The task ------------------------------------------------------------------------------


def make_pair(rng: random.Random, distance: int) -> tuple[str, str]:
    """N_KEYS keys, then `distance` distractors -> the keys; symbols separated by spaces."""
    keys = [rng.choice(KEYS) for _ in range(N_KEYS)]
    distractors = [rng.choice(DISTRACTORS) for _ in range(distance)]
    return " ".join(keys + distractors), " ".join(keys)


def distance_of(src: str) -> int:
    """The number of distractors in a source line."""
    return len(src.split()) - N_KEYS


def write_task(out: Path, setting: Setting, band: tuple[int, int], seed: int = 0) -> None:
    """One band's train, valid and test splits (test_pairs at each test distance in the band),
    and for the longest band the gradient split, as SPLIT.src / SPLIT.tgt; one data set per band
    for every cell and seed."""
    rng = random.Random(seed * 1000 + band[0])
    top = max(setting.test_distances)
    splits = {
        "train": [rng.randint(*band) for _ in range(setting.train_pairs)],
        "valid": [rng.randint(*band) for _ in range(VALID_PAIRS)],
        "test": [
            d for d in setting.test_distances if setting.band_of(d) == band for _ in range(setting.test_pairs)
        ],
        "gradient": [top] * setting.gradient_pairs if band[0] <= top <= band[1] else [],
    }
    out.mkdir(parents=True, exist_ok=True)
    for split, distances in splits.items():
        pairs = [make_pair(rng, d) for d in distances]
        write_text_atomic(out / f"{split}.src", "".join(src + "\n" for src, _ in pairs))
        write_text_atomic(out / f"{split}.tgt", "".join(tgt + "\n" for _, tgt in pairs))


def write_tokenizer(path: Path, data: list[Path]) -> None:
    """One joint SentencePiece model for every run; raises unless it gives one piece per symbol,
    so that source position t is time step t of the encoder."""
    lines = [
        line for folder in data for split in ("src", "tgt") for line in read_lines(folder / f"train.{split}")
    ]
    model = train_sentencepiece(lines, TokenizerSpec("unigram", VOCAB_SIZE))
    symbols = " ".join(KEYS + DISTRACTORS)
    pieces = Tokenizer(model).encode_pieces([symbols])[0]
    if len(pieces) != len(symbols.split()):
        raise DataError(f"{path}: symbols split into {pieces}, not one piece each")
    path.write_bytes(model)


# The stepped encoder -------------------------------------------------------------------


def stepped_encode(encoder: Encoder, src: Tensor) -> tuple[EncoderOutput, list[Tensor]]:
    """The encoder's pass with its one unidirectional layer unrolled a time step at a time;
    returns its output and each step's hidden state h_t.

    Each kept h_t is the very tensor that becomes the step's output and the next step's
    state, so autograd's dL/dh_t through it counts every path from h_t to the loss. Takes only
    sources without padding (all rows the length of the batch), where it equals the encoder's
    own pass.
    """
    embedded = encoder.embedding_dropout(encoder.embedding(src))  # (B, S, E)
    state: RNNState | None = None
    states: list[Tensor] = []
    for t in range(src.size(1)):
        _, state = encoder.cell.run(encoder.rnn, embedded[:, t : t + 1], None, state)  # each (1, B, H)
        states.append(state[0])
    if state is None or encoder.directions != 1 or state[0].size(0) != 1:
        raise ValueError("the stepped encoder unrolls one unidirectional layer")
    outputs = torch.cat(states).transpose(0, 1)  # (S, B, H) -> (B, S, H)
    mask = torch.ones_like(src, dtype=torch.bool)  # (B, S)
    return EncoderOutput(encoder.output_dropout(outputs), mask, state), states


def gradient_norms(model: Seq2Seq, batch: Batch) -> list[float]:
    """||dL/dh_t|| by distance from the last source step (index 0 is the final state h_S-1).

    L is the batch's teacher-forced cross-entropy summed over examples and target positions,
    so the slice of dL/dh_t for one example is the gradient of that example's own loss; its
    norm is averaged over the batch. Sources must be of one length (no padding).
    """
    if not bool((batch.src_lengths == batch.src.size(1)).all()):
        raise ValueError("the stepped encoder takes sources of one length (no padding)")
    model.eval()
    encoded, states = stepped_encode(model.encoder, batch.src)
    memory = model.decoder.make_memory(encoded)
    start = model.decoder.initial_state(model.bridge(encoded.final), memory)
    logits = model.decoder.teacher_forced(batch.tgt_in, start, memory).logits  # (B, T, V)
    loss = sequence_loss(logits, batch.tgt_out, 0.0)
    grads = torch.autograd.grad(loss, states)  # each (1, B, H)
    norms = torch.stack([g[0].norm(dim=-1) for g in grads])  # (S, B)
    return norms.mean(dim=1).flip(0).tolist()


# One run: train, then measure ----------------------------------------------------------


def run_config(cell: str, seed: int, setting: Setting, data: Path) -> dict[str, Any]:
    """The seqcli configuration of one cell and seed; validation once, at the end."""
    return {
        "data": {"train": str(data / "train"), "valid": str(data / "valid")},
        "tokenizer": {"vocab_size": VOCAB_SIZE, "joint": True},
        "model": {**MODEL, "cell": cell},
        "train": {
            "seed": seed,
            "max_steps": setting.updates,
            "eval_every": setting.updates,
            "patience": 100,
            "batch_tokens": setting.batch_tokens,
            "batching": setting.batching,
            "learning_rate": setting.learning_rate,
            "label_smoothing": 0.0,
        },
    }


def initial_model(config: dict[str, Any], vocab_size: int) -> Seq2Seq:
    """The reference model with the weights training starts from (the trainer seeds torch with
    the training seed just before it builds the model)."""
    resolved = config_from_dict(config)
    torch.manual_seed(resolved.train.seed)
    return Seq2Seq(resolved.model, vocab_size, vocab_size)


def trained_model(run_dir: Path) -> Seq2Seq:
    """The reference model with a run directory's best weights."""
    run = checkpoint.load_run(run_dir)
    model = Seq2Seq(run.config.model, run.src_tokenizer.vocab_size, run.tgt_tokenizer.vocab_size)
    checkpoint.load_state_into(model, run.tensors, run_dir / checkpoint.BEST)
    return model


def scores_by_distance(run_dir: Path, data: Path) -> dict[str, dict[int, float]]:
    """Per test distance of the band, in % of the greedy outputs: "exact" (all keys right, in
    order) and "keys" (keys right at their own position, chance 1 / len(KEYS)), which shows a
    partial memory that exact match hides."""
    src, tgt = read_lines(data / "test.src"), read_lines(data / "test.tgt")
    translator = Translator.from_run_dir(run_dir, {}, torch.device("cpu"))
    hyps = [h.split() for h in translator.translate_lines(src, beam_size=1)]
    golds = [g.split() for g in tgt]
    exact: dict[int, float] = {}
    keys: dict[int, float] = {}
    for distance in sorted({distance_of(line) for line in src}):
        rows = [i for i, line in enumerate(src) if distance_of(line) == distance]
        exact[distance] = 100.0 * sum(hyps[i] == golds[i] for i in rows) / len(rows)
        hits = sum(h == g for i in rows for h, g in zip(hyps[i], golds[i], strict=False))
        keys[distance] = 100.0 * hits / (N_KEYS * len(rows))
    return {"exact": exact, "keys": keys}


def gradient_batch(tokenizer: Tokenizer, data: Path) -> Batch:
    """The gradient split as one batch: src (B, S) all of one length, tgt_in and tgt_out (B, N_KEYS + 1)."""
    src, tgt = read_lines(data / "gradient.src"), read_lines(data / "gradient.tgt")
    return collate(encode_parallel(src, tgt, tokenizer, tokenizer, 10**9).examples)


def band_name(band: tuple[int, int]) -> str:
    return f"T{band[0]}-{band[1]}"


def train_and_measure(
    cell: str, seed: int, band: tuple[int, int], setting: Setting, root: Path
) -> dict[str, Any]:
    """One job: train (or reuse) one cell and seed on one band, then its accuracy at the band's
    test distances, and for the longest band its gradient norms at initialisation and after
    training; cached as measures.json."""
    run_dir = root / band_name(band) / f"{cell}-seed{seed}"
    measures = run_dir / "measures.json"
    if measures.exists():
        return load_json(measures)
    torch.set_num_threads(1)
    data, spm = root / band_name(band) / "data", root / "spm.model"
    config = run_config(cell, seed, setting, data)
    record = train_model(config, run_dir, str(spm))
    scores = scores_by_distance(run_dir, data)
    result: dict[str, Any] = {
        "cell": cell,
        "seed": seed,
        "band": list(band),
        "seconds": record["seconds"],
        "updates": record["updates"],
        "parameters": record["parameters"],
        "exact": {str(d): v for d, v in scores["exact"].items()},
        "keys": {str(d): v for d, v in scores["keys"].items()},
    }
    if read_lines(data / "gradient.src"):
        tokenizer = Tokenizer.load(spm)  # joint: one model for both sides
        batch = gradient_batch(tokenizer, data)
        result["gradient_init"] = gradient_norms(initial_model(config, tokenizer.vocab_size), batch)
        result["gradient_trained"] = gradient_norms(trained_model(run_dir), batch)
    write_json(measures, result)
    return result


def run(work: Path, seeds: list[int], workers: int, tiny: bool) -> dict[str, Any]:
    """Train and measure every cell x seed x band (reusing finished runs); writes
    work/memory/results.json."""
    setting = TINY if tiny else FULL
    root = work / "memory" / setting.name
    for band in setting.bands:
        if not (root / band_name(band) / "data" / "gradient.tgt").exists():
            write_task(root / band_name(band) / "data", setting, band)
    if not (root / "spm.model").exists():
        write_tokenizer(root / "spm.model", [root / band_name(band) / "data" for band in setting.bands])
    # Longest bands first, so that the workers finish close together.
    jobs = [
        (cell, seed, band, setting, root)
        for band in reversed(setting.bands)
        for cell in SLOWEST_FIRST
        for seed in seeds
    ]
    log(f"memory: {len(jobs)} runs of {setting.updates} updates, {workers} at a time")
    runs = in_workers(train_and_measure, jobs, workers)
    results = {
        "setting": asdict(setting),
        "n_keys": N_KEYS,
        "keys": KEYS,
        "distractors": DISTRACTORS,
        "model": MODEL,
        "cells": list(CELLS),
        "seeds": seeds,
        "runs": runs,
    }
    write_json(work / "memory" / "results.json", results)
    return results


# The report ----------------------------------------------------------------------------


def by_distance(results: dict[str, Any], cell: str, measure: str) -> list[list[float]]:
    """Per seed, the measure at every test distance, each from the model of its band."""
    distances = results["setting"]["test_distances"]
    curves = []
    for seed in results["seeds"]:
        found = {
            d: v
            for r in results["runs"]
            if (r["cell"], r["seed"]) == (cell, seed)
            for d, v in r[measure].items()
        }
        curves.append([found[str(d)] for d in distances])
    return curves


def longest_band(results: dict[str, Any], cell: str) -> list[dict[str, Any]]:
    """The runs of the longest band, which measured gradient norms."""
    return [r for r in results["runs"] if r["cell"] == cell and "gradient_init" in r]


def two_panels(width: float, height: float) -> tuple[Any, Any]:
    """A figure of two side-by-side panels sharing the y axis (common.new_figure gives one)."""
    figure, _ = new_figure(width, height)
    figure.clear()
    return figure, figure.subplots(1, 2, sharey=True)


def draw_accuracy(results: dict[str, Any], path: Path) -> None:
    """Exact match and key accuracy against distance, one line per cell."""
    figure, panels = two_panels(11.0, 4.2)
    distances = results["setting"]["test_distances"]
    for axes, (measure, label) in zip(panels, MEASURES.items(), strict=True):
        for cell in results["cells"]:
            plot_with_spread(axes, distances, by_distance(results, cell, measure), cell)
            axes.lines[-1].set(linestyle=LINE_STYLES[cell], marker=MARKERS[cell])  # lines may coincide
        axes.set_title(label)
        axes.set_xlabel("distance T (distractors after the keys), each band trained on its own")
        axes.set_xscale("log")
        axes.set_xticks(distances, [str(d) for d in distances])
        axes.set_ylim(-2, 102)
    panels[1].axhline(100 / len(results["keys"]), color="grey", linestyle=":", label="chance")
    panels[0].set_ylabel("%")
    panels[1].legend(loc="lower left")
    save_figure(figure, path)


def draw_gradients(results: dict[str, Any], path: Path) -> None:
    """Two panels, at initialisation and after training: log ||dL/dh_t|| against steps back."""
    figure, panels = two_panels(11.0, 4.2)
    for axes, (key, title) in zip(panels, GRADIENTS.items(), strict=True):
        for cell in results["cells"]:
            norms = [r[key] for r in longest_band(results, cell)]
            plot_with_spread(axes, range(len(norms[0])), norms, cell)
            axes.lines[-1].set(linestyle=LINE_STYLES[cell], marker="")  # one point per step: no markers
        axes.set_yscale("log", nonpositive="mask")
        axes.set_title(title)
        axes.set_xlabel("steps before the final encoder state")
    panels[0].set_ylabel("mean ||dL/dh_t|| over the batch")
    panels[0].legend()
    save_figure(figure, path)


LINE_STYLES = {"rnn": "-", "gru": "--", "lstm": ":", "mingru": "-.", "minlstm": (0, (5, 1))}
MARKERS = {"rnn": "o", "gru": "s", "lstm": "^", "mingru": "v", "minlstm": "D"}
MEASURES = {"exact": "exact match of the keys (%)", "keys": "keys right at their position (%)"}
GRADIENTS = {"gradient_init": "at initialisation", "gradient_trained": "after training"}


def scientific(values: list[float]) -> str:
    mean, sd = mean_sd(values)
    return f"{mean:.1e} ± {sd:.0e}"


def accuracy_table(results: dict[str, Any]) -> list[str]:
    """Per cell, each measure by distance (mean ± sd over seeds) and the seconds per model."""
    distances = results["setting"]["test_distances"]
    rows = []
    for cell in results["cells"]:
        seconds = spread([r["seconds"] for r in results["runs"] if r["cell"] == cell], 0)
        for measure in MEASURES:
            columns = zip(*by_distance(results, cell, measure), strict=True)
            rows.append([cell, measure, seconds, *(spread(list(c)) for c in columns)])
            seconds = ""
    return table(["cell", "measure", "seconds per model", *(f"T={d}" for d in distances)], rows)


def gradient_table(results: dict[str, Any], steps_back: list[int]) -> list[str]:
    rows = []
    for cell in results["cells"]:
        runs = longest_band(results, cell)
        for key, name in (("gradient_init", "initial"), ("gradient_trained", "trained")):
            rows.append([cell, name, *(scientific([r[key][d] for r in runs]) for d in steps_back)])
    return table(["cell", "weights", *(f"{d} back" for d in steps_back)], rows)


def section(results: dict[str, Any], figures: Path) -> list[str]:
    """Draw figures/memory-accuracy.png and figures/memory-gradients.png; the Markdown lines."""
    draw_accuracy(results, figures / "memory-accuracy.png")
    draw_gradients(results, figures / "memory-gradients.png")
    setting, model = results["setting"], results["model"]
    n_keys, top = results["n_keys"], max(setting["test_distances"])
    length = len(longest_band(results, results["cells"][0])[0]["gradient_init"])
    steps_back = sorted({0, 10, 30, length - n_keys, length - 1} & set(range(length)))
    keys, distractors = results["keys"], results["distractors"]
    bands = ", ".join(f"{lo}-{hi}" for lo, hi in setting["bands"])
    return [
        "## 1. Memory over distance: RNN, GRU, LSTM, minGRU, minLSTM",
        "",
        f"Source: {n_keys} key symbols (from {keys[0]}..{keys[-1]}) followed by T distractors (from"
        f" {distractors[0]}..{distractors[-1]}); target: the {n_keys} keys. Each band of distances"
        f" ({bands}) trains its own models on {setting['train_pairs']:,} pairs with T uniform in"
        f" the band, tested with {setting['test_pairs']} pairs at each test distance in it.",
        f"Model: attention {model['attention']}, unidirectional encoder, {model['encoder_layers']} layer,"
        f" hidden {model['hidden_size']}, embedding {model['embedding_size']}, dropout {model['dropout']},"
        " no input feeding, so the encoder's final state is the only path from source to target.",
        f"{setting['updates']:,} updates of about {setting['batch_tokens']:,} tokens ({setting['batching']}"
        f" batching), Adam at {setting['learning_rate']}, one torch thread; greedy search."
        f" Seeds {results['seeds']} (one data set per band; the seed sets the initial weights and the"
        " batch order): mean ± sd in the tables, lowest to highest seed as the bands of the figures.",
        "",
        f"Exact match (%): all {n_keys} keys right, in order; keys (%): keys right at their own"
        f" position (chance {100 / len(keys):.1f}):",
        "",
        *accuracy_table(results),
        "![Exact match and key accuracy by distance, one line per cell](figures/memory-accuracy.png)",
        "",
        f"Gradient reaching the encoder: for {setting['gradient_pairs']} sources with T = {top}"
        f" ({length} steps), the norm of dL/dh_t of each example's summed cross-entropy, averaged"
        " over the examples, at initialisation and with the weights trained on the longest band"
        " (mean ± sd over seeds; for the LSTM, h_t only, not the cell c_t).",
        f"The last key is {length - n_keys} steps back, the first {length - 1}.",
        "",
        *gradient_table(results, steps_back),
        "![log gradient norm against steps back, at initialisation and after training]"
        "(figures/memory-gradients.png)",
        "",
        "READING: memory",
        "",
    ]
