"""The root of every error a user can fix, and its generic kinds.

`TopicsError` is what the command line prints as one line (exit 1): a bad argument or file, a thing
that does not exist yet, a refused store, a missing model. The reason-coded errors (`StoreError` and
its kinds, `ModelUnavailable`, `ManifestError`, `ReclusterError`, ...) derive from it. Anything else
that escapes a command is a bug and shows its traceback. Each kind keeps the built-in base it had
(`InvalidInput` is a `ValueError`, `NotFound` a `LookupError`), so callers that catch those still do.

It lives in `indexer` because both packages raise it; `topics.errors` re-exports it.
"""

from __future__ import annotations


class TopicsError(Exception):
    """Something the user can fix; its message says what and how."""


class InvalidInput(TopicsError, ValueError):
    """An argument, option or input file that cannot be used as given."""


class NotFound(TopicsError, LookupError):
    """What the command names does not exist (yet): a topic id, a theme, any topics at all."""


class MissingPath(TopicsError, FileNotFoundError):
    """A file or folder the user named is not there."""


class NotAFolder(TopicsError, NotADirectoryError):
    """A path the user gave as a folder is something else."""


class Busy(TopicsError, RuntimeError):
    """The store changed under the command, or another process holds what it needs: try again."""
