"""The distribution version, sent as ``X-RunInfra-SDK-Version``."""

__version__ = "0.3.0"
