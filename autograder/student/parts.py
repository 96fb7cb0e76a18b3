"""A graded part, split so that a student cannot forge its verdict.

Each part has three steps:

``challenge(rng)``
    the inputs the part is judged on: shapes, configurations, a seed for
    weights. With ``rng=None`` it returns the fixed challenge the notebooks
    use; the batch grader draws a fresh, secret one per submission.
``observe(student_object, challenge)``
    runs *with the student's code* and only records what the code does, as
    plain JSON data (numbers, lists, strings). It decides nothing.
``judge(challenge, observation)``
    decides, from the challenge and the observation alone, in plain NumPy,
    and raises :class:`CheckFailed` with a message for the student.

In a notebook, ``part.check(obj)`` runs all three in the student's kernel
(quick feedback, trusting the kernel). The batch grader runs ``observe`` in
the sandboxed student process and ``judge`` in its own process, which never
imports student code: an observation the student's code faked, or a check it
patched, can only pass if it reproduces the right answer for inputs and
weights it could not know in advance.
"""
import functools
import json
import zlib

import numpy as onp

from .checking import CheckFailed, quiet_stderr

CANONICAL_BLOCK = 4099  # a prime, so repeats do not line up with channel or kernel sizes


class Part:
    name = ""
    description = ""

    def challenge(self, rng=None):
        return {}

    def observe(self, obj, challenge):
        raise NotImplementedError

    def judge(self, challenge, observation):
        raise NotImplementedError

    def check(self, obj):
        """Observe and judge in this process with the fixed challenge (the notebook's visible way)."""
        challenge = self.challenge(None)
        with quiet_stderr():
            observation = observe_safely(self.observe, obj, challenge)
        verdict = judge_safely(self, challenge, observation)
        if verdict is not None:
            raise CheckFailed(verdict) from None
        print(f"passed: {self.description}")


def observe_safely(observe, obj, challenge):
    """``observe(obj, challenge)`` as plain JSON data, or ``{"error": ...}`` when the student's code raised."""
    try:
        observation = observe(obj, challenge)
        return json.loads(json.dumps(observation))
    except CheckFailed as failure:
        return {"failed": str(failure)}
    except Exception as error:  # the student's code raised
        return {"error": describe_error(error)}


def describe_error(error):
    """``Name (decisive line)`` for an exception the student's code raised.

    The decisive line is the message's last: MXNet's messages open with a
    "Traceback ..." of their own and end with what went wrong."""
    name = type(error).__name__
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = lines[-1] if lines else ""
    if detail.startswith(f"{name}:"):
        detail = detail[len(name) + 1:].strip()
    detail = detail if len(detail) <= 300 else detail[:297] + "..."
    return name + (f" ({detail})" if detail else "")


def judge_safely(part, challenge, observation):
    """None when the part passed, else the message for the student. Never raises.

    A description states what a correct answer does; a passing check prints it
    after "passed:", a failure after "failed:", so neither reads as the other."""
    prefix = f"failed: {part.description}: "
    if not isinstance(observation, dict):
        return prefix + "no result was recorded for this part (did the notebook run up to here?)."
    if "error" in observation:
        return prefix + f"your code raised {observation['error']}. Run your code on its own to see the full error."
    if "failed" in observation:
        return prefix + str(observation["failed"])
    try:
        part.judge(challenge, observation)
    except CheckFailed as failure:
        return prefix + str(failure)
    except Exception:  # malformed (or forged) observation
        return prefix + "the results your code produced could not be read as the expected kind of data."
    return None


def fail(message):
    raise CheckFailed(message)


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def secret_seed(rng):
    return 12345 if rng is None else int(rng.integers(1, 2**31 - 1))


def canonical(seed, kind, shape, dtype=None, out=None):
    """Deterministic test values for a parameter, from a seed and the parameter's role and shape.

    Observer and judge both derive weights this way, so the judge knows every
    weight the observer set without being told. Layers of equal shape get
    equal values, so nobody needs to know which of them comes 'first'.
    ``dtype``: the values rounded to it (the observers ask for the parameter's
    own type, float32: the same numbers it would round them to when set).
    ``out``: an array of ``shape`` to write the values into (rounded to its own
    type) instead of a new one; it is returned.
    """
    shape = tuple(int(n) for n in shape)
    # Big tensors repeat a block of CANONICAL_BLOCK draws: as telling, and far cheaper to make.
    # (Each value is scaled, and rounded, within the block before it is repeated: the same
    # numbers, less work; for ResNet-18's 11 M weights most of an observation's cost.)
    block = _canonical_block(seed, kind, shape, None if out is not None else dtype)
    if out is None:
        return onp.resize(block, shape)
    if out.shape != shape or not out.flags.c_contiguous:
        raise ValueError(f"out: a contiguous array of shape {shape}")
    flat = out.reshape(-1)  # a view of it
    whole = flat.size // block.size
    flat[:whole * block.size].reshape(whole, block.size)[...] = block
    flat[whole * block.size:] = block[:flat.size - whole * block.size]
    return out


@functools.lru_cache(maxsize=256)
def _canonical_block(seed, kind, shape, dtype):
    """The first min(size, CANONICAL_BLOCK) values of ``canonical``: drawn once per seed, role,
    shape and type in a process (a network has many layers of one shape), read-only."""
    rng = onp.random.default_rng([seed, zlib.crc32(f"{kind}:{shape}".encode())])
    n = min(int(onp.prod(shape)), CANONICAL_BLOCK)
    if kind == "conv.weight" or kind == "dense.weight":
        block = rng.standard_normal(n) / onp.sqrt(onp.prod(shape[1:]))
    elif kind in ("conv.bias", "dense.bias"):
        block = 0.1 * rng.standard_normal(n)
    elif kind == "bn.gamma" or kind == "bn.var":
        block = rng.uniform(0.5, 1.5, n)
    elif kind == "bn.beta":
        block = 0.5 * rng.standard_normal(n)
    elif kind == "bn.mean":
        block = 0.2 * rng.standard_normal(n)
    elif kind == "input":
        block = rng.standard_normal(n)
    else:
        raise ValueError(kind)
    block = block if dtype is None else block.astype(dtype)
    block.flags.writeable = False
    return block


def close(got, want):
    """Numbers agree up to float32 rounding."""
    got, want = onp.asarray(got, dtype=float), onp.asarray(want, dtype=float)
    if got.shape != want.shape or not onp.all(onp.isfinite(got)):
        return False
    scale = max(1.0, float(onp.abs(want).max(initial=0)))
    return bool(onp.allclose(got, want, rtol=1e-3, atol=1e-4 * scale))
