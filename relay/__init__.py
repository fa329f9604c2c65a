"""zaia-relay: watches Zaia executions and turns their transitions into alerts."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("zaia-relay")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
