"""The errors a user can fix (see `indexer.errors`): the CLI prints these as one line, and only these."""

from indexer.errors import Busy, InvalidInput, MissingPath, NotAFolder, NotFound, TopicsError

__all__ = ["Busy", "InvalidInput", "MissingPath", "NotAFolder", "NotFound", "TopicsError"]
