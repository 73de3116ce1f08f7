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


def test_doctor_gives_rfc9989_answers_for_a_subdomain_under_a_public_suffix():
    """mail.example.co.uk: its organizational domain is example.co.uk, not the last two labels (co.uk)."""
    zone = {
        ("mail.example.co.uk", "TXT"): ["v=spf1 ip4:192.0.2.10 -all"],
        ("mail.example.co.uk", "MX"): ["10 mx.example.co.uk"],
        ("_dmarc.example.co.uk", "TXT"): [
            "v=DMARC1; p=reject; sp=quarantine; np=reject; pct=50; rua=mailto:dmarc@example.co.uk"
        ],
        ("_dmarc.co.uk", "TXT"): ["v=DMARC1; p=none; psd=y"],
    }
    with DnsServer(zone) as server:
        result = _doctor(server, "mail.example.co.uk", "--ip", "192.0.2.10")
        asked = [name for name, rdtype in server.queries if rdtype == "TXT" and name.startswith("_dmarc.")]
    assert result.returncode == 1, result.stdout + result.stderr  # warnings: no DKIM selector, pct
    assert set(asked) == {"_dmarc.mail.example.co.uk", "_dmarc.example.co.uk", "_dmarc.co.uk", "_dmarc.uk"}
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("WARN  DMARC")]
    assert line.startswith(
        "WARN  DMARC DMARC sp=quarantine for mail.example.co.uk (from _dmarc.example.co.uk); np=reject, adkim=r, "
        "aspf=r; organizational domain example.co.uk (RFC 9989 DNS tree walk)"
    ), line
    assert "pct=50: RFC 9989 removed pct" in line
    assert (
        'fix: _dmarc.example.co.uk TXT "v=DMARC1; p=reject; sp=quarantine; np=reject; '
        'rua=mailto:dmarc@example.co.uk; t=y" while you test' in result.stdout
    )
