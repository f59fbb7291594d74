"""Experiments 2-6 on Multi30k de->en: what the grid of experiments/claims/multi30k.py shows.

Each `run_*` trains (or reuses) the models it needs, evaluates them in worker processes and
returns JSON-able results; each `section_*` draws its figure and writes its Markdown.
Decoding results are cached in the run directories, so a rerun only redoes what is missing.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from experiments.claims.common import (
    in_workers,
    load_json,
    mean_sd,
    new_figure,
    plot_with_spread,
    save_figure,
    spread,
    table,
    write_json,
)
from experiments.claims.multi30k import GOLD_FLOOR, SAMPLED, run_dir, train_grid

# Source-length buckets in words (test2016: 4-30 words, most 7-13).
BUCKETS = [(4, 7), (8, 9), (10, 11), (12, 13), (14, 16), (17, 99)]
BEAMS = [1, 2, 5, 10, 50]
SAMPLING = [f"ss-{mode}-{schedule}" for mode, schedule in SAMPLED]
TEST = "test2016"


def settings(tiny: bool) -> dict[str, Any]:
    """Updates per model and the largest beam: the full report, or a smoke run of seconds."""
    return {"steps": 4, "beams": [1, 2, 5]} if tiny else {"steps": 800, "beams": BEAMS}


def _pairs(data: Path, split: str) -> tuple[list[str], list[str]]:
    from seqcli.corpus import read_parallel

    return read_parallel(str(data / split), "de", "en")


def decode(run: Path, data: Path, split: str, beam: int, alpha: float) -> dict[str, Any]:
    """Translations of a split with their model scores (sum of log-probs), cached in the run."""
    cache = run / f"decode-{split}-beam{beam}-alpha{alpha:g}.json"
    if cache.exists():
        return load_json(cache)
    import torch

    from seqcli.translate import Translator

    torch.set_num_threads(1)
    translator = Translator.from_run_dir(
        run, {"beam_size": beam, "n_best": 1, "length_penalty": alpha}, torch.device("cpu")
    )
    src, _ = _pairs(data, split)
    start = time.monotonic()
    best = [h[0] for h in translator.translate_ids(translator.src_tokenizer.encode(src), translator.decode)]
    result = {
        "hypotheses": translator.tgt_tokenizer.decode([h.tokens for h in best]),
        "scores": [h.score for h in best],
        "pieces": [len(h.tokens) for h in best],
        "seconds": round(time.monotonic() - start, 1),
    }
    write_json(cache, result)
    return result


def bleu(hypotheses: list[str], references: list[str]) -> tuple[float, float]:
    from seqcli.metrics import score

    scores = score(hypotheses, references)
    return scores.bleu, scores.chrf


def _training_log(run: Path) -> tuple[list[tuple[int, float]], float]:
    """From the run's log: (update, greedy valid BLEU) of every validation, and the median
    target tokens per second of training over the logged intervals."""
    from seqcli.checkpoint import read_log

    records = read_log(run)
    curve = [(r["step"], r["valid_bleu"]) for r in records if "valid_bleu" in r]
    rates = [r["target_tokens_per_second"] for r in records if "target_tokens_per_second" in r]
    return curve, statistics.median(rates) if rates else 0.0


def _evaluate_basic(run: Path, data: Path) -> dict[str, Any]:
    """test2016 BLEU/chrF with beam 5, overall and per source-length bucket; the valid curve."""
    src, refs = _pairs(data, TEST)
    hyps = decode(run, data, TEST, 5, 1.0)["hypotheses"]
    total_bleu, total_chrf = bleu(hyps, refs)
    by_bucket = []
    for low, high in BUCKETS:
        rows = [i for i, line in enumerate(src) if low <= len(line.split()) <= high]
        by_bucket.append(bleu([hyps[i] for i in rows], [refs[i] for i in rows])[0] if rows else 0.0)
    record = load_json(run / "done.json")
    curve, tokens_per_second = _training_log(run)
    return {
        "bleu": total_bleu,
        "chrf": total_chrf,
        "by_bucket": by_bucket,
        "valid_bleu": curve[-1][1] if curve else 0.0,
        "curve": curve,
        "seconds": record["seconds"],
        "updates": record["updates"],
        "tokens_per_second": tokens_per_second,
    }


def _grid_results(
    names: list[str], seeds: list[int], work: Path, data: Path, workers: int, tiny: bool, evaluate: Any
) -> dict[str, Any]:
    steps = settings(tiny)["steps"]
    train_grid(names, seeds, steps, work, data, workers, tiny)
    jobs = [(run_dir(work, name, seed), data) for name in names for seed in seeds]
    evaluated = in_workers(evaluate, jobs, workers)
    per_run: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for (run, _), result in zip(jobs, evaluated, strict=True):
        per_run[run.name.rsplit("-seed", 1)[0]].append(result)
    return {
        "steps": steps,
        "seeds": seeds,
        "runs": per_run,
        "buckets": BUCKETS,
        "bucket_sizes": _bucket_sizes(data),
    }


def _bucket_sizes(data: Path) -> list[int]:
    src, _ = _pairs(data, TEST)
    return [sum(low <= len(line.split()) <= high for line in src) for low, high in BUCKETS]


def _bucket_names() -> list[str]:
    return [f"{low}-{high}" if high < 99 else f"{low}+" for low, high in BUCKETS]


# --- 2. The fixed-vector bottleneck ------------------------------------------------------------

ATTENTIONS = {"none": "none (fixed context)", "additive": "additive (Bahdanau)", "general": "general (Luong)"}


def run_bottleneck(work: Path, seeds: list[int], workers: int, tiny: bool, data: Path) -> dict[str, Any]:
    results = _grid_results(list(ATTENTIONS), seeds, work, data, workers, tiny, _evaluate_basic)
    return results


def draw_by_length(results: dict[str, Any], labels: dict[str, str], title: str, path: Path) -> None:
    """test2016 BLEU per source-length bucket, one line per configuration with its seed band."""
    names = _bucket_names()
    figure, axes = new_figure()
    x = list(range(len(names)))
    for name, label in labels.items():
        plot_with_spread(axes, x, [r["by_bucket"] for r in results["runs"][name]], label)
    axes.set_xticks(x, [f"{n}\n({s})" for n, s in zip(names, results["bucket_sizes"], strict=True)])
    axes.set_xlabel("source length in words (sentences)")
    axes.set_ylabel("test2016 BLEU, beam 5")
    axes.set_title(title)
    axes.legend()
    save_figure(figure, path)


def section_bottleneck(results: dict[str, Any], figures: Path) -> list[str]:
    names = _bucket_names()
    rows = []
    for name, label in ATTENTIONS.items():
        runs = results["runs"][name]
        rows.append(
            [
                label,
                spread([r["bleu"] for r in runs]),
                *(spread(c) for c in zip(*[r["by_bucket"] for r in runs], strict=True)),
            ]
        )
    title = "Multi30k de->en: BLEU by source length"
    draw_by_length(results, ATTENTIONS, title, figures / "bottleneck-multi30k.png")
    return [
        "### Multi30k de->en: BLEU by source length",
        "",
        "The untied CPU recipe (1-layer BiLSTM encoder, LSTM decoder of 256, embeddings of 128, no input"
        f" feeding) with each attention, {results['steps']} updates, seeds {_seeds(results)};"
        " test2016, beam 5."
        " Sentences per bucket in brackets in the figure.",
        "",
        *table(["attention", "test2016 BLEU", *(f"{n} words" for n in names)], rows),
        "![BLEU by source length](figures/bottleneck-multi30k.png)",
        "",
    ]


def _seeds(results: dict[str, Any]) -> str:
    return ", ".join(str(s) for s in results["seeds"])


# --- 3. Soft vs hard attention -----------------------------------------------------------------

SOFT_HARD = {
    "general": "soft, general (Luong)",
    "additive": "soft, additive (Bahdanau)",
    "hard": "hard, exact (sum over positions)",
    "hard-reinforce": "hard, REINFORCE",
}


def run_soft_hard(work: Path, seeds: list[int], workers: int, tiny: bool, data: Path) -> dict[str, Any]:
    results = _grid_results(list(SOFT_HARD), seeds, work, data, workers, tiny, _evaluate_basic)
    return results


def section_soft_hard(results: dict[str, Any], figures: Path) -> list[str]:
    rows = []
    figure, axes = new_figure()
    for name, label in SOFT_HARD.items():
        runs = results["runs"][name]
        bleus = [r["bleu"] for r in runs]
        rows.append(
            [
                label,
                spread([r["valid_bleu"] for r in runs]),
                spread(bleus),
                f"{min(bleus):.1f}-{max(bleus):.1f}",
                f"{statistics.fmean(r['tokens_per_second'] for r in runs):,.0f}",
                f"{statistics.fmean(r['seconds'] for r in runs):,.0f}",
            ]
        )
        for i, run in enumerate(runs):
            steps, values = zip(*run["curve"], strict=True) if run["curve"] else ((), ())
            axes.plot(
                steps,
                values,
                color=f"C{list(SOFT_HARD).index(name)}",
                alpha=0.8,
                label=label if i == 0 else None,
            )
    axes.set_xlabel("update")
    axes.set_ylabel("valid BLEU, greedy")
    axes.set_title("Soft vs hard attention: every seed's valid curve")
    axes.legend()
    save_figure(figure, figures / "soft-hard.png")
    return [
        "## 3. Soft vs hard attention",
        "",
        f"Multi30k de->en, the CPU recipe with each attention, {results['steps']} updates,"
        f" seeds {_seeds(results)}."
        " Hard attention reads each token out of one source position, p(y_t) = sum_j alpha_tj"
        " p(y_t | h_t, x_j). The exact estimator trains that sum by backpropagation, running the"
        " output layer at every source position; REINFORCE samples a position, runs the output"
        " layer there only, and trains the scores by the score-function estimator with a"
        " moving-average baseline and an entropy bonus. Both search over the sum.",
        "",
        *table(
            [
                "attention",
                "valid BLEU (greedy)",
                "test2016 BLEU (beam 5)",
                "seed range",
                "target tok/s",
                "seconds",
            ],
            rows,
        ),
        "![Valid curves of every seed](figures/soft-hard.png)",
        "",
    ]


# --- 4. Teacher forcing vs scheduled sampling --------------------------------------------------


def exposure_losses(run: Path, data: Path) -> tuple[float, float]:
    """Per-token test2016 cross-entropy of the references, fed the gold prefix, and fed the
    model's own predictions as the previous tokens (each the argmax of the gold-prefix pass)."""
    import torch
    import torch.nn.functional as F

    from seqcli.checkpoint import load_run, load_state_into
    from seqcli.corpus import collate, encode_parallel
    from seqcli.model.seq2seq import Seq2Seq
    from seqcli.vocab import PAD_ID

    torch.set_num_threads(1)
    loaded = load_run(run)
    model = Seq2Seq(loaded.config.model, loaded.src_tokenizer.vocab_size, loaded.tgt_tokenizer.vocab_size)
    load_state_into(model, loaded.tensors, run)
    model.eval()
    src, refs = _pairs(data, TEST)
    examples = encode_parallel(src, refs, loaded.src_tokenizer, loaded.tgt_tokenizer, 10**9).examples
    sums = {"gold": 0.0, "own": 0.0}
    tokens = 0.0
    with torch.inference_mode():
        for start in range(0, len(examples), 100):
            batch = collate(examples[start : start + 100])
            real = batch.tgt_out != PAD_ID
            gold_logits = model(batch.src, batch.src_lengths, batch.tgt_in).logits
            own_in = batch.tgt_in.clone()
            own_in[:, 1:] = torch.where(real[:, :-1], gold_logits.argmax(-1)[:, :-1], own_in[:, 1:])
            own_logits = model(batch.src, batch.src_lengths, own_in).logits
            for kind, logits in (("gold", gold_logits), ("own", own_logits)):
                sums[kind] += F.cross_entropy(
                    logits[real].float(), batch.tgt_out[real], reduction="sum"
                ).item()
            tokens += float(real.sum())
    return sums["gold"] / tokens, sums["own"] / tokens


def _evaluate_sampling(run: Path, data: Path) -> dict[str, Any]:
    result = _evaluate_basic(run, data)
    result["gold_prefix_loss"], result["own_prefix_loss"] = exposure_losses(run, data)
    return result


def run_sampling(work: Path, seeds: list[int], workers: int, tiny: bool, data: Path) -> dict[str, Any]:
    results = _grid_results(["general", *SAMPLING], seeds, work, data, workers, tiny, _evaluate_sampling)
    return results


def _sampling_label(name: str) -> str:
    if name == "general":
        return "teacher forcing only"
    _, mode, schedule = name.split("-", 2)
    return f"{mode}, {schedule.replace('_', ' ')}"


def section_sampling(results: dict[str, Any], figures: Path) -> list[str]:
    rows = []
    names = list(results["runs"])
    figure, axes = new_figure(7.0, 4.0)
    for i, name in enumerate(names):
        runs = results["runs"][name]
        gaps = [r["own_prefix_loss"] - r["gold_prefix_loss"] for r in runs]
        rows.append(
            [
                _sampling_label(name),
                spread([r["valid_bleu"] for r in runs]),
                spread([r["bleu"] for r in runs]),
                spread([r["gold_prefix_loss"] for r in runs], 3),
                spread([r["own_prefix_loss"] for r in runs], 3),
                spread(gaps, 3),
                f"{statistics.fmean(r['tokens_per_second'] for r in runs):,.0f}",
            ]
        )
        values = [r["bleu"] for r in runs]
        axes.scatter([i] * len(values), values, color=f"C{i % 10}")
        axes.errorbar(
            [i], [statistics.fmean(values)], yerr=[mean_sd(values)[1]], fmt="_", color="black", capsize=6
        )
    axes.set_xticks(range(len(names)), [_sampling_label(n).replace(", ", "\n") for n in names], fontsize=7)
    axes.set_ylabel("test2016 BLEU, beam 5")
    axes.set_title("Teacher forcing vs scheduled sampling: each seed, mean ± sd")
    save_figure(figure, figures / "scheduled-sampling.png")
    base = results["runs"]["general"]
    return [
        "## 4. Teacher forcing vs scheduled sampling",
        "",
        f"Multi30k de->en, the CPU recipe, {results['steps']} updates, seeds {_seeds(results)}. Scheduled"
        f" sampling lowers the gold-token probability from 1 to {GOLD_FLOOR} over the first 80% of the"
        " updates (inverse sigmoid: k chosen to reach it there, then goes on falling). Sequential: each step"
        " is fed the prediction of the step before (exact). Parallel: a teacher-forced pass predicts every"
        " position, a second pass trains on the mix (Duckworth et al. 2019).",
        "",
        "Exposure bias, measured on test2016 references: the per-token cross-entropy when the decoder is fed"
        " the gold previous tokens, and when each previous token is replaced by the model's own prediction"
        " there (the argmax of the gold-prefix pass); the gap is what the model loses on its own prefixes.",
        "",
        *table(
            [
                "training",
                "valid BLEU (greedy)",
                "test2016 BLEU (beam 5)",
                "loss, gold prefix",
                "loss, own prefix",
                "gap",
                "target tok/s",
            ],
            rows,
        ),  # fmt: skip
        f"Seed spread of teacher forcing alone: {spread([r['bleu'] for r in base])} BLEU.",
        "",
        "![test2016 BLEU of every seed](figures/scheduled-sampling.png)",
        "",
    ]


# --- 5. Greedy vs beam search ------------------------------------------------------------------


def _objective(decoded: dict[str, Any], alpha: float) -> list[float]:
    """What beam search ranks by: the sum of log-probs divided by the GNMT length penalty of
    the output's steps (its pieces and EOS)."""
    from seqcli.search import length_penalty

    return [
        s / length_penalty(n + 1, alpha) for s, n in zip(decoded["scores"], decoded["pieces"], strict=True)
    ]


def _evaluate_beams(run: Path, data: Path, beams: list[int]) -> dict[str, Any]:
    _, refs = _pairs(data, TEST)
    ref_pieces = sum(len(r.split()) for r in refs)
    out: dict[str, Any] = {}
    for alpha in (0.0, 1.0):
        rows = []
        decoded = [decode(run, data, TEST, beam, alpha) for beam in beams]
        for beam, result in zip(beams, decoded, strict=True):
            hyps = result["hypotheses"]
            b, c = bleu(hyps, refs)
            rows.append(
                {
                    "beam": beam,
                    "bleu": b,
                    "chrf": c,
                    "mean_score": statistics.fmean(result["scores"]),
                    "length_ratio": sum(len(h.split()) for h in hyps) / ref_pieces,
                    "empty": 100.0 * sum(not h.strip() for h in hyps) / len(hyps),
                    "seconds": result["seconds"],
                }
            )
        # Search errors: sentences where the larger beam's output scores higher by the objective
        # the search maximises than the smaller beam's, i.e. the smaller beam missed a better output.
        for smaller, larger, row in zip(decoded, decoded[1:], rows[1:], strict=False):
            pairs = zip(_objective(smaller, alpha), _objective(larger, alpha), strict=True)
            row["found_higher"] = 100.0 * sum(b > a + 1e-4 for a, b in pairs) / len(refs)
        out[f"alpha{alpha:g}"] = rows
    return out


def run_beam(work: Path, seeds: list[int], workers: int, tiny: bool, data: Path) -> dict[str, Any]:
    beams = settings(tiny)["beams"]
    train_grid(["general"], seeds, settings(tiny)["steps"], work, data, workers, tiny)
    jobs = [(run_dir(work, "general", seed), data, beams) for seed in seeds]
    per_seed = in_workers(_evaluate_beams, jobs, workers)
    results = {"steps": settings(tiny)["steps"], "seeds": seeds, "beams": beams, "runs": per_seed}
    return results


def section_beam(results: dict[str, Any], figures: Path) -> list[str]:
    beams = results["beams"]
    figure, (left, right) = new_figure(9.0, 3.6, columns=2)
    lines = []
    for alpha, label in (("alpha0", "no length penalty"), ("alpha1", "length penalty alpha 1")):
        rows = []
        per_seed = [run[alpha] for run in results["runs"]]
        for i, beam in enumerate(beams):
            cells = [seed_rows[i] for seed_rows in per_seed]
            found = [c["found_higher"] for c in cells if "found_higher" in c]
            rows.append(
                [
                    str(beam),
                    spread([c["bleu"] for c in cells]),
                    spread([c["mean_score"] for c in cells], 2),
                    spread([c["length_ratio"] for c in cells], 3),
                    spread([c["empty"] for c in cells]),
                    spread(found) if found else "",
                    f"{statistics.fmean(c['seconds'] for c in cells):.0f}",
                ]
            )
        plot_with_spread(left, beams, [[r["bleu"] for r in s] for s in per_seed], label)
        plot_with_spread(right, beams, [[r["length_ratio"] for r in s] for s in per_seed], label)
        lines += [
            f"{label.capitalize()}:",
            "",
            *table(
                [
                    "beam",
                    "test2016 BLEU",
                    "mean model score",
                    "output/reference words",
                    "empty outputs (%)",
                    "larger beam found a higher score (%)",
                    "seconds",
                ],
                rows,
            ),  # fmt: skip
        ]
    for axes, name in ((left, "test2016 BLEU"), (right, "output length / reference length")):
        axes.set_xscale("log")
        axes.set_xticks(beams, [str(b) for b in beams])
        axes.set_xlabel("beam size")
        axes.set_ylabel(name)
        axes.legend(fontsize=8)
    save_figure(figure, figures / "beam.png")
    return [
        "## 5. Greedy vs beam search, and what beam search does not guarantee",
        "",
        f"The teacher-forced Multi30k models of experiment 4 (seeds {_seeds(results)}), test2016, beam sizes"
        f" {', '.join(map(str, beams))}. Model score: sum of the output's token log-probabilities"
        " (EOS included). 'Larger beam found a higher score': the share of sentences whose output under"
        " this beam scores higher than under the next smaller beam, by the objective the search ranks by"
        " (the model score, divided by the GNMT length penalty where there is one): the smaller search"
        " missed a better output (a search error of the smaller beam).",
        "",
        *lines,
        "![BLEU and output length by beam size](figures/beam.png)",
        "",
    ]


# --- 6. Bidirectional vs unidirectional on Multi30k -------------------------------------------

DIRECTIONS = {"general": "bidirectional", "unidirectional": "unidirectional"}


def run_directions(work: Path, seeds: list[int], workers: int, tiny: bool, data: Path) -> dict[str, Any]:
    results = _grid_results(list(DIRECTIONS), seeds, work, data, workers, tiny, _evaluate_basic)
    return results


def section_directions(results: dict[str, Any], figures: Path) -> list[str]:
    rows = []
    for name, label in DIRECTIONS.items():
        runs = results["runs"][name]
        rows.append(
            [
                label,
                spread([r["valid_bleu"] for r in runs]),
                spread([r["bleu"] for r in runs]),
                spread([r["chrf"] for r in runs]),
                f"{statistics.fmean(r['seconds'] for r in runs):.0f}",
            ]
        )
    draw_by_length(
        results, DIRECTIONS, "Multi30k de->en: encoder direction", figures / "directions-multi30k.png"
    )
    return [
        "### Multi30k de->en",
        "",
        f"The CPU recipe (general attention; unidirectional: one LSTM of 256 instead of two of 128),"
        f" {results['steps']} updates, seeds {_seeds(results)}.",
        "",
        *table(
            ["encoder", "valid BLEU (greedy)", "test2016 BLEU (beam 5)", "test2016 chrF", "seconds"], rows
        ),
        "![BLEU by source length per encoder](figures/directions-multi30k.png)",
        "",
    ]
