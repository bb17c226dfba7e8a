"""Errors for bad input: each names the file, the document, the field and the fix.

The CLI turns :class:`InputError` into one message and exit code 2; nothing prints a traceback
for bad input. Field paths read like ``flows[2].to`` or ``workspaces[0].projects[1].whitelist[0].peer``.
"""

from __future__ import annotations


class InputError(Exception):
    """Bad user input (scenario, config, CLI flag): exit code 2."""

    def __init__(self, message: str, *, file: str | None = None, document: int | None = None,
                 name: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.document = document
        self.name = name
        self.field = field

    def __str__(self) -> str:
        parts: list[str] = []
        if self.file is not None:
            parts.append(self.file)
        if self.document is not None:
            doc = f"document {self.document}"
            if self.name:
                doc += f" ({self.name})"
            parts.append(doc)
        if self.field:
            parts.append(self.field)
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class ScenarioError(InputError):
    """A scenario file that does not follow the contract of docs/scenarios.md."""
