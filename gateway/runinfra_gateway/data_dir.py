"""The gateway's data directory: made on first use, and kept out of version control."""

from __future__ import annotations

from pathlib import Path

__all__ = ["make_data_dir"]

# A data directory holds the store, the ledger journal and the webhook master key. Made inside a checkout (the
# default is ./runinfra-data), it must not be committed with the code, so a directory the gateway creates carries a
# .gitignore that ignores all of it, as virtual environments and pytest's cache do.
_GITIGNORE = "# Made by the runinfra gateway: its store and keys do not belong in version control.\n*\n"


def make_data_dir(path: Path) -> None:
    """Create ``path`` if missing; a directory created here gets a ``.gitignore`` of ``*``.

    A directory that already exists is left as it is: the user chose it and owns its contents.
    """
    if path.is_dir():
        return
    path.mkdir(parents=True, exist_ok=True)
    (path / ".gitignore").write_text(_GITIGNORE, encoding="utf-8")
