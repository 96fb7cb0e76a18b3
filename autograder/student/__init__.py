"""The student runtime: everything a release notebook imports.

Published as the student edition's package (see ``autograder.assign.publish``):
nothing here may import nbgrader or the rest of :mod:`autograder`, and
nothing here may hold a solution or a hidden check.
"""
