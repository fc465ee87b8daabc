"""Tests of phyff_device (standard library only): framing, hello, queries, error frames,
query numbers, both widths, and the stdio and TCP transports of a real child process.

Run from the repository's root: ``python3 -m unittest discover -s python/tests``.
"""

import contextlib
import io
import math
import os
import socket
import struct
import subprocess
import sys
import threading
import types
import unittest

PYTHON_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, PYTHON_DIR)

import phyff_device as pd  # noqa: E402


# --- a minimal client, written from docs/device-protocol.md -------------------------------

def frame(payload):
    return struct.pack("<I", len(payload)) + payload


def hello(version=2):
    return frame(struct.pack("<BI", ord("H"), version))


def query(number, rows, width=8):
    """A query frame of ``rows`` rows of values (a list of lists)."""
    code = "<" + ("d" if width == 8 else "f") * sum(len(r) for r in rows)
    values = struct.pack(code, *[v for r in rows for v in r])
    return frame(struct.pack("<BQI", ord("Q"), number, len(rows)) + values)


def frames_of(data):
    """The payloads of the frames in ``data``."""
    out = []
    stream = io.BytesIO(data)
    while True:
        f = pd.read_frame(stream)
        if f is None:
            return out
        out.append(f)


def parse_hello(p):
    kind, version, width, n_in, n_out = struct.unpack_from("<BIBQQ", p)
    return chr(kind), version, width, n_in, n_out, p[22:].decode("utf-8")


def parse_answer(p, output_len, width=8):
    """("R", number, rows of values) or ("E", number, message)."""
    kind = chr(p[0])
    (number,) = struct.unpack_from("<Q", p, 1)
    if kind == "E":
        return kind, number, p[9:].decode("utf-8")
    (rows,) = struct.unpack_from("<I", p, 9)
    n = rows * output_len
    values = struct.unpack_from("<" + ("d" if width == 8 else "f") * n, p, 13)
    assert len(p) == 13 + n * width, "reply of {} bytes for {} rows".format(len(p), rows)
    return kind, number, [list(values[i : i + output_len]) for i in range(0, n, output_len)]


def session(forward, requests, input_len=3, output_len=2, precision="f64", name="dev"):
    """Runs one session on in-memory streams; returns the answer payloads and the session's
    counts and log (stderr)."""
    out = io.BytesIO()
    log = io.StringIO()
    with contextlib.redirect_stderr(log):
        stats = pd.serve_session(forward, input_len, output_len, io.BytesIO(b"".join(requests)), out, name, precision)
    counts = types.SimpleNamespace(
        queries=stats.queries, errors=stats.errors, sessions=stats.sessions, log=log.getvalue()
    )
    return frames_of(out.getvalue()), counts


def sums(batch):
    """3 -> 2: the sum and the first value of each row."""
    return [[sum(x), x[0]] for x in batch]


# --- tests -----------------------------------------------------------------------------------

class Framing(unittest.TestCase):
    def test_round_trip(self):
        buf = io.BytesIO()
        for p in (b"", b"H", bytes(range(256)) * 10):
            pd.write_frame(buf, p)
        self.assertEqual(frames_of(buf.getvalue()), [b"", b"H", bytes(range(256)) * 10])
        self.assertEqual(buf.getvalue()[:4], b"\x00\x00\x00\x00")
        self.assertEqual(buf.getvalue()[4:9], b"\x01\x00\x00\x00H")

    def test_clean_eof_and_broken_frames(self):
        self.assertIsNone(pd.read_frame(io.BytesIO(b"")))
        with self.assertRaisesRegex(pd.ProtocolError, "inside a frame"):
            pd.read_frame(io.BytesIO(b"\x05\x00"))
        with self.assertRaisesRegex(pd.ProtocolError, "inside a frame"):
            pd.read_frame(io.BytesIO(b"\x05\x00\x00\x00HQ"))
        with self.assertRaisesRegex(pd.ProtocolError, "exceeds the limit"):
            pd.read_frame(io.BytesIO(struct.pack("<I", (1 << 30) + 1)))

    def test_reads_a_frame_delivered_in_small_pieces(self):
        class Trickle(io.RawIOBase):
            def __init__(self, data):
                self.data = data

            def readable(self):
                return True

            def read(self, n=-1):
                piece, self.data = self.data[:1], self.data[1:]
                return piece

        self.assertEqual(pd.read_frame(Trickle(frame(b"hello"))), b"hello")

    def test_the_example_of_the_protocol_document(self):
        """The hex example of docs/device-protocol.md, byte for byte (f32, 3 -> 1, "dev")."""
        answers, _ = session(
            lambda b: [[x[0]] for x in b], [bytes.fromhex("0500000048 02000000"), query(7, [[1, 2, 3], [4, 5, 6]], 4)],
            input_len=3, output_len=1, precision="f32",
        )
        self.assertEqual(
            frame(answers[0]).hex(),
            "19000000" "48" "02000000" "04" "0300000000000000" "0100000000000000" "646576",
        )
        self.assertEqual(frame(answers[1])[:17].hex(), "15000000" "52" "0700000000000000" "02000000")
        self.assertEqual(len(frame(answers[1])), 4 + 0x15)


class Hello(unittest.TestCase):
    def test_hello_announces_version_width_lengths_and_name(self):
        for precision, width in (("f64", 8), ("f32", 4)):
            answers, _ = session(sums, [hello()], precision=precision, name="bench \u00b5-laser")
            self.assertEqual(parse_hello(answers[0]), ("H", 2, width, 3, 2, "bench \u00b5-laser"))

    def test_another_version_is_answered_with_version_2_as_phyffs_serve_does(self):
        # The client decides: a version-1 or version-3 client refuses a version-2 hello.
        for version in (1, 3):
            answers, stats = session(sums, [hello(version), query(1, [[1, 2, 3]])])
            self.assertEqual(parse_hello(answers[0])[1], 2)
            self.assertIn("announces protocol version {}".format(version), stats.log)
            self.assertEqual(parse_answer(answers[1], 2)[0], "R")

    def test_bad_settings_are_refused_before_serving(self):
        with self.assertRaisesRegex(ValueError, "input_len"):
            pd.serve(sums, 0, 2)
        with self.assertRaisesRegex(ValueError, "output_len"):
            pd.serve(sums, 3, (1 << 24) + 1)
        with self.assertRaisesRegex(ValueError, "precision"):
            pd.serve(sums, 3, 2, precision="f16")
        with self.assertRaisesRegex(TypeError, "forward"):
            pd.serve(None, 3, 2)
        with self.assertRaisesRegex(ValueError, "HOST:PORT"):
            pd.serve(sums, 3, 2, tcp="7000")


class Queries(unittest.TestCase):
    def test_a_query_is_answered_with_its_number_and_values(self):
        answers, stats = session(sums, [hello(), query(1, [[1, 2, 3], [0.5, -1, 1e-300]])])
        self.assertEqual(parse_answer(answers[1], 2), ("R", 1, [[6.0, 1.0], [-0.5 + 1e-300, 0.5]]))
        self.assertEqual((stats.queries, stats.errors, stats.sessions), (1, 0, 1))

    def test_forward_sees_lists_of_floats_row_major(self):
        seen = []

        def record(batch):
            seen.append(batch)
            return [[0.0, 0.0] for _ in batch]

        session(record, [hello(), query(1, [[1, 2, 3], [4, 5, 6]])])
        self.assertEqual(seen, [[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])
        self.assertTrue(all(type(v) is float for row in seen[0] for v in row))

    def test_f64_is_exact_and_f32_rounds(self):
        third = 1.0 / 3.0
        identity = lambda b: [list(x) for x in b]  # noqa: E731
        answers, _ = session(identity, [hello(), query(5, [[third, 1e200, -0.0]])], 3, 3, "f64")
        self.assertEqual(parse_answer(answers[1], 3, 8), ("R", 5, [[third, 1e200, -0.0]]))
        rounded = struct.unpack("<f", struct.pack("<f", third))[0]
        answers, _ = session(identity, [hello(), query(5, [[third, 2.0, -0.0]], 4)], 3, 3, "f32")
        kind, number, rows = parse_answer(answers[1], 3, 4)
        self.assertEqual((kind, number, rows), ("R", 5, [[rounded, 2.0, -0.0]]))
        self.assertNotEqual(rounded, third)

    def test_outputs_beyond_f32_are_refused(self):
        too_big = lambda b: [[1e39, 0.0] for _ in b]  # noqa: E731
        answers, stats = session(too_big, [hello(), query(2, [[1, 2, 3]], 4)], precision="f32")
        kind, number, message = parse_answer(answers[1], 2, 4)
        self.assertEqual((kind, number), ("E", 2))
        self.assertIn("row 0, column 0", message)
        self.assertIn("f32", message)
        self.assertEqual(stats.errors, 1)

    def test_an_empty_query_is_answered_without_calling_forward(self):
        def never(batch):
            raise AssertionError("forward called for 0 rows")

        answers, _ = session(never, [hello(), query(4, [])])
        self.assertEqual(parse_answer(answers[1], 2), ("R", 4, []))

    def test_accepts_tuples_ints_and_arrays(self):
        from array import array

        mixed = lambda b: ((1, 2),) + tuple(array("d", [3, 4]) for _ in b[1:])  # noqa: E731
        answers, _ = session(mixed, [hello(), query(1, [[0] * 3] * 2)])
        self.assertEqual(parse_answer(answers[1], 2), ("R", 1, [[1.0, 2.0], [3.0, 4.0]]))
        doubles = lambda b: [array("d", [3, 4]) for _ in b]  # noqa: E731
        answers, _ = session(doubles, [hello(), query(1, [[0] * 3], 4)], precision="f32")
        self.assertEqual(parse_answer(answers[1], 2, 4), ("R", 1, [[3.0, 4.0]]))


class ErrorFrames(unittest.TestCase):
    def expect_error(self, forward, *needles, rows=([1, 2, 3],), number=9):
        answers, stats = session(forward, [hello(), query(number, list(rows)), query(number + 1, [[1, 2, 3]])])
        kind, got, message = parse_answer(answers[1], 2)
        self.assertEqual((kind, got), ("E", number), message)
        for n in needles:
            self.assertIn(n, message)
        # The session goes on: the next query is answered too (an R when forward allows it).
        self.assertEqual(parse_answer(answers[2], 2)[1], number + 1)
        return message, stats

    def test_a_raising_forward(self):
        def broken(batch):
            raise RuntimeError("laser not locked")

        message, stats = self.expect_error(broken, "query #9", "RuntimeError", "laser not locked")
        self.assertEqual((stats.queries, stats.errors), (0, 2))
        self.assertIn("Traceback", stats.log)  # the device's log has the whole story

    def test_the_session_goes_on_after_a_failure(self):
        calls = []

        def flaky(batch):
            calls.append(1)
            if len(calls) == 1:
                raise OSError("timeout on the camera")
            return sums(batch)

        answers, stats = session(flaky, [hello(), query(1, [[1, 2, 3]]), query(2, [[1, 2, 3]])])
        self.assertEqual(parse_answer(answers[1], 2)[:2], ("E", 1))
        self.assertEqual(parse_answer(answers[2], 2), ("R", 2, [[6.0, 1.0]]))
        self.assertEqual((stats.queries, stats.errors), (1, 1))

    def test_wrong_shapes(self):
        self.expect_error(lambda b: sums(b)[:-1], "0 rows for a query of 1 rows")
        self.expect_error(lambda b: sums(b) * 2, "forward returned 2 rows for a query of 1 rows")
        self.expect_error(lambda b: [[1.0] for _ in b], "row 0", "1 values", "output_len = 2")
        self.expect_error(lambda b: [[1.0, 2.0], [1.0, 2.0, 3.0]], "row 1", "3 values", rows=([1, 2, 3], [4, 5, 6]))
        self.expect_error(lambda b: None, "NoneType", "not a list")
        self.expect_error(lambda b: [5.0 for _ in b], "row 0", "float")

    def test_values_that_are_not_finite_numbers(self):
        self.expect_error(lambda b: [[1.0, float("nan")] for _ in b], "row 0, column 1", "nan", "finite")
        self.expect_error(
            lambda b: [[1.0, 2.0], [float("-inf"), 0.0]], "row 1, column 0", "inf", rows=([1, 2, 3], [4, 5, 6])
        )
        self.expect_error(lambda b: [["1.0", 2.0] for _ in b], "row 0", "not a finite number")

        class Broken(list):
            def __iter__(self):
                raise RuntimeError("camera buffer freed")

        self.expect_error(lambda b: [Broken([1.0, 2.0]) for _ in b], "cannot be read", "camera buffer freed")

    def test_malformed_queries(self):
        # Wrong byte count: the number is echoed.
        bad = frame(struct.pack("<BQI", ord("Q"), 3, 2) + struct.pack("<3d", 1, 2, 3))
        answers, _ = session(sums, [hello(), bad, query(4, [[1, 2, 3]])])
        kind, number, message = parse_answer(answers[1], 2)
        self.assertEqual((kind, number), ("E", 3))
        self.assertIn("24 bytes for 2 rows", message)
        self.assertEqual(parse_answer(answers[2], 2)[:2], ("R", 4))
        # Too short to hold a number, an unknown kind, an empty frame: number 0.
        for request, needle in (
            (frame(b"Q\x01\x00"), "shorter than its header"),
            (frame(b"X"), "unknown message kind 'X'"),
            (frame(b""), "unknown message kind"),
        ):
            answers, _ = session(sums, [hello(), request])
            kind, number, message = parse_answer(answers[1], 2)
            self.assertEqual((kind, number), ("E", 0))
            self.assertIn(needle, message)

    def test_a_reply_that_would_not_fit_in_a_frame(self):
        # 8 rows of 2^24 f64 outputs are 1 GiB: one byte more than a frame holds.
        request = query(6, [[0.0]] * 8)
        answers, _ = session(sums, [hello(), request], input_len=1, output_len=1 << 24)
        kind, number, message = parse_answer(answers[1], 1 << 24)
        self.assertEqual((kind, number), ("E", 6))
        self.assertEqual(pd.rows_per_query(1, 1 << 24, 8), 7)
        self.assertIn("send at most 7 rows", message)


class QueryNumbers(unittest.TestCase):
    def test_numbers_are_echoed_not_made_up(self):
        """One answer per query, in order, each with its query's number, whatever the numbers
        (phyff's client numbers from 1, but a device only echoes)."""
        numbers = [1, 2, 7, 3, 3, 0, (1 << 64) - 1, 1 << 40]
        requests = [hello()] + [query(n, [[n % 5, 1, 2]]) for n in numbers]
        answers, stats = session(sums, requests)
        self.assertEqual(len(answers), 1 + len(numbers))
        self.assertEqual([parse_answer(a, 2)[1] for a in answers[1:]], numbers)
        self.assertEqual([parse_answer(a, 2)[2][0][1] for a in answers[1:]], [float(n % 5) for n in numbers])
        self.assertEqual(stats.queries, len(numbers))

    def test_pipelined_queries_over_a_pipe_are_answered_in_order(self):
        r_in, w_in = os.pipe()
        r_out, w_out = os.pipe()
        reader, writer = open(r_in, "rb"), open(w_out, "wb")
        t = threading.Thread(target=pd.serve_session, args=(sums, 3, 2, reader, writer))
        t.start()
        with open(w_in, "wb") as client:
            client.write(hello() + b"".join(query(n, [[n, 0, 0]]) for n in range(1, 51)))
        t.join(30)
        writer.close()
        reader.close()
        with open(r_out, "rb") as replies:
            answers = frames_of(replies.read())
        self.assertEqual([(a[1], a[2][0][0]) for a in (parse_answer(p, 2) for p in answers[1:])],
                         [(n, float(n)) for n in range(1, 51)])


class ChildProcess(unittest.TestCase):
    """The toy instrument as phyff runs it: a child process on stdio, and a TCP server."""

    SCRIPT = os.path.join(PYTHON_DIR, "examples", "toy_instrument.py")

    def test_stdio_child_prints_go_to_stderr_and_stdout_carries_frames_only(self):
        code = (
            "import sys; sys.path.insert(0, {!r}); import phyff_device as pd\n"
            "import os\n"
            "def f(b):\n"
            "    print('measuring', len(b), 'rows')\n"
            "    os.write(1, b'written to descriptor 1\\n')\n"
            "    return [[x[0] * 2] for x in b]\n"
            "pd.serve(f, 2, 1, name='child', precision='f32')\n"
        ).format(PYTHON_DIR)
        p = subprocess.run(
            [sys.executable, "-c", code],
            input=hello() + query(1, [[1.5, 0]], 4) + query(2, [[3, 0], [4, 0]], 4),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
        )
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        answers = frames_of(p.stdout)
        self.assertEqual(parse_hello(answers[0]), ("H", 2, 4, 2, 1, "child"))
        self.assertEqual(parse_answer(answers[1], 1, 4), ("R", 1, [[3.0]]))
        self.assertEqual(parse_answer(answers[2], 1, 4), ("R", 2, [[6.0], [8.0]]))
        err = p.stderr.decode()
        for needle in ("written to descriptor 1", "measuring 1 rows", "measuring 2 rows", "2 queries answered"):
            self.assertIn(needle, err)

    def test_stdio_child_ends_with_status_2_on_a_broken_frame(self):
        p = subprocess.run(
            [sys.executable, self.SCRIPT, "--input-len", "3", "--output-len", "2"],
            input=hello() + b"\x10\x00\x00\x00Q",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
        )
        self.assertEqual(p.returncode, 2)
        self.assertIn("inside a frame", p.stderr.decode())
        self.assertEqual(parse_hello(frames_of(p.stdout)[0])[:5], ("H", 2, 8, 3, 2))

    def test_toy_instrument_over_tcp_serves_sessions_one_after_another(self):
        p = subprocess.Popen(
            [sys.executable, self.SCRIPT, "--input-shape", "2x3", "--output-len", "4", "--tcp", "127.0.0.1:0",
             "--sessions", "2", "--precision", "f32", "--noise", "0"],
            stderr=subprocess.PIPE,
        )
        try:
            port = None
            for line in p.stderr:
                line = line.decode()
                if "listening on" in line:
                    port = int(line.rsplit(":", 1)[1])
                    break
            self.assertIsNotNone(port, "no 'listening on' line")
            results = []
            for number in (1, 2):
                with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                    s.sendall(hello() + query(number, [[1, 0, 0, 0, 0, 0], [0] * 6], 4))
                    f = s.makefile("rb")
                    h = parse_hello(pd.read_frame(f))
                    results.append(parse_answer(pd.read_frame(f), 4, 4))
                    f.close()
            self.assertEqual(h[:5], ("H", 2, 4, 6, 4))
            self.assertTrue(h[5].startswith("toy instrument"))
            # Same medium in both sessions; intensities are non-negative; zero input, zero output.
            self.assertEqual([r[:2] for r in results], [("R", 1), ("R", 2)])
            self.assertEqual(results[0][2], results[1][2])
            self.assertTrue(all(v > 0 for v in results[0][2][0]))
            self.assertEqual(results[0][2][1], [0.0] * 4)
            self.assertEqual(p.wait(timeout=30), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()


class ToyInstrument(unittest.TestCase):
    def setUp(self):
        sys.path.insert(0, os.path.join(PYTHON_DIR, "examples"))
        import toy_instrument

        self.toy = toy_instrument

    def test_the_medium_is_seeded_per_block_and_noise_is_relative(self):
        x = [[float(i % 3) for i in range(8)]]
        a = self.toy.ToyInstrument(8, 5, seed=1, block=0).forward(x)
        self.assertEqual(a, self.toy.ToyInstrument(8, 5, seed=1, block=0).forward(x))
        self.assertNotEqual(a, self.toy.ToyInstrument(8, 5, seed=1, block=1).forward(x))
        self.assertNotEqual(a, self.toy.ToyInstrument(8, 5, seed=2, block=0).forward(x))
        noisy = self.toy.ToyInstrument(8, 5, seed=1, block=0, noise=0.01).forward(x)
        rms = math.sqrt(sum(v * v for v in a[0]) / 5)
        self.assertTrue(all(abs(n - v) < 0.1 * rms for n, v in zip(noisy[0], a[0])))
        self.assertNotEqual(noisy, a)


if __name__ == "__main__":
    unittest.main()
