"""seqcli data fetch: downloads from a real HTTP server on 127.0.0.1 serving files made here."""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cli_helpers import run_cli

from seqcli.errors import DataError
from seqcli.fetch import fetch_all, multi30k_manifest

TEXTS = {
    "train.en": "A dog runs.\nTwo men talk.\n",
    "train.de": "Ein Hund rennt.\nZwei Männer reden.\n",
    "valid.en": "A cat sleeps.\n",
    "valid.de": "Eine Katze schläft.\n",
}
REMOTE = {"train.en": "train.en", "train.de": "train.de", "valid.en": "val.en", "valid.de": "val.de"}


@dataclass
class FakeServer:
    """What the handler serves: path -> body; paths whose body is cut off half-way."""

    files: dict[str, bytes]
    cut: set[str] = field(default_factory=set)
    url: str = ""


def _handler(server_files: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server name)
            body = server_files.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.path in server_files.cut:  # the connection drops half-way through
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture()
def server() -> Iterator[FakeServer]:
    files = {f"/raw/{REMOTE[name]}.gz": gzip.compress(text.encode()) for name, text in TEXTS.items()}
    fake = FakeServer(files)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}/raw"
    yield fake
    httpd.shutdown()
    httpd.server_close()


def _manifest() -> list:
    return multi30k_manifest(
        {name: hashlib.sha256(text.encode()).hexdigest() for name, text in TEXTS.items()}
    )


def test_manifest_names_the_official_files() -> None:
    names = {(f.remote, f.local) for f in multi30k_manifest()}
    assert ("val.de.gz", "valid.de") in names
    assert ("test_2016_flickr.cs.gz", "test2016.cs") in names
    assert ("test_2017_flickr.fr.gz", "test2017.fr") in names
    assert len(names) == 15  # 4 splits x 4 languages, no Czech test2017


def test_fetch_writes_checked_files_and_skips_correct_ones(server: FakeServer, tmp_path: Path) -> None:
    downloaded, present = fetch_all(_manifest(), server.url, tmp_path, timeout=10)
    assert sorted(downloaded) == sorted(TEXTS) and present == []
    for name, text in TEXTS.items():
        assert (tmp_path / name).read_text(encoding="utf-8") == text
    downloaded, present = fetch_all(_manifest(), server.url, tmp_path, timeout=10)
    assert downloaded == [] and sorted(present) == sorted(TEXTS)


def test_corrupt_file_is_refused_and_not_written(server: FakeServer, tmp_path: Path) -> None:
    server.files["/raw/val.de.gz"] = gzip.compress(b"Eine Katze schlaeft.\n")  # one byte differs
    with pytest.raises(DataError, match="val.de.gz: sha256 mismatch"):
        fetch_all(_manifest(), server.url, tmp_path, timeout=10)
    assert not (tmp_path / "valid.de").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_truncated_gzip_is_refused(server: FakeServer, tmp_path: Path) -> None:
    body = server.files["/raw/train.de.gz"]
    server.files["/raw/train.de.gz"] = body[: len(body) - 6]  # served in full, but cut at the source
    with pytest.raises(DataError, match="train.de.gz: not a complete gzip file"):
        fetch_all(_manifest(), server.url, tmp_path, timeout=10)
    assert not (tmp_path / "train.de").exists()


def test_connection_cut_mid_file_leaves_nothing(server: FakeServer, tmp_path: Path) -> None:
    server.cut.add("/raw/train.en.gz")
    with pytest.raises(DataError, match="train.en.gz: download"):
        fetch_all(_manifest(), server.url, tmp_path, timeout=10)
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_local_copy_is_downloaded_again(server: FakeServer, tmp_path: Path) -> None:
    (tmp_path / "train.en").write_text("A dog", encoding="utf-8")  # a torn copy from elsewhere
    downloaded, _ = fetch_all(_manifest(), server.url, tmp_path, timeout=10)
    assert "train.en" in downloaded
    assert (tmp_path / "train.en").read_text(encoding="utf-8") == TEXTS["train.en"]


def test_cli_fetch_with_official_checksums_refuses_fixture_files(server: FakeServer, tmp_path: Path) -> None:
    # The fixture files are not the real Multi30k, so the official checksums must reject them.
    server.files["/raw/train.cs.gz"] = server.files["/raw/train.en.gz"]
    server.files["/raw/train.fr.gz"] = server.files["/raw/train.en.gz"]
    out = tmp_path / "m30k"
    result = run_cli("data", "fetch", "multi30k", "--out", str(out), "--base-url", server.url, check=False)
    assert result.returncode == 1
    assert "sha256 mismatch" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() or list(out.iterdir()) == []
    unknown = run_cli("data", "fetch", "wmt14", "--out", str(out), check=False)
    assert unknown.returncode == 2 and "unknown corpus" in unknown.stderr
