"""Find source files and read them, chunk by chunk, with every column as text.

Reading everything as text first is what keeps ids intact (``00123`` keeps its zeros, a
``17850.0`` written by a spreadsheet export can be recognised as ``17850``) and lets the
conversion step say *which* value broke the contract instead of a parser failing the file.
Parquet columns that are already timestamps stay timestamps (no round trip through text).

Errors here are about the file as a whole (missing, empty, not gzip, unknown format) and are
raised as :class:`IngestError` naming the file; problems of single rows are the converter's.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from shopflow.errors import PermanentError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from shopflow.settings import SourceSettings

logger = logging.getLogger(__name__)

FileFormat = Literal["csv", "parquet"]

#: Text that means "no value" in CSV exports (deliberately short: ``NA`` may be an id).
NULL_VALUES = ["", "NULL", "null", "NaN", "nan", "None", "N/A", "n/a", "#N/A"]
_CSV_BLOCK_BYTES = 4 << 20


class IngestError(PermanentError, ValueError):
    """A source cannot be ingested; the message names the file and the problem."""


@dataclass
class Chunk:
    """Rows of one source file as read: text columns, plus their 1-based data row numbers.

    ``malformed`` holds rows the CSV parser could not split into the right number of
    fields: ``(row number or None, raw text)``; they are quarantined, never dropped.
    """

    frame: pd.DataFrame
    rows: np.ndarray
    malformed: list[tuple[int | None, str]] = field(default_factory=list)


def resolve_files(pattern: str, *, config_dir: Path | None = None) -> list[Path]:
    """The files a ``source.path`` names, sorted; relative paths try the config's folder first.

    Raises:
        IngestError: nothing matches (the message lists where it looked).
    """
    expanded = Path(pattern).expanduser()
    bases: list[Path | None] = [None] if expanded.is_absolute() else [config_dir, Path.cwd()]
    tried: list[str] = []
    for base in bases:
        if base is None and not expanded.is_absolute():
            continue
        candidate = expanded if base is None else base / expanded
        tried.append(str(candidate))
        matches = sorted(Path(p).resolve() for p in glob.glob(str(candidate), recursive=True))
        files = [p for p in matches if p.is_file()]
        if files:
            return files
    raise IngestError(f"no source file matches {pattern!r} (looked for {', '.join(tried)})")


def file_format(path: Path) -> tuple[FileFormat, str | None]:
    """``(format, compression)`` of a source file, from its name (and gzip magic bytes)."""
    name = path.name.lower()
    if name.endswith((".parquet", ".pq", ".parq")):
        return "parquet", None
    compression = "gzip" if name.endswith(".gz") else None
    stem = name[:-3] if compression else name
    if stem.endswith((".csv", ".tsv", ".txt")):
        return "csv", compression
    raise IngestError(
        f"{path}: unknown source format (expected .csv, .csv.gz, .tsv or .parquet)"
    )


def fingerprint(path: Path) -> str:
    """sha256 of the file's bytes: the identity that makes ingestion idempotent."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_chunks(path: Path, source: SourceSettings) -> Iterator[Chunk]:
    """Yield a file's rows in chunks of about ``source.chunk_rows``, every column as text."""
    kind, compression = file_format(path)
    if path.stat().st_size == 0:
        raise IngestError(f"{path}: the file is empty")
    if kind == "parquet":
        yield from _parquet_chunks(path, source)
    else:
        yield from _csv_chunks(path, source, compression)


# ---- CSV ------------------------------------------------------------------------------
def _csv_stream(path: Path, compression: str | None) -> pa.NativeFile:
    import pyarrow as pa

    if compression == "gzip":
        with path.open("rb") as handle:
            if handle.read(2) != b"\x1f\x8b":
                raise IngestError(f"{path}: named .gz but is not gzip data")
    return pa.input_stream(str(path), compression=compression)


def _csv_columns(path: Path, source: SourceSettings, compression: str | None) -> list[str]:
    """The column names: ``source.header`` for headerless files, else the file's first row."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if source.header:
        return list(source.header)
    try:
        with _csv_stream(path, compression) as stream:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(block_size=1 << 16, use_threads=False),
                parse_options=_parse_options(path, source, lambda row: "skip"),
                convert_options=pacsv.ConvertOptions(include_columns=[]),
            )
            return list(reader.schema.names) or _header_from_stream(path, compression, source)
    except (pa.ArrowInvalid, OSError, EOFError, gzip.BadGzipFile) as exc:
        raise _csv_error(path, exc, compression) from exc


def _header_from_stream(path: Path, compression: str | None, source: SourceSettings) -> list[str]:
    import csv
    import io

    with _csv_stream(path, compression) as stream:
        first = io.TextIOWrapper(stream, encoding="utf-8", errors="replace").readline()
    return next(csv.reader([first], delimiter=_delimiter(path, source)), [])


def _delimiter(path: Path, source: SourceSettings) -> str:
    """``source.delimiter``, else a tab for ``.tsv`` files and a comma for the rest."""
    if source.delimiter:
        return source.delimiter
    return "\t" if path.name.lower().removesuffix(".gz").endswith(".tsv") else ","


def _parse_options(path: Path, source: SourceSettings, handler: object) -> object:
    import pyarrow.csv as pacsv

    return pacsv.ParseOptions(delimiter=_delimiter(path, source), invalid_row_handler=handler)


def _csv_error(path: Path, exc: BaseException, compression: str | None) -> IngestError:
    text = str(exc)
    if "Empty CSV file" in text:
        return IngestError(f"{path}: the file is empty (not even a header row)")
    lowered = text.lower()
    if compression and ("zlib" in lowered or "gzip" in lowered or "compress" in lowered
                        or isinstance(exc, EOFError)):
        return IngestError(f"{path}: cannot read the gzip data ({text})")
    return IngestError(f"{path}: cannot parse as CSV ({text})")


def _csv_chunks(path: Path, source: SourceSettings, compression: str | None) -> Iterator[Chunk]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    columns = _csv_columns(path, source, compression)
    if not columns:
        raise IngestError(f"{path}: the file is empty (not even a header row)")
    header_rows = 0 if source.header else 1
    malformed: list[tuple[int | None, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        number = None if row.number is None else row.number - header_rows
        malformed.append((number, row.text))
        return "skip"

    read_options = pacsv.ReadOptions(
        column_names=list(source.header) if source.header else None,
        block_size=_CSV_BLOCK_BYTES,
        use_threads=False,  # serial parsing reports the row number of malformed rows
    )
    convert = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in columns},
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        null_values=NULL_VALUES,
    )
    numbers = _RowNumbers()
    batches: list[pa.RecordBatch] = []
    pending = 0
    any_rows = False
    try:
        with _csv_stream(path, compression) as stream:
            reader = pacsv.open_csv(stream, read_options=read_options,
                                    parse_options=_parse_options(path, source, on_invalid),
                                    convert_options=convert)
            for batch in reader:
                batches.append(batch)
                pending += batch.num_rows
                if pending >= source.chunk_rows:
                    table = pa.Table.from_batches(batches, schema=reader.schema)
                    batches, pending = [], 0
                    for start in range(0, table.num_rows - source.chunk_rows + 1, source.chunk_rows):
                        piece = table.slice(start, source.chunk_rows)
                        any_rows = True
                        yield _numbered(piece, numbers, malformed)
                    rest = table.num_rows % source.chunk_rows
                    if rest:
                        batches = table.slice(table.num_rows - rest).to_batches()
                        pending = rest
            table = pa.Table.from_batches(batches, schema=reader.schema)
    except (pa.ArrowInvalid, OSError, EOFError, gzip.BadGzipFile) as exc:
        raise _csv_error(path, exc, compression) from exc
    if not any_rows and table.num_rows == 0 and not malformed:
        raise IngestError(f"{path}: the file has a header ({', '.join(columns)}) but no data rows")
    if table.num_rows or malformed:
        yield _numbered(table, numbers, malformed)


class _RowNumbers:
    """Data row numbers for parsed rows, skipping the numbers of malformed (skipped) rows."""

    def __init__(self) -> None:
        self.next_row = 1
        self.skipped: set[int] = set()

    def assign(self, n: int) -> np.ndarray:
        import numpy as np

        pending = sorted(num for num in self.skipped if num >= self.next_row)
        candidates = np.arange(self.next_row, self.next_row + n + len(pending), dtype=np.int64)
        if pending:
            candidates = candidates[~np.isin(candidates, pending)]
        rows = candidates[:n]
        if n:
            self.next_row = int(rows[-1]) + 1
        self.skipped = {num for num in self.skipped if num >= self.next_row}
        return rows


def _numbered(table: pa.Table, numbers: _RowNumbers,
              malformed: list[tuple[int | None, str]]) -> Chunk:
    """A chunk of parsed rows with their row numbers and the malformed rows seen so far."""
    numbers.skipped.update(num for num, _ in malformed if num is not None)
    handed = list(malformed)
    malformed.clear()
    return Chunk(frame=to_text_frame(table), rows=numbers.assign(table.num_rows), malformed=handed)


def to_text_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow-backed pandas strings: vectorised string ops run in Arrow, not per object."""
    import pandas as pd
    import pyarrow as pa

    text = pd.StringDtype("pyarrow")
    frame: pd.DataFrame = table.to_pandas(
        types_mapper=lambda kind: text if kind == pa.string() else None)
    return frame


# ---- Parquet ----------------------------------------------------------------------------
def _parquet_chunks(path: Path, source: SourceSettings) -> Iterator[Chunk]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise IngestError(f"{path}: cannot read as Parquet ({exc})") from exc
    if parquet.metadata.num_rows == 0:
        names = ", ".join(parquet.schema_arrow.names)
        raise IngestError(f"{path}: the file has columns ({names}) but no data rows")
    next_row = 1
    for batch in parquet.iter_batches(batch_size=source.chunk_rows):
        table = pa.Table.from_batches([batch])
        frame = to_text_frame(_parquet_as_text(table))
        yield Chunk(frame=frame, rows=np.arange(next_row, next_row + table.num_rows, dtype=np.int64))
        next_row += table.num_rows


def _parquet_as_text(table: pa.Table) -> pa.Table:
    """Strings, and everything but numbers and timestamps cast to strings.

    Numbers stay numbers (no costly round trip through text for prices and quantities);
    the converter turns id columns into text itself, where ``17850.0`` becomes ``17850``.
    Timestamps stay typed for an exact conversion to UTC.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for column in table.columns:
        kind = column.type
        if pa.types.is_dictionary(kind):
            column = column.cast(kind.value_type)
            kind = kind.value_type
        if pa.types.is_timestamp(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind):
            columns.append(column)
        elif pa.types.is_date(kind):
            columns.append(column.cast(pa.timestamp("s")))
        elif pa.types.is_boolean(kind):
            columns.append(pc.if_else(column, "true", "false"))
        else:
            columns.append(column.cast(pa.string()))
    return pa.table(columns, names=table.column_names)
