"""Bulk-sender readiness: what Gmail, Yahoo (February 2024) and Outlook.com (May 2025) ask of bulk mail.

A sender of about 5,000 mails a day or more to one of them must have SPF and
DKIM passing and aligned with the From domain, a DMARC record (p=none at
least) that passes, a one-click unsubscribe (RFC 8058: an HTTPS link), and
deliver over TLS. Outlook.com refuses the rest with ``550 5.7.515``.

:func:`check` answers for one From domain sent through one server;
:func:`receiver` and :func:`daily_volume` count mail per big receiver.
Findings are technical English, like the DNS findings (stable codes:
``spf``, ``dkim``, ``dmarc``, ``one_click``, ``tls``).

>>> receiver("Someone@GoogleMail.com"), receiver("a@yahoo.co.uk"), receiver("b@hotmail.fr"), receiver("c@example.com")
('gmail', 'yahoo', 'microsoft', None)
>>> daily_volume(["a@gmail.com, b@gmail.com", "c@outlook.com", "d@example.com"])
{'gmail': 2, 'yahoo': 0, 'microsoft': 1}
"""

from dataclasses import dataclass

from .dns_checks import PROVIDER_INCLUDES, _spf_findings, aligned, check_dkim, check_dmarc

BULK_THRESHOLD = 5000  # mails a day to one receiver from which Gmail, Yahoo and Outlook.com count a sender as bulk
RECEIVERS = {
    "gmail": "Gmail",
    "yahoo": "Yahoo",
    "microsoft": "Outlook.com",
}
_GMAIL = frozenset({"gmail.com", "googlemail.com"})
_YAHOO_OTHER = frozenset({"ymail.com", "rocketmail.com"})
_MICROSOFT = frozenset({"outlook", "hotmail", "live", "msn", "windowslive", "passport"})
CHECKS = ("spf", "dkim", "dmarc", "one_click", "tls")


@dataclass(frozen=True)
class Finding:
    check: str  # one of CHECKS
    status: str  # ok, warn, fail
    detail: str


def receiver(address):
    """gmail, yahoo, microsoft (their consumer domains, every country's), or None."""
    domain = str(address or "").rsplit("@", 1)[-1].strip().strip(">").lower()
    if domain in _GMAIL:
        return "gmail"
    first, _, rest = domain.partition(".")
    # yahoo.co.jp, hotmail.com.br: a country's suffix after the name, not someone's own outlook.example.com
    national = bool(rest) and rest.count(".") <= 1 and all(len(label) <= 3 for label in rest.split("."))
    if (first == "yahoo" and national) or domain in _YAHOO_OTHER:
        return "yahoo"
    if first in _MICROSOFT and national:
        return "microsoft"
    return None


def daily_volume(recipient_lists):
    """{receiver: mails} for recipient lists as the delivery history keeps them ("a@x, b@y")."""
    counts = dict.fromkeys(RECEIVERS, 0)
    for recipients in recipient_lists:
        for address in str(recipients or "").split(","):
            name = receiver(address)
            if name:
                counts[name] += 1
    return counts


def worst(statuses):
    """fail, else warn, else ok."""
    statuses = set(statuses)
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "ok"


def check(
    from_domain,
    lookup,
    *,
    ips=(),
    provider=None,
    envelope_domain=None,
    dkim_selectors=(),
    unsubscribe_base_url="",
    encryption="none",
    verify_certificate=True,
):
    """The five findings for bulk mail from ``from_domain`` through one server.

    :param envelope_domain: the domain of the envelope sender (Odoo's bounce address), checked by SPF.
    :param dkim_selectors: the selectors of the DKIM keys Odoo signs this domain's mail with.
    :param unsubscribe_base_url: where one-click links point (Odoo's web.base.url).
    :param encryption: the server's ``none``, ``starttls`` or ``ssl``.
    """
    from_domain = from_domain.lower().rstrip(".")
    envelope_domain = (envelope_domain or from_domain).lower().rstrip(".")
    dmarc = check_dmarc(from_domain, lookup)
    findings = []

    spf = _spf_findings(envelope_domain, lookup, list(ips), PROVIDER_INCLUDES.get(provider))
    spf_passes = worst(f.status for f in spf) != "fail"
    spf_aligned = aligned(envelope_domain, from_domain, dmarc.aspf, lookup)
    if not spf_passes:
        findings.append(Finding("spf", "fail", f"SPF of {envelope_domain} does not pass: {spf[0].summary}"))
    elif not spf_aligned:
        findings.append(
            Finding(
                "spf",
                "fail",
                f"SPF passes for {envelope_domain}, which is not aligned with {from_domain} (aspf={dmarc.aspf}): "
                f"use a bounce address on {from_domain}",
            )
        )
    else:
        findings.append(Finding("spf", "ok", f"SPF passes for {envelope_domain}, aligned with {from_domain}"))

    keys = [check_dkim(from_domain, selector, lookup) for selector in dkim_selectors]
    good = [key.selector for key in keys if key.status == "ok"]
    if good:
        findings.append(Finding("dkim", "ok", f"DKIM signed by d={from_domain} (selector {', '.join(good)}): aligned"))
    elif keys:
        findings.append(Finding("dkim", "fail", "DKIM key not usable: " + "; ".join(key.detail for key in keys)))
    else:
        findings.append(
            Finding(
                "dkim",
                "fail" if provider is None else "warn",
                f"no DKIM key for {from_domain} in Odoo"
                + ("" if provider is None else ": unless the provider signs with d=" + from_domain),
            )
        )

    if dmarc.status in ("missing", "invalid", "temperror"):
        findings.append(Finding("dmarc", "fail", "; ".join(dmarc.problems)))
    elif not (spf_passes and spf_aligned) and not good:
        findings.append(
            Finding("dmarc", "fail", f"DMARC {dmarc.policy_tag}={dmarc.policy}: neither SPF nor DKIM aligns")
        )
    else:
        findings.append(
            Finding(
                "dmarc", "ok", f"DMARC {dmarc.policy_tag}={dmarc.policy} (from _dmarc.{dmarc.record_domain}) passes"
            )
        )

    if unsubscribe_base_url.lower().startswith("https://"):
        findings.append(Finding("one_click", "ok", "List-Unsubscribe with List-Unsubscribe-Post, HTTPS link, signed"))
    else:
        findings.append(
            Finding(
                "one_click",
                "fail",
                f"one-click links would start with {unsubscribe_base_url or '(no base URL)'}: RFC 8058 requires HTTPS "
                "(set web.base.url to the https:// address of Odoo)",
            )
        )

    if encryption not in ("starttls", "ssl"):
        findings.append(Finding("tls", "fail", "the server is used without encryption: use STARTTLS or SSL/TLS"))
    elif not verify_certificate:
        findings.append(Finding("tls", "warn", f"{encryption.upper()}, but the certificate is not verified"))
    else:
        findings.append(Finding("tls", "ok", f"{encryption.upper()} with a verified certificate"))
    return findings


def status(findings):
    return worst(f.status for f in findings)
