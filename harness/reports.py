"""The end of every drill: its report written, shown, and the exit status that says whether it passed."""

from pathlib import Path


def publish(text: str, path: Path, problems: list | int = 0) -> int:
    """Write `text` to `path` (its folder made), print it and where it went; 0 without problems, else 1."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text + f"\nwritten to {path}")
    return 1 if problems else 0
