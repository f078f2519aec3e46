"""HPACK (RFC 7541) for the CLI's HTTP/2 client, without the ``hpack`` package.

Importing ``hpack`` costs several milliseconds (it pulls in ``logging``),
which every ``orch`` command would pay. A client needs little of HPACK:

- encoding: indexed fields for exact static-table matches, everything else
  as "literal without indexing" with plain (non-Huffman) strings. Valid for
  any decoder, and it never touches the peer's dynamic table;
- decoding: the full format, including the dynamic table and its size
  updates. Huffman-coded strings (servers may use them) are decoded by the
  ``hpack`` package, imported only when one arrives.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

Header = tuple[str, str]


class HPACKError(ValueError):
    """A header block that does not follow RFC 7541."""


# RFC 7541 Appendix A; index i is STATIC[i - 1].
STATIC: tuple[Header, ...] = (
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
    (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
    (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
    (":status", "404"), (":status", "500"), ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""),
    ("accept", ""), ("access-control-allow-origin", ""), ("age", ""), ("allow", ""),
    ("authorization", ""), ("cache-control", ""), ("content-disposition", ""),
    ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
    ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""),
    ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
    ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
    ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""),
    ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""),
    ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""),
    ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
    ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
)
_STATIC_FIELD = {h: i + 1 for i, h in reversed(list(enumerate(STATIC)))}
_STATIC_NAME = {name: i + 1 for i, (name, _) in reversed(list(enumerate(STATIC)))}

ENTRY_OVERHEAD = 32  # RFC 7541 4.1
DEFAULT_TABLE_SIZE = 4096


def encode_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """``value`` with an N-bit prefix; ``first`` holds the pattern bits above it."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _encode_str(text: str) -> bytes:
    raw = text.encode()
    return encode_int(len(raw), 7) + raw


def encode(headers: Iterable[Header]) -> bytes:
    """A header block: static-table hits indexed, the rest literal, never indexed."""
    out = bytearray()
    for name, value in headers:
        index = _STATIC_FIELD.get((name, value))
        if index is not None:
            out += encode_int(index, 7, 0x80)
            continue
        name_index = _STATIC_NAME.get(name, 0)
        out += encode_int(name_index, 4)  # 0000xxxx: literal without indexing
        if not name_index:
            out += _encode_str(name)
        out += _encode_str(value)
    return bytes(out)


class Decoder:
    """Decodes the header blocks of one connection, in order (the dynamic
    table carries state from block to block)."""

    def __init__(self, max_table_size: int = DEFAULT_TABLE_SIZE) -> None:
        self.max_allowed = max_table_size  # what we announced (SETTINGS_HEADER_TABLE_SIZE)
        self.max_size = max_table_size
        self.size = 0
        self.table: list[Header] = []  # newest first

    def decode(self, block: bytes) -> list[Header]:
        headers: list[Header] = []
        pos = 0
        n = len(block)
        while pos < n:
            byte = block[pos]
            if byte & 0x80:  # indexed field
                index, pos = self._int(block, pos, 7)
                headers.append(self._field(index))
            elif byte & 0x40:  # literal with incremental indexing
                header, pos = self._literal(block, pos, 6)
                headers.append(header)
                self._add(header)
            elif byte & 0x20:  # dynamic table size update
                size, pos = self._int(block, pos, 5)
                if size > self.max_allowed:
                    raise HPACKError(f"table size update to {size} exceeds {self.max_allowed}")
                self.max_size = size
                self._evict()
            else:  # literal without indexing (0000) or never indexed (0001)
                header, pos = self._literal(block, pos, 4)
                headers.append(header)
        return headers

    def _field(self, index: int) -> Header:
        if index == 0:
            raise HPACKError("header index 0")
        if index <= len(STATIC):
            return STATIC[index - 1]
        dynamic = index - len(STATIC) - 1
        if dynamic >= len(self.table):
            raise HPACKError(f"header index {index} is beyond the table")
        return self.table[dynamic]

    def _literal(self, block: bytes, pos: int, prefix_bits: int) -> tuple[Header, int]:
        name_index, pos = self._int(block, pos, prefix_bits)
        if name_index:
            name = self._field(name_index)[0]
        else:
            name, pos = self._str(block, pos)
        value, pos = self._str(block, pos)
        return (name, value), pos

    def _add(self, header: Header) -> None:
        size = len(header[0].encode()) + len(header[1].encode()) + ENTRY_OVERHEAD
        if size > self.max_size:  # RFC 7541 4.4: an entry too large empties the table
            self.table.clear()
            self.size = 0
            return
        self.table.insert(0, header)
        self.size += size
        self._evict()

    def _evict(self) -> None:
        while self.size > self.max_size:
            name, value = self.table.pop()
            self.size -= len(name.encode()) + len(value.encode()) + ENTRY_OVERHEAD

    @staticmethod
    def _int(block: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
        limit = (1 << prefix_bits) - 1
        if pos >= len(block):
            raise HPACKError("header block ends inside an integer")
        value = block[pos] & limit
        pos += 1
        if value < limit:
            return value, pos
        shift = 0
        while True:
            if pos >= len(block):
                raise HPACKError("header block ends inside an integer")
            byte = block[pos]
            pos += 1
            value += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value, pos
            if shift > 28:
                raise HPACKError("integer too large")

    def _str(self, block: bytes, pos: int) -> tuple[str, int]:
        if pos >= len(block):
            raise HPACKError("header block ends before a string")
        huffman = bool(block[pos] & 0x80)
        length, pos = self._int(block, pos, 7)
        end = pos + length
        if end > len(block):
            raise HPACKError("string runs past the header block")
        raw = block[pos:end]
        if huffman:
            raw = _huffman_decode(raw)
        try:
            return raw.decode(), end
        except UnicodeDecodeError as err:
            raise HPACKError(f"header string is not UTF-8: {err}")


def _huffman_decode(raw: bytes) -> bytes:
    from orch.cli import ensure_site

    ensure_site()
    from hpack.exceptions import HPACKDecodingError
    from hpack.huffman_table import decode_huffman

    try:
        return decode_huffman(raw)
    except HPACKDecodingError as err:
        raise HPACKError(f"bad Huffman string: {err}")
