"""RunInfra: a sync, zero-dependency client for RunInfra inference gateways."""

__version__ = "0.3.0"

__all__ = ["__version__"]
