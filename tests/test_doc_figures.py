"""The measured figures that the README and docs quote are in the reports they cite, so they cannot drift.

A figure is a number with a unit of measurement (%, ms, req/s, images/s, frames/s, x, times); both ends of
a range count. Each must be found, as written or rounded, in a report that its paragraph or its section
links (`reports/...`), or be the ratio of two figures on its own line (a table row's ratio column). Targets
and limits (after `≥`, `≤`, `<`, `>`, "target", "at least" or "than") are not measurements, nor are commands and
examples in fenced blocks. A section that quotes past runs, whose reports were replaced, says so with the
marker `<!-- figures: past runs -->` and is not checked.
"""

import re
from pathlib import Path

import pytest

from asl_serve.layout import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "model" / "MODEL_CARD.md"]
UNIT = r"(%|ms\b|\N{MULTIPLICATION SIGN}|x\b|times\b|req/s|requests/s|images/s|frames/s)"
VALUE = r"\d+(?:,\d{3})*(?:\.\d+)?"
RANGE = r"(?:\s?[-\u2013]\s?(" + VALUE + "))?"  # 48-71 times, 97-100%
NOT_A_BOUND = r"(?<![\w.≥≤<>])(?<!target )(?<!least )(?<!than )(?<!≥ )(?<!≤ )(?<!< )(?<!> )"
FIGURE = re.compile(NOT_A_BOUND + "(" + VALUE + ")" + RANGE + r"\s?" + UNIT)
REPORT_LINK = re.compile(r"(reports/[\w./-]+\.(?:md|json))")
NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
PAST_RUNS = "<!-- figures: past runs -->"
FENCED = re.compile(r"^```.*?^```", re.S | re.M)


def report_numbers(links: set[str]) -> set[float]:
    """Every number in the linked reports, and each as a percentage (0.9269 is quoted as 92.69%)."""
    numbers = set()
    for link in links:
        path = REPO / link
        assert path.exists(), f"{link} is cited but missing"
        for text in NUMBER.findall(path.read_text()):
            value = float(text.replace(",", ""))
            numbers |= {value, value * 100}
    return numbers


def quoted(value: str, numbers: set[float]) -> bool:
    """True if some report number is `value` as written, or rounded to its decimals."""
    decimals = len(value.split(".")[1]) if "." in value else 0
    figure = float(value.replace(",", ""))
    return any(abs(number - figure) <= 0.5 * 10**-decimals + 1e-9 for number in numbers)


def ratio_of_neighbours(value: str, line: str) -> bool:
    """True if the percentage `value` is a/b of two other figures on its line."""
    others = [float(v.replace(",", "")) for match in FIGURE.findall(line) for v in match[:2] if v and v != value]
    return any(b and quoted(value, {100 * a / b}) for a in others for b in others)


def unquoted_figures(doc: Path) -> list[str]:
    problems = []
    text = FENCED.sub("", doc.read_text())  # commands and examples, not quotations
    for section in re.split(r"\n(?=#+ )", text):
        if PAST_RUNS in section:
            continue
        section_links = set(REPORT_LINK.findall(section))
        for paragraph in re.split(r"\n\s*\n", section):
            links = set(REPORT_LINK.findall(paragraph)) | section_links
            if not links:
                continue
            numbers = report_numbers(links)
            for line in paragraph.splitlines():
                for *values, unit in FIGURE.findall(line):
                    for value in filter(None, values):
                        if not quoted(value, numbers) and not (unit == "%" and ratio_of_neighbours(value, line)):
                            problems.append(f"{doc.name}, {section.splitlines()[0][:50]!r}: {value} {unit} is "
                                            f"in none of {sorted(links)}")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=[doc.name for doc in DOCS])
def test_quoted_figures_are_in_the_reports_they_cite(doc):
    assert unquoted_figures(doc) == []


def test_the_check_catches_a_drifted_figure(tmp_path, monkeypatch):
    """The README's explanation cost, once written as 35-50 times where its report says 48-71x."""
    drifted = tmp_path / "drifted.md"
    drifted.write_text("# Cost\n\nAn explanation costs 50 times a prediction "
                       "([reports/explain_cost.md](reports/explain_cost.md)).\n")
    assert len(unquoted_figures(drifted)) == 1
    drifted.write_text("# Cost\n\nAn explanation costs 62 times a prediction "
                       "([reports/explain_cost.md](reports/explain_cost.md)).\n")
    assert unquoted_figures(drifted) == []
