"""The grading protocol's messages, and how each side reads them without trusting the other.

Used inside the sandbox (the worker reads what a notebook's process writes)
and outside it (the grader reads what the worker writes). Everything read
here may have been written by student code, so:

* a line is bounded in size before it is decoded (``MAX_LINE``);
* it must be strict UTF-8, and no string in it may hold a lone surrogate
  (``"\\ud800"`` parses, but cannot be written to a file or a page later);
* its nesting depth is counted on the raw bytes, iteratively, before
  ``json.loads`` sees it, so no parser recurses on it beyond ``MAX_DEPTH``;
* a message must have exactly the fields of its kind, with their types.

Frames (a 4-byte length, then that many bytes) carry what the grader sends
into the sandbox: they are read with exact-length ``os.read`` calls, so a
reader never takes in more than the message it asked for (the secret
challenges follow the job in the same pipe and must stay there until the
notebook's process has been forked).
"""
import json
import os
import struct

MAX_LINE = 1 << 20        # one message, in bytes
MAX_DEPTH = 32            # nesting of lists and objects in one message (observations use under 10)
MAX_FRAME = 64 << 20      # one frame from the grader (a job holds the notebook's code)
_HEADER = struct.Struct(">I")


class ProtocolError(ValueError):
    """A message that breaks the protocol; its text says how, for the grader's notes."""


# ------------------------------------------------------------------ frames

def frame(payload):
    return _HEADER.pack(len(payload)) + payload


def read_exactly(fd, count):
    """``count`` bytes from ``fd``, read with as many calls as it takes; EOFError if the pipe ends first."""
    buffer = bytearray(count)
    view, done = memoryview(buffer), 0
    while done < count:
        got = os.readv(fd, [view[done:]])
        if got == 0:
            raise EOFError("the pipe closed in the middle of a message")
        done += got
    return bytes(buffer)


def read_frame(fd):
    (length,) = _HEADER.unpack(read_exactly(fd, _HEADER.size))
    if length > MAX_FRAME:
        raise ProtocolError(f"a frame of {length} bytes (at most {MAX_FRAME})")
    return read_exactly(fd, length)


# ------------------------------------------------------------------ lines

class LineReader:
    """Splits a byte stream into lines itself, so nothing after a message goes unseen."""

    def __init__(self, limit=MAX_LINE):
        self.limit, self.buffer = limit, b""

    def feed(self, chunk):
        """The complete lines in ``chunk`` (without their newline); ProtocolError for an overlong line."""
        *lines, self.buffer = (self.buffer + chunk).split(b"\n")
        if len(self.buffer) > self.limit or any(len(line) > self.limit for line in lines):
            raise ProtocolError(f"a line of more than {self.limit} bytes")
        return lines


def _depth(raw):
    """The deepest nesting of ``[`` and ``{`` in JSON text, outside strings; counted without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:      # backslash
                escaped = True
            elif byte == 0x22:      # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _check_strings(value):
    """Every string in ``value`` (keys too) is valid Unicode text; walked with an explicit stack."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ProtocolError("a string with a lone surrogate") from None
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def parse(raw):
    """One line's JSON value, or ProtocolError saying why it cannot be one."""
    if len(raw) > MAX_LINE:
        raise ProtocolError(f"a line of more than {MAX_LINE} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("a line that is not valid UTF-8") from None
    if _depth(raw) > MAX_DEPTH:
        raise ProtocolError(f"data nested more than {MAX_DEPTH} levels deep")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("a line that is not JSON") from None
    _check_strings(value)
    return value


def dump(message):
    """A message as one line of bytes (strict: ``parse`` on the other side accepts it)."""
    return json.dumps(message, allow_nan=True).encode("utf-8") + b"\n"


# ------------------------------------------------------------------ messages

def _is_int(value):
    return type(value) is int


def _is_str(value):
    return type(value) is str


def _fields(message, *names):
    if not isinstance(message, dict) or set(message) != set(names):
        shown = sorted(message)[:5] if isinstance(message, dict) else type(message).__name__
        raise ProtocolError(f"a message with fields {shown}, expected {sorted(names)}")


def check_record(record):
    """A record a notebook's process sends: ``{"probe": i}``, an observation or a code cell's output.

    Returns its kind: "probe", "observation" or "output"."""
    if isinstance(record, dict) and "probe" in record:
        _fields(record, "probe")
        if not _is_int(record["probe"]):
            raise ProtocolError("a probe request without a cell number")
        return "probe"
    if isinstance(record, dict) and "part" in record:
        _fields(record, "cell", "part", "observation")
        if not (_is_int(record["cell"]) and _is_str(record["part"])):
            raise ProtocolError("an observation without a cell number and a part name")
        return "observation"
    _fields(record, "cell", "stdout", "stderr", "error")
    error = record["error"]
    if not (_is_int(record["cell"]) and _is_str(record["stdout"]) and _is_str(record["stderr"])
            and (error is None or (type(error) is list and len(error) == 2 and all(map(_is_str, error))))):
        raise ProtocolError("a cell's output with fields of the wrong type")
    return "output"


def check_from_worker(message):
    """What the worker sends the grader: ``{"ready": true}``, ``{"record": ...}`` or ``{"done": ...}``.

    Returns (kind, payload)."""
    if not isinstance(message, dict) or len(message) != 1:
        raise ProtocolError("a message that is not one of ready, record, done")
    (kind, payload), = message.items()
    if kind == "ready" and payload is True:
        return kind, payload
    if kind == "record":
        if check_record(payload) == "probe":
            raise ProtocolError("a probe request forwarded as a record")
        return kind, payload
    if kind == "done":
        _fields(payload, "reason", "exit", "forged")
        forged = payload["forged"]
        if not ((payload["reason"] is None or _is_str(payload["reason"])) and _is_int(payload["exit"])
                and type(forged) is list
                and all(type(f) is list and len(f) == 2 and _is_int(f[0]) and _is_str(f[1]) for f in forged)):
            raise ProtocolError("a done message with fields of the wrong type")
        return kind, payload
    raise ProtocolError(f"an unknown message ({kind[:40]!r})")

