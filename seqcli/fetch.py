"""Downloading public corpora: Multi30k's raw files, checked (size, gzip, sha256) and written atomically."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from seqcli.errors import DataError
from seqcli.textio import atomic_open

# The snapshot of github.com/multi30k/dataset the checksums below were taken from
# (see ../shared/data/multi30k/README.md); the data files have not changed since 2020.
MULTI30K_COMMIT = "a3d2e0d26b56f3846f66a952536ffed4e401d05a"
MULTI30K_BASE_URL = f"https://raw.githubusercontent.com/multi30k/dataset/{MULTI30K_COMMIT}/data/task1/raw"

# Upstream split name -> the name written here (PREFIX of PREFIX.LANG).
MULTI30K_SPLITS = {
    "train": "train",
    "val": "valid",
    "test_2016_flickr": "test2016",
    "test_2017_flickr": "test2017",
}

# sha256 of the gunzipped files, by local name; upstream has no Czech test2017.
MULTI30K_SHA256 = {
    "train.en": "460a15fbd157e34a7a9957ee388c1ca247fe47af3ef25fb50442af6c274e0fc6",
    "train.de": "2c2b73fd2b548fbcde3a875e0a78d6ee94d498bfdee6bd3eae3945779e9ddf72",
    "train.fr": "5925a3c18f1587b6b54b87743106e6e8ab93618edb6f65d19eac0621f853a10d",
    "train.cs": "2be68b38c8d586ff4f54eb13cc6e1baaaa053695b3f070d3038303a47f2268da",
    "valid.en": "1f2a23d992769b5b3d209b0a10dd0b77c08cceb1f20dfb97ed0aafa49d107227",
    "valid.de": "660e09eb7e1da2f856ea13ee5ad3cf6d36b3d5b0b733c857e94c5747a3dfc660",
    "valid.fr": "5304e444d842e962b2dda4d816b70b22a1765b15401642b7ca37a67477e708dc",
    "valid.cs": "d53827e469b0a1ca8d57e9e26b2b64c4bc4b33f5479c7b03ae87ae5c882c3e33",
    "test2016.en": "399a4382932c1aadd3ceb9bef1008d388a64c76d4ae4e9d4728c6f4301cac182",
    "test2016.de": "4be6b5b3236b79c25475c6bb829800a7ce559e9ba7a1f6c2394fe4d40be46d16",
    "test2016.fr": "cb3160d69b002bb638e66cc7612fcd56cb0af82eadc9c142dedc438afb885ef6",
    "test2016.cs": "45adb85f688de8407fddcbe1b36dca15d12aab868149b337e2576f2d6d2ff8d8",
    "test2017.en": "ce1450ddc5ab0834502579d77a170849952e15a2938b34cc503bdc25ebb4fb98",
    "test2017.de": "c3078bc3b36808bf9d20eb2347ed6137016179ef59ec0d2b9b8ecc3fb2880081",
    "test2017.fr": "6f3764e31dac41e9455e612958bcfd4e877c5e15cd66df2c2b2be6d9bd83e5b6",
}


@dataclass(frozen=True)
class RemoteFile:
    """One gzipped file to download: its name under the base URL, where it goes, its checksum."""

    remote: str  # e.g. "val.de.gz"
    local: str  # e.g. "valid.de"
    sha256: str  # of the gunzipped bytes


def multi30k_manifest(sha256: dict[str, str] | None = None) -> list[RemoteFile]:
    """Multi30k task 1's raw files; `sha256` (local name -> checksum) replaces the official list."""
    checksums = MULTI30K_SHA256 if sha256 is None else sha256
    files = []
    for remote_split, local_split in MULTI30K_SPLITS.items():
        for lang in ("en", "de", "fr", "cs"):
            local = f"{local_split}.{lang}"
            if local in checksums:
                files.append(RemoteFile(f"{remote_split}.{lang}.gz", local, checksums[local]))
    return files


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_complete(path: Path, expected_sha256: str) -> bool:
    """Whether path exists with exactly the expected contents."""
    return path.is_file() and sha256_of(path.read_bytes()) == expected_sha256


def download(url: str, timeout: float) -> bytes:
    """The whole body of url; a short read, an HTTP error or a dropped connection is a DataError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
            expected = response.headers.get("Content-Length")
    except urllib.error.HTTPError as error:
        raise DataError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        reason = getattr(error, "reason", None) or type(error).__name__
        raise DataError(f"{url}: download failed ({reason})") from None
    if expected is not None and expected.isdigit() and int(expected) != len(body):
        raise DataError(f"{url}: download incomplete ({len(body)} of {expected} bytes)")
    return body


def fetch_file(file: RemoteFile, base_url: str, out_dir: Path, timeout: float = 60.0) -> bool:
    """Download, gunzip, check and write one file; False when a correct copy was already there.

    Nothing is written unless every check passes, and then atomically: a failed or cut
    download never leaves a file that looks complete.
    """
    target = Path(out_dir) / file.local
    if is_complete(target, file.sha256):
        return False
    url = f"{base_url.rstrip('/')}/{file.remote}"
    compressed = download(url, timeout)
    try:
        data = gzip.decompress(compressed)
    except (OSError, EOFError, zlib.error):
        raise DataError(f"{url}: not a complete gzip file ({len(compressed)} bytes)") from None
    actual = sha256_of(data)
    if actual != file.sha256:
        raise DataError(f"{url}: sha256 mismatch (expected {file.sha256}, got {actual})")
    with atomic_open(target, "wb") as handle:
        handle.write(data)
    return True


def fetch_all(
    files: list[RemoteFile], base_url: str, out_dir: Path, timeout: float = 60.0
) -> tuple[list[str], list[str]]:
    """Fetch every file; returns (downloaded, already present) local names. Stops at the first error."""
    downloaded: list[str] = []
    present: list[str] = []
    for file in files:
        (downloaded if fetch_file(file, base_url, out_dir, timeout) else present).append(file.local)
    return downloaded, present
