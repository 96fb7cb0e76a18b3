"""The hidden checks, one module per assignment (``hidden.<part>(obj)`` in the hidden-test cells)."""
