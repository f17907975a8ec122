"""Line-aligned byte-range shards of a CSV object in S3, found without downloading the object.

A shard is the byte range [start, end) of the object; the worker prepends the header [0, header_end).
Shard boundaries always fall at the start of a record: just after a newline that is not inside a
quoted field, so a quoted field containing newlines is never split. Concatenating the shards in
order gives back exactly the object minus its header, whatever its line endings (\\n or \\r\\n) and
whether or not it ends with a newline.

How a boundary is found near a target offset t without reading everything before it: read a window
starting at t (64 KiB, doubled up to 4 MiB while needed), decide whether the window starts inside a
quoted field, then take the first newline outside quotes. Whether the window starts inside quotes
follows from RFC 4180 quote parity plus one piece of local evidence: a quote that can only be an
opening quote (preceded by `,`, a newline or the start of the object, and followed by an ordinary
character) or only a closing quote (preceded by an ordinary character, followed by `,`, `\\r`, a
newline or the end of the object). The parity of the quotes between the window start and that quote
gives the state at the window start. When the next target is close to the last boundary (whose
state is known: outside quotes) the bytes in between are simply scanned instead.

Limits, by construction:
- A window with no quote at all is taken to start outside quotes. That is wrong only inside a quoted
  field longer than the largest window (4 MiB) that contains no other quote.
- A window of up to 4 MiB with quotes but no unambiguous one (e.g. only `""` pairs or `,",`) is
  decided by counting RFC 4180 violations under each hypothesis; ties count as outside quotes.
- Quotes must follow RFC 4180 (a literal quote inside a quoted field is doubled; no quote inside an
  unquoted field). A stray quote in an unquoted field (`5" screen`) can move a boundary.
- Records are separated by `\\n` (with or without `\\r`); a lone `\\r` is not a record separator.

Memory stays bounded by the largest window (plus one cached block), whatever the object's size.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from jobcore.models import ShardItem

log = logging.getLogger(__name__)

BYTES_PER_MB = 1024 * 1024  # ShardSizeMB is read as MiB, the unit S3 part sizes are usually quoted in

_QUOTE = ord('"')
_NEWLINE = ord("\n")
_COMMA = ord(",")
_FIELD_START = frozenset(b",\n")  # what may precede an opening quote (besides the object's start)
_FIELD_END = frozenset(b",\r\n")  # what may follow a closing quote (besides the object's end)
_BOF = -1
_EOF = -2
_UNKNOWN = -3


class RangeReader(Protocol):
    """Random access to an object's bytes."""

    @property
    def size(self) -> int: ...

    def read(self, start: int, end: int) -> bytes:
        """The bytes [start, end), clipped to the object's size."""
        ...


class ClippedRangeReader(ABC):
    """A RangeReader over `size` bytes: reads are clipped to them; subclasses read a range within."""

    def __init__(self, size: int):
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def read(self, start: int, end: int) -> bytes:
        end = min(end, self._size)
        if start >= end:
            return b""
        return self._read_within(start, end)

    @abstractmethod
    def _read_within(self, start: int, end: int) -> bytes:
        """The bytes [start, end), 0 <= start < end <= size."""


class S3RangeReader(ClippedRangeReader):
    """A RangeReader over one version of an S3 object, one ranged GET per read."""

    def __init__(self, s3: Any, bucket: str, key: str, size: int, version_id: str | None = None):
        super().__init__(size)
        self._s3 = s3
        self.bucket = bucket
        self.key = key
        self.version_id = version_id

    def _read_within(self, start: int, end: int) -> bytes:
        request: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.key,
            "Range": f"bytes={start}-{end - 1}",
        }
        if self.version_id:
            request["VersionId"] = self.version_id
        return self._s3.get_object(**request)["Body"].read()


@dataclass(frozen=True)
class ShardingLimits:
    initial_window: int = 64 * 1024
    max_window: int = 4 * 1024 * 1024
    # Scan from the last boundary (state known) instead of inferring, when the next target is this close.
    known_state_scan: int = 64 * 1024


DEFAULT_LIMITS = ShardingLimits()


def target_shard_bytes(shard_size_mb: float) -> int:
    """ShardSizeMB as a byte count, at least one byte."""
    return max(1, int(shard_size_mb * BYTES_PER_MB))


class _CachingReader:
    """Serves reads that fall inside the last block fetched; fetches at least `block` bytes."""

    def __init__(self, reader: RangeReader, block: int):
        self._reader = reader
        self._block = block
        self._start = 0
        self._data = b""
        self.size = reader.size
        self.fetched_bytes = 0

    def read(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if start >= end:
            return b""
        if self._start <= start and end <= self._start + len(self._data):
            return self._data[start - self._start : end - self._start]
        fetch_end = min(self.size, max(end, start + self._block))
        self._data = self._reader.read(start, fetch_end)
        self._start = start
        self.fetched_bytes += len(self._data)
        return self._data[: end - start]


# From a position outside quotes: ordinary bytes and complete quoted strings (an escaped quote `""`
# is two adjacent quoted strings), up to the first newline outside quotes, an opening quote that is
# not closed in the data, or the end. Possessive quantifiers keep it linear (and in C).
_OUTSIDE_RUN = re.compile(rb'[^"\n]*+(?:"[^"]*+"[^"\n]*+)*+')


def _first_record_end(data: bytes, offset: int, in_quotes: bool, min_index: int) -> tuple[int | None, bool]:
    """Index in `data` of the first newline outside quotes at or after `min_index`, scanning from
    `offset` in the given quote state; else (None, the quote state at the end of `data`)."""
    length = len(data)
    position = max(offset, min(min_index, length))
    # Quote parity alone gives the state at `min_index`; no need to walk the records before it.
    in_quotes ^= data.count(b'"', offset, position) % 2 == 1
    while position < length:
        if in_quotes:
            quote = data.find(b'"', position)
            if quote < 0:
                return None, True
            in_quotes = False
            position = quote + 1
            continue
        run_end = _OUTSIDE_RUN.match(data, position).end()  # type: ignore[union-attr]
        if run_end >= length:
            return None, False
        if data[run_end] == _QUOTE:  # opened and not closed within `data`
            return None, True
        return run_end, False  # a newline outside quotes
    return None, in_quotes


def _scan_for_record_end(
    reader: _CachingReader, start: int, in_quotes: bool, min_position: int, limits: ShardingLimits
) -> int | None:
    """Absolute position of the first newline outside quotes at or after `min_position`, reading
    forward from `start` whose quote state is known; None at the end of the object."""
    chunk = limits.initial_window
    position = start
    while position < reader.size:
        data = reader.read(position, position + chunk)
        found, in_quotes = _first_record_end(data, 0, in_quotes, max(0, min_position - position))
        if found is not None:
            return position + found
        position += len(data)
        chunk = min(chunk * 2, limits.max_window)
    return None


def _neighbour(data: bytes, index: int, data_start: int, size: int) -> int:
    """The byte at `index` of `data` (which starts at object offset `data_start`), or a marker."""
    absolute = data_start + index
    if absolute < 0:
        return _BOF
    if absolute >= size:
        return _EOF
    if 0 <= index < len(data):
        return data[index]
    return _UNKNOWN


def _evidence(data: bytes, data_start: int, window_start: int, size: int) -> bool | None:
    """Whether the window starting at `window_start` starts inside quotes, from the first quote in
    it that can only be an opening or only a closing quote; None when no quote decides."""
    parity = 0
    quote = data.find(b'"', window_start - data_start)
    while quote >= 0:
        before = _neighbour(data, quote - 1, data_start, size)
        after = _neighbour(data, quote + 1, data_start, size)
        opens = (before == _BOF or before in _FIELD_START) and (
            after >= 0 and after not in _FIELD_END and after != _QUOTE
        )
        if opens:  # the state just before this quote is "outside"
            return parity % 2 == 1
        closes = (before >= 0 and before != _QUOTE and before not in _FIELD_START) and (
            after == _EOF or after in _FIELD_END
        )
        if closes:  # the state just before this quote is "inside"
            return parity % 2 == 0
        parity += 1
        quote = data.find(b'"', quote + 1)
    return None


def _violations(data: bytes, data_start: int, window_start: int, size: int) -> tuple[int, int]:
    """RFC 4180 violations if the window starts (outside, inside) quotes."""
    counts = [0, 0]
    parity = 0
    quote = data.find(b'"', window_start - data_start)
    while quote >= 0:
        before = _neighbour(data, quote - 1, data_start, size)
        after = _neighbour(data, quote + 1, data_start, size)
        bad_opening = before >= 0 and before not in _FIELD_START and before != _QUOTE
        bad_closing = after >= 0 and after not in _FIELD_END and after != _QUOTE
        for hypothesis, starts_inside in enumerate((False, True)):
            inside_before = starts_inside ^ (parity % 2 == 1)
            counts[hypothesis] += bad_closing if inside_before else bad_opening
        parity += 1
        quote = data.find(b'"', quote + 1)
    if data_start + len(data) >= size:  # a quoted field left open at the end of the object
        counts[parity % 2 == 0] += 1
    return counts[0], counts[1]


def _record_field_counts(data: bytes, offset: int, in_quotes: bool, at_eof: bool) -> list[int]:
    """Field counts of the complete records in `data` after the first newline outside quotes,
    parsing from `offset` in the given quote state (the last record counts when `data` ends the
    object)."""
    counts: list[int] = []
    fields = 1
    seen_record_end = False
    for position in range(offset, len(data)):
        byte = data[position]
        if byte == _QUOTE:
            in_quotes = not in_quotes
        elif in_quotes:
            continue
        elif byte == _COMMA:
            fields += 1
        elif byte == _NEWLINE:
            if seen_record_end:
                counts.append(fields)
            seen_record_end = True
            fields = 1
    if at_eof and seen_record_end and not in_quotes and data[-1:] != b"\n":
        counts.append(fields)
    return counts


def _starts_inside_quotes(
    reader: _CachingReader, window_start: int, limits: ShardingLimits, header_fields: int | None = None
) -> bool:
    """Decide the quote state at `window_start` from a window of growing size."""
    size = reader.size
    window = limits.initial_window
    while True:
        data_start = max(0, window_start - 1)  # one byte of context before the window
        data = reader.read(data_start, window_start + window)
        decided = _evidence(data, data_start, window_start, size)
        if decided is not None:
            return decided
        if window_start + window >= size or window >= limits.max_window:
            return _best_guess(data, data_start, window_start, size, header_fields)
        window = min(window * 2, limits.max_window)


def _best_guess(
    data: bytes, data_start: int, window_start: int, size: int, header_fields: int | None
) -> bool:
    """No quote in the window decides: prefer the hypothesis with fewer RFC 4180 violations, then the
    one whose records have the header's field count more often; else outside quotes."""
    offset = window_start - data_start
    if data.find(b'"', offset) < 0:
        return False  # no quote at all: the documented limit
    outside, inside = _violations(data, data_start, window_start, size)
    if outside != inside:
        decision = inside < outside
    elif header_fields is not None:
        matches = [
            sum(
                count == header_fields
                for count in _record_field_counts(data, offset, starts_inside, data_start + len(data) >= size)
            )
            for starts_inside in (False, True)
        ]
        decision = matches[1] > matches[0]
    else:
        decision = False
    log.warning(
        "no unambiguous quote in %d bytes at offset %d; guessed %s quotes",
        len(data) - offset,
        window_start,
        "inside" if decision else "outside",
    )
    return decision


def count_header_fields(reader: RangeReader, header_end: int, limits: ShardingLimits = DEFAULT_LIMITS) -> int:
    """Fields in the header record [0, header_end) (commas outside quotes, plus one)."""
    fields = 1
    in_quotes = False
    position = 0
    while position < header_end:
        data = reader.read(position, min(header_end, position + limits.max_window))
        if not data:
            break
        for byte in data:
            if byte == _QUOTE:
                in_quotes = not in_quotes
            elif byte == _COMMA and not in_quotes:
                fields += 1
        position += len(data)
    return fields


def find_header_end(reader: RangeReader, limits: ShardingLimits = DEFAULT_LIMITS) -> int:
    """End of the first record (just after its newline); the object's size if it has no newline."""
    cached = reader if isinstance(reader, _CachingReader) else _CachingReader(reader, limits.initial_window)
    newline = _scan_for_record_end(cached, 0, False, 0, limits)
    return cached.size if newline is None else newline + 1


def plan_shards(
    reader: RangeReader, target_bytes: int, limits: ShardingLimits = DEFAULT_LIMITS
) -> tuple[int, Iterator[tuple[int, int]]]:
    """(header_end, the (start, end) byte ranges of the shards after the header, in order).

    Each shard is at least `target_bytes` long (except the last) and extends to the end of the record
    in progress. A zero-byte or header-only object has no shards."""
    if target_bytes < 1:
        raise ValueError(f"target shard size must be at least 1 byte, got {target_bytes}")
    cached = _CachingReader(reader, limits.initial_window)
    header_end = find_header_end(cached, limits)
    return header_end, _shard_ranges(cached, header_end, target_bytes, limits)


def _shard_ranges(
    reader: _CachingReader, header_end: int, target_bytes: int, limits: ShardingLimits
) -> Iterator[tuple[int, int]]:
    size = reader.size
    header_fields: int | None = None
    start = header_end
    while start < size:
        target = start + target_bytes
        if target >= size:
            break
        # A boundary at `target` or later is the position just after a newline at `target - 1` or later.
        if target - start <= limits.known_state_scan:
            newline = _scan_for_record_end(reader, start, False, target - 1, limits)
        else:
            window_start = target - 1
            if header_fields is None:
                header_fields = count_header_fields(reader, header_end, limits)
            inside = _starts_inside_quotes(reader, window_start, limits, header_fields)
            newline = _scan_for_record_end(reader, window_start, inside, window_start, limits)
        if newline is None or newline + 1 >= size:
            break
        yield start, newline + 1
        start = newline + 1
    if start < size:
        yield start, size


def shard_items(
    reader: RangeReader,
    *,
    bucket: str,
    key: str,
    version_id: str | None,
    shard_size_mb: float,
    limits: ShardingLimits = DEFAULT_LIMITS,
) -> Iterator[ShardItem]:
    """The job's items for a CSV object, lazily: ShardItem(index, bucket, key, version_id, start, end,
    header_end)."""
    header_end, ranges = plan_shards(reader, target_shard_bytes(shard_size_mb), limits)
    for index, (start, end) in enumerate(ranges):
        yield ShardItem(
            index=index,
            bucket=bucket,
            key=key,
            version_id=version_id,
            start=start,
            end=end,
            header_end=header_end,
        )
