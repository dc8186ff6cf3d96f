"""How an apply fails: a code the caller can act on and the words for the revision."""

from __future__ import annotations

# Codes of failures that a retry may cure (a server down, a reload that did not take).
TRANSIENT_ERRORS = frozenset({"server_down", "reload"})


class ApplyFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
