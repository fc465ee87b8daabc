"""The device side of the phyff device protocol (version 2), in standard-library Python.

Write one function that measures a batch on your instrument (or simulates it), and serve it::

    import phyff_device

    def forward(batch):
        # batch: list of rows, each a list of input_len floats (one sample per row)
        return [measure(row) for row in batch]   # one list of output_len floats per row

    phyff_device.serve(forward, input_len=224, output_len=64, name="my instrument")

``phyff train --system device --device-cmd "python3 my_driver.py ..."`` then starts the script
as a child process and trains through it (stdio transport); ``serve(..., tcp="127.0.0.1:7000")``
listens for ``phyff train --device-tcp 127.0.0.1:7000`` instead. The protocol is specified in
``docs/device-protocol.md``; this module depends on nothing else of phyff.

Conventions
-----------
- A batch is row-major: ``batch[r][c]`` is value ``c`` (from 0) of sample ``r``. Values are
  plain Python floats in whatever units the instrument takes and gives (phyff does not
  interpret them); ``forward`` must return exactly ``len(batch)`` rows of exactly
  ``output_len`` finite numbers (ints, floats, or anything ``float()`` accepts).
- On the wire, values travel as little-endian IEEE floats of the device's width:
  ``precision="f64"`` (8 bytes, exact for Python floats) or ``"f32"`` (4 bytes: inputs arrive
  rounded to f32, outputs are rounded to f32 and must fit in its range, about 3.4e38).
  A client working in the other precision converts through f64.
- Lengths count values per sample, between 1 and 2^24. A frame holds at most 2^30 bytes.
- Times (``--delay-ms`` in the example, phyff's ``--device-timeout-ms``) are milliseconds.

Behaviour
---------
- Every hello is answered with this device's hello (version 2, width, lengths, name), whatever
  version the client announced, as phyff's own ``serve`` does: the client decides, and a
  client of another version refuses the device with a message naming both versions. The device
  also says so on stderr.
- Every query is answered with exactly one frame carrying the query's number: an ``R`` frame
  with the outputs, or an ``E`` frame with a message when the query is malformed, when
  ``forward`` raises, or when it returns the wrong number of rows, a row of the wrong length,
  a value that is not a number, or a non-finite value (NaN, infinity, or beyond f32). The
  session goes on after an ``E`` frame; the traceback or the problem is logged on stderr.
- The client ends a session by closing its end (EOF). Over stdio, ``serve`` then returns;
  over TCP it waits for the next client (one session at a time).
- With stdio, stdout carries nothing but frames: ``serve`` moves the frames to a private copy
  of file descriptor 1 and points descriptor 1, ``sys.stdout`` and anything still buffered in
  it at stderr, so ``print`` in ``forward`` (or in a library it calls) lands in the device's
  log. Likewise descriptor 0 and ``sys.stdin`` are pointed at the null device, so nothing but
  this module reads the client's frames. Logs (stderr) are inherited from phyff.
"""

import math
import os
import socket
import struct
import sys
import traceback
from array import array

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_FRAME_BYTES",
    "MAX_SAMPLE_LEN",
    "ProtocolError",
    "ServeStats",
    "read_frame",
    "write_frame",
    "hello_payload",
    "serve_session",
    "serve",
]

#: The protocol version this module speaks.
PROTOCOL_VERSION = 2
#: Largest frame payload, in bytes (2^30): a corrupt length prefix cannot exhaust memory.
MAX_FRAME_BYTES = 1 << 30
#: Largest input_len or output_len a device may announce (2^24 values per sample).
MAX_SAMPLE_LEN = 1 << 24

HELLO = b"H"[0]
QUERY = b"Q"[0]
REPLY = b"R"[0]
ERROR = b"E"[0]
#: Bytes of a query or reply payload before its values: kind (1), query number (8), rows (4).
HEADER = 13
#: Longest message sent in an E frame, in characters (the rest is cut, the log has it all).
MAX_MESSAGE_CHARS = 4000

_TYPECODES = {"f64": ("d", 8), "f32": ("f", 4)}
_LITTLE = sys.byteorder == "little"


class ProtocolError(Exception):
    """The stream broke the framing (a frame above the limit, or a stream ending inside a
    frame): the session cannot go on, because the next frame boundary is unknown."""


class ServeStats:
    """What ``serve`` or ``serve_session`` did: ``queries`` answered with an R frame,
    ``errors`` answered with an E frame, and ``sessions`` ended."""

    __slots__ = ("queries", "errors", "sessions")

    def __init__(self, queries=0, errors=0, sessions=0):
        self.queries = queries
        self.errors = errors
        self.sessions = sessions

    def __repr__(self):
        return "ServeStats(queries={}, errors={}, sessions={})".format(self.queries, self.errors, self.sessions)


def _log(message):
    sys.stderr.write("phyff_device: " + message + "\n")
    sys.stderr.flush()


def _read_exact(stream, n, what):
    """``n`` bytes from ``stream``; ``None`` if the stream ends before the first byte of a
    frame (``what`` is None), ``ProtocolError`` if it ends inside one."""
    chunks = []
    got = 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            if got == 0 and what is None:
                return None
            raise ProtocolError(
                "the stream ended inside a frame ({} of {} bytes of its {})".format(got, n, what or "length prefix")
            )
        chunks.append(chunk)
        got += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_frame(stream):
    """Reads one frame from the binary ``stream`` and returns its payload (``bytes``), or
    ``None`` at a clean end of stream (EOF before a length prefix).

    Raises ``ProtocolError`` for a length prefix above ``MAX_FRAME_BYTES`` or a stream that
    ends inside a frame."""
    head = _read_exact(stream, 4, None)
    if head is None:
        return None
    (n,) = struct.unpack("<I", head)
    if n > MAX_FRAME_BYTES:
        raise ProtocolError("frame of {} bytes exceeds the limit of {} bytes (2^30)".format(n, MAX_FRAME_BYTES))
    return _read_exact(stream, n, "payload") if n else b""


def write_frame(stream, payload):
    """Writes one frame (``u32`` little-endian length, then ``payload``) to the binary
    ``stream`` and flushes it. Raises ``ValueError`` for a payload above ``MAX_FRAME_BYTES``."""
    if len(payload) > MAX_FRAME_BYTES:
        raise ValueError("frame of {} bytes exceeds the limit of {} bytes".format(len(payload), MAX_FRAME_BYTES))
    stream.write(struct.pack("<I", len(payload)))
    stream.write(payload)
    stream.flush()


def hello_payload(input_len, output_len, name, precision="f64"):
    """The device's hello payload: ``H``, ``u32`` version, ``u8`` width, ``u64`` input_len,
    ``u64`` output_len, then the UTF-8 name."""
    width = _TYPECODES[precision][1]
    return struct.pack("<BIBQQ", HELLO, PROTOCOL_VERSION, width, input_len, output_len) + name.encode("utf-8")


def error_payload(query, message):
    """An ``E`` payload answering query number ``query`` (0: a request whose number could not
    be read) with ``message`` (cut to ``MAX_MESSAGE_CHARS`` characters)."""
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 3] + "..."
    return struct.pack("<BQ", ERROR, query) + message.encode("utf-8", "replace")


def rows_per_query(input_len, output_len, width):
    """Rows whose query and reply each fit in one frame (what phyff's client sends at most)."""
    return min((MAX_FRAME_BYTES - HEADER) // (max(input_len, output_len) * width), 0xFFFFFFFF)


class _Reject(Exception):
    """A query answered with an E frame; the message says why."""


def _check_settings(forward, input_len, output_len, name, precision):
    if not callable(forward):
        raise TypeError("forward must be a function taking a list of rows, got {!r}".format(forward))
    for what, n in (("input_len", input_len), ("output_len", output_len)):
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLE_LEN:
            raise ValueError("{} must be an integer from 1 to {} (2^24), got {!r}".format(what, MAX_SAMPLE_LEN, n))
    if precision not in _TYPECODES:
        raise ValueError('precision must be "f64" or "f32", got {!r}'.format(precision))
    if not isinstance(name, str):
        raise TypeError("name must be a str, got {!r}".format(name))


def _decode(body, rows, input_len, typecode):
    """The query's values as a list of ``rows`` lists of ``input_len`` floats."""
    values = array(typecode)
    values.frombytes(body)
    if not _LITTLE:
        values.byteswap()
    flat = values.tolist()
    return [flat[i : i + input_len] for i in range(0, rows * input_len, input_len)]


def _encode(out, rows, output_len, typecode):
    """The bytes of ``forward``'s output after checking its shape and values; ``_Reject``
    naming the first problem."""
    try:
        got = len(out)
    except TypeError:
        raise _Reject(
            "forward returned {}, not a list of {} rows".format(type(out).__name__, rows)
        ) from None
    if got != rows:
        raise _Reject("forward returned {} rows for a query of {} rows".format(got, rows))
    flat = array(typecode)
    for r, row in enumerate(out):
        try:
            k = len(row)
        except TypeError:
            raise _Reject(
                "row {} of forward's output is a {}, not a list of output_len = {} numbers".format(
                    r, type(row).__name__, output_len
                )
            ) from None
        if k != output_len:
            raise _Reject("row {} of forward's output has {} values, expected output_len = {}".format(r, k, output_len))
        try:
            flat.extend(row.tolist() if isinstance(row, array) else row)
        except (TypeError, ValueError, OverflowError) as e:
            raise _Reject(
                "row {} of forward's output holds a value that is not a finite number: {}".format(r, e)
            ) from None
    if not all(map(math.isfinite, flat)):
        i = next(i for i, v in enumerate(flat) if not math.isfinite(v))
        r, c = divmod(i, output_len)
        try:
            value = out[r][c]
            beyond = typecode == "f" and math.isfinite(float(value))
        except Exception:  # an output that can be iterated but not indexed
            value, beyond = flat[i], False
        raise _Reject(
            "forward's output at row {}, column {} is {!r}{}: outputs must be finite".format(
                r, c, value, " (beyond the f32 range, about 3.4e38)" if beyond else ""
            )
        )
    if not _LITTLE:
        flat.byteswap()
    return flat.tobytes()


def _answer_query(forward, frame, input_len, output_len, typecode, width):
    """The reply (R or E payload) to one query frame, and whether it is an R."""
    if len(frame) < HEADER:
        return (
            error_payload(
                0,
                "query frame of {} bytes is shorter than its header (kind, query number, rows: {} bytes); "
                "does the client speak protocol version {}?".format(len(frame), HEADER, PROTOCOL_VERSION),
            ),
            False,
        )
    _, query, rows = struct.unpack_from("<BQI", frame)
    body = memoryview(frame)[HEADER:]
    if len(body) != rows * input_len * width:
        return (
            error_payload(
                query,
                "query #{} has {} bytes for {} rows, expected {} x {} values x {} bytes".format(
                    query, len(body), rows, rows, input_len, width
                ),
            ),
            False,
        )
    if HEADER + rows * output_len * width > MAX_FRAME_BYTES:
        return (
            error_payload(
                query,
                "query #{}: the reply to {} rows of {} values x {} bytes would not fit in a frame of {} bytes; "
                "send at most {} rows per query".format(
                    query, rows, output_len, width, MAX_FRAME_BYTES, rows_per_query(input_len, output_len, width)
                ),
            ),
            False,
        )
    head = struct.pack("<BQI", REPLY, query, rows)
    if rows == 0:
        return head, True
    batch = _decode(body, rows, input_len, typecode)
    try:
        out = forward(batch)
    except Exception as e:  # the instrument's failure is the query's, not the session's
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        return error_payload(query, "query #{}: forward raised {}: {}".format(query, type(e).__name__, e)), False
    try:
        return head + _encode(out, rows, output_len, typecode), True
    except _Reject as e:
        message = "query #{}: {}".format(query, e)
    except Exception as e:  # an output object whose len() or iteration raises
        message = "query #{}: forward's output cannot be read: {}: {}".format(query, type(e).__name__, e)
    _log(message)
    return error_payload(query, message), False


def serve_session(forward, input_len, output_len, reader, writer, name="python device", precision="f64"):
    """Serves one session on the binary streams ``reader`` (the client's frames) and
    ``writer`` (this device's frames) until the client closes its end, and returns its
    ``ServeStats``.

    ``forward(batch)`` receives a list of rows of ``input_len`` floats and returns as many
    rows of ``output_len`` finite numbers (see the module's documentation). Raises
    ``ProtocolError`` when the client breaks the framing, and ``OSError`` (e.g.
    ``BrokenPipeError``) when a stream fails."""
    _check_settings(forward, input_len, output_len, name, precision)
    stats = ServeStats()
    _run_session(forward, input_len, output_len, reader, writer, name, precision, stats)
    stats.sessions += 1
    return stats


def _run_session(forward, input_len, output_len, reader, writer, name, precision, stats):
    """The loop of ``serve_session``, counting into ``stats`` as it goes (so that a session
    ending with an exception keeps its counts)."""
    typecode, width = _TYPECODES[precision]
    warned_version = False
    while True:
        frame = read_frame(reader)
        if frame is None:
            return
        kind = frame[0] if frame else None
        if kind == HELLO:
            version = struct.unpack_from("<I", frame, 1)[0] if len(frame) >= 5 else None
            if version != PROTOCOL_VERSION and not warned_version:
                warned_version = True
                _log(
                    "the client's hello announces {}; this device speaks protocol version {} only (every query "
                    "and reply carries a query number). It answers with version {}: a client of another version "
                    "refuses it; update the client (phyff) to one speaking version {}.".format(
                        "no version" if version is None else "protocol version {}".format(version),
                        PROTOCOL_VERSION,
                        PROTOCOL_VERSION,
                        PROTOCOL_VERSION,
                    )
                )
            reply = hello_payload(input_len, output_len, name, precision)
        elif kind == QUERY:
            reply, ok = _answer_query(forward, frame, input_len, output_len, typecode, width)
            if ok:
                stats.queries += 1
            else:
                stats.errors += 1
        else:
            stats.errors += 1
            got = repr(chr(kind)) if kind is not None else "None (an empty frame)"
            reply = error_payload(0, "unknown message kind {}; expected 'H' or 'Q'".format(got))
        write_frame(writer, reply)


def _parse_address(tcp):
    host, sep, port = tcp.rpartition(":")
    host = host.strip("[]")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not sep or not host or not 0 <= number <= 65535:
        raise ValueError("tcp must be HOST:PORT, e.g. \"127.0.0.1:7000\" (port 0: any free port), got {!r}".format(tcp))
    return host, number


def _claim_stdio():
    """Binary streams on private copies of descriptors 0 and 1; descriptor 1 and
    ``sys.stdout`` then go to stderr, descriptor 0 and ``sys.stdin`` come from the null device."""
    frames_in = os.dup(0)
    frames_out = os.dup(1)
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for old in (sys.stdout, sys.__stdout__):
        try:
            if old is not None:
                old.flush()  # whatever was printed before serve() goes to stderr now, not to the client
        except (OSError, ValueError):
            pass
    sys.stdout = sys.stderr
    sys.stdin = open(os.devnull, "r")
    return open(frames_in, "rb"), open(frames_out, "wb")


def serve(
    forward,
    input_len,
    output_len,
    name="python device",
    precision="f64",
    tcp=None,
    sessions=None,
):
    """Serves ``forward`` as a phyff device and returns its ``ServeStats`` when done.

    ``forward(batch)``: ``batch`` is a list of rows, each a list of ``input_len`` floats (one
    sample per row); return a list of as many rows, each of ``output_len`` finite numbers.
    ``name`` is announced in the hello (phyff prints it); ``precision`` is the width of the
    values on the wire, ``"f64"`` (default) or ``"f32"``.

    - ``tcp=None`` (stdio): speaks on stdin/stdout, as a child started by ``phyff train
      --device-cmd``; one session, returning when the client closes stdin. Stdout then
      carries frames only: ``print`` output goes to stderr (see the module's documentation).
      A client that breaks the framing (a stream ending inside a frame, a frame above 2^30
      bytes) ends the process with status 2 and a message on stderr.
    - ``tcp="HOST:PORT"``: listens there (use a loopback address, e.g. ``"127.0.0.1:7000"``,
      or an SSH tunnel; port 0 picks a free port) and serves one client session at a time,
      then waits for the next; the address is printed on stderr (``phyff_device: listening
      on HOST:PORT``). A session that breaks the framing or the connection ends; the next
      client is served. Stops after ``sessions`` sessions (default: never; Ctrl-C stops it).
    """
    _check_settings(forward, input_len, output_len, name, precision)
    stats = ServeStats()
    description = "{} ({} -> {} values, {}) over protocol version {}".format(
        name, input_len, output_len, precision, PROTOCOL_VERSION
    )
    if tcp is None:
        reader, writer = _claim_stdio()
        _log("serving " + description + " on stdio")
        try:
            _run_session(forward, input_len, output_len, reader, writer, name, precision, stats)
        except ProtocolError as e:
            _log("error: {}; {} queries answered, {} errors".format(e, stats.queries, stats.errors))
            raise SystemExit(2)
        except BrokenPipeError:
            _log("the client closed the connection while a reply was being sent; the session ends")
            # What is left in the writer's buffer would fail again when Python exits.
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, writer.fileno())
            os.close(null)
        stats.sessions += 1
        _log("{} queries answered, {} errors".format(stats.queries, stats.errors))
        return stats
    host, port = _parse_address(tcp)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.create_server((host, port), family=family) as listener:
        bound = listener.getsockname()
        _log("serving " + description)
        _log("listening on {}:{}".format("[{}]".format(bound[0]) if family == socket.AF_INET6 else bound[0], bound[1]))
        try:
            while sessions is None or stats.sessions < sessions:
                conn, peer = listener.accept()
                with conn:
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    reader = conn.makefile("rb")
                    writer = conn.makefile("wb")
                    s = ServeStats()
                    try:
                        _run_session(forward, input_len, output_len, reader, writer, name, precision, s)
                        ended = "the client closed it"
                    except (ProtocolError, OSError) as e:
                        ended = str(e)
                    finally:
                        stats.queries += s.queries
                        stats.errors += s.errors
                        stats.sessions += 1
                    _log(
                        "session with {}:{} ended ({}): {} queries answered, {} errors".format(
                            peer[0], peer[1], ended, s.queries, s.errors
                        )
                    )
                    for f in (reader, writer):
                        try:
                            f.close()
                        except OSError:
                            pass
        except KeyboardInterrupt:
            _log("interrupted")
    return stats
