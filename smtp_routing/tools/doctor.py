"""Deliverability doctor, without Odoo.

    python -m smtp_routing.tools.doctor practice.example --smtp-host smtp.office365.com --provider microsoft365 \\
        --selector s2026 [--nameserver 127.0.0.1 --dns-port 5353] [--starttls]

Prints one line per check (OK / WARN / FAIL) and the exact DNS record to add or
fix. Exit status: 0 all good, 1 warnings only, 2 something fails.
"""

import argparse
import smtplib
import sys

import dns.resolver

from .dns_checks import diagnose, resolver_lookup

MARKS = {"ok": "OK  ", "warn": "WARN", "fail": "FAIL"}


def starttls_probe(port=25, timeout=5.0):
    def probe(host):
        try:
            with smtplib.SMTP(host, port, timeout=timeout) as client:
                client.ehlo()
                return client.has_extn("starttls")
        except (OSError, smtplib.SMTPException):
            return False

    return probe


def main(argv=None):
    # pylint: disable=print-used  # a command-line tool run outside Odoo: its report is its standard output
    parser = argparse.ArgumentParser(
        prog="python -m smtp_routing.tools.doctor",
        description=__doc__.split("\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("domain", help="the domain of the From address")
    parser.add_argument("--smtp-host", help="the outgoing server; its addresses are checked against SPF")
    parser.add_argument("--ip", action="append", default=[], help="an outgoing IP address to check (repeatable)")
    parser.add_argument("--provider", help="preset code (gmail, google_workspace, microsoft365, sendgrid, ...)")
    parser.add_argument("--selector", action="append", default=[], help="a DKIM selector to check (repeatable)")
    parser.add_argument("--nameserver", help="ask this DNS server instead of the system's")
    parser.add_argument("--dns-port", type=int, default=53)
    parser.add_argument("--starttls", action="store_true", help="connect to each MX and check STARTTLS")
    parser.add_argument("--mx-port", type=int, default=25, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    resolver = dns.resolver.Resolver(configure=not args.nameserver)
    if args.nameserver:
        resolver.nameservers = [args.nameserver]
        resolver.port = args.dns_port
    resolver.lifetime = 5.0
    lookup = resolver_lookup(resolver)
    ips = list(args.ip)
    if args.smtp_host:
        ips += lookup(args.smtp_host, "A") + lookup(args.smtp_host, "AAAA")
        if not ips:
            print(f"FAIL  smtp-host: {args.smtp_host} does not resolve")
            return 2
    diagnosis = diagnose(
        args.domain,
        lookup,
        ips=ips,
        provider=args.provider,
        selectors=args.selector,
        starttls=starttls_probe(args.mx_port) if args.starttls else None,
    )
    print(f"Deliverability of {diagnosis.domain}" + (f" through {args.smtp_host} ({', '.join(ips)})" if ips else ""))
    for finding in diagnosis.findings:
        print(f"{MARKS[finding.status]}  {finding.check.upper():5} {finding.summary}")
        if finding.fix:
            print(f"      fix: {finding.fix}")
    return {"ok": 0, "warn": 1, "fail": 2}[diagnosis.status]


if __name__ == "__main__":
    sys.exit(main())
