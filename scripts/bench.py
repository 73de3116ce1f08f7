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
3. latency: the same queue, stock and smtp_routing alike, to the same sink
   behind a loopback proxy (smtp_routing.testing.latency) that holds every
   chunk RTT/2 in each direction, at 0, 20 and 50 ms round trip (fewer mails
   at higher latency): msg/s, ratio and peak RSS side by side. The sink
   advertises PIPELINING, as the big providers do.
4. physical limit: raw SMTP from this process to the same proxy and sink, one
   connection sending one command at a time (smtplib.sendmail), then pipelined
   (smtp_routing.tools.pipelining) on one and on 4 connections: what any
   client could reach on this machine at each latency.

The throughput table also gives the CPU time the Odoo process spent per mail
(all its threads; the ratio is stock's over smtp_routing's): unlike msg/s, it
hardly moves with the machine's load.

Options: --mails N, --rounds N, --profile PREFIX (throughput); --latency-ms 0,20,50 and
--latency-mails 500,300,100 (latency; --latency-ms none skips it);
--skip-throughput, --skip-limited, --skip-physical; --physical-seconds S.
"""

import argparse
import json
import os
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
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
profiler = None
if {profile!r}:
    import cProfile
    profiler = cProfile.Profile()
    profiler.enable()
before = resource.getrusage(resource.RUSAGE_SELF)
started = time.perf_counter()
while Mail.search_count([("state", "=", "outgoing")]):
    Mail.process_email_queue(batch_size=1000)
    env.cr.commit()
elapsed = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF)
if profiler:
    profiler.disable()
    profiler.dump_stats({profile!r})
cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
sent = Mail.search_count([("state", "=", "sent")])
rss = after.ru_maxrss
Mail.search([]).unlink()
env.cr.commit()
print("BENCH " + json.dumps({{"sent": sent, "seconds": elapsed, "rss_kb": rss, "cpu_seconds": cpu}}))
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


DEFAULT_LATENCY_MAILS = {0: 500, 20: 300, 50: 100}
PHYSICAL_CONNECTIONS = 4
PHYSICAL_CAP = 3000  # messages per physical measurement (the sink keeps them in memory)


def _numbers(text, name):
    if text.strip().lower() in ("", "none", "off"):
        return []
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise SystemExit(f"bench: {name} takes comma-separated whole numbers, e.g. 0,20,50") from None
    if any(value < 0 for value in values):
        raise SystemExit(f"bench: {name} cannot be negative")
    return values


def _latency_plan(args):
    """[(rtt_ms, mails)] from --latency-ms and --latency-mails."""
    rtts = _numbers(args.latency_ms, "--latency-ms")
    if args.latency_mails:
        mails = _numbers(args.latency_mails, "--latency-mails")
        if len(mails) != len(rtts):
            raise SystemExit("bench: give one --latency-mails figure per --latency-ms figure")
    else:
        mails = [DEFAULT_LATENCY_MAILS.get(rtt, 300 if rtt <= 20 else 100) for rtt in rtts]
    return list(zip(rtts, mails, strict=True))


def _physical_payload():
    """About the size and shape of the mails the queue sends (headers, plain and HTML parts)."""
    msg = EmailMessage()
    msg["From"] = "office@practice.example"
    msg["To"] = "client@clients.example"
    msg["Subject"] = "Bench physical limit"
    msg["Message-Id"] = "<bench-physical@practice.example>"
    msg.set_content("Dear client,\n\nYour appointment is confirmed.\n")
    msg.add_alternative("<p>Dear client,</p><p>Your appointment is confirmed.</p>", subtype="html")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def physical_limit(host, port, seconds, pipelined, connections=1):
    """Messages per second one client reaches over ``connections`` already open connections."""
    from smtp_routing.tools import pipelining

    payload = _physical_payload()
    clients = []
    for _ in range(connections):
        client = smtplib.SMTP(host, port, timeout=30)
        client.ehlo()
        clients.append(client)
    counts = [0] * connections
    cap = PHYSICAL_CAP // connections
    start = threading.Barrier(connections + 1)
    deadline = []

    def work(index, client):
        start.wait()
        sent = 0
        while sent < cap and time.perf_counter() < deadline[0]:
            if pipelined:
                pipelining.sendmail(client, "office@practice.example", ["client@clients.example"], payload)
            else:
                client.sendmail("office@practice.example", ["client@clients.example"], payload)
            sent += 1
        counts[index] = sent

    threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    deadline.append(started + seconds)
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for client in clients:
        client.quit()
    return sum(counts) / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-ms", default="0,20,50", help="round trips to measure, in ms (none: skip)")
    parser.add_argument("--latency-mails", default="", help="mails per round trip (default 500,300,100)")
    parser.add_argument("--physical-seconds", type=float, default=2.0)
    parser.add_argument(
        "--profile",
        default="",
        help="path prefix: cProfile each throughput round into <prefix>-<database>-<round>.prof (slower)",
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-limited", action="store_true")
    parser.add_argument("--skip-physical", action="store_true")
    parser.add_argument("--in-venv", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    latency_plan = _latency_plan(args)
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
    from smtp_routing.testing.latency import LatencyProxy
    from smtp_routing.testing.smtpd import SmtpServer

    with (
        devenv.PgCluster(durable=True) as cluster,
        tempfile.TemporaryDirectory(prefix="smtp-routing-bench-") as wd,
        SmtpServer(pipelining=True) as sink,
        LatencyProxy(sink.port) as proxy,
    ):
        config = devenv.write_odoo_config(wd, odoo_path, cluster, log_level="warn")
        bench = Bench(Path(sys.executable), odoo_path, config, wd, sink, proxy)
        bench.install()
        results = bench.throughput(args.mails, args.rounds, args.profile) if not args.skip_throughput else None
        latency = bench.latency(latency_plan)
        rtts = sorted({rtt for rtt, _mails in latency_plan} | {0})
        physical = bench.physical(rtts, args.physical_seconds) if not args.skip_physical else []
        limited = bench.limited() if not args.skip_limited else None

    ok = True
    if results:
        ok &= print_throughput(results)
    if latency:
        ok &= print_latency(latency)
    if physical:
        print_physical(physical)
    if limited is not None:
        allowed = 4 * 200
        print(
            f"\nlimited rate: {limited} delivered in 4 windows of a 200-per-5 s throttle, {allowed} allowed: "
            f"{100.0 * limited / allowed:.1f}% of the allowed rate (never above: {limited <= allowed})"
        )
        ok &= limited <= allowed
    return 0 if ok else 1


class Bench:
    """The two databases, the sink and the latency proxy in front of it."""

    DATABASES = (("bench_stock", "mail"), ("bench_routing", "smtp_routing"))

    def __init__(self, python, odoo_path, config, workdir, sink, proxy):
        self.python, self.odoo_path, self.config, self.workdir = python, odoo_path, config, workdir
        self.sink, self.proxy = sink, proxy

    def run(self, db, script):
        return shell(self.python, self.odoo_path, self.config, db, script, self.workdir)

    def point_at(self, db, port, extra="{}"):
        self.run(db, SETUP.format(port=port, extra=extra) + 'print("BENCH {}")')

    def measure(self, db, mails, port, profile=""):
        """Point the database at ``port`` (the sink or the proxy), queue ``mails`` and time the queue
        (``profile``: a file for cProfile's statistics of the queue work)."""
        self.sink.clear()
        script = QUEUE_AND_SEND.format(mails=mails, profile=profile)
        result = self.run(db, SETUP.format(port=port, extra="{}") + script)
        result["delivered"] = len(self.sink.messages)
        result["rate"] = result["sent"] / result["seconds"]
        result["mails"] = mails
        return result

    def install(self):
        for db, module in self.DATABASES:
            devenv.log(f"installing {module} into {db}...")
            subprocess.run(
                [
                    str(self.python),
                    str(self.odoo_path / "odoo-bin"),
                    "-c",
                    str(self.config),
                    "-d",
                    db,
                    "-i",
                    module,
                    "--stop-after-init",
                    "--log-level=warn",
                ],
                check=True,
                cwd=self.workdir,
            )

    def throughput(self, mails, rounds, profile=""):
        """Straight to the sink, rounds alternating stock / smtp_routing (``profile``: a path prefix; each
        round's cProfile statistics go to <prefix>-<database>-<round>.prof)."""
        results = {db: [] for db, _module in self.DATABASES}
        for round_number in range(1, rounds + 1):
            for db in results:
                devenv.log(f"round {round_number}: {db}, {mails} mails...")
                path = f"{os.path.abspath(profile)}-{db}-{round_number}.prof" if profile else ""
                results[db].append(self.measure(db, mails, self.sink.port, path))
        return results

    def latency(self, plan):
        """Through the proxy, one round per database and round trip."""
        rows = []
        for rtt, mails in plan:
            self.proxy.one_way = rtt / 2000
            row = {"rtt": rtt, "mails": mails}
            for db, _module in self.DATABASES:
                devenv.log(f"latency {rtt} ms: {db}, {mails} mails...")
                row[db] = self.measure(db, mails, self.proxy.port)
            rows.append(row)
        return rows

    def physical(self, rtts, seconds):
        rows = []
        for rtt in rtts:
            devenv.log(f"physical limit at {rtt} ms...")
            self.proxy.one_way = rtt / 2000
            row = {"rtt": rtt}
            for key, pipelined, connections in (
                ("sequential", False, 1),
                ("pipelined", True, 1),
                ("pipelined_n", True, PHYSICAL_CONNECTIONS),
            ):
                row[key] = physical_limit(self.proxy.host, self.proxy.port, seconds, pipelined, connections)
                self.sink.clear()
            rows.append(row)
        return rows

    def limited(self):
        devenv.log("limited rate: throttle 200 per 5 s, 4 windows...")
        throttle = (
            '{"smtp_routing_throttle_max": 200, "smtp_routing_throttle_duration": 5, '
            '"smtp_routing_throttle_unit": "seconds"}'
        )
        self.point_at("bench_routing", self.sink.port, throttle)
        self.sink.clear()
        self.run("bench_routing", LIMITED.format(mails=1500, horizon=20))
        return len(self.sink.messages)


def _complete(result):
    return result["delivered"] == result["sent"] == result["mails"]


def print_throughput(results):
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
    stock_cpu, routing_cpu = (1000 * r["cpu_seconds"] / max(r["sent"], 1) for r in (stock, routing))
    print(f"{'CPU per mail (ms)':<28}{stock_cpu:>14.2f}{routing_cpu:>16.2f}{stock_cpu / max(routing_cpu, 1e-9):>8.2f}x")
    print(
        f"{'peak RSS of the process (MB)':<28}{stock['rss_kb'] / 1024:>14.0f}{routing['rss_kb'] / 1024:>16.0f}"
        f"{routing['rss_kb'] / stock['rss_kb']:>8.2f}x"
    )
    print(
        f"all rounds (msg/s): stock {[round(r['rate'], 1) for r in results['bench_stock']]}, "
        f"smtp_routing {[round(r['rate'], 1) for r in results['bench_routing']]}"
    )
    return all(_complete(result) for db in results for result in results[db])


def print_latency(rows):
    print("\n== latency: the sink behind a proxy adding RTT/2 each way (one round per figure) ==")
    print(
        f"{'RTT':>6}{'mails':>7}{'stock msg/s':>13}{'smtp_routing msg/s':>20}{'ratio':>8}"
        f"{'stock RSS MB':>14}{'smtp_routing RSS MB':>21}{'RSS ratio':>11}"
    )
    for row in rows:
        stock, routing = row["bench_stock"], row["bench_routing"]
        print(
            f"{row['rtt']:>4} ms{row['mails']:>7}{stock['rate']:>13.1f}{routing['rate']:>20.1f}"
            f"{routing['rate'] / stock['rate']:>7.2f}x{stock['rss_kb'] / 1024:>14.0f}"
            f"{routing['rss_kb'] / 1024:>21.0f}{routing['rss_kb'] / stock['rss_kb']:>10.2f}x"
        )
    return all(_complete(row[db]) for row in rows for db in ("bench_stock", "bench_routing"))


def print_physical(rows):
    print("\n== physical limit: raw SMTP from one process to the same proxy and sink (msg/s) ==")
    print(
        f"{'RTT':>6}{'smtplib, 1 conn.':>18}{'pipelined, 1 conn.':>20}{f'pipelined, {PHYSICAL_CONNECTIONS} conn.':>22}"
    )
    for row in rows:
        print(f"{row['rtt']:>4} ms{row['sequential']:>18.1f}{row['pipelined']:>20.1f}{row['pipelined_n']:>22.1f}")


if __name__ == "__main__":
    sys.exit(main())
