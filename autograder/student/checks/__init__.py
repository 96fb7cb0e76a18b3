"""The visible checks, one module per assignment (``check.<part>(obj)`` in the notebooks)."""
