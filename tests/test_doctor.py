"""The command-line doctor, run as a real process against the loopback DNS (and SMTP) servers."""

import subprocess
import sys
from pathlib import Path

from smtp_routing.testing.dnsd import DnsServer
from smtp_routing.testing.smtpd import SmtpServer

ROOT = Path(__file__).resolve().parent.parent


def _doctor(server, *args):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "smtp_routing.tools.doctor",
            *args,
            "--nameserver",
            "127.0.0.1",
            "--dns-port",
            str(server.port),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_doctor_reports_and_exits_with_the_worst_status():
    zone = {
        ("practice.example", "TXT"): ["v=spf1 ip4:192.0.2.10 -all"],
        ("smtp.practice.example", "A"): ["192.0.2.99"],
        ("practice.example", "MX"): ["10 127.0.0.1"],
    }
    with DnsServer(zone) as server:
        result = _doctor(server, "practice.example", "--smtp-host", "smtp.practice.example")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Deliverability of practice.example through smtp.practice.example (192.0.2.99)"
    assert "FAIL  SPF   SPF fail for ip4:192.0.2.99" in result.stdout
    assert 'fix: practice.example TXT "v=spf1 ip4:192.0.2.10 ip4:192.0.2.99 -all"' in result.stdout
    assert "FAIL  DMARC no DMARC record" in result.stdout


def test_doctor_checks_starttls_on_the_mx():
    zone = {
        ("practice.example", "TXT"): ["v=spf1 ip4:192.0.2.10 -all"],
        ("_dmarc.practice.example", "TXT"): ["v=DMARC1; p=reject; rua=mailto:d@practice.example"],
        ("practice.example", "MX"): ["10 127.0.0.1"],
    }
    with DnsServer(zone) as server, SmtpServer(tls="starttls") as mx:
        result = _doctor(server, "practice.example", "--ip", "192.0.2.10", "--starttls", "--mx-port", str(mx.port))
    assert "OK    MX    MX: 127.0.0.1; all offer STARTTLS" in result.stdout, result.stdout
    assert "OK    SPF" in result.stdout
    assert result.returncode == 1  # no DKIM selector: a warning


def test_doctor_unresolvable_smtp_host():
    with DnsServer({}) as server:
        result = _doctor(server, "practice.example", "--smtp-host", "nowhere.example")
    assert result.returncode == 2
    assert "nowhere.example does not resolve" in result.stdout
