#!/usr/bin/env python3
"""`make demo`: a running Odoo 18 with smtp_routing, loopback SMTP sinks and a sent batch.

1. starts a throwaway PostgreSQL cluster and three SMTP sinks on 127.0.0.1;
2. creates a database with smtp_routing installed and the demo servers configured;
3. queues a batch of mail and runs the queue (the cron's own method);
4. prints what each server delivered (counted by the sinks, i.e. real SMTP);
5. keeps Odoo serving on http://127.0.0.1:8069 (admin / admin) until Ctrl-C,
   the sinks still listening, so anything sent from the UI is delivered too.

Options: --no-serve (stop after step 4), --port N (HTTP port), --mails N (batch size).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import devenv  # noqa: E402

DB = "smtp_routing_demo"

# name, from_filter, sequence, SMTP login (user, password) or None; sinks are created in this order.
DEMO_SERVERS = [
    ("Practice mailbox (practice.example)", "practice.example", 5, ("office@practice.example", "demo-password")),
    ("Newsletter relay (news.practice.example, 5/hour)", "news.practice.example", 10, None),
    ("Catch-all relay", "", 20, None),
]

# (email_from, share of the batch)
DEMO_SENDERS = [
    ("Ana Consultant <ana@practice.example>", 0.5),
    ("Practice News <letters@news.practice.example>", 0.3),
    ("Partner Portal <portal@partner.example>", 0.2),
]

CONFIGURE_AND_SEND = """
import json
servers = json.loads({servers!r})
senders = json.loads({senders!r})
Server = env["ir.mail_server"]
Server.search([]).write({{"active": False}})
for index, server in enumerate(servers):
    Server.create({{
        "name": server["name"], "smtp_host": "[127.0.0.1]:%d" % server["port"],
        "smtp_encryption": "none", "from_filter": server["from_filter"] or False,
        "sequence": server["sequence"], "smtp_user": server["user"] or False,
        "smtp_pass": server["password"] or False, "smtp_routing_is_default": index == len(servers) - 1,
        "smtp_routing_from_email": "office@practice.example" if index == 0 else False,
        "smtp_routing_throttle_max": 5 if index == 1 else 0, "smtp_routing_throttle_duration": 1,
        "smtp_routing_throttle_unit": "hours",
        "smtp_routing_from_name": "Practice Office" if index == 0 else False,
    }})
env["ir.config_parameter"].set_param("mail.default.from", "notifications@practice.example")
env.cr.commit()
Mail = env["mail.mail"]
total = {mails}
created = Mail.browse()
for index in range(total):
    cumulative, email_from = 0.0, senders[-1][0]
    for candidate, share in senders:
        cumulative += share
        if index < cumulative * total:
            email_from = candidate
            break
    created |= Mail.create({{
        "email_from": email_from, "email_to": "client%03d@clients.example" % index,
        "subject": "Demo message %03d" % index, "body_html": "<p>Hello from the smtp_routing demo.</p>",
    }})
env.cr.commit()
Mail.process_email_queue(ids=created.ids)
env.cr.commit()
states = {{}}
for mail in created:
    states[mail.state] = states.get(mail.state, 0) + 1
# What an office would set up next (it changes nothing above: no mail in the batch is Spanish or bulk).
practice, newsletter, catchall = Server.search([("active", "=", True)], order="sequence")
practice.write({{"smtp_routing_user_selectable": True, "smtp_routing_daily_max": 200, "smtp_routing_hourly_max": 50}})
spanish = env["res.lang"]._activate_lang("es_ES")
installed = env["ir.module.module"].search([("state", "=", "installed")]).mapped("name")
env["ir.module.module"]._load_module_terms(installed, ["es_ES"], overwrite=True)
bulk = env["smtp_routing.purpose"].search([("code", "=", "bulk")])
def lines(*servers):
    return [(0, 0, {{"server_id": server.id, "sequence": index}}) for index, server in enumerate(servers)]
env["smtp_routing.route"].create([
    {{"name": "Spanish clients", "sequence": 5, "lang_ids": [(6, 0, spanish.ids)],
      "line_ids": lines(practice, catchall)}},
    {{"name": "Mailshots", "sequence": 10, "purpose_ids": [(6, 0, bulk.ids)], "allow_in_composer": True,
      "line_ids": lines(newsletter, catchall)}},
])
admin = env.ref("base.user_admin")
admin.write({{"email": "admin@practice.example"}})
env["smtp_routing.send_as"].create({{"address": "support@practice.example", "user_ids": [(6, 0, admin.ids)],
                                    "note": "Shared support mailbox"}})
env["res.users"].create({{"name": "Ana Consultant", "login": "ana", "password": "ana", "email": "ana@practice.example",
                         "lang": "es_ES", "tz": "Europe/Madrid", "smtp_routing_server_id": practice.id}})
env["ir.config_parameter"].set_param("smtp_routing.dns_nameserver", "127.0.0.1:%d" % {dns_port})
env.cr.commit()
Server.search([("active", "=", True)]).action_smtp_routing_check_dns()
refused = Mail.create({{"email_from": "Partner Portal <portal@partner.example>", "email_to": "nobody@clients.example",
                       "subject": "Your portal invitation", "body_html": "<p>Welcome</p>"}})
env.cr.commit()
Mail.process_email_queue(ids=refused.ids)
env.cr.commit()
print("DEMO-REFUSED " + json.dumps(refused.state))
# Microsoft 365 over OAuth, against the demo's loopback OAuth provider (Odoo's own consent flow, our bridge):
# not connected yet, so an admin can press Connect your account; ana may connect her own account.
oauth = json.loads({oauth!r})
for key, value in (("microsoft_outlook_client_id", oauth["client_id"]),
                   ("microsoft_outlook_client_secret", oauth["client_secret"]),
                   ("microsoft_outlook.endpoint", oauth["endpoint"]),
                   ("smtp_routing.tls_ca_file", oauth["ca_file"]),
                   ("smtp_routing.personal_servers_allow_private", "1")):
    env["ir.config_parameter"].set_param(key, value)
Server.create({{
    "name": "Microsoft 365 mailbox (OAuth)", "smtp_routing_provider": "microsoft365",
    "smtp_host": "[127.0.0.1]:%d" % oauth["port"], "smtp_encryption": "starttls", "smtp_authentication": "outlook",
    "smtp_user": oauth["mailbox"], "from_filter": oauth["mailbox"], "sequence": 30,
}})
env.cr.commit()
history = {{}}
for server, outcome, count in env["smtp_routing.delivery.log"]._read_group(
        [], ["server_id", "outcome"], ["__count"]):
    history.setdefault(server.name, {{}})[outcome] = count
env.cr.execute("SELECT count(*) FROM ir_mail_server WHERE smtp_pass IS NOT NULL")
plaintext_columns = env.cr.fetchone()[0]
print("DEMO-HISTORY " + json.dumps(history))
print("DEMO-PLAINTEXT " + json.dumps(plaintext_columns))
print("DEMO-RESULT " + json.dumps(states))
"""

NO_ODOO = """\
make demo needs an Odoo 18.0 source tree, and none was found ({reason}).

It takes ODOO_PATH, or else ../shared/odoo-18.0 beside this checkout. Install one like this
(any folder outside this repository will do):

    git clone --depth 1 --branch 18.0 https://github.com/odoo/odoo.git ~/odoo18
    export ODOO_PATH=~/odoo18
    make demo

Also needed: Python 3.11 and the PostgreSQL 15 binaries (initdb, pg_ctl, postgres, psql) on PATH.
Odoo's Python requirements are installed automatically into .venv-odoo on first run.
"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-serve", action="store_true", help="stop after the batch was delivered")
    parser.add_argument("--port", type=int, default=8069, help="HTTP port (default 8069)")
    parser.add_argument("--mails", type=int, default=30, help="mails in the demo batch (default 30)")
    parser.add_argument("--in-venv", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def odoo_cmd(python, odoo_path, config, *args, subcommand=None):
    prefix = [subcommand] if subcommand else []
    return [str(python), str(odoo_path / "odoo-bin"), *prefix, "-c", str(config), "-d", DB, *args]


def batch_count(sink):
    """The batch's mails a sink received (Odoo's own mail, e.g. a security notice, is left out)."""
    return sum(1 for received in sink.messages if str(received.message["Subject"] or "").startswith("Demo message"))


def run_demo(args, odoo_path):
    from smtp_routing.testing.dnsd import DnsServer
    from smtp_routing.testing.smtpd import SmtpServer

    python = Path(sys.executable)
    # The practice's DNS as the deliverability checks see it: practice.example is in order but for a
    # DMARC policy that only monitors; news.practice.example has no SPF record.
    dns = DnsServer(
        {
            ("practice.example", "TXT"): ["v=spf1 ip4:127.0.0.1 -all"],
            ("_dmarc.practice.example", "TXT"): ["v=DMARC1; p=none; rua=mailto:dmarc@practice.example"],
            ("practice.example", "MX"): ["10 mx.practice.example."],
            ("news.practice.example", "MX"): ["10 mx.practice.example."],
        }
    ).start()
    sinks = [
        SmtpServer(credentials=dict([login]) if login else None, auth_required=bool(login)).start()
        for *_rest, login in DEMO_SERVERS
    ]
    # Microsoft 365's stand-ins: an OAuth 2.0 provider and a mailbox that takes AUTH XOAUTH2 after STARTTLS.
    from smtp_routing.testing.oauth import OAuthProvider
    from smtp_routing.testing.tlscert import make_self_signed

    provider = OAuthProvider(clients={"practice-app": "practice-app-secret"}).start()
    provider.consent_user = "office365@practice.example"
    certificate = make_self_signed()
    oauth_sink = SmtpServer(
        tls="starttls", cert=certificate, xoauth2=provider.check_access_token, auth_required=True
    ).start()
    oauth = {
        "client_id": "practice-app",
        "client_secret": "practice-app-secret",
        "endpoint": provider.base_url,
        "ca_file": certificate.cert_path,
        "port": oauth_sink.port,
        "mailbox": "office365@practice.example",
    }
    # One address the catch-all's mailbox provider does not know: a refusal for the history to show.
    sinks[2].add_fault("RCPT", reply="550 5.1.1 <nobody@clients.example>: Recipient address rejected", match="nobody@")
    try:
        with devenv.PgCluster() as cluster, tempfile.TemporaryDirectory(prefix="smtp-routing-demo-") as workdir:
            config = devenv.write_odoo_config(
                workdir, odoo_path, cluster, http_interface="127.0.0.1", http_port=args.port, log_level="warn"
            )
            devenv.log(f"installing {devenv.ODOO_INSTALL} into a fresh database...")
            subprocess.run(
                odoo_cmd(python, odoo_path, config, "-i", devenv.ODOO_INSTALL, "--stop-after-init"), check=True
            )
            servers = [
                {
                    "name": name,
                    "from_filter": from_filter,
                    "sequence": sequence,
                    "port": sink.port,
                    "user": login[0] if login else None,
                    "password": login[1] if login else None,
                }
                for (name, from_filter, sequence, login), sink in zip(DEMO_SERVERS, sinks, strict=True)
            ]
            script = CONFIGURE_AND_SEND.format(
                servers=json.dumps(servers),
                senders=json.dumps(DEMO_SENDERS),
                mails=args.mails,
                dns_port=dns.port,
                oauth=json.dumps(oauth),
            )
            devenv.log(f"configuring {len(servers)} servers and sending a batch of {args.mails} mails...")
            result = subprocess.run(
                odoo_cmd(python, odoo_path, config, "--no-http", subcommand="shell"),
                input=script,
                text=True,
                capture_output=True,
                check=False,
            )
            reported = {
                line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1])
                for line in result.stdout.splitlines()
                if line.startswith("DEMO-")
            }
            states = reported.get("DEMO-RESULT")
            if result.returncode != 0 or states is None:
                sys.stdout.write(result.stdout + result.stderr)
                raise SystemExit("demo: the batch could not be sent (see above)")
            expected = sum(states.values())
            for sink in sinks:
                sink.wait_for(1, timeout=0.1)
            print("\n== delivered per server (counted by the loopback SMTP sinks) ==")
            for server, sink in zip(servers, sinks, strict=True):
                print(f"{server['name']:<50} 127.0.0.1:{server['port']:<6} {batch_count(sink):>4} delivered")
            delivered = sum(batch_count(sink) for sink in sinks)
            print(f"{'total':<67} {delivered:>4} delivered of {expected} queued; mail states: {states}")
            print("\n== delivery history recorded by smtp_routing (Settings > Technical > Email > Delivery History) ==")
            for name, outcomes in sorted(reported.get("DEMO-HISTORY", {}).items()):
                print(f"{name:<50} " + ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items())))
            print(f"SMTP passwords stored in plaintext: {reported.get('DEMO-PLAINTEXT')} (encrypted at rest)")
            print("The newsletter relay allows 5 per hour: its other newsletters went through the catch-all relay.")
            print(
                f"A mail to nobody@clients.example was refused by its server (arranged): {reported.get('DEMO-REFUSED')}"
            )
            print("Also set up: routes (Spanish clients, Mailshots), a Send-As grant, user ana/ana, DNS checks.")
            print(
                "Microsoft 365 mailbox (OAuth): press Connect your account on it; the loopback OAuth provider "
                f"({provider.base_url}) stands in for Microsoft."
            )
            if delivered != expected:
                raise SystemExit("demo: some mails were not delivered")
            if args.no_serve:
                return
            print(
                textwrap.dedent(f"""
                Odoo is serving on http://127.0.0.1:{args.port}  (login: admin / password: admin)
                Settings > Technical > Email > Outgoing Mail Servers shows the demo servers;
                the sinks keep listening, so mail sent from the UI is delivered too. Ctrl-C stops everything.
            """)
            )
            try:
                subprocess.run(odoo_cmd(python, odoo_path, config, "--max-cron-threads", "1"), check=False)
            except KeyboardInterrupt:
                pass
    finally:
        for sink in sinks:
            sink.stop()
        oauth_sink.stop()
        provider.stop()
        dns.stop()


def main():
    args = parse_args()
    odoo_path, reason = devenv.find_odoo()
    if odoo_path is None:
        sys.stderr.write(NO_ODOO.format(reason=reason))
        return 2
    if not args.in_venv:
        python = devenv.ensure_odoo_venv(odoo_path)
        argv = [str(python), __file__, "--in-venv", *sys.argv[1:]]
        os.execv(str(python), argv)
    sys.path.insert(0, str(devenv.ROOT))
    run_demo(args, odoo_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
