"""The one console a run's progress messages go to (stderr, so stdout stays for results)."""

from rich.console import Console

console = Console(stderr=True)
