"""What `seqcli`'s entry point sets up before a command runs."""

from __future__ import annotations

import os

import pytest

from seqcli import cli


@pytest.mark.parametrize(("given", "expected"), [(None, cli.ONEDNN_CACHE_CAPACITY), ("64", "64")])
def test_every_command_runs_with_onednn_kernel_cache_bounded_unless_the_user_set_it(
    monkeypatch: pytest.MonkeyPatch, given: str | None, expected: str
) -> None:
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "")  # whatever was there comes back at the end
    if given is None:
        monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY")
    else:
        monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", given)
    seen: list[str | None] = []
    monkeypatch.setattr(cli, "app", lambda: seen.append(os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY")))
    cli.main()
    assert seen == [expected]
