#!/usr/bin/env python3
"""`make test`: lint, the framework-free suite, then the Odoo suite when Odoo 18 is found.

Prints one summary line per suite and exits non-zero on any failure. A suite that
did not run says SKIPPED, never "passed". `run_tests.py lint` (`make lint`) runs only the
lint step: ruff and pylint-odoo (OCA's mandatory checks, .pylintrc).

Environment:
  ODOO_PATH            an Odoo 18.0 source tree (default: ../shared/odoo-18.0 beside the checkout, when it
                       exists); without one the Odoo suites are skipped
  SMTP_ROUTING_REQUIRE_ODOO=1  a missing Odoo fails the run instead of skipping (set by .ci/run only)
  SMTP_ROUTING_ODOO_TAGS   --test-tags for the Odoo suite (default: /smtp_routing)
  PYTEST_ADDOPTS       extra pytest options for the framework-free suite
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import devenv  # noqa: E402
import lifecycle_check  # noqa: E402
import pytest_odoo  # noqa: E402
import queue_checks  # noqa: E402

# Odoo's own tests of what smtp_routing hooks into, run with smtp_routing installed and nothing configured
# ("core behaviour survives"): the mail-server and mail.mail classes, test_mail's composer, template, thread,
# post and resend-flow tests, and mass_mailing's sending tests. Left out, on purpose:
# - base TestIrMailServerSMTPD: it resolves "localhost" over IPv6, which this CI machine cannot;
# - test_mail_mail_send_configuration: counts calls of stock mail.mail._send(), which smtp_routing's
#   batched sending loop replaces;
# - test_mail_mail_send_exceptions_raise_management: expects a connection failure (refused, DNS, time-out)
#   to fail the mail (stock); smtp_routing fails over to the next server and otherwise defers the mail (README,
#   differences from stock Odoo);
# - mass_mailing's TestMassMailValues: computed values, not sending (its test_mailing_body_inline_image fails
#   on this machine without smtp_routing too, and test_mailing_computed_fields_default_email_from creates a
#   server whose host is "not_real@smtp.com", which smtp_routing refuses as a host name by design).
# Bounces: Odoo's mail gateway and bounce tests, and smtp_routing's own tests of mass_mailing's automatic
# blacklist (tag smtp_routing_mass_mailing: they need mass_mailing, installed in this pass only).
CORE_TAGS = ",".join(
    [
        "/base:TestIrMailServer",
        "/mail:TestIrMailServer",
        "/mail:TestMailServer",
        "/test_mail:TestMailMail",
        "/test_mail:TestMailMailServer",
        "/test_mail:TestMailMailRace",
        "/test_mail/tests/test_mail_composer.py",
        "/test_mail/tests/test_mail_template.py",
        "/test_mail/tests/test_mail_thread_internals.py",
        "/test_mail/tests/test_mail_thread_mixins.py",
        "/test_mail/tests/test_message_post.py",
        "/test_mail/tests/test_message_management.py",
        "/mass_mailing:TestMassMailFeatures",
        "/mass_mailing:TestMailingRetry",
        "/test_mass_mailing/tests/test_mailing.py",
        "/test_mass_mailing/tests/test_mailing_server.py",
        "/test_mass_mailing/tests/test_mailing_test.py",
        "/test_mass_mailing/tests/test_blacklist_behavior.py",
        "/test_mass_mailing/tests/test_blacklist_mixin.py",
        "-/test_mail:TestMailMail.test_mail_mail_send_configuration",
        "-/test_mail:TestMailMail.test_mail_mail_send_exceptions_raise_management",
        "/test_mail:TestEmailParsing",
        "/test_mail:TestMailgateway",
        "smtp_routing_mass_mailing/smtp_routing",
    ]
)
# Installed for the core run (test_mass_mailing brings mass_mailing, sms and their test models).
CORE_MODULES = "test_mail,test_mass_mailing"
# Odoo's composer tests send through the command-line server when no server is active, as Odoo's default
# ("localhost") would; a loopback address keeps anything unmocked on this machine.
CORE_SMTP = "127.0.0.1"
RESULT_RE = re.compile(r"(\d+) failed, (\d+) error\(s\) of (\d+) tests when loading database")
# Odoo logs a skipped test at INFO on the test module's own logger: "....tests.test_x: skipped <test> : <why>".
SKIP_RE = re.compile(r"\.tests\.[\w.]+: skipped ")
TOUR_SKIP_RE = re.compile(r"test_ui: skipped \S+ : (.+)")
TOUR_PASSED = "smtp_routing browser tour passed in "
TEST_MODULES = ("smtp_routing", "base", "mail", "test_mail", "mass_mailing", "test_mass_mailing")
ODOO_SUITES = ("odoo", "browser tour", "odoo-core", "odoo-lifecycle", "odoo-queue", "pytest-odoo")


# pylint-odoo's targets: the addons (its checks are Odoo's; scripts/ and tests/ are plain Python, left to ruff).
PYLINT_TARGETS = ("smtp_routing", "smtp_routing_google_gmail", "smtp_routing_microsoft_outlook")


def lint_summary(results):
    """The lint line from (tool, passed) pairs: "lint: ruff passed, pylint-odoo FAILED".

    >>> lint_summary([("ruff", True), ("pylint-odoo", True)])
    ('lint: ruff passed, pylint-odoo passed', True)
    >>> lint_summary([("ruff", True), ("pylint-odoo", False)])
    ('lint: ruff passed, pylint-odoo FAILED', False)
    """
    words = ", ".join(f"{tool} {'passed' if ok else 'FAILED'}" for tool, ok in results)
    return f"lint: {words}", all(ok for _tool, ok in results)


def run_lint(python):
    """ruff (in .venv) and pylint-odoo with OCA's mandatory checks (.pylintrc, in .venv-lint); both always run."""
    ruff = subprocess.run([str(python), "-m", "ruff", "check", "."], cwd=devenv.ROOT)
    pylint = subprocess.run(
        [str(devenv.ensure_lint_venv()), "-m", "pylint", "--rcfile", ".pylintrc", *PYLINT_TARGETS], cwd=devenv.ROOT
    )
    return lint_summary([("ruff", ruff.returncode == 0), ("pylint-odoo", pylint.returncode == 0)])


def run_framework_free(python):
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        result = subprocess.run(
            [str(python), "-m", "pytest", "tests", f"--junitxml={report}", "-p", "no:cacheprovider"],
            cwd=devenv.ROOT,
        )
        return devenv.junit_summary("framework-free", report, result.returncode)


def _run_odoo(python, odoo_path, config, workdir, label, args):
    """Run odoo-bin with the test flags; stream and return its output and exit code."""
    logfile = Path(workdir) / f"{label}.log"
    with open(logfile, "w") as log_handle:
        process = subprocess.Popen(
            [
                str(python),
                str(odoo_path / "odoo-bin"),
                "-c",
                str(config),
                "-d",
                "smtp_routing_test",
                *args,
                "--test-enable",
                "--stop-after-init",
                "--log-level=warn",
                "--log-handler=odoo.tests.result:INFO",
                "--log-handler=odoo.tests:INFO",
                # skipped tests are logged at INFO by each test module's logger
                *(f"--log-handler=odoo.addons.{module}.tests:INFO" for module in TEST_MODULES),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=workdir,
        )
        for line in process.stdout:
            sys.stdout.write(line)
            log_handle.write(line)
        returncode = process.wait()
    return logfile.read_text(), returncode


def _summarize(label, output, returncode):
    results = RESULT_RE.findall(output)
    if not results:
        return f"{label}: FAILED (Odoo exited {returncode} and reported no test result)", False
    failed = sum(int(f) + int(e) for f, e, _ in results)
    total = sum(int(t) for _, _, t in results)
    skipped = len(SKIP_RE.findall(output))
    passed = max(total - failed - skipped, 0)  # failed subtests are counted on top of their test
    if total == 0:
        return f"{label}: FAILED (no test ran: check --test-tags)", False
    line = f"{label}: {passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else "")
    return line, returncode == 0 and failed == 0


def _summarize_tour(output, tags):
    """The browser tour's own line: it skips without Chromium, and that must not read as a pass."""
    skipped = TOUR_SKIP_RE.search(output)
    if skipped:
        return f"browser tour: SKIPPED ({skipped.group(1).strip()})", True
    if TOUR_PASSED in output:
        browser = output.split(TOUR_PASSED, 1)[1].split()[0]
        return f"browser tour: passed in {browser}", True
    if os.environ.get("SMTP_ROUTING_ODOO_TAGS") and "TestTour" not in tags:
        return "browser tour: SKIPPED (SMTP_ROUTING_ODOO_TAGS selects other tests)", True
    return "browser tour: FAILED (it did not report a pass: see the log above)", False


def run_odoo_suite(odoo_path):
    python = devenv.ensure_odoo_venv(odoo_path)
    tags = os.environ.get("SMTP_ROUTING_ODOO_TAGS", "/smtp_routing")
    with devenv.PgCluster() as cluster, tempfile.TemporaryDirectory() as workdir:
        # Odoo serves HTTP while tests run: a free port, so parallel runs (CI and a developer) never collide.
        config = devenv.write_odoo_config(
            workdir, odoo_path, cluster, http_interface="127.0.0.1", http_port=devenv.free_port()
        )
        devenv.log(f"Odoo suite: fresh database, installing {devenv.ODOO_INSTALL}, --test-tags {tags}")
        install = ["-i", devenv.ODOO_INSTALL, "--test-tags", tags]
        output, returncode = _run_odoo(python, odoo_path, config, workdir, "odoo", install)
        lines = [_summarize("odoo", output, returncode), _summarize_tour(output, tags)]
        skip = None
        if os.environ.get("SMTP_ROUTING_ODOO_TAGS"):
            skip = ("SMTP_ROUTING_ODOO_TAGS selects other tests", True)
        elif not lines[0][1]:
            skip = ("the smtp_routing suite failed first", False)
        if skip:
            return lines + [(f"{suite}: SKIPPED ({skip[0]})", skip[1]) for suite in ODOO_SUITES[2:]]
        devenv.log(f"Odoo's own mail server tests, smtp_routing installed: {CORE_TAGS}")
        update = ["-i", CORE_MODULES, "-u", "base", "--smtp", CORE_SMTP, "--test-tags", CORE_TAGS]
        lines.append(_summarize("odoo-core", *_run_odoo(python, odoo_path, config, workdir, "core", update)))
        devenv.log("install/uninstall round trip of SMTP passwords on a stock database")
        passed, failed, output = lifecycle_check.run(python, odoo_path, config, workdir)
        print(output)
        lines.append((f"odoo-lifecycle: {passed} passed, {failed} failed", failed == 0 and passed > 0))
        devenv.log("queue under 4 concurrent workers, and a worker killed mid-batch (real commits)")
        passed, failed, output = queue_checks.run(python, odoo_path, config, workdir)
        print(output)
        lines.append((f"odoo-queue: {passed} passed, {failed} failed", failed == 0 and passed > 0))
    devenv.log("the addon's Odoo tests once more, under pytest-odoo (the documented developer invocation)")
    lines.append(pytest_odoo.run(odoo_path))
    return lines


def odoo_unavailable(reason, required):
    """The Odoo suites' lines when no Odoo 18 tree was found: SKIPPED, or FAILED where Odoo is required (CI)."""
    if required:
        first = (f"odoo: FAILED (the Odoo suite could not run: {reason}; SMTP_ROUTING_REQUIRE_ODOO=1)", False)
    else:
        first = (f"odoo: SKIPPED ({reason})", True)
    return [first] + [(f"{suite}: SKIPPED (needs the Odoo suite)", True) for suite in ODOO_SUITES[1:]]


def main():
    python = devenv.ensure_test_venv()
    if sys.argv[1:] == ["lint"]:  # `make lint`
        line, ok = run_lint(python)
        print(line)
        return 0 if ok else 1
    lines, all_ok = [], True
    for runner in (run_lint, run_framework_free):
        line, ok = runner(python)
        lines.append(line)
        all_ok &= ok
    odoo_path, reason = devenv.find_odoo()
    if odoo_path is None:
        odoo_lines = odoo_unavailable(reason, required=os.environ.get("SMTP_ROUTING_REQUIRE_ODOO") == "1")
    else:
        odoo_lines = run_odoo_suite(odoo_path)
    for line, ok in odoo_lines:
        lines.append(line)
        all_ok &= ok
    print("\n== smtp_routing test summary ==")
    for line in lines:
        print(line)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
