"""`kallos features export`: the feature frame as year-partitioned (hive-style) Parquet or CSV plus a data
dictionary, byte-identical when rerun on unchanged inputs (docs/decisions.md#D75).

Layout: `DIR/year=2024/part-0.parquet` (the `year` column lives in the path, as DuckDB, polars and pandas expect
with hive partitioning), `DIR/_data_dictionary.csv` (the leading underscore makes dataset readers skip it). The
whole directory is written under a temporary name beside DIR and renamed into place, so a reader never sees half an
export; an existing DIR is replaced only with `force`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kallos.errors import InputError
from kallos.features.dictionary import data_dictionary
from kallos.log import get_logger

log = get_logger(__name__)

FORMATS = ("parquet", "csv")


def write_features(
    frame: pd.DataFrame,
    out: Path | str,
    *,
    fmt: str,
    horizons: tuple[int, ...],
    naming: str,
    force: bool = False,
    timeframe: str = "1d",
) -> dict[str, Any]:
    """Write `frame` (a feature frame) under `out`; return the path, rows and files written."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; use parquet or csv", input="--format")
    target = Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not force:
        raise InputError(f"{target} exists and is not empty; pass --force to replace it", input="--out")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        files = _write(frame, tmp, fmt)
        dictionary = data_dictionary(horizons, naming, timeframe)
        dictionary = dictionary[dictionary["column"].isin(frame.columns)]
        dictionary.to_csv(tmp / "_data_dictionary.csv", index=False, lineterminator="\n")
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if frame.empty:
        log.warning("feature export wrote 0 rows", extra={"path": str(target)})
    return {"path": str(target), "rows": len(frame), "files": files, "format": fmt}


def _write(frame: pd.DataFrame, root: Path, fmt: str) -> int:
    key = "hour" if "hour" in frame.columns else "date"  # hourly frames are keyed by a UTC timestamp
    years = frame[key].dt.year
    files = 0
    for year in sorted(years.unique()):
        part = frame.loc[years == year].reset_index(drop=True)
        folder = root / f"year={int(year)}"
        folder.mkdir()
        if fmt == "parquet":
            table = pa.Table.from_pandas(part, preserve_index=False)
            table = table.replace_schema_metadata(None)  # no library versions in the file: same bytes on rerun
            pq.write_table(table, folder / "part-0.parquet", compression="zstd", write_statistics=True)
        else:
            out = part.copy()
            out[key] = out[key].dt.strftime("%Y-%m-%dT%H:%M:%SZ" if key == "hour" else "%Y-%m-%d")
            if "alt_as_of" in out:
                out["alt_as_of"] = out["alt_as_of"].dt.strftime("%Y-%m-%d")
            out.to_csv(folder / "part-0.csv", index=False, lineterminator="\n", float_format="%.17g")
        files += 1
    return files
