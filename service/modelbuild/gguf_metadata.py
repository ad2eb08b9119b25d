"""Read a GGUF file's key-value metadata (not its tensors) quickly.

``gguf.GGUFReader`` maps every array element of every field to its own numpy view; for a
150k-token vocabulary plus merges that takes seconds. This reader decodes the metadata section
straight into Python values (strings, numbers, lists) in a fraction of that.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any

from service.modelbuild.errors import BuildError

_SCALARS = {
    0: struct.Struct("<B"),
    1: struct.Struct("<b"),
    2: struct.Struct("<H"),
    3: struct.Struct("<h"),
    4: struct.Struct("<I"),
    5: struct.Struct("<i"),
    6: struct.Struct("<f"),
    7: struct.Struct("<?"),
    10: struct.Struct("<Q"),
    11: struct.Struct("<q"),
    12: struct.Struct("<d"),
}
_STRING = 8
_ARRAY = 9
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class _Cursor:
    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.offset = 0

    def unpack(self, layout: struct.Struct) -> Any:
        (value,) = layout.unpack_from(self.data, self.offset)
        self.offset += layout.size
        return value

    def string(self) -> str:
        length = self.unpack(_U64)
        start = self.offset
        self.offset += length
        return bytes(self.data[start : self.offset]).decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind = self.unpack(_U32)
            count = self.unpack(_U64)
            return [self.value(item_kind) for _ in range(count)]
        layout = _SCALARS.get(kind)
        if layout is None:
            raise BuildError(f"unknown GGUF metadata value type {kind}")
        return self.unpack(layout)


def read_gguf_metadata(path: Path) -> dict[str, Any]:
    """Every metadata key of the GGUF at ``path`` with its decoded value."""
    with Path(path).open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        view = memoryview(mapped)
        try:
            return _read(_Cursor(view), path)
        except struct.error as exc:
            raise BuildError(f"{path} is truncated or not a GGUF file") from exc
        finally:
            view.release()


def _read(cursor: _Cursor, path: Path) -> dict[str, Any]:
    if bytes(cursor.data[:4]) != b"GGUF":
        raise BuildError(f"{path} is not a GGUF file")
    cursor.offset = 4
    version = cursor.unpack(_U32)
    if version < 2:
        raise BuildError(f"{path} is GGUF version {version}; versions 2 and 3 are supported")
    cursor.unpack(_U64)  # tensor count
    count = cursor.unpack(_U64)
    metadata: dict[str, Any] = {}
    for _ in range(count):
        key = cursor.string()
        metadata[key] = cursor.value(cursor.unpack(_U32))
    return metadata
