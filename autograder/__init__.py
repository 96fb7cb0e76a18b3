"""Shared code of the ResNet course: checks called by the notebooks' test
cells, data loading, and the commands that build and grade the course."""
