"""PostgreSQL's binary COPY format, encoded from Arrow columns in one compiled pass (docs/decisions.md#D112).

CSV made the server parse ~900 bytes of decimal text per indicator row, and that parsing was the ceiling (24% of
a binary COPY of the same rows). Binary COPY sends each double as its 8 bytes. The encoder turns every column
into 8-byte payload words (doubles, integers, days since 2000-01-01, dictionary codes for text) plus a null mask,
and a numba kernel lays out the tuples (field count, then length + big-endian bytes per field, -1 for NULL).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

__all__ = ["SIGNATURE", "TRAILER", "encode_rows", "supported"]

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_PG_EPOCH_DAYS = 10_957  # 2000-01-01 - 1970-01-01
_PG_EPOCH_US = _PG_EPOCH_DAYS * 86_400 * 1_000_000
_TEXT = -1


def _width(kind: pa.DataType) -> int | None:
    """Bytes per value on the wire, _TEXT for text, None if this encoder does not handle the type."""
    if pa.types.is_float64(kind) or pa.types.is_int64(kind) or pa.types.is_timestamp(kind):
        return 8
    if pa.types.is_int32(kind) or pa.types.is_date32(kind):
        return 4
    if pa.types.is_int16(kind):
        return 2
    if pa.types.is_boolean(kind):
        return 1
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _TEXT
    return None


def supported(schema: pa.Schema) -> bool:
    return all(_width(f.type) is not None for f in schema) and all(
        not pa.types.is_timestamp(f.type) or f.type.unit == "us" for f in schema  # type: ignore[attr-defined]
    )


def _words(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The column's values as int64 words whose low bytes are the wire value (NULLs: any value)."""
    kind = col.type
    if pa.types.is_float64(kind):
        return pc.fill_null(col, 0.0).to_numpy().view(np.int64)
    if pa.types.is_date32(kind):
        return pc.fill_null(col, 0).cast(pa.int32()).to_numpy().astype(np.int64) - _PG_EPOCH_DAYS
    if pa.types.is_timestamp(kind):
        return pc.fill_null(col.cast(pa.int64()), 0).to_numpy() - _PG_EPOCH_US
    if pa.types.is_boolean(kind):
        return pc.fill_null(col, False).to_numpy(zero_copy_only=False).astype(np.int64)
    return pc.fill_null(col, 0).to_numpy().astype(np.int64)


def encode_rows(table: pa.Table) -> np.ndarray:
    """The tuples of `table` in COPY binary format (columns in the table's order), without the stream's
    SIGNATURE and TRAILER: a stream is SIGNATURE, any number of encoded batches, TRAILER."""
    n_cols, n_rows = table.num_columns, table.num_rows
    widths = np.empty(n_cols, dtype=np.int64)
    words = np.zeros((n_cols, n_rows), dtype=np.int64)
    nulls = np.zeros((n_cols, n_rows), dtype=np.bool_)
    text_parts: list[bytes] = []
    text_offsets = [0]
    for j, col in enumerate(table.columns):
        width = _width(col.type)
        if width is None:
            raise TypeError(f"binary COPY cannot encode {col.type}")
        widths[j] = width
        if col.null_count:
            nulls[j] = col.is_null().to_numpy(zero_copy_only=False)
        if width == _TEXT:
            encoded = pc.dictionary_encode(col.combine_chunks())
            base = len(text_offsets) - 1
            for value in encoded.dictionary.to_pylist():
                text_parts.append(value.encode("utf-8"))
                text_offsets.append(text_offsets[-1] + len(text_parts[-1]))
            words[j] = pc.fill_null(encoded.indices, 0).to_numpy().astype(np.int64) + base
        else:
            words[j] = _words(col)
    blob = np.frombuffer(b"".join(text_parts), dtype=np.uint8) if text_parts else np.zeros(0, dtype=np.uint8)
    offsets = np.asarray(text_offsets, dtype=np.int64)
    return _encode(words, nulls, widths, blob, offsets)


@njit(cache=True, nogil=True)
def _encode(
    words: np.ndarray, nulls: np.ndarray, widths: np.ndarray, blob: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    n_cols, n_rows = words.shape
    size = n_rows * (2 + 4 * n_cols)
    for j in range(n_cols):
        w = widths[j]
        for r in range(n_rows):
            if not nulls[j, r]:
                if w < 0:
                    k = words[j, r]
                    size += offsets[k + 1] - offsets[k]
                else:
                    size += w
    out = np.empty(size, dtype=np.uint8)
    p = 0
    for r in range(n_rows):
        out[p] = (n_cols >> 8) & 0xFF
        out[p + 1] = n_cols & 0xFF
        p += 2
        for j in range(n_cols):
            if nulls[j, r]:
                out[p] = 0xFF
                out[p + 1] = 0xFF
                out[p + 2] = 0xFF
                out[p + 3] = 0xFF
                p += 4
                continue
            w = widths[j]
            v = words[j, r]
            if w < 0:
                a, b = offsets[v], offsets[v + 1]
                n = b - a
                out[p] = (n >> 24) & 0xFF
                out[p + 1] = (n >> 16) & 0xFF
                out[p + 2] = (n >> 8) & 0xFF
                out[p + 3] = n & 0xFF
                p += 4
                for i in range(n):
                    out[p + i] = blob[a + i]
                p += n
            else:
                out[p] = 0
                out[p + 1] = 0
                out[p + 2] = 0
                out[p + 3] = w
                p += 4
                if w == 8:  # the common case, unrolled
                    out[p] = (v >> 56) & 0xFF
                    out[p + 1] = (v >> 48) & 0xFF
                    out[p + 2] = (v >> 40) & 0xFF
                    out[p + 3] = (v >> 32) & 0xFF
                    out[p + 4] = (v >> 24) & 0xFF
                    out[p + 5] = (v >> 16) & 0xFF
                    out[p + 6] = (v >> 8) & 0xFF
                    out[p + 7] = v & 0xFF
                else:
                    for i in range(w):
                        out[p + i] = (v >> (8 * (w - 1 - i))) & 0xFF
                p += w
    return out
