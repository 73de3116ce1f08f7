"""The Spanish translation is complete and keeps every placeholder and tag of the template.

The template (smtp_routing.pot) is exported by Odoo itself (`make pot`); the Odoo suite checks
that it is up to date with the code. Here, without Odoo, every entry of it must have a Spanish
translation that a formatter will not choke on.
"""

import ast
import re
from pathlib import Path

import pytest

I18N = Path(__file__).resolve().parent.parent / "smtp_routing" / "i18n"
PLACEHOLDER = re.compile(r"%\([A-Za-z_]+\)[sdr]|%[sdr]|\{[A-Za-z_]*\}")
TAG = re.compile(r"</?([A-Za-z][\w-]*)")


def read_po(path):
    """{msgid: msgstr} from a PO file (the subset of the format Odoo writes)."""
    entries, current, field = {}, {}, None

    def flush():
        if "msgid" in current and current["msgid"]:
            entries[current["msgid"]] = current.get("msgstr", "")

    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            if not line and current:
                flush()
                current, field = {}, None
            continue
        match = re.match(r'^(msgid|msgstr)\s+(".*")$', line)
        if match:
            if match.group(1) == "msgid" and "msgid" in current:
                flush()
                current = {}
            field = match.group(1)
            current[field] = ast.literal_eval(match.group(2))
        elif line.startswith('"') and field:
            current[field] += ast.literal_eval(line)
        else:
            raise AssertionError(f"{path.name}: unexpected line {line!r}")
    flush()
    return entries


TEMPLATE = read_po(I18N / "smtp_routing.pot")
SPANISH = read_po(I18N / "es.po")


def test_the_template_is_not_empty():
    assert len(TEMPLATE) > 400, "smtp_routing.pot lost its entries: regenerate it with make pot"
    assert all(value == "" for value in TEMPLATE.values()), "a template has no translations"


def test_every_entry_has_a_spanish_translation():
    missing = sorted(msgid for msgid in TEMPLATE if not SPANISH.get(msgid, "").strip())
    assert not missing, f"{len(missing)} entries without Spanish, e.g. {missing[:5]}"


def test_no_stale_spanish_entries():
    stale = sorted(set(SPANISH) - set(TEMPLATE))
    assert not stale, f"es.po translates strings the code no longer has: {stale[:5]}"


def test_placeholders_tags_and_lines_are_kept():
    broken = []
    for msgid in sorted(TEMPLATE):
        translation = SPANISH.get(msgid, "")
        if (
            sorted(PLACEHOLDER.findall(msgid)) != sorted(PLACEHOLDER.findall(translation))
            or sorted(TAG.findall(msgid)) != sorted(TAG.findall(translation))
            or msgid.count("\n") != translation.count("\n")
            or msgid.startswith(" ") != translation.startswith(" ")
        ):
            broken.append(msgid)
    assert not broken, f"{len(broken)} translations lose a placeholder, tag or line: {broken[:5]}"


def test_the_checks_catch_a_lost_placeholder():
    assert sorted(PLACEHOLDER.findall("Sent via %(server)s")) != sorted(PLACEHOLDER.findall("Enviado vía %(servidor)s"))
    assert sorted(TAG.findall("<b>x</b>")) != sorted(TAG.findall("x"))


def test_the_parser_reads_what_it_checks(tmp_path):
    po = tmp_path / "x.po"
    po.write_text('msgid ""\nmsgstr ""\n"X: y\\n"\n\nmsgid "a %(n)s"\nmsgstr ""\n"b %(n)s"\n\nmsgid "c"\nmsgstr ""\n')
    assert read_po(po) == {"a %(n)s": "b %(n)s", "c": ""}


@pytest.mark.parametrize("module", ["smtp_routing_google_gmail", "smtp_routing_microsoft_outlook"])
def test_bridge_modules_are_translated_too(module):
    folder = I18N.parent.parent / module / "i18n"
    template, spanish = read_po(folder / f"{module}.pot"), read_po(folder / "es.po")
    assert template, f"{module}.pot is empty: export it with Odoo (--i18n-export --modules={module})"
    missing = sorted(msgid for msgid in template if not spanish.get(msgid, "").strip())
    assert not missing, f"{module}: {len(missing)} entries without Spanish, e.g. {missing[:5]}"
    for msgid in template:
        assert sorted(PLACEHOLDER.findall(msgid)) == sorted(PLACEHOLDER.findall(spanish[msgid])), msgid
