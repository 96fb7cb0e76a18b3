"""How a check talks to a student.

:class:`CheckFailed` carries a message written for the student (what is
wrong and what to do). :func:`quiet_stderr` silences stderr while a check
runs: nbgrader scores a test cell zero if the cell wrote anything to stderr,
and MXNet and d2l print warnings there (some from C++, straight to file
descriptor 2) that have nothing to do with the student's answer.
"""
import contextlib
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
