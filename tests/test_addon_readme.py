"""OCA habits: each addon's readme/ fragments, the README.md generated from them, and the lint line."""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import addon_readme  # noqa: E402
import run_tests  # noqa: E402

REQUIRED = {
    "smtp_routing": ("DESCRIPTION.md", "CONFIGURE.md", "USAGE.md", "CONTRIBUTORS.md", "ROADMAP.md"),
    "smtp_routing_google_gmail": ("DESCRIPTION.md", "CONFIGURE.md"),
    "smtp_routing_microsoft_outlook": ("DESCRIPTION.md", "CONFIGURE.md"),
}
FRAGMENTS = [(addon, name) for addon, names in REQUIRED.items() for name in names]
HEADING = re.compile(r"^(#{1,6})(\s*)(.*)$")
LINK = re.compile(r"\[([^\]]*)\]\(([^)]*)\)")


def markdown_problems(text, base):
    """What is wrong with a fragment as Markdown: headings, links (relative ones resolved from ``base``), code.

    >>> markdown_problems("Text with a [link](https://example.com) and `code`.", Path("."))
    []
    """
    problems, level, fenced, paragraph_start, ticks = [], 1, False, 1, 0
    lines = text.splitlines()
    for number, line in enumerate(lines + [""], start=1):
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        if not line.strip():
            if ticks % 2:
                problems.append(f"paragraph at line {paragraph_start}: unbalanced `")
            ticks, paragraph_start = 0, number + 1
            continue
        ticks += line.count("`")
        heading = HEADING.match(line)
        if heading:
            hashes, space, title = heading.groups()
            if not space or not title.strip():
                problems.append(f'line {number}: "{line}" is not a heading (a space must follow the #)')
            elif len(hashes) == 1:
                problems.append(f"line {number}: no level-1 heading in a fragment (the generated README has the title)")
            elif len(hashes) > level + 1:
                problems.append(f"line {number}: heading level {len(hashes)} follows level {level - 1}")
            else:
                level = len(hashes)
        for label, target in LINK.findall(line):
            if not label.strip():
                problems.append(f"line {number}: link with no text: [{label}]({target})")
            if not target.strip():
                problems.append(f"line {number}: link with no target: [{label}]({target})")
            elif " " in target.strip():
                problems.append(f"line {number}: link target with a space: {target}")
            elif not re.match(r"^[a-z]+:|^#", target) and not (base / target.split("#")[0]).exists():
                problems.append(f"line {number}: link to a missing file: {target}")
    if fenced:
        problems.append("a ``` code block is never closed")
    return problems


def test_the_markdown_check_catches_broken_fragments():
    problems = markdown_problems("#Title\n\n# Title\n\n### Skipped\n\n[](x) [x]() [y](nowhere.md) `open", ROOT)
    assert problems == [
        'line 1: "#Title" is not a heading (a space must follow the #)',
        "line 3: no level-1 heading in a fragment (the generated README has the title)",
        "line 5: heading level 3 follows level 0",
        "line 7: link with no text: [](x)",
        "line 7: link to a missing file: x",
        "line 7: link with no target: [x]()",
        "line 7: link to a missing file: nowhere.md",
        "paragraph at line 7: unbalanced `",
    ]
    assert markdown_problems("## Part\n\n### Detail\n\n[README](README.md)\n\n```\n# not a heading\n```", ROOT) == []


@pytest.mark.parametrize(("addon", "name"), FRAGMENTS)
def test_fragment_exists_and_is_valid_markdown(addon, name):
    path = ROOT / addon / "readme" / name
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    text = path.read_text()
    assert len(text.split()) >= 20, f"{path.relative_to(ROOT)} says almost nothing"
    # links are relative to the addon directory, where the README generated from the fragment lives
    assert markdown_problems(text, ROOT / addon) == []


def test_roadmap_states_the_known_limits():
    roadmap = (ROOT / "smtp_routing" / "readme" / "ROADMAP.md").read_text()
    for limit in ("SIGKILL", "per worker", "Connections", "Spanish only"):
        assert limit in roadmap, limit


@pytest.mark.parametrize("addon", REQUIRED)
def test_addon_readme_is_generated_from_its_fragments(addon):
    for path, text in addon_readme.outputs(ROOT / addon).items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is out of date: run `make readme`"
    readme = ROOT / addon / "README.md"
    for name in REQUIRED[addon]:
        assert (ROOT / addon / "readme" / name).read_text().strip() in readme.read_text()


def test_apps_page_is_html_not_markdown_read_as_rst():
    """Odoo's Apps screen reads index.html first; without it, it would parse the Markdown README as RST."""
    page = (ROOT / "smtp_routing" / "static" / "description" / "index.html").read_text()
    assert page.startswith("<h1>SMTP Routing</h1>")
    assert "<h2>Known issues / Roadmap</h2>" in page
    assert "**" not in page and "](" not in page, "Markdown left unconverted"


def test_repository_readme_points_to_the_fragments():
    readme = (ROOT / "README.md").read_text()
    assert "readme/" in readme
    assert "make readme" in readme


def test_lint_line_names_both_tools():
    assert run_tests.lint_summary([("ruff", True), ("pylint-odoo", True)]) == (
        "lint: ruff passed, pylint-odoo passed",
        True,
    )
    assert run_tests.lint_summary([("ruff", True), ("pylint-odoo", False)])[1] is False
    assert run_tests.PYLINT_TARGETS == tuple(REQUIRED)


def test_pylintrc_enables_the_oca_checks_the_task_names():
    config = (ROOT / ".pylintrc").read_text()
    assert "load-plugins=pylint_odoo" in config
    assert "disable=all" in config
    for check in ("invalid-commit", "sql-injection", "missing-readme", "manifest-required-author", "except-pass"):
        assert re.search(rf"^\s+{check},?$", config, re.M), check


def test_generator_doctests():
    import doctest

    assert doctest.testmod(addon_readme).failed == 0
    assert doctest.testmod(run_tests).failed == 0
