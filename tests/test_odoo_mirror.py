"""The sending engine mirrors Odoo functions: a change of their source in Odoo forces a review.

``smtp_routing/sending/run.py`` keeps, in ``ODOO_MIRRORS``, the sha256 of the source of each Odoo
function it mirrors. This test reads both files as text (no Odoo import), so it runs in the
framework-free suite; it skips, saying why, when no Odoo 18 tree is found (``ODOO_PATH``).
"""

import ast
import hashlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "smtp_routing" / "sending" / "run.py"
sys.path.insert(0, str(ROOT / "scripts"))
import devenv  # noqa: E402


def mirrors():
    """``ODOO_MIRRORS`` of run.py, read without importing it (it needs Odoo)."""
    tree = ast.parse(RUN.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ODOO_MIRRORS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("run.py has no ODOO_MIRRORS")


def source_hash(odoo_path, spec):
    """sha256 of ``path:Class.function``'s source lines (``def`` to its last line), or None if absent."""
    path, qualname = spec.split(":")
    class_name, function_name = qualname.split(".")
    source = (odoo_path / path).read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == function_name:
                    lines = source.splitlines()[item.lineno - 1 : item.end_lineno]
                    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return None


def test_the_docstring_names_every_mirrored_function():
    docstring = ast.get_docstring(ast.parse(RUN.read_text()))
    assert mirrors()
    for spec in mirrors():
        path, qualname = spec.split(":")
        assert path in docstring or Path(path).name in docstring, spec
        assert f"``{qualname}``" in docstring, f"run.py's docstring does not name {qualname}"


@pytest.mark.parametrize("spec", sorted(mirrors()))
def test_mirrored_odoo_function_is_unchanged(spec):
    odoo_path, reason = devenv.find_odoo()
    if odoo_path is None:
        pytest.skip(f"cannot compare with Odoo's source: {reason}")
    current = source_hash(odoo_path, spec)
    assert current is not None, f"{spec} is gone from Odoo: review smtp_routing/sending/run.py, which mirrors it"
    assert current == mirrors()[spec], (
        f"Odoo's {spec} changed (sha256 {current}). smtp_routing/sending/run.py mirrors it: review the run "
        f"against Odoo's new version, then update its hash in ODOO_MIRRORS."
    )


def test_a_changed_function_is_noticed(tmp_path):
    """The comparison sees a one-character change."""
    spec = next(iter(sorted(mirrors())))
    path, qualname = spec.split(":")
    odoo_path, reason = devenv.find_odoo()
    if odoo_path is None:
        pytest.skip(f"cannot compare with Odoo's source: {reason}")
    copy = tmp_path / path
    copy.parent.mkdir(parents=True)
    original = (odoo_path / path).read_text()
    function = qualname.split(".")[1]
    copy.write_text(original.replace(f"def {function}(", f"def {function}( ", 1))
    assert source_hash(tmp_path, spec) != mirrors()[spec]
