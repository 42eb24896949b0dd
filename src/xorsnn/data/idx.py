"""Reader for the IDX format of (Fashion-)MNIST, gzip-compressed or not."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from .base import DatasetError

__all__ = ["read_idx"]

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path, how_to_get: str = "") -> np.ndarray:
    """Read an IDX file (``.gz`` or uncompressed) into a numpy array.

    Raises :class:`DatasetError` naming the file if it is truncated or not IDX.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:  # type: ignore[operator]
            data = f.read()
    except FileNotFoundError:
        raise DatasetError(f"missing file {path}. {how_to_get}".strip()) from None
    except (OSError, EOFError) as exc:
        raise DatasetError(f"cannot read {path} ({exc}); the file is corrupt. {how_to_get}".strip()) from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DatasetError(f"{path} is not an IDX file (bad magic number). {how_to_get}".strip())
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path} is truncated (incomplete header). {how_to_get}".strip())
    shape = struct.unpack(">" + "I" * ndim, data[4:header])
    dtype = np.dtype(_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise DatasetError(
            f"{path} is truncated or corrupt: header promises {expected} bytes of data for shape {shape}, "
            f"found {len(data) - header}. {how_to_get}".strip()
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
