#!/usr/bin/env python3
"""The addon's Odoo tests (smtp_routing/tests) run by pytest-odoo instead of odoo-bin --test-tags.

A throwaway PostgreSQL cluster, smtp_routing installed into a fresh database by odoo-bin
(no tests), then pytest with the pytest-odoo plugin in .venv-odoo against that database.
Prints one line: "pytest-odoo: N passed, N failed[, N skipped]" (errors count as failed).

    ODOO_PATH=/path/to/odoo-18.0 python3 scripts/pytest_odoo.py [extra pytest arguments]

Extra arguments go to pytest (-k, --deselect, -x, -v, ...). Needs pytest-odoo 2.3.0 in .venv-odoo
(``.venv-odoo/bin/python -m pip install pytest-odoo==2.3.0`` until it is a requirement). pytest also
loads scripts/pytest_odoo_test_mode.py, which sets Odoo's test mode (no real SMTP) as odoo-bin does.
Standard library only, like the other scripts: run_tests.py can call ``run(odoo_path)`` -> (line, ok).
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import devenv  # noqa: E402

DB = "smtp_routing_pytest"
TESTS = devenv.ROOT / "smtp_routing" / "tests"
LABEL = "pytest-odoo"
VERSION_PROBE = "import importlib.metadata as m, pytest_odoo; print(m.version('pytest-odoo'))"


def pytest_env(odoo_path):
    return {
        **os.environ,
        # pytest-odoo imports odoo as it loads, and Odoo is a source tree, not a package in the venv.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(odoo_path), os.environ.get("PYTHONPATH")])),
        # Only the plugins named on the command line: nothing else installed in .venv-odoo joins in.
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }


def pytest_command(python, config, report, extra_args=()):
    """The pytest invocation (run from the repository root, where ``scripts.`` imports)."""
    return [
        str(python),
        "-m",
        "pytest",
        "-p",
        "pytest_odoo",
        "-p",
        "scripts.pytest_odoo_test_mode",  # Odoo's test mode (no real SMTP): pytest-odoo leaves it off on 18
        f"--odoo-config={config}",
        f"--odoo-database={DB}",
        "--odoo-log-level=warn",
        "--odoo-http",  # without it pytest-odoo skips every HttpCase (the browser tour)
        str(TESTS),
        f"--junitxml={report}",
        "-p",
        "no:cacheprovider",
        *extra_args,
    ]


def _install(python, odoo_path, config, workdir):
    """smtp_routing into a fresh database, as an admin would: odoo-bin -i, no tests."""
    argv = [str(python), str(odoo_path / "odoo-bin"), "-c", str(config), "-d", DB]
    argv += ["-i", devenv.ODOO_INSTALL]  # the bridge modules install themselves
    argv += ["--stop-after-init", "--log-level=warn"]
    result = subprocess.run(argv, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        print(result.stdout)
    return result.returncode == 0


def run(odoo_path, extra_args=()):
    """Install smtp_routing in a throwaway cluster and run its tests with pytest-odoo; return (line, ok)."""
    python = devenv.ensure_odoo_venv(odoo_path)
    env = pytest_env(odoo_path)
    probe = subprocess.run([str(python), "-c", VERSION_PROBE], env=env, capture_output=True, text=True, cwd=devenv.ROOT)
    if probe.returncode != 0:
        reason = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "import failed"
        return f"{LABEL}: FAILED (pytest-odoo is not usable in .venv-odoo: {reason})", False
    with devenv.PgCluster() as cluster, tempfile.TemporaryDirectory() as workdir:
        config = devenv.write_odoo_config(
            workdir, odoo_path, cluster, http_interface="127.0.0.1", http_port=devenv.free_port()
        )
        devenv.log(f"{LABEL} {probe.stdout.strip()}: fresh database {DB}, installing smtp_routing (no tests)")
        started = time.monotonic()
        if not _install(python, odoo_path, config, workdir):
            return f"{LABEL}: FAILED (odoo-bin -i smtp_routing failed: see the log above)", False
        installed = time.monotonic()
        report = Path(workdir) / "junit.xml"
        command = pytest_command(python, config, report, extra_args)
        devenv.log(f"{LABEL}: {' '.join(command[1:])}")
        result = subprocess.run(command, cwd=devenv.ROOT, env=env)
        devenv.log(f"{LABEL}: install {installed - started:.0f}s, pytest {time.monotonic() - installed:.0f}s")
        return devenv.junit_summary(LABEL, report, result.returncode)


def main(argv=None):
    odoo_path, reason = devenv.find_odoo()
    if odoo_path is None:
        print(f"{LABEL}: SKIPPED ({reason})")
        return 2
    line, ok = run(odoo_path, sys.argv[1:] if argv is None else argv)
    print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
