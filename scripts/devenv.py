"""Development environment helpers: virtualenvs, Odoo discovery, a throwaway PostgreSQL.

Standard library only: this runs on a fresh machine with nothing but Python 3.11
and the PostgreSQL binaries. Used by ``run_tests.py`` and ``demo.py``.
"""

import hashlib
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
LINT_VENV = ROOT / ".venv-lint"
ODOO_VENV = ROOT / ".venv-odoo"
PG_ROLE = "odoo"


def log(message):
    print(f"[smtp_routing] {message}", flush=True)


# -- virtualenvs --------------------------------------------------------------
def _python(venv):
    return venv / "bin" / "python"


def _stamp(parts):
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
    return digest.hexdigest()


def _ensure_venv(venv, stamp, install):
    stamp_file = venv / ".smtp_routing-stamp"
    if stamp_file.exists() and stamp_file.read_text() == stamp and _python(venv).exists():
        return _python(venv)
    log(f"preparing {venv.name} (first run, or requirements changed)...")
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(_python(venv)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + ["--upgrade", "pip"], check=True)
    install(pip)
    stamp_file.write_text(stamp)
    return _python(venv)


def ensure_test_venv():
    """The framework-free suite's venv: our runtime and test requirements."""
    files = [ROOT / "requirements.txt", ROOT / "requirements-test.txt"]
    stamp = _stamp([sys.version] + [f.read_bytes() for f in files])

    def install(pip):
        subprocess.run(pip + ["-r", str(files[0]), "-r", str(files[1])], check=True)

    return _ensure_venv(VENV, stamp, install)


def ensure_lint_venv():
    """pylint-odoo's venv: its own, so that its pins never rebuild .venv or .venv-odoo."""
    requirements = ROOT / "requirements-lint.txt"
    stamp = _stamp([sys.version, requirements.read_bytes()])

    def install(pip):
        subprocess.run(pip + ["-r", str(requirements)], check=True)

    return _ensure_venv(LINT_VENV, stamp, install)


def odoo_requirements(odoo_path):
    """Odoo's own requirements, adjusted for Python 3.11 on a PyPI-only machine.

    psycopg2 -> psycopg2-binary (no libpq headers needed); python-ldap dropped
    (auth_ldap is not used).
    """
    lines = []
    for line in (odoo_path / "requirements.txt").read_text().splitlines():
        name = re.split(r"[=<>;\s\[]", line.strip(), maxsplit=1)[0].lower()
        if name == "python-ldap":
            continue
        if name == "psycopg2":
            line = re.sub(r"^psycopg2", "psycopg2-binary", line.strip())
        lines.append(line)
    return "\n".join(lines) + "\n"


def ensure_odoo_venv(odoo_path):
    """A venv able to run the Odoo tree at ``odoo_path`` with smtp_routing."""
    requirements = odoo_requirements(odoo_path)
    ours = [ROOT / "requirements.txt", ROOT / "requirements-test.txt", ROOT / "requirements-odoo-test.txt"]
    stamp = _stamp([sys.version, str(odoo_path), requirements] + [f.read_bytes() for f in ours])

    def install(pip):
        # Some of Odoo 18's pinned sdists (cbor2, ...) still import pkg_resources
        # and read their version through setuptools_scm: build them with an old
        # setuptools and without build isolation.
        subprocess.run(pip + ["setuptools<70", "setuptools_scm<8", "wheel"], check=True)
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
            handle.write(requirements)
        try:
            subprocess.run(
                pip + ["--no-build-isolation", "-r", handle.name, *(arg for f in ours for arg in ("-r", str(f)))],
                check=True,
            )
        finally:
            os.unlink(handle.name)

    return _ensure_venv(ODOO_VENV, stamp, install)


# -- test reports ---------------------------------------------------------------
def junit_summary(label, report, returncode):
    """(line, ok) for a pytest run from its junit xml: "label: N passed, N failed[, N skipped]".

    Errors count as failed; a run without a report or without a single test is a failure.
    """
    if not Path(report).exists():
        return f"{label}: FAILED (pytest exited {returncode} without a report)", False
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    keys = ("tests", "failures", "errors", "skipped")
    total, failures, errors, skipped = (int(suite.get(key, 0)) for key in keys)
    if total == 0:
        return f"{label}: FAILED (no test ran)", False
    passed = total - failures - errors - skipped
    failed = failures + errors
    line = f"{label}: {passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else "")
    return line, returncode == 0 and failed == 0


# -- Odoo ---------------------------------------------------------------------
# What every Odoo test database gets: smtp_routing and Odoo's Outlook module (google_gmail installs itself with
# mail); the bridge modules smtp_routing_google_gmail and smtp_routing_microsoft_outlook then install themselves
# (auto_install), so the OAuth tests run against both providers.
ODOO_INSTALL = "smtp_routing,microsoft_outlook"
SHARED_ODOO = ROOT.parent / "shared" / "odoo-18.0"  # where CI (and this project's machines) keep Odoo 18.0


def find_odoo():
    """(path, None) for the Odoo 18 tree to use, else (None, reason).

    ``ODOO_PATH`` when set; otherwise ``../shared/odoo-18.0`` beside the checkout when it exists.
    """
    value = os.environ.get("ODOO_PATH", "").strip()
    if not value:
        if not SHARED_ODOO.exists():
            return None, f"no Odoo 18 found: set ODOO_PATH to an Odoo 18.0 source tree (none at {SHARED_ODOO})"
        value = str(SHARED_ODOO)
    path = Path(value).expanduser().resolve()
    release = path / "odoo" / "release.py"
    if not (path / "odoo-bin").exists() or not release.exists():
        return None, f"{value} is not an Odoo source tree (no odoo-bin / odoo/release.py)"
    match = re.search(r"^version_info\s*=\s*\((\d+),\s*(\d+)", release.read_text(), re.M)
    if not match or match.groups() != ("18", "0"):
        found = ".".join(match.groups()) if match else "unknown"
        return None, f"{value} is Odoo {found}, not 18.0"
    return path, None


def odoo_addons_path(odoo_path):
    return ",".join([str(odoo_path / "odoo" / "addons"), str(odoo_path / "addons"), str(ROOT)])


def write_odoo_config(workdir, odoo_path, cluster, **options):
    values = {
        "addons_path": odoo_addons_path(odoo_path),
        "db_host": cluster.socket_dir,
        "db_port": str(cluster.port),
        "db_user": PG_ROLE,
        "db_password": "False",
        "data_dir": str(Path(workdir) / "data"),
        "without_demo": "all",
        "smtp_server": "",
        "list_db": "False",
        **{key: str(value) for key, value in options.items()},
    }
    config = Path(workdir) / "odoo.conf"
    config.write_text("[options]\n" + "".join(f"{key} = {value}\n" for key, value in values.items()))
    return config


# -- PostgreSQL -----------------------------------------------------------------
class PgCluster:
    """A throwaway PostgreSQL cluster on a Unix socket in a temporary folder.

    ``initdb`` refuses to run as root: as root, the cluster runs as the
    ``postgres`` system user. The folder is removed on ``stop()``.
    """

    def __init__(self, port=5432, durable=False):
        self.port = port
        self.durable = durable  # fsync and synchronous commits on, as in production (benchmarks)
        self.workdir = tempfile.mkdtemp(prefix="smtp-routing-pg-")
        self.socket_dir = self.workdir
        self.datadir = os.path.join(self.workdir, "data")
        self.logfile = os.path.join(self.workdir, "postgres.log")
        self.run_as = None
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError as error:
                raise RuntimeError("running as root needs a 'postgres' system user for initdb") from error
            self.run_as = "postgres"
            os.chown(self.workdir, user.pw_uid, user.pw_gid)
        os.chmod(self.workdir, 0o755)

    def _run(self, argv, **kwargs):
        if self.run_as:
            argv = ["runuser", "-u", self.run_as, "--"] + argv
        return subprocess.run(argv, check=True, **kwargs)

    def start(self):
        for tool in ("initdb", "pg_ctl", "postgres"):
            if not shutil.which(tool):
                raise RuntimeError(f"PostgreSQL binary '{tool}' not found on PATH (install PostgreSQL 15)")
        self._run(
            ["initdb", "-D", self.datadir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
            stdout=subprocess.DEVNULL,
        )
        options = f"-k {self.socket_dir} -p {self.port} -c listen_addresses='' -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            ["pg_ctl", "-D", self.datadir, "-o", options, "-l", self.logfile, "-w", "-t", "60", "start"],
            stdout=subprocess.DEVNULL,
        )
        self.psql(f"CREATE ROLE {PG_ROLE} SUPERUSER LOGIN")
        return self

    def psql(self, sql, database="postgres", user="postgres"):
        return subprocess.run(
            [
                "psql",
                "-X",
                "-q",
                "-h",
                self.socket_dir,
                "-p",
                str(self.port),
                "-U",
                user,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-tA",
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def stop(self):
        try:
            if os.path.exists(os.path.join(self.datadir, "postmaster.pid")):
                self._run(
                    ["pg_ctl", "-D", self.datadir, "-m", "immediate", "-w", "stop"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
