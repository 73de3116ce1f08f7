"""Multi-process checks of the queue against a real database with real commits.

Run by run_tests.py (inside .venv-odoo) after the Odoo suite:

concurrency  4 worker processes (2 running the queue cron's method, 2 "send now" on every
             outgoing mail) against one server limited to 50 per hour: exactly 50 delivered,
             none twice, the rest deferred; then 300 mails and no limit: all delivered once.
crash        one worker SIGKILLed in the middle of a batch (10-minute lease): no mail lost
             (every mail is sent or still queued); the next run takes the dead worker's mails
             at once (its PostgreSQL backend is gone), not after the lease, and at most the
             mails in flight at the kill were delivered twice.
slow         a server that takes 1 s per message, a 5 s lease, 12 mails, and a second queue
             run 6 s after the first began: the live worker extends its claim, so no mail is
             delivered twice and all 12 are delivered.
greylist     a server that answers 450 to one recipient at RCPT: the other mails of the run
             are delivered, the greylisted one waits for its retry, and the server does not
             cool down.
quota        a server limited to 200 per hour, 300 mails, the worker SIGKILLed after it reserved
             the 200 and sent part of them: its reservation stays in the ledger
             (smtp_routing.reservation); two recovery runs start at once, one of them gives back
             what the dead worker reserved and had not started to send (exactly once), and the
             recovery uses all of it: the server's count ends at exactly 200, never above, and the
             server received at most 200 messages in all.
test-email   a test email (Send Test Email) to a server limited to 1 per hour, its worker SIGKILLed
             twice: once while the server hangs before its greeting (the slot is reserved in the
             ledger, not at risk: the next queue run gives it back, and the next test email goes),
             once after the message reached a server that never answers the end of DATA (at risk:
             the next run closes the row and the slot stays counted, so the next test is refused).

Prints CHECK lines (``CHECK <what>: True/False``) and exits 0 if every check passed.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DB = "smtp_routing_queue_checks"
COMMIT_EVERY = 50

SETUP = """
Server = env["ir.mail_server"]
Server.search([]).write({{"active": False}})
Server.create({{"name": "Sink", "smtp_host": "127.0.0.1", "smtp_port": {port}, "smtp_encryption": "none",
               "smtp_routing_throttle_max": {throttle}, "smtp_routing_throttle_duration": 1,
               "smtp_routing_throttle_unit": "hours"}})
env["ir.config_parameter"].set_param("smtp_routing.lease_seconds", "{lease}")
env["mail.mail"].create([{{"email_from": "office@practice.example", "email_to": "c%d@clients.example" % i,
                          "subject": "{tag} %d" % i, "body_html": "<p>x</p>"}} for i in range({count})])
env.cr.commit()
"""

WORKER = """
import os, time
while not os.path.exists({go!r}):
    time.sleep(0.02)
Mail = env["mail.mail"]
if {mode!r} == "queue":
    for _ in range(3):
        Mail.process_email_queue()
        env.cr.commit()
else:
    Mail.search([("state", "=", "outgoing")]).send(auto_commit=True)
    env.cr.commit()
"""

REPORT = """
import json
from odoo import fields
counts = {{}}
for state, count in env["mail.mail"]._read_group([("subject", "like", "{tag} %")], ["state"], ["__count"]):
    counts[state] = count
deferred = env["mail.mail"].search_count([("subject", "like", "{tag} %"), ("state", "=", "outgoing"),
                                         ("scheduled_date", ">", fields.Datetime.now())])
ids = env["mail.mail"].search([("subject", "like", "{tag} %")]).mapped("message_id")
cooling = [str(d) for d in env["smtp_routing.server.state"].search([]).mapped("cooldown_until") if d]
counted = sum(env["smtp_routing.server.state"].search([]).mapped("throttle_count"))
env.cr.execute("SELECT units, units_at_risk FROM smtp_routing_reservation")
ledger = env.cr.fetchall()
print("REPORT " + json.dumps({{"states": counts, "deferred": deferred, "message_ids": ids, "cooling": cooling,
                              "counted": counted, "ledger": ledger}}))
"""

RESET = """
env["mail.mail"].search([]).unlink()
env["ir.mail_server"].search([]).unlink()
env["smtp_routing.server.state"].search([]).unlink()
env["smtp_routing.reservation"].search([]).unlink()
env.cr.commit()
"""


class Odoo:
    def __init__(self, odoo_path, config, workdir):
        self.base = [sys.executable, str(Path(odoo_path) / "odoo-bin")]
        self.common = ["-c", str(config), "-d", DB, "--log-level=warn"]
        self.workdir = workdir

    def run(self, *args):
        subprocess.run(self.base + self.common + list(args), check=True, cwd=self.workdir, stdout=subprocess.DEVNULL)

    def shell(self, script):
        result = subprocess.run(
            self.base + ["shell"] + self.common + ["--no-http"],
            input=script,
            text=True,
            capture_output=True,
            cwd=self.workdir,
        )
        if result.returncode:
            raise RuntimeError(result.stdout + result.stderr)
        return result.stdout

    def spawn(self, script):
        process = subprocess.Popen(
            self.base + ["shell"] + self.common + ["--no-http"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.workdir,
            start_new_session=True,
        )
        process.stdin.write(script)
        process.stdin.close()
        return process

    def report(self, tag):
        line = next(line for line in self.shell(REPORT.format(tag=tag)).splitlines() if line.startswith("REPORT "))
        return json.loads(line[len("REPORT ") :])


def check(label, ok, detail=""):
    print(f"CHECK {label}: {bool(ok)}" + (f"  ({detail})" if detail else ""), flush=True)
    return bool(ok)


def concurrency(odoo, sink, workdir, tag, count, throttle):
    odoo.shell(RESET)
    sink.clear()
    odoo.shell(SETUP.format(port=sink.port, throttle=throttle, lease=600, count=count, tag=tag))
    go = os.path.join(workdir, f"go-{tag}")
    workers = [odoo.spawn(WORKER.format(go=go, mode=mode)) for mode in ("queue", "queue", "send", "send")]
    time.sleep(4)  # let the four processes load the registry and wait at the barrier
    Path(go).touch()
    errors = []
    for worker in workers:
        worker.wait(timeout=300)
        if worker.returncode:
            errors.append(worker.stderr.read()[-2000:])
    sink.wait_for(throttle or count, timeout=10)
    time.sleep(0.5)
    report = odoo.report(tag)
    received = Counter(sink.message_ids)
    expected = throttle or count
    results = [
        check(f"{tag}: 4 workers ran without error", not errors, "; ".join(errors)[:500]),
        check(f"{tag}: exactly {expected} delivered", len(sink.messages) == expected, f"{len(sink.messages)}"),
        check(
            f"{tag}: no mail delivered twice",
            all(n == 1 for n in received.values()),
            f"{sum(n - 1 for n in received.values())} duplicates",
        ),
        check(f"{tag}: {expected} marked sent", report["states"].get("sent", 0) == expected, report["states"]),
        check(f"{tag}: none failed", not report["states"].get("exception"), report["states"]),
    ]
    if throttle:
        results.append(
            check(
                f"{tag}: the other {count - throttle} deferred, not lost",
                report["deferred"] == count - throttle,
                f"{report['deferred']} deferred",
            )
        )
    return results


def crash(odoo, sink, workdir, count=600, lease=600):
    tag = "crash"
    odoo.shell(RESET)
    sink.clear()
    sink.delay = 0.01
    odoo.shell(SETUP.format(port=sink.port, throttle=0, lease=lease, count=count, tag=tag))
    go = os.path.join(workdir, "go-crash")
    Path(go).touch()
    worker = odoo.spawn(WORKER.format(go=go, mode="queue"))
    sink.wait_for(150, timeout=120)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    time.sleep(0.5)
    at_kill = len(sink.messages)
    report = odoo.report(tag)
    committed = report["states"].get("sent", 0)
    in_flight = at_kill - committed
    results = [
        check("crash: the worker was killed mid-batch", 0 < at_kill < count, f"{at_kill} of {count} delivered"),
        check(
            "crash: every mail is sent or still queued",
            sum(report["states"].values()) == count and set(report["states"]) <= {"sent", "outgoing"},
            report["states"],
        ),
        check(
            f"crash: in flight at the kill <= {COMMIT_EVERY}",
            0 <= in_flight <= COMMIT_EVERY,
            f"{in_flight} delivered but not yet committed",
        ),
    ]
    sink.delay = 0.0
    # no waiting for the lease (10 minutes): the dead worker's backend is gone, so are its claims
    started = time.monotonic()
    odoo.shell(WORKER.format(go=go, mode="queue"))
    recovery = time.monotonic() - started
    report = odoo.report(tag)
    received = Counter(sink.message_ids)
    duplicates = sum(n - 1 for n in received.values())
    results += [
        check(
            "crash: the next run took the dead worker's mails at once",
            report["states"] == {"sent": count} and recovery < lease / 4,
            f"{recovery:.0f} s, lease {lease} s",
        ),
        check("crash: after recovery every mail is sent", report["states"] == {"sent": count}, report["states"]),
        check(
            "crash: every mail reached the server",
            set(report["message_ids"]) <= set(received),
            f"{len(set(report['message_ids']) - set(received))} missing",
        ),
        check(
            "crash: only mails in flight at the kill went twice",
            duplicates <= in_flight,
            f"{duplicates} duplicates, {in_flight} in flight",
        ),
    ]
    return results


def slow(odoo, sink, workdir, count=12, lease=5):
    """A batch that outlives its lease: the live worker extends it, a second run leaves its mails alone."""
    tag = "slow"
    odoo.shell(RESET)
    sink.clear()
    sink.delay = 1.0
    odoo.shell(SETUP.format(port=sink.port, throttle=0, lease=lease, count=count, tag=tag))
    go_first, go_second = os.path.join(workdir, "go-slow-1"), os.path.join(workdir, "go-slow-2")
    first = odoo.spawn(WORKER.format(go=go_first, mode="queue"))
    second = odoo.spawn(WORKER.format(go=go_second, mode="queue"))
    time.sleep(4)  # both load the registry
    Path(go_first).touch()
    sink.wait_for(1, timeout=60)
    time.sleep(6)
    Path(go_second).touch()
    errors = []
    for worker in (first, second):
        worker.wait(timeout=300)
        if worker.returncode:
            errors.append(worker.stderr.read()[-6000:])
            print(errors[-1], flush=True)
    sink.delay = 0.0
    report = odoo.report(tag)
    received = Counter(sink.message_ids)
    return [
        check("slow: both workers ran without error", not errors, "; ".join(errors)[:500]),
        check("slow: every mail sent", report["states"] == {"sent": count}, report["states"]),
        check(
            "slow: no mail delivered twice although the batch outlived its lease",
            len(received) == count and all(n == 1 for n in received.values()),
            f"{len(sink.messages)} deliveries of {len(received)} mails",
        ),
    ]


def greylist(odoo, sink, workdir, count=5):
    tag = "grey"
    odoo.shell(RESET)
    sink.clear()
    sink.add_fault("RCPT", reply="450 4.2.0 Greylisted, try again later", match="c0@")
    odoo.shell(SETUP.format(port=sink.port, throttle=0, lease=600, count=count, tag=tag))
    go = os.path.join(workdir, "go-grey")
    Path(go).touch()
    odoo.shell(WORKER.format(go=go, mode="queue"))
    sink.clear_faults()
    report = odoo.report(tag)
    return [
        check(
            f"greylist: the other {count - 1} mails delivered",
            len(sink.messages) == count - 1 and report["states"].get("sent") == count - 1,
            f"{len(sink.messages)} delivered, {report['states']}",
        ),
        check(
            "greylist: the greylisted mail waits for its retry",
            report["states"].get("outgoing") == 1 and report["deferred"] == 1,
            report["states"],
        ),
        check("greylist: the server does not cool down", not report["cooling"], report["cooling"]),
    ]


def quota(odoo, sink, workdir, count=300, limit=200):
    """A killed worker's reservation is given back once, and the next runs use all of it, never more."""
    tag = "quota"
    odoo.shell(RESET)
    sink.clear()
    sink.delay = 0.02
    odoo.shell(SETUP.format(port=sink.port, throttle=limit, lease=600, count=count, tag=tag))
    go = os.path.join(workdir, "go-quota")
    Path(go).touch()
    worker = odoo.spawn(WORKER.format(go=go, mode="queue"))
    sink.wait_for(70, timeout=120)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    time.sleep(0.5)
    at_kill = len(sink.messages)
    before = odoo.report(tag)
    at_risk = sum(row[1] for row in before["ledger"])
    sink.delay = 0.0
    recovery = [odoo.spawn(WORKER.format(go=go, mode="queue")) for _ in range(2)]
    errors = []
    for process in recovery:
        process.wait(timeout=300)
        if process.returncode:
            errors.append(process.stderr.read()[-2000:])
    time.sleep(0.5)
    after = odoo.report(tag)
    delivered = len(sink.messages)
    return [
        check(
            "quota: the killed worker left its reservation in the ledger",
            0 < at_kill < limit and before["counted"] == limit and len(before["ledger"]) == 1,
            f"{at_kill} delivered at the kill, counted {before['counted']}, ledger {before['ledger']}",
        ),
        check("quota: the recovery runs ran without error", not errors, "; ".join(errors)[:500]),
        check(
            "quota: the recovery used the capacity the dead worker had not started to send",
            delivered - at_kill == limit - at_risk and after["counted"] == limit,
            f"{delivered - at_kill} sent after the kill, {limit - at_risk} given back, counted {after['counted']}",
        ),
        check(
            f"quota: never above the limit ({limit})",
            after["counted"] <= limit and delivered <= limit,
            f"counted {after['counted']}, server received {delivered}",
        ),
        check("quota: the reservation was given back once and closed", not after["ledger"], after["ledger"]),
    ]


TEST_SERVER = """
env["ir.mail_server"].search([]).write({{"active": False}})
env["ir.mail_server"].create({{"name": "Test target", "smtp_host": "127.0.0.1", "smtp_port": {port},
                              "smtp_encryption": "none", "smtp_routing_from_email": "office@practice.example",
                              "smtp_routing_timeout": 300, "smtp_routing_throttle_max": 1,
                              "smtp_routing_throttle_duration": 1, "smtp_routing_throttle_unit": "hours"}})
env.cr.commit()
"""

TEST_EMAIL = """
from odoo.exceptions import UserError
server = env["ir.mail_server"].search([("name", "=", "Test target")])
wizard = env["smtp_routing.test.email"].create({"server_id": server.id, "email_to": "owner@clients.example"})
try:
    wizard.action_send()
    outcome = wizard.state
except UserError as error:
    outcome = "refused: " + str(error)
env.cr.commit()
print("OUTCOME " + outcome)
"""


def _test_email(odoo):
    return next(line for line in odoo.shell(TEST_EMAIL).splitlines() if line.startswith("OUTCOME "))[8:]


def _kill_test_email_at(odoo, sink, workdir, point):
    """Start a test email, SIGKILL its worker once the server hangs at ``point``, then run the queue once.
    Returns (the report at the kill, the report after the queue run)."""
    fault = sink.add_fault(point, action="hang", seconds=90)
    worker = odoo.spawn(TEST_EMAIL)
    deadline = time.monotonic() + 120
    while not fault.hits and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the worker now waits for the server's answer
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    sink.clear_faults()
    time.sleep(0.5)
    before = odoo.report("test-email")
    go = os.path.join(workdir, "go-test-email")
    Path(go).touch()
    odoo.shell(WORKER.format(go=go, mode="queue"))  # a normal queue run (no mail queued): it takes the row over
    return fault.hits, before, odoo.report("test-email")


def test_email(odoo, sink, workdir):
    """A test email's slot is in the reservation ledger: exact after its worker is killed."""
    results = []
    # 1. killed while the server hangs before its greeting: reserved, not at risk -> given back
    odoo.shell(RESET)
    sink.clear()
    odoo.shell(TEST_SERVER.format(port=sink.port))
    hits, before, after = _kill_test_email_at(odoo, sink, workdir, "CONNECT")
    results += [
        check(
            "test-email: killed while the server hung before its greeting, the slot reserved and not at risk",
            hits and before["counted"] == 1 and before["ledger"] == [[1, 0]] and not sink.messages,
            f"counted {before['counted']}, ledger {before['ledger']}, {len(sink.messages)} received",
        ),
        check(
            "test-email: the next queue run gave the slot back and closed the row",
            after["counted"] == 0 and not after["ledger"],
            f"counted {after['counted']}, ledger {after['ledger']}",
        ),
    ]
    outcome = _test_email(odoo)
    counted = odoo.report("test-email")["counted"]
    results.append(
        check(
            "test-email: the slot given back was free: the next test email went, counted once",
            outcome == "sent" and counted == 1 and len(sink.messages) == 1,
            f"{outcome}, counted {counted}, {len(sink.messages)} received",
        )
    )
    # 2. killed after the message reached a server that never answers the end of DATA: at risk -> stays counted
    odoo.shell(RESET)
    sink.clear()
    odoo.shell(TEST_SERVER.format(port=sink.port))
    hits, before, after = _kill_test_email_at(odoo, sink, workdir, "MESSAGE")
    results += [
        check(
            "test-email: killed after the message reached the server, the slot at risk",
            hits and before["counted"] == 1 and before["ledger"] == [[1, 1]],
            f"counted {before['counted']}, ledger {before['ledger']}",
        ),
        check(
            "test-email: the next queue run closed the row and kept the slot counted (it may have gone)",
            after["counted"] == 1 and not after["ledger"],
            f"counted {after['counted']}, ledger {after['ledger']}",
        ),
    ]
    outcome = _test_email(odoo)
    counted = odoo.report("test-email")["counted"]
    results.append(
        check(
            "test-email: never above the limit: the next test email was refused",
            outcome.startswith("refused") and counted == 1 and not sink.messages,
            f"{outcome[:160]}, counted {counted}, {len(sink.messages)} received",
        )
    )
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--odoo-path", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--only", nargs="*", help="run only these checks (default: all)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from smtp_routing.testing.smtpd import SmtpServer  # only in .venv-odoo, where aiosmtpd is

    with tempfile.TemporaryDirectory(prefix="smtp-routing-qc-") as workdir, SmtpServer() as sink:
        odoo = Odoo(args.odoo_path, args.config, workdir)
        odoo.run("-i", "smtp_routing", "--stop-after-init")
        checks = {
            "limited": lambda: concurrency(odoo, sink, workdir, "limited", count=200, throttle=50),
            "unlimited": lambda: concurrency(odoo, sink, workdir, "unlimited", count=300, throttle=0),
            "crash": lambda: crash(odoo, sink, workdir),
            "slow": lambda: slow(odoo, sink, workdir),
            "greylist": lambda: greylist(odoo, sink, workdir),
            "quota": lambda: quota(odoo, sink, workdir),
            "test-email": lambda: test_email(odoo, sink, workdir),
        }
        results = []
        for name, run_check in checks.items():
            if not args.only or name in args.only:
                results += run_check()
    return 0 if all(results) else 1


def run(python, odoo_path, config, workdir):
    """Called by run_tests.py: returns (passed, failed, output)."""
    result = subprocess.run(
        [str(python), __file__, "--odoo-path", str(odoo_path), "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=workdir,
    )
    output = result.stdout + result.stderr
    checks = [line for line in result.stdout.splitlines() if line.startswith("CHECK ")]
    passed = sum(": True" in line for line in checks)
    failed = len(checks) - passed
    if result.returncode and not failed:
        failed = 1
    return passed, failed, output


if __name__ == "__main__":
    sys.exit(main())
