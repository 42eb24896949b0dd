"""Opt-in downloads (``--download``) with a progress bar and an md5 check of what was fetched.

Only the *downloaded archives* are checked against the published md5 sums. Files already on
disk are never md5-checked -- they are validated by structure (counts, shapes, label range) in
the loaders, because local copies may legitimately be re-encoded.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.request
from pathlib import Path

__all__ = ["RESOURCES", "download_file", "download_dataset", "md5sum"]

# dataset -> list of (url, filename, md5, extract)
RESOURCES: dict[str, list[tuple[str, str, str, bool]]] = {
    "fashion_mnist": [
        (f"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{name}", name, md5, False)
        for name, md5 in [
            ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ]
    ],
    "cifar10": [
        (
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a",
            True,
        )
    ],
    "cifar100": [
        (
            "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            "cifar-100-python.tar.gz",
            "eb9058c3a382ffc7106e4002c42a8d85",
            True,
        )
    ],
}

_SUBDIR = {"fashion_mnist": Path("FashionMNIST") / "raw", "cifar10": Path("."), "cifar100": Path(".")}


def md5sum(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex md5 of a file."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def download_file(url: str, dest: Path, md5: str | None = None, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` atomically (temp file + rename), verifying ``md5`` if given."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310
            total = int(resp.headers.get("Content-Length") or 0) or None
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name)
            for block in iter(lambda: resp.read(1 << 16), b""):
                out.write(block)
                if bar is not None:
                    bar.update(len(block))
            if bar is not None:
                bar.close()
        if md5 is not None:
            got = md5sum(tmp)
            if got != md5:
                raise OSError(f"checksum mismatch for {url}: md5 {got}, expected {md5}; the download is corrupt")
        os.replace(tmp, dest)
        return dest
    finally:
        if tmp.exists():
            tmp.unlink()


def download_dataset(name: str, root: str | Path, progress: bool = True) -> None:
    """Fetch ``name`` into ``root`` in the official layout (skips files already present)."""
    if name not in RESOURCES:
        raise ValueError(f"no download is available for {name!r}; downloadable datasets: {sorted(RESOURCES)}")
    target = Path(root) / _SUBDIR[name]
    for url, filename, md5, extract in RESOURCES[name]:
        dest = target / filename
        if not dest.exists():
            try:
                download_file(url, dest, md5, progress)
            except OSError as exc:
                raise OSError(f"downloading {url} failed: {exc}. Check your internet connection, or place the "
                              f"file at {dest} yourself") from exc
        if extract:
            with tarfile.open(dest, "r:gz") as tar:
                try:
                    tar.extractall(target, filter="data")
                except TypeError:  # Python without extraction filters
                    tar.extractall(target)  # noqa: S202
