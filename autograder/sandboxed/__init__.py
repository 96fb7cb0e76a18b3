"""What runs inside the sandbox, beside the student's code: bound into it, so public.

A notebook can read every file here and print it into its own feedback, so
nothing here decides a grade or knows a right answer:

* :mod:`.worker` -- the warm worker (the sandbox's pid 1): it forks a child
  per notebook, runs the notebook's cells and, at each graded cell, the
  parts' observers; it forwards what they record to the grader.
* :mod:`.protocol` -- the messages between grader, worker and notebook, and
  how each side checks what it reads (size, nesting, fields, UTF-8).
* ``observers/<assignment>.py`` -- the hidden parts' observers: what is
  observed of the student's objects, on challenges the grader sends only
  when the graded cell is reached, never what is expected.

The sandbox binds this package, the student runtime (:mod:`autograder.student`)
and ``autograder/__init__.py``, and nothing else of the course
(``course.SANDBOX_PACKAGE_PATHS``): the judges and references
(``autograder/grade/hidden/``), intake, recording and authoring never enter it.
"""
