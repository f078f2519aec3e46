"""Helpers every layer shares, and nothing else: the error hierarchy
(``errors``), daemon logging (``logging``), lazy imports (``lazy``) and the
bearer tokens of orch's TCP APIs (``auth``).

Invariant: imports nothing of orch's above it (checked by import-linter,
see pyproject.toml), and costs little to import: heavier modules (grpc,
structlog) load inside the functions that need them.
"""
