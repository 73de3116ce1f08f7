#!/usr/bin/env python3
"""`make bench`: stock Odoo 18 (mail only) and smtp_routing, side by side, in one run.

Both databases live in one PostgreSQL cluster with production durability (fsync
and synchronous commits on) and send to the same loopback SMTP sink. Each
measurement runs inside an ``odoo-bin shell`` process and times only the queue
work (``process_email_queue()`` until nothing is due), not Odoo's start-up.

1. throughput: N queued mails (default 2,000), no limit configured; routing and
   the delivery log are on in the smtp_routing database. Rounds alternate
   stock / smtp_routing; the best round of each is compared. Peak RSS of each
   shell process is printed too.
2. limited rate: a 200-per-5-seconds throttle on the smtp_routing server, a
   queue of 1,500 and a scheduler that wakes the queue at the next free slot
   (as the cron trigger does) and stops before a fifth window opens;
   deliveries counted by the sink against the 800 that 4 windows allow.

Options: --mails N, --rounds N.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import devenv  # noqa: E402

SETUP = """
Server = env["ir.mail_server"]
Server.search([]).write({{"active": False}})
values = {{"name": "Bench sink", "smtp_host": "127.0.0.1", "smtp_port": {port}, "smtp_encryption": "none"}}
values.update({extra})
Server.create(values)
env["mail.mail"].search([]).unlink()
env.cr.commit()
"""

QUEUE_AND_SEND = """
import json, resource, time
Mail = env["mail.mail"]
Mail.create([{{"email_from": "office@practice.example", "email_to": "client%05d@clients.example" % i,
               "subject": "Bench %05d" % i, "body_html": "<p>Dear client,</p><p>Your appointment is confirmed.</p>",
               "auto_delete": False}} for i in range({mails})])
env.cr.commit()
started = time.perf_counter()
while Mail.search_count([("state", "=", "outgoing")]):
    Mail.process_email_queue(batch_size=1000)
    env.cr.commit()
elapsed = time.perf_counter() - started
sent = Mail.search_count([("state", "=", "sent")])
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("BENCH " + json.dumps({{"sent": sent, "seconds": elapsed, "rss_kb": rss}}))
"""

LIMITED = """
import json, time
from odoo import fields
Mail = env["mail.mail"]
Mail.create([{{"email_from": "office@practice.example", "email_to": "client%05d@clients.example" % i,
               "subject": "Limited %05d" % i, "body_html": "<p>x</p>", "auto_delete": False}}
             for i in range({mails})])
env.cr.commit()
# Windows start with the first reservation, just after this point: stop starting runs a little
# before the fifth window could open, so exactly four windows are used.
deadline = time.time() + {horizon} - 0.3
while time.time() < deadline:
    Mail.process_email_queue(batch_size=1000)
    env.cr.commit()
    nxt = Mail.search([("state", "=", "outgoing")], order="scheduled_date", limit=1).scheduled_date
    wait = (nxt - fields.Datetime.now()).total_seconds() if nxt else 0.05
    time.sleep(min(max(wait, 0.005), 1.0))
print("BENCH " + json.dumps({{"done": True}}))
"""


def shell(python, odoo_path, config, db, script, workdir):
    result = subprocess.run(
        [
            str(python),
            str(odoo_path / "odoo-bin"),
            "shell",
            "-c",
            str(config),
            "-d",
            db,
            "--no-http",
            "--log-level=warn",
        ],
        input=script,
        text=True,
        capture_output=True,
        cwd=workdir,
    )
    line = next((line for line in result.stdout.splitlines() if line.startswith("BENCH ")), None)
    if result.returncode or line is None:
        raise SystemExit(f"bench: the {db} run failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return json.loads(line[len("BENCH ") :])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--in-venv", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    odoo_path, reason = devenv.find_odoo()
    if odoo_path is None:
        sys.stderr.write(
            f"make bench compares stock Odoo 18 with smtp_routing and needs Odoo 18: {reason}.\n"
            "Set ODOO_PATH, or put an Odoo 18.0 tree at ../shared/odoo-18.0 (README: Where Odoo comes from).\n"
        )
        return 2
    if not args.in_venv:
        python = devenv.ensure_odoo_venv(odoo_path)
        os.execv(str(python), [str(python), __file__, "--in-venv", *sys.argv[1:]])
    sys.path.insert(0, str(devenv.ROOT))
    from smtp_routing.testing.smtpd import SmtpServer

    python = Path(sys.executable)
    with (
        devenv.PgCluster(durable=True) as cluster,
        tempfile.TemporaryDirectory(prefix="smtp-routing-bench-") as wd,
        SmtpServer() as sink,
    ):
        config = devenv.write_odoo_config(wd, odoo_path, cluster, log_level="warn")
        for db, module in (("bench_stock", "mail"), ("bench_routing", "smtp_routing")):
            devenv.log(f"installing {module} into {db}...")
            subprocess.run(
                [
                    str(python),
                    str(odoo_path / "odoo-bin"),
                    "-c",
                    str(config),
                    "-d",
                    db,
                    "-i",
                    module,
                    "--stop-after-init",
                    "--log-level=warn",
                ],
                check=True,
                cwd=wd,
            )
            shell(python, odoo_path, config, db, SETUP.format(port=sink.port, extra="{}") + 'print("BENCH {}")', wd)

        results = {"bench_stock": [], "bench_routing": []}
        for round_number in range(1, args.rounds + 1):
            for db in results:
                sink.clear()
                devenv.log(f"round {round_number}: {db}, {args.mails} mails...")
                result = shell(python, odoo_path, config, db, QUEUE_AND_SEND.format(mails=args.mails), wd)
                result["delivered"] = len(sink.messages)
                result["rate"] = result["sent"] / result["seconds"]
                results[db].append(result)
                shell(
                    python,
                    odoo_path,
                    config,
                    db,
                    'env["mail.mail"].search([]).unlink()\nenv.cr.commit()\nprint("BENCH {}")',
                    wd,
                )

        devenv.log("limited rate: throttle 200 per 5 s, 4 windows...")
        limited = (
            '{"smtp_routing_throttle_max": 200, "smtp_routing_throttle_duration": 5, '
            '"smtp_routing_throttle_unit": "seconds"}'
        )
        shell(
            python,
            odoo_path,
            config,
            "bench_routing",
            SETUP.format(port=sink.port, extra=limited) + 'print("BENCH {}")',
            wd,
        )
        sink.clear()
        shell(python, odoo_path, config, "bench_routing", LIMITED.format(mails=1500, horizon=20), wd)
        in_horizon = len(sink.messages)
        allowed = 4 * 200

    stock, routing = (max(results[db], key=lambda r: r["rate"]) for db in ("bench_stock", "bench_routing"))
    print("\n== make bench: stock Odoo 18 vs smtp_routing (same cluster, same sink, fsync on) ==")
    print(f"{'':<28}{'stock Odoo':>14}{'smtp_routing':>16}{'ratio':>9}")
    print(f"{'mails sent (best round)':<28}{stock['sent']:>14}{routing['sent']:>16}")
    print(f"{'delivered to the sink':<28}{stock['delivered']:>14}{routing['delivered']:>16}")
    print(f"{'seconds':<28}{stock['seconds']:>14.2f}{routing['seconds']:>16.2f}")
    print(
        f"{'throughput (msg/s)':<28}{stock['rate']:>14.1f}{routing['rate']:>16.1f}"
        f"{routing['rate'] / stock['rate']:>8.2f}x"
    )
    print(
        f"{'peak RSS of the process (MB)':<28}{stock['rss_kb'] / 1024:>14.0f}{routing['rss_kb'] / 1024:>16.0f}"
        f"{routing['rss_kb'] / stock['rss_kb']:>8.2f}x"
    )
    print(
        f"all rounds (msg/s): stock {[round(r['rate'], 1) for r in results['bench_stock']]}, "
        f"smtp_routing {[round(r['rate'], 1) for r in results['bench_routing']]}"
    )
    print(
        f"limited rate: {in_horizon} delivered in 4 windows of a 200-per-5 s throttle, {allowed} allowed: "
        f"{100.0 * in_horizon / allowed:.1f}% of the allowed rate (never above: {in_horizon <= allowed})"
    )
    ok = (
        stock["delivered"] == stock["sent"] == args.mails
        and routing["delivered"] == routing["sent"] == args.mails
        and in_horizon <= allowed
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
