"""Interim: re-exports the observers still defined beside the judges (being split)."""
from autograder.grade.hidden.resnet18 import OBSERVERS  # noqa: F401
