"""RESP2, the Redis wire protocol: commands out, replies in. Pure: no sockets, no clock.

A command is an array of bulk strings (:func:`encode_command`). A reply is
one of five types, each a line ending in CRLF (a bulk string's bytes follow
its length line):

    +OK            simple string   → bytes
    -ERR message   error           → RedisError (a value, raised by the client when
                                     it is the whole reply, kept inside an array)
    :42            integer         → int
    $5 hello       bulk string     → bytes; $-1 → None
    *2 ...         array           → list; *-1 → None

:class:`Parser` is fed the bytes of one connection as they arrive, split
anywhere, and returns each reply once its last byte is in. It keeps the
arrays being filled on a stack, so a large reply arriving in many pieces is
parsed once, never re-parsed from its start.

The bounds below keep a broken or hostile server from growing the router's
memory: past any of them the parser raises :class:`ProtocolError`, and the
client closes the connection. A length line is checked before a byte of what
it announces is kept, so ``$999999999999`` fails at once.

Only RESP2: the client never sends ``HELLO 3``, so a RESP3 type byte (``_``,
``#``, ``%``, ``>``, ...) is a protocol error rather than something to guess at.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from modelroute.router.state.errors import ProtocolError, RedisError

__all__ = [
    "MAX_ARRAY_LENGTH",
    "MAX_BULK_BYTES",
    "MAX_DEPTH",
    "MAX_LINE_BYTES",
    "MAX_REPLY_BYTES",
    "Arg",
    "Parser",
    "Reply",
    "encode_command",
]

Arg: TypeAlias = bytes | str | int | float
Reply: TypeAlias = "bytes | int | list[Reply] | RedisError | None"

MIB = 1024 * 1024
MAX_BULK_BYTES = 64 * MIB  # one bulk string: a cached answer is at most 64 MiB too
MAX_ARRAY_LENGTH = 1_000_000  # elements of one array
MAX_DEPTH = 8  # arrays inside arrays
MAX_LINE_BYTES = 64 * 1024  # a simple string, an error, a length: Redis's are short
MAX_REPLY_BYTES = 2 * MAX_BULK_BYTES  # one whole reply on the wire (an MGET of big values)

_CRLF = b"\r\n"
_PLUS, _MINUS, _COLON, _DOLLAR, _STAR = b"+-:$*"
_MAX_DIGITS = 19  # a signed 64-bit integer, which is all RESP2 has


def encode_command(args: Sequence[Arg]) -> bytes:
    """A command as Redis reads it: an array of bulk strings (str as UTF-8, numbers in decimal)."""
    if not args:
        raise ValueError("a Redis command needs at least its name")
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int):
            data = b"%d" % arg
        elif isinstance(arg, float):
            data = repr(arg).encode()  # the shortest text that reads back as the same float
        else:
            raise TypeError(
                f"a Redis argument is bytes, str, int or float, not {type(arg).__name__}"
            )
        parts += (b"$%d\r\n" % len(data), data, _CRLF)
    return b"".join(parts)


def _integer(line: bytes | bytearray, what: str) -> int:
    """A RESP integer, strictly: an optional minus and 1-19 ASCII digits, nothing else
    (``int()`` alone would take spaces, underscores and non-ASCII digits)."""
    digits = line[1:] if line[:1] == b"-" else line
    if not (0 < len(digits) <= _MAX_DIGITS and digits.isdigit() and digits.isascii()):
        raise ProtocolError(f"malformed {what} {bytes(line[:32])!r} from redis")
    return int(line)


class Parser:
    """Replies from the bytes of one connection, fed in pieces split anywhere.

    After :class:`ProtocolError` the stream is unusable: the caller closes it.
    """

    __slots__ = ("_buf", "_bulk", "_size", "_stack")

    def __init__(self) -> None:
        self._buf = bytearray()  # bytes received and not parsed yet
        self._bulk = -1  # the length of the bulk string whose bytes are awaited, if one is
        self._stack: list[tuple[list[Reply], int]] = []  # arrays being filled, and their lengths
        self._size = 0  # bytes parsed of the reply in progress, in earlier pieces

    def feed(self, data: bytes) -> list[Reply]:
        """The replies completed by ``data``, in order (often none, often one)."""
        # Parse straight from ``data`` when nothing is left over (the common case:
        # a reply arrives whole), so a bulk string is sliced once, not copied twice.
        buf: bytes | bytearray = data
        if self._buf:
            self._buf += data
            buf = self._buf
        replies: list[Reply] = []
        stack = self._stack
        bulk = self._bulk
        pos = start = 0  # start: where the reply in progress began in this piece
        value: Reply
        while True:
            if bulk >= 0:
                end = pos + bulk
                if len(buf) < end + 2:
                    break
                if buf[end : end + 2] != _CRLF:
                    raise ProtocolError(
                        "a bulk string from redis does not end where its length says"
                    )
                value = bytes(buf[pos:end])
                pos = end + 2
                bulk = -1
            else:
                end = buf.find(_CRLF, pos, pos + MAX_LINE_BYTES + 2)
                if end < 0:
                    if len(buf) - pos > MAX_LINE_BYTES:
                        raise ProtocolError(
                            f"a line from redis is longer than {MAX_LINE_BYTES} bytes"
                        )
                    break
                kind = buf[pos]
                line = buf[pos + 1 : end]
                pos = end + 2
                if kind == _PLUS:
                    value = bytes(line)
                elif kind == _MINUS:
                    value = RedisError(line.decode("utf-8", "replace"))
                elif kind == _COLON:
                    value = _integer(line, "integer")
                elif kind == _DOLLAR:
                    length = _integer(line, "bulk string length")
                    if length == -1:
                        value = None
                    elif 0 <= length <= MAX_BULK_BYTES:
                        bulk = length
                        continue
                    else:
                        raise ProtocolError(f"a bulk string of {length} bytes from redis")
                elif kind == _STAR:
                    length = _integer(line, "array length")
                    if length == -1:
                        value = None
                    elif not 0 <= length <= MAX_ARRAY_LENGTH:
                        raise ProtocolError(f"an array of {length} elements from redis")
                    elif len(stack) == MAX_DEPTH:
                        raise ProtocolError(f"arrays from redis nested deeper than {MAX_DEPTH}")
                    elif length == 0:
                        value = []
                    else:
                        stack.append(([], length))
                        continue
                else:
                    raise ProtocolError(f"unknown reply type {chr(kind)!r} from redis")
            # A value is complete: it fills the innermost array, which may complete
            # that array in turn, up to the top; a value outside any array is a reply.
            while stack:
                items, length = stack[-1]
                items.append(value)
                if len(items) < length:
                    break
                stack.pop()
                value = items
            else:
                replies.append(value)
                self._size = 0
                start = pos
        if self._size + len(buf) - start > MAX_REPLY_BYTES:
            raise ProtocolError(f"a reply from redis larger than {MAX_REPLY_BYTES} bytes")
        self._size += pos - start
        self._bulk = bulk
        if buf is self._buf:
            del self._buf[:pos]
        elif pos < len(buf):
            self._buf = bytearray(buf[pos:])
        return replies
