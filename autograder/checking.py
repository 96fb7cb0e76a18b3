"""How a check talks to a student.

Every check in this package is wrapped by :func:`check`, which

* silences stderr while it runs: nbgrader scores a test cell zero if the cell
  wrote anything to stderr, and MXNet and d2l print warnings there that have
  nothing to do with the student's answer;
* turns any failure -- a failed comparison, or an exception raised by the
  student's own code -- into one :class:`CheckFailed` whose message says what
  to fix, raised ``from None`` so the traceback does not walk through the
  check's code;
* prints one line when the check passes, so students see progress.
"""
import contextlib
import functools
import logging
import os
import sys
import warnings


class CheckFailed(AssertionError):
    """A check did not pass; the message is written for the student."""


@contextlib.contextmanager
def quiet_stderr():
    """Send everything written to stderr, at Python or file-descriptor level, nowhere."""
    sys.stderr.flush()
    saved_fd = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    previous_disable = logging.root.manager.disable
    try:
        os.dup2(devnull, 2)
        logging.disable(logging.CRITICAL)
        with warnings.catch_warnings(), contextlib.redirect_stderr(open(os.devnull, "w")) as sink:
            warnings.simplefilter("ignore")
            try:
                yield
            finally:
                sink.close()
    finally:
        logging.disable(previous_disable)
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        os.close(devnull)


def fail(message):
    """Stop the current check with a message for the student."""
    raise CheckFailed(message)


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def check(description):
    """Decorate a check function; ``description`` names what it verifies."""
    def decorate(function):
        @functools.wraps(function)
        def run(*args, **kwargs):
            problem = None
            with quiet_stderr():
                try:
                    result = function(*args, **kwargs)
                except CheckFailed as error:
                    problem = str(error)
                except Exception as error:  # the student's code raised
                    detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
                    problem = (f"your code raised {type(error).__name__}"
                               + (f" ({detail})" if detail else "")
                               + ". Run your code on its own to see the full error.")
            if problem is not None:
                raise CheckFailed(f"{description}: {problem}") from None
            print(f"passed: {description}")
            return result
        return run
    return decorate
