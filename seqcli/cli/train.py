"""`seqcli train`: build the configuration from TOML and flags, train, draw progress on stderr."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Iterator
from dataclasses import Field, fields
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import typer

from seqcli.config import Config, config_from_dict, config_to_dict, load_toml, merge
from seqcli.errors import UsageError

Option = typer.Option
Command = TypeVar("Command", bound=Callable[..., None])


def parse_set(assignments: list[str]) -> dict[str, dict[str, Any]]:
    """--set section.name=value (value in TOML-like syntax: 3, 0.5, true, "text" or text)."""
    result: dict[str, dict[str, Any]] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise UsageError(f"--set {item}: expected section.name=value, e.g. model.cell=gru")
        raw = raw.strip()
        lowered = {"true": "True", "false": "False"}.get(raw, raw)
        try:
            value = ast.literal_eval(lowered)
        except (ValueError, SyntaxError):
            value = raw
        if isinstance(value, tuple):  # 0,0.4,0.8: a list in text, as train.tune_length_penalty takes
            value = raw
        result.setdefault(section, {})[name] = value
    return result


def flagged_fields() -> Iterator[tuple[str, Field[Any], type]]:
    """(section, field, type) of every config field declared with a command-line flag, in order."""
    for section in fields(Config):
        section_class = get_type_hints(Config)[section.name]
        hints = get_type_hints(section_class)
        for spec in fields(section_class):
            if spec.metadata.get("flag"):
                yield section.name, spec, hints[spec.name]


def _flag_help(spec: Field[Any]) -> str:
    choices = spec.metadata.get("choices")
    if not choices:
        return spec.metadata["help"]
    return f"{spec.metadata['help']} One of: {', '.join(choices)}."


def _flag_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per flagged config field, named SECTION__FIELD; None means not given."""
    return [
        inspect.Parameter(
            f"{section}__{spec.name}",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=Option(None, spec.metadata["flag"], help=_flag_help(spec)),
            annotation=kind,
        )
        for section, spec, kind in flagged_fields()
    ]


def _with_flag_options(command: Command) -> Command:
    """Put the flagged config fields into command's signature (before --set), where Typer reads options."""
    signature = inspect.signature(command)
    written = [p for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD]
    at = [p.name for p in written].index("assignments")
    parameters = [*written[:at], *_flag_parameters(), *written[at:]]
    command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return command


def _preset_values(
    name: str, given: dict[str, dict[str, Any]], device: str, pairs: int, joint: bool
) -> tuple[dict[str, dict[str, Any]], str]:
    """The preset's sections, and the line that says which preset and why, and how to change
    it; "auto" picks one from the device and the training corpus size."""
    from seqcli.presets import PRESET_NAMES, choose_preset, preset_config

    if name not in PRESET_NAMES:
        raise UsageError(f"--preset {name}: expected one of {', '.join(PRESET_NAMES)}")
    reason = f"{pairs:,} training pairs"
    if name == "auto":
        from seqcli.device import pick_device

        device_type = pick_device(device).type
        name = choose_preset(device_type, pairs)
        reason = f"auto: device {device_type}, {reason}"
    values = preset_config(name, joint=joint)
    others = ", ".join(n for n in PRESET_NAMES if n not in ("auto", name))
    note = f"preset {name} ({reason}); change it with --preset {others}, --config FILE or single flags"
    return values, note


def _training_paths(given: dict[str, dict[str, Any]]) -> tuple[Path, Path] | None:
    """The training corpus's two files, or None when they are not given or not there (training
    then says which)."""
    from seqcli.corpus import corpus_paths

    data = given.get("data", {})
    if not data.get("train"):
        return None
    paths = corpus_paths(data["train"], data.get("src_lang") or "src", data.get("tgt_lang") or "tgt")
    return paths if all(path.is_file() for path in paths) else None


def _tokenizer_values(
    given: dict[str, dict[str, Any]], paths: tuple[Path, Path] | None, pairs: int
) -> tuple[dict[str, Any], str]:
    """What the config leaves to the data (tokenizer type "auto", vocab_size 0, joint not given),
    decided from the training corpus, and the line that says so; nothing when all is given."""
    from seqcli.levels import resolve

    tok = given.get("tokenizer", {})
    if tok.get("src_model") or tok.get("tgt_model") or paths is None:
        return {}, ""
    level = resolve(tok.get("type", "auto"), tok.get("vocab_size", 0), tok.get("joint"), paths, pairs)
    if level is None:
        return {}, ""
    return {"type": level.type, "vocab_size": level.vocab_size, "joint": level.joint}, level.note()


@_with_flag_options
def train_command(
    config_file: Path = Option(
        None, "--config", help="TOML file with \\[data] \\[tokenizer] \\[model] \\[train] \\[decode]."
    ),
    out: Path = Option(None, "--out", help="Run directory to create."),
    resume: Path = Option(None, "--resume", help="Continue the run in this directory from its saved state."),
    preset: str = Option(
        None,
        "--preset",
        help="Starting settings beneath --config and the flags: auto (from the device and the corpus "
        "size), cpu-small or gpu-base. Default: auto without --config, none with it.",
    ),
    assignments: list[str] = Option([], "--set", help="Any option as section.name=value; repeatable."),
    device: str = Option("auto", help="cpu, cuda, cuda:N or auto."),
    **flag_values: Any,
) -> None:
    """Train an attentional encoder-decoder; RUN_DIR then holds all that translate needs."""
    # flag_values: every config field declared with a flag, keyed SECTION__FIELD (_with_flag_options).
    flags: dict[str, dict[str, Any]] = {}
    for key, value in flag_values.items():
        section, _, name = key.partition("__")
        flags.setdefault(section, {})[name] = value
    if (out is None) == (resume is None):
        raise UsageError("--out or --resume: give exactly one (a new run directory, or one to continue)")
    overrides = merge(flags, parse_set(assignments))
    note = ""  # said once training starts, so that an error stays one line
    if resume is not None:
        from seqcli.checkpoint import load_config

        if preset is not None:
            raise UsageError(f"--preset {preset}: a resumed run keeps its stored settings")
        base = config_to_dict(load_config(resume))
    else:
        from seqcli.levels import count_lines

        base = load_toml(config_file) if config_file else {}
        given = merge(base, overrides)
        paths = _training_paths(given)
        pairs = count_lines(paths[0]) if paths else 0
        tokenizer, level_note = _tokenizer_values(given, paths, pairs)
        base = merge(base, {"tokenizer": tokenizer})
        notes = []
        chosen = preset or (None if config_file else "auto")
        if chosen is not None:
            chosen_tokenizer = {**given.get("tokenizer", {}), **tokenizer}
            values, preset_note = _preset_values(
                chosen, given, device, pairs, chosen_tokenizer.get("joint", True)
            )
            notes.append(preset_note)
            if paths is not None:
                from seqcli.presets import fit_to_corpus, measure_corpus

                level = chosen_tokenizer.get("type", "unigram")  # how many pieces a word makes
                notes.append(fit_to_corpus(values, measure_corpus(paths, pairs), level, given))
            base = merge(values, base)
        note = "\n".join(line for line in (*notes, level_note) if line)
    # Later wins: the preset, the file (or the resumed run's config), then the flags, then --set.
    config = config_from_dict(merge(base, overrides))
    from seqcli.cli.training import run_training

    run_training(config, out, resume, device, note)
