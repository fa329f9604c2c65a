"""The command line: `zaia-relay run|once|demo|check-config|test-sink|deliveries|silences|routes`.

Commands parse their arguments and call `relay.app`; `main` is the console script.
"""

from relay.cli.main import main

__all__ = ["main"]
