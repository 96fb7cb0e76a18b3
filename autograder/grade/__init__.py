"""The instructor's grader: never published, never imported by a student notebook."""
