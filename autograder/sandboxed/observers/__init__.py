"""The hidden parts' observers, one module per assignment: ``OBSERVERS = {part: observe(obj, challenge)}``.

Bound into the sandbox and public: they record what the student's objects do
on the challenge the grader sends at the graded cell, never what is expected.
"""
