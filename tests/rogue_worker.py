"""A grading worker gone wrong, for test_worker_protocol.py: ``python -m tests.rogue_worker``.

It speaks the protocol (ready; two frames per job; records; done) but, on its
first job, breaks it the way $ROGUE_MODE says: what a worker whose notebook
took it over could send. Later jobs (and later workers) behave, once the file
$ROGUE_ONCE is gone: so a test sees whether the grader replaced it.
"""
import json
import os
import sys
import time

from autograder.sandboxed import protocol

LINES = {
    "deep_nesting": b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "megabyte_line": json.dumps({"record": {"cell": 0, "stdout": "x" * (2 << 20), "stderr": "",
                                            "error": None}}).encode() + b"\n",
    "invalid_utf8": b'{"record": {"cell": 0, "stdout": "\xff\xfe", "stderr": "", "error": null}}\n',
    "lone_surrogate": b'{"record": {"cell": 0, "stdout": "\\ud800", "stderr": "", "error": null}}\n',
    "unknown_keys": b'{"record": {"cell": 0, "stdout": "", "stderr": "", "error": null, "points": 100}}\n',
    "unknown_message": b'{"score": 100}\n',
    "not_json": b"{\n",
}
DONE = protocol.dump({"done": {"reason": None, "exit": 0, "forged": []}})


def main():
    out = os.dup(1)
    os.dup2(2, 1)
    os.write(out, protocol.dump({"ready": True}))
    while True:
        try:
            job = json.loads(protocol.read_frame(0))
            protocol.read_frame(0)  # the challenges
        except EOFError:
            return
        mode = os.environ.get("ROGUE_MODE", "")
        if os.path.exists(os.environ.get("ROGUE_ONCE", "")):
            os.unlink(os.environ["ROGUE_ONCE"])
        else:
            mode = ""
        first = next(i for i, cell in enumerate(job["cells"]) if cell["kind"] == "code")
        os.write(out, protocol.dump({"record": {"cell": first, "stdout": "ran", "stderr": "", "error": None}}))
        os.write(out, LINES.get(mode, b""))
        # A second done in the same write as the first: one pipe write of under PIPE_BUF bytes arrives
        # whole, so the grader reads both together (a later one is output after done, below).
        os.write(out, DONE * 2 if mode == "extra_done" else DONE)
        if mode == "output_after_done":
            time.sleep(0.5)  # after the grader has taken the job's outcome
            os.write(out, b'{"record": {"cell": 0, "stdout": "late", "stderr": "", "error": null}}\n')


if __name__ == "__main__":
    sys.exit(main())
