"""The ResNet course's package, split by who runs each part.

* :mod:`autograder.student` -- the student runtime: what a release notebook
  imports on Colab or in local Jupyter (Colab setup, NumPy 2 shims, data
  loading, the visible checks, the self-check). It is published on its own
  in the student edition, so it imports no nbgrader and holds no solution
  and no hidden check.
* :mod:`autograder.grade` -- the instructor's grader: intake, the sandbox,
  the hidden checks' judges and references, recording with nbgrader.
* :mod:`autograder.assign` -- the authoring tools: build the release and
  self-study notebooks, the boilerplate cells, the demo, publishing.
"""
