"""Running untrusted submissions: a warm worker in a sandbox forks one child per notebook.

See ``pool.py`` for the grader's side and ``worker.py`` for what runs inside
the sandbox. What each mechanism guarantees is written next to it and in
the README's "Grading you can trust" section.
"""
