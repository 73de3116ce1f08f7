"""The addon's shape: a valid manifest, and a core that never needs Odoo."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ADDON = ROOT / "smtp_routing"
sys.path.insert(0, str(ROOT / "scripts"))
import devenv  # noqa: E402
import run_tests  # noqa: E402


def _manifest():
    return ast.literal_eval((ADDON / "__manifest__.py").read_text())


def test_manifest_is_odoo_18_and_complete():
    manifest = _manifest()
    assert manifest["version"].startswith("18.0.")
    assert manifest["depends"] == ["mail"]
    assert manifest["license"] == "LGPL-3"
    assert manifest["installable"] is True
    assert "description" not in manifest  # deprecated key (OCA)
    for key in ("name", "summary", "author", "website", "category"):
        assert manifest[key], key


def test_manifest_data_files_exist():
    for relative in _manifest().get("data", []):
        assert (ADDON / relative).is_file(), relative


def test_external_dependencies_match_requirements():
    declared = set(_manifest()["external_dependencies"]["python"])
    required = {
        line.split(">")[0].split("=")[0].split("<")[0].strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert declared == required


def test_core_and_fixtures_import_without_odoo():
    code = (
        "import sys, smtp_routing, smtp_routing.tools, smtp_routing.tools.pipelining, smtp_routing.testing.smtpd, "
        "smtp_routing.testing.tlscert, smtp_routing.testing.latency, smtp_routing.testing.oauth; "
        "leaked = sorted(m for m in sys.modules if m == 'odoo' or m.startswith('odoo.')); "
        "print(leaked); sys.exit(1 if leaked else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_odoo_requirements_are_adjusted_for_this_machine(tmp_path):
    (tmp_path / "requirements.txt").write_text(
        "psycopg2==2.9.5 ; python_version == '3.11'\npython-ldap==3.4.0 ; sys_platform != 'win32'\nlxml==4.9.3\n"
    )
    adjusted = devenv.odoo_requirements(tmp_path)
    assert "psycopg2-binary==2.9.5 ; python_version == '3.11'" in adjusted
    assert "python-ldap" not in adjusted
    assert "lxml==4.9.3" in adjusted


@pytest.mark.parametrize(
    ("files", "reason_part"),
    [
        ({}, "not an Odoo source tree"),
        ({"odoo-bin": "", "odoo/release.py": "version_info = (17, 0, 0, FINAL, 0, '')\n"}, "Odoo 17.0, not 18.0"),
    ],
)
def test_find_odoo_rejects_what_is_not_odoo_18(tmp_path, monkeypatch, files, reason_part):
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    monkeypatch.setenv("ODOO_PATH", str(tmp_path))
    path, reason = devenv.find_odoo()
    assert path is None
    assert reason_part in reason


def _fake_odoo_18(folder):
    (folder / "odoo").mkdir(parents=True)
    (folder / "odoo-bin").write_text("")
    (folder / "odoo" / "release.py").write_text("version_info = (18, 0, 0, FINAL, 0, '')\n")
    return folder


def test_find_odoo_accepts_odoo_18(tmp_path, monkeypatch):
    _fake_odoo_18(tmp_path)
    monkeypatch.setenv("ODOO_PATH", str(tmp_path))
    assert devenv.find_odoo() == (tmp_path.resolve(), None)


def test_find_odoo_without_odoo_path_takes_the_shared_tree(tmp_path, monkeypatch):
    shared = _fake_odoo_18(tmp_path / "shared" / "odoo-18.0")
    monkeypatch.delenv("ODOO_PATH", raising=False)
    monkeypatch.setattr(devenv, "SHARED_ODOO", shared)
    assert devenv.find_odoo() == (shared.resolve(), None)


def test_odoo_path_wins_over_the_shared_tree(tmp_path, monkeypatch):
    shared = _fake_odoo_18(tmp_path / "shared" / "odoo-18.0")
    mine = _fake_odoo_18(tmp_path / "mine")
    monkeypatch.setenv("ODOO_PATH", str(mine))
    monkeypatch.setattr(devenv, "SHARED_ODOO", shared)
    assert devenv.find_odoo() == (mine.resolve(), None)


def test_find_odoo_without_any_odoo_says_what_to_set(tmp_path, monkeypatch):
    monkeypatch.delenv("ODOO_PATH", raising=False)
    monkeypatch.setattr(devenv, "SHARED_ODOO", tmp_path / "shared" / "odoo-18.0")
    path, reason = devenv.find_odoo()
    assert path is None and "set ODOO_PATH" in reason


def test_a_missing_odoo_skips_for_a_user_and_fails_when_required():
    lines = run_tests.odoo_unavailable("no Odoo 18 found", required=False)
    assert all(ok for _line, ok in lines)
    assert [line.split(":")[0] for line, _ok in lines] == list(run_tests.ODOO_SUITES)
    assert all("SKIPPED" in line and "passed" not in line for line, _ok in lines)
    lines = run_tests.odoo_unavailable("no Odoo 18 found", required=True)
    assert not lines[0][1] and "FAILED" in lines[0][0] and "could not run" in lines[0][0]
    assert "SMTP_ROUTING_REQUIRE_ODOO" in lines[0][0]


# -- models/: one model per file, and ir_mail_server.py kept to fields, validation and Odoo's hooks -----------
MODELS = ADDON / "models"
# ir_mail_server.py keeps the server's fields, validation, Odoo's hooks (CRUD, onchanges, buttons) and the send
# path Odoo calls (connect, _smtp_login, _prepare_email_message, send_email); everything else lives with the model
# it is about (secrets and OAuth mixins, server state, delivery log, DNS check, DKIM key). 1,073 lines when this
# limit was set (from 1,718): a ratchet, lower it when more leaves (the send path is about 210 of those lines).
IR_MAIL_SERVER_MAX_LINES = 1100
# models/ files that are not models: helpers the models share, each saying so in its docstring.
HELPER_MODULES = {"access.py", "oauth.py", "params.py", "send_as_trust.py"}


def _model_classes(path):
    """[(class name, model name)] of the top-level classes of ``path`` that set _name or _inherit."""
    found = []
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.ClassDef):
            continue
        attributes = {
            target.id: statement.value
            for statement in node.body
            if isinstance(statement, ast.Assign)
            for target in statement.targets
            if isinstance(target, ast.Name)
        }
        if "_name" in attributes or "_inherit" in attributes:
            name = ast.literal_eval(attributes.get("_name") or attributes["_inherit"])
            found.append((node.name, name if isinstance(name, str) else name[0]))
    return found


def test_ir_mail_server_py_does_not_grow_back():
    lines = len((MODELS / "ir_mail_server.py").read_text().splitlines())
    assert lines <= IR_MAIL_SERVER_MAX_LINES, (
        f"models/ir_mail_server.py has {lines} lines (at most {IR_MAIL_SERVER_MAX_LINES}): put what is not the "
        "server's fields, validation or Odoo's hooks with the model it is about"
    )


def test_each_models_file_holds_one_model_and_each_model_one_file():
    homes = {}
    for path in sorted(MODELS.glob("*.py")):
        if path.name == "__init__.py" or path.name in HELPER_MODULES:
            continue
        classes = _model_classes(path)
        assert len(classes) == 1, f"models/{path.name} defines {[c for c, _m in classes]}: one model per file"
        model = classes[0][1]
        assert model not in homes, f"{model} is defined in both models/{homes[model]} and models/{path.name}"
        homes[model] = path.name


def test_models_helper_modules_are_declared_and_hold_no_model():
    for name in HELPER_MODULES:
        path = MODELS / name
        assert not _model_classes(path), f"models/{name} is listed as a helper but defines a model"
        assert "Not a model" in (ast.get_docstring(ast.parse(path.read_text())) or ""), name


def test_the_layout_checks_see_models_and_several_classes(tmp_path):
    """The checks above read the files as they are written (a list _inherit, several classes)."""
    source = (
        'class A(models.Model):\n    _name = "a.b"\n    _inherit = ["a.b", "x.mixin"]\n'
        'class B(models.Model):\n    _inherit = "c.d"\n'
        "class Plain:\n    pass\n"
    )
    path = tmp_path / "sample.py"
    path.write_text(source)
    assert _model_classes(path) == [("A", "a.b"), ("B", "c.d")]
