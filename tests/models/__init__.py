"""Tiny model configs and builders shared by tests (import as ``models.tiny``; tests/ is on sys.path)."""
