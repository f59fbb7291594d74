"""The Multi30k CPU recipes: their levers one at a time, and the final runs scored on the test sets.

`levers`: each row is `seqcli train` with the de-en CPU recipe as it was before the levers
and one change, run as a user would run it (one torch thread per run, two runs side by side
on two cores), for the same number of minutes. The table reports the best single
checkpoint's valid BLEU (greedy), that of the mean of the last five evaluation checkpoints,
the updates made and the training speed. Selection is on valid only.

`final`: the recipes in configs/ for each direction and seed, trained for their time budget,
then translated (greedy and beam 5, the length penalty the run tuned on valid) and scored on
test2016 and test2017.

    python -m experiments.multi30k_cpu levers --data data/multi30k --work runs/levers --minutes 15
    python -m experiments.multi30k_cpu levers-report --work runs/levers   # adds its rows to
        # benchmarks/results/multi30k_levers.json, keeping rows of the same budget not rerun
    python -m experiments.multi30k_cpu final --data data/multi30k --work runs/recipes --seeds 1 2
    python -m experiments.multi30k_cpu final --directions en-de --work runs/en-de-dropout \
        --set model.dropout=0.3   # a variant of the recipe, trained and scored the same way
    python -m experiments.multi30k_cpu final --directions en-de --workers 1 --threads 0 \
        --work runs/en-de-alone   # one run at a time, alone on the machine, torch's threads
    python -m experiments.multi30k_cpu final-report --work runs/recipes --seeds 1 2 \
        [--results R.json --figure F.png --earlier EARLIER.json --earlier-label "constant rate" \
         --label "cosine"]
    python -m experiments.multi30k_cpu averaging --work runs/recipes --directions en-de \
        --windows 3 5 8 10 --results R.json   # needs runs made with train.keep_checkpoints=10
    python -m experiments.multi30k_cpu rebuild-average --work runs/recipes --directions en-de \
        --seeds 1 2 --last 8 --alphas 0,0.4,0.8,1.2,1.6 --rebuild runs/recipes-last8 --results R.json

`averaging`: after the final runs, the mean of each run's last N evaluation checkpoints for
several N (`seqcli average`), each scored on valid with beam 5 at the given length penalties
(`seqcli tune-length-penalty`); the window is a choice made on valid.

`rebuild-average`: the same for a window longer than the runs kept. Training is deterministic
for a seed and a thread count, so each run is trained again from its recorded command as far
as the newest pruned checkpoint the mean needs; the rerun must repeat the run's evaluations to
the last digit of valid loss and BLEU (it stops otherwise). The mean is judged as `seqcli
train` judges its own (greedy valid BLEU against the best single checkpoint), its length
penalty tuned on valid and stored, and the test sets scored, so the row reads as the run would
with train.average_last set to the window. A run whose learning rate follows the clock (a
schedule over max_minutes) cannot be repeated this way.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.provenance import provenance, write_result
from experiments.claims.multi30k import RECIPE
from seqcli.average import step_checkpoint_name, step_checkpoints
from seqcli.checkpoint import read_log
from seqcli.finish import read_finish
from seqcli.translation_task import TranslationTask

REPO = Path(__file__).resolve().parents[1]
LEVERS_RESULTS = REPO / "benchmarks" / "results" / "multi30k_levers.json"
FINAL_RESULTS = REPO / "benchmarks" / "results" / "multi30k_cpu_recipes.json"
FIGURE = REPO / "docs" / "figures" / "multi30k_cpu_valid.png"
ACTIONS = ("levers", "levers-report", "final", "final-report", "averaging", "rebuild-average")
DIRECTIONS = {"de-en": ("de", "en"), "en-de": ("en", "de")}
TESTS = ("test2016", "test2017")

# The recipe every row starts from: the de-en CPU recipe before the levers (a 1-layer BiLSTM
# encoder and LSTM decoder of 256, embeddings of 128, general attention without input
# feeding), with bf16 autocast (except in the fp32 row) and the last five evaluations kept
# for averaging.
BASE_RECIPE = (
    RECIPE  # the claims' grid trains this recipe too; its [train] section comes last
    + """\
max_steps = 30000
eval_every = 400
patience = 8
bf16 = true
keep_checkpoints = 5
average_last = 5
"""
)

TIED = [
    "--embedding-size",
    "256",
    "--set",
    "model.tied_embeddings=true",
    "--set",
    "model.shared_embeddings=true",
]

# name -> (what changes, the extra arguments on top of the base). The first rows change the
# base recipe; three-way tying helped most, so the later rows change the tied recipe.
ROWS: dict[str, tuple[str, list[str]]] = {
    "base-fp32": ("recipe in float32 (no bf16 autocast)", ["--set", "train.bf16=false"]),
    "base-bf16": ("recipe: BiLSTM 256, emb 128, general attention, bf16", []),
    "sampling": ("+ subword sampling (alpha 0.3, all segmentations)", ["--subword-sampling", "0.3"]),
    "tied": ("+ three-way tied embeddings (emb 256)", TIED),
    "tied+dropout": (
        "tied + variational dropout, embedding dropout 0.1, source word dropout 0.1",
        [
            *TIED,
            "--set",
            "model.variational_dropout=true",
            "--set",
            "model.embedding_dropout=0.1",
            "--set",
            "train.word_dropout=0.1",
        ],
    ),
    "tied+cosine": (
        "tied + 200-update warm-up, cosine decay over the budget",
        [
            *TIED,
            "--lr-schedule",
            "cosine",
            "--set",
            "train.warmup_steps=200",
            "--set",
            "train.min_learning_rate=0.0001",
        ],
    ),
    "tied+sampling": ("tied + subword sampling (alpha 0.5)", [*TIED, "--subword-sampling", "0.5"]),
    "tied+hidden-512": ("tied, hidden 512 (encoder 2 x 256), emb 256", [*TIED, "--hidden-size", "512"]),
    "tied+inverse-sqrt": (
        "tied + 400-update warm-up, inverse-sqrt decay",
        [*TIED, "--lr-schedule", "inverse_sqrt", "--set", "train.warmup_steps=400"],
    ),
}


def seqcli(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "seqcli"), *args]


def levers_command(name: str, data: Path, run_dir: Path, minutes: float) -> list[str]:
    base = run_dir.parent / "base.toml"
    data_args = ["--train", str(data / "train"), "--valid", str(data / "valid")]
    limits = ["--max-minutes", f"{minutes:g}", "--device", "cpu"]
    return seqcli("train", "--config", str(base), *data_args, "--out", str(run_dir), *limits, *ROWS[name][1])


def thread_env(threads: int) -> dict[str, str]:
    """The environment of a seqcli process with this many torch threads (0: torch's default,
    one per core)."""
    if threads == 0:
        return {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    return {**os.environ, "OMP_NUM_THREADS": str(threads)}


def run_logged(name: str, work: Path, args: list[str], threads: int = 1) -> dict[str, Any]:
    """Run one training command with this many torch threads, its stderr to WORK/NAME.log;
    returns its provenance, wall time and the load average before and after."""
    started = provenance(args)
    load_before = os.getloadavg()[0]
    start = time.monotonic()
    with open(work / f"{name}.log", "w") as log:
        subprocess.run(args, check=True, stderr=log, env=thread_env(threads))
    return {
        "provenance": started,
        "command": shlex.join(["seqcli", *args[1:]]),
        "wall_seconds": round(time.monotonic() - start, 1),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def run_row(name: str, data: Path, work: Path, minutes: float) -> None:
    marker = work / f"{name}.json"
    if marker.exists():
        return
    record = run_logged(name, work, levers_command(name, data, work / name, minutes))
    marker.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{name}: done in {record['wall_seconds']:.0f} s", file=sys.stderr, flush=True)


def score_test(
    run_dir: Path, prefix: Path, src: str, tgt: str, beam: int, threads: int = 1
) -> dict[str, Any]:
    """`seqcli translate` PREFIX.SRC with this beam (the run's stored length penalty), then
    `seqcli evaluate` against PREFIX.TGT, cased 13a BLEU and, under "lowercased", the flavour
    published Multi30k results report (lowercased, tokenized: sacreBLEU's 13a tokenizer on
    lowercased text spells 99% of the official tokenized test2016 German lines exactly);
    the output stays in the run directory."""
    hyp = run_dir / f"{prefix.name}.beam{beam}.{tgt}"
    translate = seqcli(
        "translate", str(run_dir), "--beam-size", str(beam), "--input", f"{prefix}.{src}",
        "--output", str(hyp), "--device", "cpu",
    )  # fmt: skip
    subprocess.run(translate, check=True, env=thread_env(threads))
    evaluate = seqcli("evaluate", "--ref", f"{prefix}.{tgt}", str(hyp), "--json")
    scores = json.loads(subprocess.run(evaluate, check=True, capture_output=True, text=True).stdout)
    lowercased = [*evaluate, "--lowercase", "--tokenize", "13a"]
    scores["lowercased"] = json.loads(
        subprocess.run(lowercased, check=True, capture_output=True, text=True).stdout
    )
    return scores


def score_tests(
    run_dir: Path, data: Path, src: str, tgt: str, threads: int = 1, tests: tuple[str, ...] = TESTS
) -> dict[str, Any]:
    """`score_test` on the test sets (test2016 and test2017), greedy and beam 5:
    "test2016.beam5" -> scores."""
    return {
        f"{t}.beam{b}": score_test(run_dir, data / t, src, tgt, b, threads) for t in tests for b in (1, 5)
    }


def average_checkpoints(run_dir: Path, last: int, out: Path, threads: int = 1) -> None:
    """`seqcli average RUN_DIR --last LAST --out OUT`."""
    average = seqcli("average", str(run_dir), "--last", str(last), "--out", str(out))
    subprocess.run(average, check=True, env=thread_env(threads), stdout=subprocess.DEVNULL)


def final_command(direction: str, seed: int, data: Path, run_dir: Path, changes: list[str]) -> list[str]:
    """`seqcli train` on the direction's recipe in configs/, each change as a `--set`."""
    config = REPO / "configs" / f"multi30k-{direction}-cpu.toml"
    return seqcli(
        "train", "--config", str(config), "--train", str(data / "train"), "--valid", str(data / "valid"),
        "--seed", str(seed), "--out", str(run_dir), "--device", "cpu",
        *(arg for change in changes for arg in ("--set", change)),
    )  # fmt: skip


def run_name(direction: str, seed: int) -> str:
    """The name of a final run: its folder WORK/NAME, its stderr WORK/NAME.log and its record
    WORK/NAME.json, written when the run and its test scoring are done."""
    return f"{direction}-seed{seed}"


def run_names(directions: list[str], seeds: list[int]) -> list[str]:
    return [run_name(d, seed) for d in directions for seed in seeds]


def finished_runs(work: Path, names: list[str]) -> list[str]:
    """Those of these final runs in WORK that are done."""
    return [name for name in names if (work / f"{name}.json").exists()]


def run_final(
    direction: str, seed: int, data: Path, work: Path, changes: list[str], threads: int = 1,
    tests: tuple[str, ...] = TESTS,
) -> None:  # fmt: skip
    """Train the direction's recipe with this seed and these `--set KEY=VALUE` changes, then
    score greedy and beam 5 on the test sets, each process with this many torch threads."""
    name = run_name(direction, seed)
    marker = work / f"{name}.json"
    if marker.exists():
        return
    src, tgt = DIRECTIONS[direction]
    run_dir = work / name
    record = run_logged(name, work, final_command(direction, seed, data, run_dir, changes), threads)
    record["scores"] = score_tests(run_dir, data, src, tgt, threads, tests)
    marker.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{name}: done in {record['wall_seconds']:.0f} s", file=sys.stderr, flush=True)


def summarize(name: str, work: Path) -> dict[str, Any]:
    run_dir = work / name
    log = read_log(run_dir)
    best = max(log, key=lambda r: r["valid_bleu"])
    averaged = read_finish(run_dir).get("averaging")
    record = json.loads((work / f"{name}.json").read_text())
    speeds = [r["target_tokens_per_second"] for r in log]
    return {
        "row": name,
        "change": ROWS[name][0],
        "updates": log[-1]["step"],
        "best_valid_bleu": best["valid_bleu"],
        "best_step": best["step"],
        "averaged_valid_bleu": averaged["valid_bleu"] if averaged else None,
        "target_tokens_per_second": round(sorted(speeds)[len(speeds) // 2]),
        "parameters": _started_with((work / f"{name}.log").read_text(), "parameters"),
        **record,
    }


def _started_with(log_text: str, key: str) -> int | None:
    """A count `seqcli train` printed at its start: "parameters" or (torch) "threads"."""
    found = re.search(rf"\b{key}\s+([\d,]+)", log_text)  # rich may wrap the line
    return int(found.group(1).replace(",", "")) if found else None


def average_windows(
    name: str, work: Path, data: Path, windows: list[int], alphas: str, threads: int = 1
) -> dict[str, Any]:
    """Valid BLEU (beam 5, at each of ALPHAS) of the mean of the run's last N checkpoints, for
    each N in WINDOWS that the run kept; the averaged runs are written to WORK/NAME-avgN."""
    kept = len(step_checkpoints(work / name))
    scores = {}
    for window in (w for w in windows if w <= kept):
        out = work / f"{name}-avg{window}"
        if not out.exists():  # made by an earlier call
            average_checkpoints(work / name, window, out, threads)
        scores[str(window)] = tune_on_valid(out, data, alphas, threads)
        print(f"{name} last {window}: {scores[str(window)]}", file=sys.stderr, flush=True)
    return {"run": name, "valid_bleu_beam5": scores}


def tune_on_valid(
    run_dir: Path, data: Path, alphas: str, threads: int = 1, save: bool = False
) -> dict[str, float]:
    """`seqcli tune-length-penalty` on valid with beam 5: alpha -> valid BLEU (with `save`, the
    best alpha is stored in the run's decode settings)."""
    tune = seqcli(
        "tune-length-penalty", str(run_dir), "--valid", str(data / "valid"), "--alphas", alphas,
        "--beam-size", "5", "--device", "cpu", *(["--save"] if save else []),
    )  # fmt: skip
    lines = subprocess.run(tune, check=True, capture_output=True, text=True, env=thread_env(threads)).stdout
    return {alpha: float(bleu) for alpha, bleu, _ in (row.split("\t") for row in lines.splitlines()[1:])}


def rerun_command(recorded: str, out: Path, steps: int) -> list[str]:
    """The training command a run recorded, writing to OUT, stopped after STEPS updates, with
    no end-of-training averaging or tuning and no time limit (a rerun on a busier machine must
    not stop earlier)."""
    args = shlex.split(recorded)
    args[args.index("--out") + 1] = str(out)
    ends = ["train.average_last=0", 'train.tune_length_penalty=""']
    return seqcli(
        *args[1:], "--max-steps", str(steps), "--max-minutes", "0", *(a for e in ends for a in ("--set", e))
    )


def check_repeats(run_dir: Path, rerun_dir: Path) -> None:
    """Stop unless each evaluation of the rerun has the valid loss and BLEU of the run's own
    evaluation at that step: only then are the rerun's checkpoints the ones the run pruned."""
    original = {r["step"]: r for r in read_log(run_dir)}
    for entry in read_log(rerun_dir):
        before = original.get(entry["step"], {})
        got = (entry["valid_loss"], entry["valid_bleu"])
        if got != (before.get("valid_loss"), before.get("valid_bleu")):
            raise SystemExit(
                f"{rerun_dir}: step {entry['step']} has valid loss {got[0]}, BLEU {got[1]}; {run_dir} had "
                f"{before.get('valid_loss')}, {before.get('valid_bleu')}: the rerun does not repeat the run "
                "(another seed, change, thread count or torch build, or a schedule that follows the clock)"
            )


def rebuild_checkpoints(name: str, work: Path, rebuild: Path, steps: list[int]) -> list[int]:
    """Those of STEPS whose checkpoints the final run WORK/NAME pruned, rebuilt into
    REBUILD/NAME: the run is trained again from its recorded command (one torch thread, as
    `final` trains) as far as the newest of them, unless an earlier call did, and checked to
    repeat the run's evaluations exactly."""
    run_dir, rerun_dir = work / name, rebuild / name
    missing = [step for step in steps if not (run_dir / step_checkpoint_name(step)).exists()]
    if not missing:
        return missing
    if not all((rerun_dir / step_checkpoint_name(step)).exists() for step in missing):
        recorded = json.loads((work / f"{name}.json").read_text())["command"]
        rebuild.mkdir(parents=True, exist_ok=True)
        rerun = run_logged(name, rebuild, rerun_command(recorded, rerun_dir, max(missing)), threads=1)
        (rebuild / f"{name}.json").write_text(json.dumps(rerun, indent=2) + "\n")
    check_repeats(run_dir, rerun_dir)
    return missing


def rebuild_average(
    name: str, work: Path, rebuild: Path, data: Path, last: int, alphas: str, threads: int = 1
) -> dict[str, Any]:
    """The mean of the last LAST evaluation checkpoints of the finished final run WORK/NAME,
    which kept fewer (`rebuild_checkpoints` makes the others). The mean (REBUILD/NAME-avgLAST)
    is judged as `seqcli train` would judge it (its best-checkpoint rule on greedy valid BLEU,
    against the best single checkpoint), its length penalty tuned on valid and stored, and
    both test sets scored greedy and with beam 5, each scoring process with THREADS torch
    threads. The record is kept in REBUILD/NAME-avgLAST.json, which a later call returns as
    it is."""
    done = rebuild / f"{name}-avg{last}.json"
    if done.exists():  # scored by an earlier call
        return dict(json.loads(done.read_text()))
    run_dir, rule = work / name, TranslationTask.best
    src, tgt = DIRECTIONS[name.split("-seed")[0]]
    log = read_log(run_dir)
    wanted = [entry["step"] for entry in log][-last:]
    missing = rebuild_checkpoints(name, work, rebuild, wanted)
    combined, out = rebuild / f"{name}-last{last}-checkpoints", rebuild / f"{name}-avg{last}"
    if not out.exists():  # made by an earlier call
        shutil.rmtree(combined, ignore_errors=True)
        shutil.copytree(run_dir, combined, ignore=shutil.ignore_patterns("test20*"))
        for step in missing:
            shutil.copy2(rebuild / name / step_checkpoint_name(step), combined)
        average_checkpoints(combined, last, out, threads)
    greedy = score_test(out, data / "valid", src, tgt, 1, threads)["bleu"]
    best_single = (max if rule.higher_is_better else min)(entry[rule.measure] for entry in log)
    finish = json.loads((run_dir / "finish.json").read_text())
    rerun = rebuild / f"{name}.json"  # written when this script trained the rerun
    record = {
        "run": name,
        "rebuilt_steps": missing,
        "averaged_steps": wanted,
        "valid_bleu_greedy": greedy,
        "best_single_valid_bleu": best_single,
        "rerun": json.loads(rerun.read_text()) if missing and rerun.exists() else None,
        "kept_by_train": rule.improves(greedy, best_single),
        "valid_bleu_beam5": tune_on_valid(out, data, alphas, threads, save=True),
        "run_valid_bleu_beam5": finish["length_penalty"]["valid_bleu"],
        "run_averaged": finish.get("averaging", {}).get("checkpoints"),
        "scores": score_tests(out, data, src, tgt, threads),
    }
    done.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{name} last {last}: valid greedy {greedy}, beam 5 {record['valid_bleu_beam5']}", file=sys.stderr)
    return record


def markdown_table(header: list[str], align: str, rows: list[list[str]]) -> str:
    """A markdown table: one title and one cell a column, ALIGN "l" or "r" for each column."""
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    lines = ["| " + " | ".join(cells) + " |" for cells in [header, *rows]]
    return "\n".join([lines[0], rule, *lines[1:]])


def rebuild_table(runs: list[dict[str, Any]]) -> str:
    header = [
        "run", "rebuilt checkpoints", "valid greedy mean / best single", "valid beam 5, mean (alpha)",
        "valid beam 5, run as trained (alpha)", "test2016 greedy / beam 5", "chrF beam 5", "test2017 beam 5",
    ]  # fmt: skip
    rows = []
    for r in runs:
        ours, theirs = (
            max(d.items(), key=lambda kv: kv[1]) for d in (r["valid_bleu_beam5"], r["run_valid_bleu_beam5"])
        )
        s = r["scores"]
        rows.append([
            r["run"], ", ".join(map(str, r["rebuilt_steps"])) or "-",
            f"{r['valid_bleu_greedy']:.2f} / {r['best_single_valid_bleu']:.2f}",
            f"{ours[1]:.2f} ({ours[0]})", f"{theirs[1]:.2f} ({theirs[0]})",
            f"{s['test2016.beam1']['bleu']:.2f} / {s['test2016.beam5']['bleu']:.2f}",
            f"{s['test2016.beam5']['chrf']:.2f}", f"{s['test2017.beam5']['bleu']:.2f}",
        ])  # fmt: skip
    return markdown_table(header, "llllllrr", rows)


def merge_rows(earlier: dict[str, Any] | None, minutes: float, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The levers results with these rows: each replaces the earlier row of its name, and the
    earlier rows of the same budget that were not run again are kept, in ROWS order, so one
    row can be added to the table without training the others again."""
    kept = {r["row"]: r for r in earlier["rows"]} if earlier and earlier["minutes"] == minutes else {}
    kept.update({r["row"]: r for r in rows})
    return {"minutes": minutes, "rows": [kept[name] for name in ROWS if name in kept]}


def table(rows: list[dict[str, Any]]) -> str:
    header = [
        "row", "change", "parameters", "updates", "target tok/s", "valid BLEU (best)",
        "valid BLEU (mean of last 5)", "load before / after",
    ]  # fmt: skip
    cells = []
    for r in rows:
        averaged = "-" if r["averaged_valid_bleu"] is None else f"{r['averaged_valid_bleu']:.2f}"
        params = "-" if r["parameters"] is None else f"{r['parameters'] / 1e6:.2f}M"
        cells.append([
            r["row"], r["change"], params, f"{r['updates']:,}", f"{r['target_tokens_per_second']:,}",
            f"{r['best_valid_bleu']:.2f}", averaged, f"{r['load_before']:.2f} / {r['load_after']:.2f}",
        ])  # fmt: skip
    return markdown_table(header, "llrrrrrl", cells)


def final_summary(name: str, work: Path) -> dict[str, Any]:
    run_dir = work / name
    log = read_log(run_dir)
    finish = json.loads((run_dir / "finish.json").read_text())
    record = json.loads((work / f"{name}.json").read_text())
    start = (work / f"{name}.log").read_text()
    return {
        "run": name,
        "updates": log[-1]["step"],
        "train_seconds": log[-1]["elapsed_seconds"],
        "best_valid_bleu": max(r["valid_bleu"] for r in log),
        "finish": finish,
        "parameters": _started_with(start, "parameters"),
        "torch_threads": _started_with(start, "threads"),
        "valid_curve": [(r["step"], r["valid_bleu"]) for r in log],
        **record,
    }


def final_table(runs: list[dict[str, Any]]) -> str:
    header = [
        "run", "params", "training", "valid BLEU best single / final", "length penalty (valid BLEU, beam 5)",
        "test2016 BLEU greedy / beam 5", "chrF greedy / beam 5", "test2017 BLEU greedy / beam 5",
        "chrF greedy / beam 5",
    ]  # fmt: skip
    rows = []
    for r in runs:
        s = r["scores"]
        averaging = r["finish"].get("averaging", {})
        final_valid = max(r["best_valid_bleu"], averaging.get("valid_bleu", 0.0))
        tuning = r["finish"]["length_penalty"]
        penalty = f"{tuning['chosen']:g} ({tuning['valid_bleu'][format(tuning['chosen'], 'g')]:.2f})"
        cells = [
            r["run"], f"{r['parameters'] / 1e6:.2f}M",
            f"{r['train_seconds']:.0f} s, {r['updates']:,} updates",
            f"{r['best_valid_bleu']:.2f} / {final_valid:.2f}", penalty,
        ]  # fmt: skip
        for test in TESTS:
            cells.append(f"{s[test + '.beam1']['bleu']:.2f} / {s[test + '.beam5']['bleu']:.2f}")
            cells.append(f"{s[test + '.beam1']['chrf']:.2f} / {s[test + '.beam5']['chrf']:.2f}")
        rows.append(cells)
    return markdown_table(header, "lrllrllll", rows)


def valid_figure(
    runs: list[dict[str, Any]],
    path: Path,
    earlier: list[dict[str, Any]] | None = None,
    earlier_label: str = "",
    label: str = "",
) -> None:
    """Valid BLEU (greedy) against updates, one line per run (from `final_summary`); the
    `earlier` runs (the same names from another results file) are drawn dashed in their run's
    colour. Each label is the legend's note on its lines (none when empty)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7.2, 4.4))
    colours: dict[str, Any] = {}  # run name -> the colour matplotlib gave its first line
    for r, style in [(r, "-") for r in runs] + [(r, "--") for r in earlier or []]:
        steps, bleu = zip(*r["valid_curve"], strict=True)
        note = label if style == "-" else earlier_label
        name = f"{r['run']} ({note})" if note else r["run"]
        (line,) = axis.plot(steps, bleu, style, label=name, color=colours.get(r["run"]))
        colours.setdefault(r["run"], line.get_color())
        averaging = r["finish"].get("averaging")
        if averaging:  # the end-of-training mean of the last checkpoints
            marker = "*" if style == "-" else "x"
            axis.plot(steps[-1], averaging["valid_bleu"], marker, markersize=10, color=line.get_color())
    axis.set_xlabel("updates (45 minutes of training each)")
    axis.set_ylabel("valid BLEU (greedy)")
    threads = max(r.get("torch_threads") or 1 for r in runs)  # runs before --threads used one
    setting = "one torch thread per run" if threads == 1 else f"one run at a time, {threads} torch threads"
    axis.set_title(
        f"Multi30k CPU recipes: 2 CPU cores, {setting}\n(star / cross: mean of the last 5 checkpoints)"
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, ncol=2 if earlier else 1)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument(
        "--data", type=Path, default=REPO / "data" / "multi30k", help="Multi30k prefix folder"
    )
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "levers")
    parser.add_argument("--minutes", type=float, default=15.0, help="levers: training budget of every row")
    parser.add_argument("--workers", type=int, default=2, help="runs trained side by side")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="final: torch threads of each run (0: one per core, for a run alone on the machine)",
    )  # fmt: skip
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--directions", nargs="*", default=list(DIRECTIONS), choices=list(DIRECTIONS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[1])
    parser.add_argument(
        "--set", dest="changes", action="append", default=[], metavar="KEY=VALUE",
        help="final: a change to the recipe, passed to seqcli train (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--results", type=Path,
        help=f"final-report, averaging: the JSON written (final-report: {FINAL_RESULTS.relative_to(REPO)})",
    )  # fmt: skip
    parser.add_argument("--figure", type=Path, default=FIGURE, help="final-report: the PNG written")
    parser.add_argument(
        "--windows", nargs="*", type=int, default=[3, 5, 8, 10],
        help="averaging: the numbers of last checkpoints averaged",
    )  # fmt: skip
    parser.add_argument("--alphas", default="1.2,1.6", help="averaging: length penalties tried on valid")
    parser.add_argument("--last", type=int, default=8, help="rebuild-average: the checkpoints averaged")
    parser.add_argument(
        "--rebuild", type=Path, help="rebuild-average: where the reruns and the averaged runs go"
    )
    parser.add_argument("--earlier", type=Path, help="final-report: an earlier results JSON, drawn dashed")
    parser.add_argument("--earlier-label", default="earlier", help="final-report: its legend note")
    parser.add_argument("--label", default="", help="final-report: the legend note of the runs in WORK")
    args = parser.parse_args()
    started = provenance()  # each result file written below says where it came from
    args.work.mkdir(parents=True, exist_ok=True)
    if args.action == "levers":
        (args.work / "base.toml").write_text(BASE_RECIPE)
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(lambda name: run_row(name, args.data, args.work, args.minutes), args.rows))
    elif args.action == "final":
        jobs = [(d, seed) for seed in args.seeds for d in args.directions]

        def train_and_score(job: tuple[str, int]) -> None:
            run_final(job[0], job[1], args.data, args.work, args.changes, args.threads)

        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(train_and_score, jobs))
    elif args.action == "levers-report":
        rows = [summarize(name, args.work) for name in args.rows if (args.work / f"{name}.json").exists()]
        earlier = json.loads(LEVERS_RESULTS.read_text()) if LEVERS_RESULTS.exists() else None
        results = merge_rows(earlier, args.minutes, rows)
        results.pop("provenance", None)  # the earlier file's: this one gets its own
        write_result(LEVERS_RESULTS, results, started)
        print(table(results["rows"]))
    elif args.action == "averaging":
        if args.results is None:
            parser.error("averaging needs --results")
        found = finished_runs(args.work, run_names(args.directions, args.seeds))
        runs = [
            average_windows(n, args.work, args.data, args.windows, args.alphas, args.threads) for n in found
        ]
        write_result(args.results, {"alphas": args.alphas, "runs": runs}, started)
    elif args.action == "rebuild-average":
        if args.results is None or args.rebuild is None:
            parser.error("rebuild-average needs --results and --rebuild")
        found = finished_runs(args.work, run_names(args.directions, args.seeds))
        runs = [
            rebuild_average(n, args.work, args.rebuild, args.data, args.last, args.alphas, args.threads)
            for n in found
        ]
        write_result(args.results, {"last": args.last, "alphas": args.alphas, "runs": runs}, started)
        print(rebuild_table(runs))
    else:
        names = run_names(args.directions, args.seeds)
        runs = [final_summary(n, args.work) for n in finished_runs(args.work, names)]
        write_result(args.results or FINAL_RESULTS, {"runs": runs}, started)
        earlier = json.loads(args.earlier.read_text())["runs"] if args.earlier else []
        earlier = [r for r in earlier if r["run"] in names]  # the directions and seeds asked for
        valid_figure(runs, args.figure, earlier, args.earlier_label, args.label)
        print(final_table(runs))


if __name__ == "__main__":
    main()
