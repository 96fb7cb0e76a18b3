"""Authoring: build what is derived from ``source/``, run the demo, publish the editions."""
