"""Time to quality: seqcli's Multi30k CPU recipe beside JoeyNMT 2.3.0, the same wall-clock each.

    python benchmarks/time_to_quality.py --data ../shared/data/multi30k --minutes 20

Three rows, trained one after the other on this machine (nothing else should run; each
toolkit uses torch's default threads), German->English, the same data and one SentencePiece
model for all: the recipe's joint 4,000-piece unigram model, trained once by `seqcli tokenize
train` on train.de + train.en.

  seqcli             configs/multi30k-de-en-cpu.toml with --max-minutes MINUTES. Its whole
                     train command, the end-of-training checkpoint averaging and length-penalty
                     tuning on valid included, sets the budget of the other rows.
  joeynmt-recipe     JoeyNMT with the recipe's architecture: a 1-layer BiLSTM encoder (128 per
                     direction), a 1-layer LSTM decoder of 256, Luong (general) attention without
                     input feeding, a bridge, embeddings of 256 tied three ways, dropout 0.2,
                     embedding dropout 0.1, label smoothing 0.1, Adam 0.003, batches holding
                     about as many real target tokens as the recipe's. What JoeyNMT has no
                     option for is left out: variational and word dropout, bf16 autocast on a
                     CPU, checkpoint averaging.
  joeynmt-reference  JoeyNMT's reference configuration (../shared/peers/joeynmt/), on the
                     shared 4,000-piece model.

JoeyNMT has no time limit: it is sent SIGINT when the budget is spent, which it answers by
saving its current weights. It validates every --joeynmt-eval-every updates (inside the
budget, as seqcli's evaluations are) and keeps the best checkpoint on valid BLEU; of that one
and the last weights, the one with the better greedy valid BLEU is decoded. Each toolkit's
own translate command decodes test2016 and test2017 with beam 5 (seqcli with the length
penalty its run chose on valid, JoeyNMT with its alpha of 1.0); sacreBLEU (13a, cased) gives
BLEU and chrF. Each row records the load average before and after it, the updates made and
the target tokens a second. A row that finished is kept in --work and not trained again.
Figures go to --out (JSON) and a markdown table beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from compare_joeynmt import (  # noqa: E402
    joeynmt_python,
    joeynmt_settings,
    joeynmt_training_speed,
    log,
    machine,
    prepare_tokenizer,
    real_tokens_per_batch,
    run,
    write_joeynmt_config,
)
from provenance import provenance, write_result  # noqa: E402
from shared_data import shared_data  # noqa: E402

from seqcli.config import config_from_dict, config_to_dict, dumps_toml, load_toml, merge  # noqa: E402
from seqcli.corpus import read_parallel  # noqa: E402
from seqcli.metrics import score  # noqa: E402
from seqcli.textio import write_text_atomic  # noqa: E402

RECIPE = ROOT / "configs" / "multi30k-de-en-cpu.toml"
ROWS = ("seqcli", "joeynmt-recipe", "joeynmt-reference")
TESTS = ("test2016", "test2017")
VOCAB_SIZE = 4000
# JoeyNMT fills a 4096-token batch with about 1,740 real target tokens (it counts padding).
JOEYNMT_REAL_PER_COUNTED = 1740 / 4096
JOEY_UPDATES = re.compile(r"Interrupt at epoch \d+, step (\d+)|Step:\s+(\d+),")
JOEY_VALIDATION = re.compile(r"Evaluation result \(greedy\).*?bleu:\s+([0-9.]+)")


# ---------------------------------------------------------------------------------------------
# Configurations


def seqcli_recipe(work: Path, data: Path, spm: Path, minutes: float) -> Path:
    """The de-en CPU recipe on --data with the shared SentencePiece model and this budget."""
    values = merge(
        load_toml(RECIPE),
        {
            "data": {"train": str(data / "train"), "valid": str(data / "valid")},
            "tokenizer": {"src_model": str(spm), "tgt_model": str(spm)},
            "train": {"max_minutes": minutes, "seed": 1},
        },
    )
    path = work / "seqcli.toml"
    write_text_atomic(path, dumps_toml(config_to_dict(config_from_dict(values))))
    return path


def joeynmt_rows(work: Path, data: Path, spm: Path, eval_every: int, batch_tokens: int) -> dict[str, Path]:
    """The two JoeyNMT configurations, each training into work/ROW-run."""
    configs = {}
    for row in ROWS[1:]:
        config = joeynmt_settings(work, data, spm, 10**7, "cpu", 5)
        config["name"], config["model_dir"] = row, str(work / f"{row}-run")
        train = config["training"]
        train.update({"validation_freq": eval_every, "keep_best_ckpts": 1})
        if row == "joeynmt-recipe":
            recipe = config_from_dict(load_toml(RECIPE))
            model, options = recipe.model, recipe.train
            emb = {"embedding_dim": model.embedding_size, "scale": False, "dropout": model.embedding_dropout}
            rnn = {"rnn_type": model.cell, "embeddings": emb, "dropout": model.dropout, "type": "recurrent"}
            config["model"].update(
                {
                    "tied_embeddings": True,
                    "tied_softmax": True,
                    "encoder": {**rnn, "num_layers": model.encoder_layers, "bidirectional": True,
                                "hidden_size": model.hidden_size // 2},
                    "decoder": {**rnn, "num_layers": model.decoder_layers, "hidden_size": model.hidden_size,
                                "hidden_dropout": model.dropout, "input_feeding": False,
                                "init_hidden": "bridge", "attention": "luong"},
                }
            )  # fmt: skip
            train.update(
                {
                    "learning_rate": options.learning_rate,
                    "label_smoothing": options.label_smoothing,
                    "clip_grad_norm": options.clip_norm,
                    "batch_size": batch_tokens,
                }
            )
        configs[row] = write_joeynmt_config(config, work / f"{row}.yaml")
    return configs


# ---------------------------------------------------------------------------------------------
# Training


def loads() -> float:
    return round(os.getloadavg()[0], 2)


def train_seqcli(work: Path, config: Path) -> dict[str, Any]:
    run_dir = work / "seqcli-run"
    shutil.rmtree(run_dir, ignore_errors=True)
    command = [sys.executable, "-m", "seqcli", "train", "--config", str(config), "--out", str(run_dir)]
    before = loads()
    wall = run([*command, "--device", "cpu"], log_to=work / "seqcli-train.log")
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    speeds = sorted(r["target_tokens_per_second"] for r in records)
    return {
        "wall_seconds": round(wall, 1),
        "training_seconds": records[-1]["elapsed_seconds"],
        "updates": records[-1]["step"],
        "train_target_tokens_per_second": speeds[len(speeds) // 2],
        "real_target_tokens_per_batch": real_tokens_per_batch(config),
        "best_valid_bleu_greedy": max(r["valid_bleu"] for r in records),
        "load_before": before,
        "load_after": loads(),
    }


def train_joeynmt(row: str, work: Path, python: Path, config: Path, seconds: float) -> dict[str, Any]:
    """Train until the budget is spent, then interrupt as a user would with Ctrl-C."""
    run_dir = work / f"{row}-run"
    shutil.rmtree(run_dir, ignore_errors=True)
    command = [str(python), "-m", "joeynmt", "train", str(config), "--skip-test"]
    log(" ".join(command) + f"  (interrupted after {seconds:.0f} s)")
    before, start = loads(), time.monotonic()
    with open(work / f"{row}-train.log", "w", encoding="utf-8") as err:
        # A shell starts background jobs with SIGINT ignored, and Python keeps it so: restore it.
        restore = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
        process = subprocess.Popen(command, stdout=err, stderr=err, preexec_fn=restore)
        try:
            process.wait(timeout=seconds)
            sys.exit(f"time_to_quality: {row} stopped before its budget; see {work / f'{row}-train.log'}")
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=300)  # it saves the current weights, then exits
    wall = time.monotonic() - start
    text = (run_dir / "train.log").read_text(encoding="utf-8", errors="replace")
    updates = max(int(a or b) for a, b in JOEY_UPDATES.findall(text))
    speed = joeynmt_training_speed(run_dir / "train.log")
    return {
        "wall_seconds": round(wall, 1),
        "updates": updates,
        "train_target_tokens_per_second": speed["train_target_tokens_per_second"],
        "real_target_tokens_per_batch": speed["real_target_tokens_per_batch"],
        "validations": [float(b) for b in JOEY_VALIDATION.findall(text)],
        "load_before": before,
        "load_after": loads(),
    }


# ---------------------------------------------------------------------------------------------
# Decoding


def translate(command: list[str], source: Path, hyp: Path, log_to: Path) -> tuple[list[str], float]:
    """The command's output lines for source (one a line), and its wall-clock seconds."""
    seconds = run(command, stdin=source, stdout=hyp, log_to=log_to)
    return hyp.read_text(encoding="utf-8").splitlines(), seconds


def joeynmt_checkpoint(row: str, work: Path, python: Path, config: Path, data: Path) -> dict[str, Any]:
    """Of the best-on-valid checkpoint and the interrupted last weights, the better on valid
    (greedy); returns its configuration for decoding and both valid scores."""
    run_dir = work / f"{row}-run"
    reference = read_parallel(str(data / "valid"), "de", "en")[1]
    settings = json.loads(config.read_text())

    def decoding_config(checkpoint: str, beam: int) -> Path:
        testing = {"load_model": str((run_dir / checkpoint).resolve()), "beam_size": beam}
        settings["testing"].update(testing)
        return write_joeynmt_config(settings, work / f"{row}-{checkpoint.split('.')[0]}-beam{beam}.yaml")

    valid_bleu = {}
    for name in ("best.ckpt", "latest.ckpt"):
        if (run_dir / name).exists():
            command = [str(python), "-m", "joeynmt", "translate", str(decoding_config(name, 1))]
            stem = work / f"{row}-{name.split('.')[0]}"
            hypotheses, _ = translate(
                command, data / "valid.de", stem.with_suffix(".valid.hyp"), stem.with_suffix(".log")
            )
            valid_bleu[name] = score(hypotheses, reference).bleu
    chosen = max(valid_bleu, key=valid_bleu.__getitem__)  # the first of equals: best.ckpt
    return {"valid_bleu_greedy": valid_bleu, "checkpoint": chosen, "config": str(decoding_config(chosen, 5))}


def test_scores(command: list[str], work: Path, row: str, data: Path) -> dict[str, Any]:
    scores = {}
    for test in TESTS:
        reference = read_parallel(str(data / test), "de", "en")[1]
        hyp = work / f"{row}.{test}.beam5.en"
        hypotheses, seconds = translate(command, data / f"{test}.de", hyp, work / f"{row}.{test}.log")
        result = score(hypotheses, reference)
        scores[test] = {"bleu": result.bleu, "chrf": result.chrf, "seconds": round(seconds, 1)}
    return scores


# ---------------------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    labels = {
        "seqcli": "seqcli, CPU recipe",
        "joeynmt-recipe": "JoeyNMT 2.3.0, the recipe's architecture",
        "joeynmt-reference": "JoeyNMT 2.3.0, reference configuration",
    }
    lines = [
        "| row | parameters | train command, s | updates | target tok/s | test2016 BLEU / chrF "
        "| test2017 BLEU / chrF | load before / after |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for row in ROWS:
        if row not in results["rows"]:
            continue
        r = results["rows"][row]
        t16, t17 = r["test"]["test2016"], r["test"]["test2017"]
        params = f"{r['parameters'] / 1e6:.2f}M" if r.get("parameters") else "-"
        lines.append(
            f"| {labels[row]} | {params} | {r['wall_seconds']:.0f} | {r['updates']:,} "
            f"| {r['train_target_tokens_per_second']:,.0f} | {t16['bleu']:.2f} / {t16['chrf']:.2f} "
            f"| {t17['bleu']:.2f} / {t17['chrf']:.2f} | {r['load_before']:.2f} / {r['load_after']:.2f} |"
        )
    return "\n".join(lines) + "\n"


PARAMETERS = {
    "seqcli": re.compile(r"parameters ([\d,]+)"),
    "joeynmt": re.compile(r"Total params: ([\d,]+)"),
}


def parameters(kind: str, log_file: Path) -> int | None:
    found = PARAMETERS[kind].search(log_file.read_text(encoding="utf-8", errors="replace"))
    return int(found.group(1).replace(",", "")) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=shared_data("multi30k"))
    parser.add_argument("--minutes", type=float, default=20.0, help="seqcli's --max-minutes.")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "time-to-quality")
    parser.add_argument("--joeynmt-venv", type=Path, default=ROOT / "runs" / "joeynmt-venv")
    parser.add_argument("--torch-version", default="2.13.0", help="torch to install beside JoeyNMT.")
    parser.add_argument("--joeynmt-eval-every", type=int, default=200, help="JoeyNMT's validation_freq.")
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=ROWS)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "time-to-quality-cpu.json")
    args = parser.parse_args()
    data, work = args.data.resolve(), args.work.resolve()
    for split in ("train", "valid", *TESTS):
        for lang in ("de", "en"):
            if not (data / f"{split}.{lang}").is_file():
                sys.exit(f"time_to_quality: --data {data}: {split}.{lang} is missing")
    work.mkdir(parents=True, exist_ok=True)
    host = machine("cpu")  # before any training, so its load average is the machine's at the start
    started = provenance()
    python = joeynmt_python(args.joeynmt_venv.resolve(), args.torch_version)
    spm = prepare_tokenizer(work, data, VOCAB_SIZE)
    seq_config = seqcli_recipe(work, data, spm, args.minutes)
    joey_batch = round(real_tokens_per_batch(seq_config) / JOEYNMT_REAL_PER_COUNTED / 100) * 100
    joey_configs = joeynmt_rows(work, data, spm, args.joeynmt_eval_every, joey_batch)

    for row in args.rows:
        done = work / f"{row}.json"
        if done.exists():
            continue
        if row == "seqcli":
            record = train_seqcli(work, seq_config)
            record["parameters"] = parameters("seqcli", work / "seqcli-train.log")
            command = [
                sys.executable,
                "-m",
                "seqcli",
                "translate",
                str(work / "seqcli-run"),
                "--beam-size",
                "5",
            ]
            record["test"] = test_scores([*command, "--device", "cpu"], work, row, data)
        else:
            budget = work / "seqcli.json"
            if not budget.exists():
                sys.exit("time_to_quality: the seqcli row sets the budget: run it first")
            seconds = json.loads(budget.read_text())["wall_seconds"]
            record = train_joeynmt(row, work, python, joey_configs[row], seconds)
            record["parameters"] = parameters("joeynmt", work / f"{row}-run" / "train.log")
            record.update(joeynmt_checkpoint(row, work, python, joey_configs[row], data))
            command = [str(python), "-m", "joeynmt", "translate", record["config"]]
            record["test"] = test_scores(command, work, row, data)
        write_text_atomic(done, json.dumps(record, indent=2) + "\n")
        log(f"{row}: {record['updates']} updates, test2016 BLEU {record['test']['test2016']['bleu']}")

    rows = {
        row: json.loads((work / f"{row}.json").read_text()) for row in ROWS if (work / f"{row}.json").exists()
    }
    results = {"minutes": args.minutes, "data": str(data), "machine": host, "rows": rows}
    if "seqcli" in rows:
        ours = rows["seqcli"]["test"]["test2016"]["bleu"]
        results["test2016_bleu_margin"] = {
            row: round(ours - r["test"]["test2016"]["bleu"], 2) for row, r in rows.items() if row != "seqcli"
        }
    write_result(args.out, results, started)
    markdown = table(results)
    write_text_atomic(args.out.with_suffix(".md"), markdown)
    print(markdown)
    log(f"wrote {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
