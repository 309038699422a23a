"""``RUNINFRA_LOG=debug|info``: request lines through ``logging``, never headers or bodies.

``logging`` is imported only when logging is wanted (it costs startup time otherwise):
when ``RUNINFRA_LOG`` is set, or when the application already configured the
``runinfra`` logger.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing is not imported at run time: it costs more startup than the whole SDK
if TYPE_CHECKING:
    from typing import Any, Optional


__all__ = ["LOGGER_NAME", "client_logger"]

LOGGER_NAME = "runinfra"
_configured = False


def client_logger() -> Optional[Any]:
    """The ``runinfra`` logger when it would emit at INFO or below, else None (the fast path)."""
    global _configured
    level_name = os.environ.get("RUNINFRA_LOG", "").strip().lower()
    if level_name in ("debug", "info"):
        import logging

        logger = logging.getLogger(LOGGER_NAME)
        if not _configured:
            _configured = True
            logger.setLevel(logging.DEBUG if level_name == "debug" else logging.INFO)
            if not logger.handlers and not logging.getLogger().handlers:
                handler = logging.StreamHandler()
                handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
                logger.addHandler(handler)
        return logger
    logging_module = sys.modules.get("logging")
    if logging_module is not None:
        logger = logging_module.getLogger(LOGGER_NAME)
        if logger.isEnabledFor(logging_module.INFO):
            return logger
    return None
