"""What every drill shares at its two ends: its command line, and its report written, shown and turned into
the exit status that says whether it passed."""

import argparse
from pathlib import Path

from asl_serve.layout import MODEL_STORE, REPORTS


def drill_parser(module: str, doc: str | None, report: str) -> argparse.ArgumentParser:
    """`python -m MODULE`'s parser with the options every drill has: `--model-store` and `--report`."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-store", type=Path, default=MODEL_STORE, help="archives to serve")
    parser.add_argument("--report", type=Path, default=REPORTS / report)
    return parser


def verdict(problems: list[str]) -> str:
    """The report's last line."""
    return f"**{'PASS' if not problems else 'FAIL: ' + '; '.join(problems)}.**"


def publish(text: str, path: Path, problems: list | int = 0) -> int:
    """Write `text` to `path` (its folder made), print it and where it went; 0 without problems, else 1."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text + f"\nwritten to {path}")
    return 1 if problems else 0
