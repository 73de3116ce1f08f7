"""SPF, DKIM and DMARC diagnostics for a sender domain, with the records to publish.

The one network need, DNS, is a parameter: ``lookup(name, rdtype) -> [str]``
(empty for NXDOMAIN and NODATA, :class:`DnsTemporaryError` for SERVFAIL and
time-outs). :func:`resolver_lookup` makes one from a dnspython resolver.

SPF follows RFC 7208's check_host(): mechanisms all, include, a, mx, ptr, ip4,
ip6, exists, the redirect modifier, qualifiers, at most 10 DNS-querying terms
and 2 void lookups, include loops and multiple records reported as permerror.
"""

import base64
import ipaddress
import re
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import load_der_public_key

MAX_LOOKUPS = 10
MAX_VOID = 2
QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
# the include a provider asks its customers to publish
PROVIDER_INCLUDES = {
    "gmail": "_spf.google.com",
    "google_workspace": "_spf.google.com",
    "microsoft365": "spf.protection.outlook.com",
    "sendgrid": "sendgrid.net",
    "postmark": "spf.mtasv.net",
    "mailgun": "mailgun.org",
    "amazon_ses": "amazonses.com",
}


class DnsTemporaryError(Exception):
    """SERVFAIL or time-out: the answer is unknown, not negative."""


def resolver_lookup(resolver):
    """A lookup function over a dnspython resolver."""
    import dns.exception
    import dns.resolver

    def lookup(name, rdtype):
        try:
            answer = resolver.resolve(name, rdtype, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.LifetimeTimeout) as error:
            raise DnsTemporaryError(f"{name} {rdtype}: {error}") from error
        values = []
        for rdata in answer:
            if rdtype in ("TXT", "SPF"):
                values.append(b"".join(rdata.strings).decode("utf-8", "replace"))
            elif rdtype == "MX":
                values.append(f"{rdata.preference} {rdata.exchange.to_text().rstrip('.')}")
            else:
                values.append(rdata.to_text().rstrip("."))
        return values

    return lookup


# -- SPF -------------------------------------------------------------------------------------------------
@dataclass
class SpfResult:
    result: str  # pass, fail, softfail, neutral, none, permerror, temperror
    domain: str
    record: str | None = None
    matched: str | None = None
    lookups: int = 0
    void_lookups: int = 0
    problems: list = field(default_factory=list)
    includes: list = field(default_factory=list)  # every domain included or redirected to


class _PermError(Exception):
    pass


class _TempError(Exception):
    pass


_MECHANISM = re.compile(r"^([+\-~?]?)(all|include|a|mx|ptr|ip4|ip6|exists)(?::([^/]*))?(/\d+)?(//\d+)?$", re.I)
_MODIFIER = re.compile(r"^([a-z][a-z0-9_\-.]*)=(.*)$", re.I)


def spf_records(domain, lookup):
    return [t for t in lookup(domain, "TXT") if re.match(r"^v=spf1(\s|$)", t, re.I)]


class _SpfEvaluation:
    def __init__(self, lookup, ip, sender, helo):
        self.lookup = lookup
        self.ip = ipaddress.ip_address(ip)
        self.sender = sender or f"postmaster@{helo or 'unknown'}"
        self.helo = helo or ""
        self.lookups = 0
        self.void = 0
        self.problems = []
        self.includes = []

    def _count(self):
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise _PermError(f"more than {MAX_LOOKUPS} DNS lookups (RFC 7208 4.6.4)")

    def _query(self, name, rdtype):
        try:
            values = self.lookup(name, rdtype)
        except DnsTemporaryError as error:
            raise _TempError(str(error)) from error
        return values

    def _void_check(self, values):
        if not values:
            self.void += 1
            if self.void > MAX_VOID:
                raise _PermError(f"more than {MAX_VOID} void lookups (RFC 7208 4.6.4)")
        return values

    def _expand(self, text, domain):
        local, _, sender_domain = self.sender.rpartition("@")

        def macro(match):
            letter, digits, reverse, delimiters = match.group(1), match.group(2), match.group(3), match.group(4)
            letter = letter.lower()
            values = {
                "s": self.sender,
                "l": local or "postmaster",
                "o": sender_domain,
                "d": domain,
                "h": self.helo,
                "v": "in-addr" if self.ip.version == 4 else "ip6",
            }
            if letter == "i":
                value = str(self.ip) if self.ip.version == 4 else ".".join(self.ip.exploded.replace(":", ""))
            elif letter in values:
                value = values[letter]
            else:
                raise _PermError(f"unsupported macro %{{{match.group(1)}}}")
            parts = re.split("[" + re.escape(delimiters or ".") + "]", value)
            if reverse:
                parts.reverse()
            if digits:
                parts = parts[-int(digits) :]
            return ".".join(parts)

        text = text.replace("%%", "\0").replace("%_", " ").replace("%-", "%20")
        text = re.sub(r"%\{([a-zA-Z])(\d*)(r?)([.\-+,/_=]*)\}", macro, text)
        if "%" in text:
            raise _PermError(f"bad macro in {text!r}")
        return text.replace("\0", "%")

    def _matches_addresses(self, addresses, cidr4, cidr6):
        for address in addresses:
            try:
                candidate = ipaddress.ip_address(address)
            except ValueError:
                continue
            if candidate.version != self.ip.version:
                continue
            prefix = cidr4 if candidate.version == 4 else cidr6
            if self.ip in ipaddress.ip_network(f"{candidate}/{prefix}", strict=False):
                return True
        return False

    def _addresses(self, host):
        rdtype = "A" if self.ip.version == 4 else "AAAA"
        return self._query(host, rdtype)

    def check(self, domain, seen=()):
        domain = domain.lower().rstrip(".")
        if domain in seen:
            raise _PermError(f"include loop: {' -> '.join(seen + (domain,))}")
        records = spf_records(domain, lambda n, t: self._query(n, t))
        if not records:
            return "none", None, None
        if len(records) > 1:
            raise _PermError(f"{domain} publishes {len(records)} SPF records; there must be one")
        record = records[0]
        redirect = None
        mechanisms = []
        # The whole record is parsed first: a syntax error anywhere is a permerror (RFC 7208 4.6).
        for term in record.split()[1:]:
            mechanism = _MECHANISM.match(term)
            modifier = _MODIFIER.match(term)
            if mechanism:
                mechanisms.append((term, mechanism.groups()))
            elif modifier:
                if modifier.group(1).lower() == "redirect":
                    if redirect is not None:
                        raise _PermError("two redirect modifiers")
                    redirect = modifier.group(2)
            else:
                raise _PermError(f"syntax error in {domain}'s SPF record: {term!r}")
        for term, (qualifier, kind, argument, cidr4, cidr6) in mechanisms:
            if self._mechanism_matches(kind.lower(), argument, cidr4, cidr6, domain, seen + (domain,)):
                return QUALIFIERS[qualifier or "+"], record, term
        if redirect:
            self._count()
            target = self._expand(redirect, domain)
            self.includes.append(target)
            result, _record, matched = self.check(target, seen + (domain,))
            if result == "none":
                raise _PermError(f"redirect to {target}, which has no SPF record")
            return result, record, matched
        return "neutral", record, None

    def _mechanism_matches(self, kind, argument, cidr4, cidr6, domain, seen):
        prefix4 = int(cidr4[1:]) if cidr4 else 32
        prefix6 = int(cidr6[2:]) if cidr6 else 128
        target = self._expand(argument, domain) if argument else domain
        if kind == "all":
            return True
        if kind in ("ip4", "ip6"):
            if not argument:
                raise _PermError(f"{kind} needs an address")
            try:
                network = ipaddress.ip_network(argument + (cidr4 or ""), strict=False)
            except ValueError as error:
                raise _PermError(f"bad address {argument!r}") from error
            return network.version == self.ip.version and self.ip in network
        self._count()
        if kind == "include":
            self.includes.append(target)
            result, _record, _matched = self.check(target, seen)
            if result == "none":
                raise _PermError(f"include:{target} has no SPF record")
            return result == "pass"
        if kind == "a":
            return self._matches_addresses(self._void_check(self._addresses(target)), prefix4, prefix6)
        if kind == "mx":
            hosts = self._void_check(self._query(target, "MX"))
            addresses = []
            for entry in hosts[:MAX_LOOKUPS]:
                addresses += self._addresses(entry.split()[-1])
            return self._matches_addresses(addresses, prefix4, prefix6)
        if kind == "exists":
            return bool(self._void_check(self._query(target, "A")))
        if kind == "ptr":
            self.problems.append("the ptr mechanism is deprecated (RFC 7208 5.5) and ignored here")
            return False
        return False


def check_spf(domain, ip, lookup, sender=None, helo=None):
    """Evaluate ``domain``'s SPF policy for a message from ``ip``."""
    evaluation = _SpfEvaluation(lookup, ip, sender or f"postmaster@{domain}", helo)
    try:
        result, record, matched = evaluation.check(domain)
    except _PermError as error:
        evaluation.problems.append(str(error))
        result, record, matched = "permerror", None, None
        records = [t for t in _safe(lookup, domain, "TXT") if re.match(r"^v=spf1(\s|$)", t, re.I)]
        record = records[0] if len(records) == 1 else None
    except _TempError as error:
        evaluation.problems.append(str(error))
        result, record, matched = "temperror", None, None
    return SpfResult(
        result, domain, record, matched, evaluation.lookups, evaluation.void, evaluation.problems, evaluation.includes
    )


def _safe(lookup, name, rdtype):
    try:
        return lookup(name, rdtype)
    except DnsTemporaryError:
        return []


# -- DKIM ------------------------------------------------------------------------------------------------
@dataclass
class DkimKey:
    selector: str
    status: str  # ok, weak, missing, broken, revoked
    key_type: str | None = None
    bits: int | None = None
    detail: str = ""


def _tags(record):
    tags = {}
    for part in record.split(";"):
        if "=" in part:
            key, _, value = part.partition("=")
            tags[key.strip().lower()] = "".join(value.split())
    return tags


def check_dkim(domain, selector, lookup):
    name = f"{selector}._domainkey.{domain}"
    records = _safe(lookup, name, "TXT")
    if not records:
        return DkimKey(selector, "missing", detail=f"no TXT record at {name}")
    tags = _tags(records[0])
    if tags.get("v", "DKIM1") != "DKIM1":
        return DkimKey(selector, "broken", detail=f"v={tags.get('v')} is not DKIM1")
    key_type = tags.get("k", "rsa").lower()
    if "p" not in tags:
        return DkimKey(selector, "broken", key_type, detail="no p= tag (public key)")
    if not tags["p"]:
        return DkimKey(selector, "revoked", key_type, detail="empty p=: the key is revoked")
    try:
        raw = base64.b64decode(tags["p"], validate=True)
        if key_type == "ed25519":
            ed25519.Ed25519PublicKey.from_public_bytes(raw)
            return DkimKey(selector, "ok", key_type, 256, "Ed25519 key")
        key = load_der_public_key(raw)
        bits = key.key_size
    except Exception as error:  # noqa: BLE001 - any parse failure is a broken key
        return DkimKey(selector, "broken", key_type, detail=f"the public key does not parse: {error}")
    if bits < 1024:
        return DkimKey(selector, "weak", key_type, bits, f"{bits}-bit RSA is too weak: receivers ignore it")
    if bits < 2048:
        return DkimKey(selector, "weak", key_type, bits, f"{bits}-bit RSA: use 2048 bits")
    return DkimKey(selector, "ok", key_type, bits, f"{bits}-bit RSA key")


# -- DMARC (RFC 9989) ---------------------------------------------------------------------------------------
MAX_WALK = 8  # RFC 9989 DNS Tree Walk: the domain itself, then at most 7 labels, down to the top-level domain
POLICIES = ("none", "quarantine", "reject")


@dataclass
class DmarcResult:
    """The DMARC policy receivers apply to mail from ``domain`` (RFC 9989), and what is wrong with it."""

    status: str  # ok, monitoring, testing, missing, invalid, temperror (the DNS did not answer)
    domain: str
    record: str | None = None
    policy: str | None = None  # what applies to mail from ``domain``
    policy_tag: str = "p"  # the tag it comes from: p (the domain's own record) or sp (a parent's)
    record_domain: str | None = None  # where the record was found (the domain, or a parent)
    org_domain: str | None = None  # organizational domain, by the DNS Tree Walk
    subdomain_policy: str | None = None  # sp, else p
    nonexistent_policy: str | None = None  # np, else sp, else p: for subdomains that do not exist
    psd: str = "u"  # y: a public suffix domain; n: an organizational domain; u: unknown
    testing: bool = False  # t=y
    pct: int | None = None  # gone in RFC 9989; reported when a record still has it
    adkim: str = "r"
    aspf: str = "r"
    rua: list = field(default_factory=list)
    ruf: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    walk: list = field(default_factory=list)  # the names queried, in order


def tree_walk_targets(domain):
    """The names the RFC 9989 DNS Tree Walk queries (``_dmarc.`` + each), in order.

    >>> tree_walk_targets("mail.example.co.uk")
    ['mail.example.co.uk', 'example.co.uk', 'co.uk', 'uk']
    >>> tree_walk_targets("a.b.c.d.e.f.g.h.i.example")  # 10 labels: straight to 7, then one at a time
    ['a.b.c.d.e.f.g.h.i.example', 'd.e.f.g.h.i.example', 'e.f.g.h.i.example', 'f.g.h.i.example', \
'g.h.i.example', 'h.i.example', 'i.example', 'example']
    """
    labels = domain.lower().rstrip(".").split(".")
    return [".".join(labels)] + [
        ".".join(labels[-count:]) for count in range(min(len(labels) - 1, MAX_WALK - 1), 0, -1)
    ]


def dmarc_records(domain, lookup):
    """The DMARC records published for ``domain`` (TXT at ``_dmarc.<domain>`` starting with v=DMARC1).

    :raises DnsTemporaryError: when the DNS does not answer.
    """
    return [r for r in lookup(f"_dmarc.{domain}", "TXT") if re.match(r"^v\s*=\s*DMARC1\s*(;|$)", r.strip(), re.I)]


def _walk(domain, lookup, stop_at_first):
    """[(name, records)] along the tree walk; policy discovery stops at the first name with exactly one record.

    A name the DNS did not answer for ends the walk with ``(name, None)``: what lies above it is unknown.
    """
    found = []
    for target in tree_walk_targets(domain):
        try:
            records = dmarc_records(target, lookup)
        except DnsTemporaryError:
            found.append((target, None))
            break
        found.append((target, records))
        if stop_at_first and len(records) == 1:
            break
    return found


def organizational_domain(domain, lookup, walk=None):
    """The organizational domain of ``domain`` (RFC 9989 4.10.2), found in DNS instead of a public suffix list.

    Walking up from ``domain``: a record with psd=n makes its domain the organizational domain; a record with
    psd=y above ``domain`` makes the domain one label below it the organizational domain; otherwise the domain
    with the fewest labels that publishes a record is. With no record at all, ``domain`` itself is.
    """
    labels = domain.lower().rstrip(".").split(".")
    walk = walk if walk is not None else _walk(domain, lookup, stop_at_first=False)
    with_record = [(target, records[0]) for target, records in walk if records and len(records) == 1]
    for target, record in with_record:
        psd = _tags(record).get("psd", "u").lower()
        if psd == "n":
            return target
        if psd == "y" and target != ".".join(labels):
            return ".".join(labels[-(target.count(".") + 2) :])
    if with_record:
        return min(with_record, key=lambda item: item[0].count("."))[0]
    return ".".join(labels)


def aligned(domain, other, mode, lookup):
    """DMARC identifier alignment: strict (s) needs the same domain, relaxed (r) the same organizational domain."""
    domain, other = domain.lower().rstrip("."), other.lower().rstrip(".")
    if domain == other:
        return True
    return mode != "s" and organizational_domain(domain, lookup) == organizational_domain(other, lookup)


def _read_dmarc_tags(result, tags, own):
    """Fill ``result`` from a record's tags; ``own``: the record is the domain's own, not a parent's."""
    policy = tags.get("p", "").lower()
    subdomain = tags.get("sp", "").lower() or policy
    result.subdomain_policy = subdomain or None
    result.nonexistent_policy = tags.get("np", "").lower() or subdomain or None
    result.policy_tag = "p" if own or "sp" not in tags else "sp"
    result.policy = (policy if own else subdomain) or "none"
    result.psd = tags.get("psd", "u").lower()
    result.testing = tags.get("t", "n").lower() == "y"
    result.adkim, result.aspf = tags.get("adkim", "r").lower(), tags.get("aspf", "r").lower()
    result.rua = [a for a in tags.get("rua", "").split(",") if a]
    result.ruf = [a for a in tags.get("ruf", "").split(",") if a]
    if "p" not in tags:
        result.problems.append("no p= tag: receivers treat the record as p=none")
    for name in ("p", "sp", "np"):
        if name in tags and tags[name].lower() not in POLICIES:
            result.problems.append(f"{name}= must be none, quarantine or reject, not {tags[name]!r}")
            result.status = "invalid"


def _legacy_dmarc_tags(result, tags):
    """pct, rf and ri are gone in RFC 9989: say so, and what a record relying on pct should do instead."""
    if "pct" in tags:
        result.pct = int(tags["pct"]) if tags["pct"].isdigit() else None
        if result.pct == 100:
            result.notes.append("pct=100 can go: RFC 9989 removed pct")
        else:
            result.problems.append(
                f"pct={tags['pct']}: RFC 9989 removed pct, receivers apply the policy to all failing mail; "
                "remove it, and use t=y while you test"
            )
    for legacy in ("rf", "ri"):
        if legacy in tags:
            result.notes.append(f"{legacy}= is gone in RFC 9989 and ignored")


def check_dmarc(domain, lookup):
    """The DMARC policy for mail from ``domain``: RFC 9989 policy discovery and organizational domain."""
    domain = domain.lower().rstrip(".")
    full_walk = _walk(domain, lookup, stop_at_first=False)
    result = DmarcResult(
        "missing",
        domain,
        org_domain=organizational_domain(domain, lookup, full_walk),
        walk=[f"_dmarc.{target}" for target, _records in full_walk],
    )
    for target, records in full_walk:
        if records is None:
            result.problems.append(f"the DNS did not answer for _dmarc.{target}")
        elif len(records) > 1:
            result.problems.append(f"_dmarc.{target} has {len(records)} DMARC records: receivers ignore them all")
    result.record_domain, result.record = next(((t, r[0]) for t, r in full_walk if r and len(r) == 1), (None, None))
    if result.record is None:
        if full_walk[-1][1] is None:
            result.status = "temperror"
            return result
        result.problems.insert(0, "no DMARC record")
        return result
    tags = _tags(result.record)
    own = result.record_domain == domain
    _read_dmarc_tags(result, tags, own)
    if result.status == "invalid":
        return result
    if not own:
        result.notes.append(
            f"{domain} has no record of its own: receivers apply {result.policy_tag}= of _dmarc.{result.record_domain}"
        )
    _legacy_dmarc_tags(result, tags)
    if result.psd == "y" and own:
        result.problems.append("psd=y declares this domain a public suffix, not a sender's domain")
    result.status = "ok"
    if result.policy == "none":
        result.status = "monitoring"
        result.problems.append("this policy only monitors: failing mail is still delivered")
    elif result.testing:
        result.status = "testing"
        result.problems.append(
            f"t=y (testing): receivers apply one step less than {result.policy_tag}={result.policy} "
            "(reject as quarantine, quarantine as none)"
        )
    if not result.rua:
        result.problems.append("no rua= address: you receive no aggregate reports")
    return result


# -- MX and STARTTLS ---------------------------------------------------------------------------------------
def mx_hosts(domain, lookup):
    entries = []
    for value in _safe(lookup, domain, "MX"):
        preference, _, host = value.partition(" ")
        entries.append((int(preference), host))
    return [host for _preference, host in sorted(entries)]


# -- the whole diagnosis -------------------------------------------------------------------------------------
@dataclass
class Finding:
    check: str  # spf, dkim, dmarc, mx
    status: str  # ok, warn, fail
    summary: str
    fix: str = ""  # the DNS record to add or change


@dataclass
class Diagnosis:
    domain: str
    findings: list

    @property
    def status(self):
        statuses = {finding.status for finding in self.findings}
        return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "ok"


def _spf_fix(domain, current, mechanisms):
    if current:
        terms = current.split()
        tail = [t for t in terms[1:] if t.lower().endswith("all") or t.lower().startswith("redirect=")]
        body = [t for t in terms[1:] if t not in tail]
        return f'{domain} TXT "{" ".join(["v=spf1"] + body + mechanisms + (tail or ["~all"]))}"'
    return f'{domain} TXT "v=spf1 {" ".join(mechanisms)} ~all"'


def _spf_findings(domain, lookup, ips, include):
    results = [check_spf(domain, ip, lookup) for ip in ips]
    probe = results[0] if results else check_spf(domain, "192.0.2.1", lookup)
    if probe.result in ("permerror", "temperror"):
        return [
            Finding(
                "spf",
                "fail",
                f"SPF {probe.result}: {'; '.join(probe.problems)}",
                "Fix the record so that it has one v=spf1 record, at most 10 lookups and no loop.",
            )
        ]
    if probe.result == "none":
        mechanisms = [f"include:{include}"] if include else [f"ip{ipaddress.ip_address(ip).version}:{ip}" for ip in ips]
        return [
            Finding(
                "spf", "fail", f"{domain} publishes no SPF record", _spf_fix(domain, None, mechanisms or ["a", "mx"])
            )
        ]
    findings = []
    if include and include not in probe.includes:
        findings.append(
            Finding(
                "spf",
                "fail",
                f"SPF does not include {include}, the provider's servers",
                _spf_fix(domain, probe.record, [f"include:{include}"]),
            )
        )
    failing = [r for r in results if r.result != "pass"]
    if ips and not include and failing:
        missing = [
            f"ip{ipaddress.ip_address(ip).version}:{ip}"
            for ip, r in zip(ips, results, strict=True)
            if r.result != "pass"
        ]
        findings.append(
            Finding(
                "spf",
                "fail",
                f"SPF {failing[0].result} for {', '.join(missing)}",
                _spf_fix(domain, probe.record, missing),
            )
        )
    if not findings:
        findings.append(
            Finding(
                "spf", "ok", f"SPF authorises the server ({probe.lookups} of {MAX_LOOKUPS} lookups): {probe.record}"
            )
        )
    return findings + [Finding("spf", "warn", problem) for problem in probe.problems]


def _dkim_findings(domain, lookup, selectors):
    if not selectors:
        return [
            Finding(
                "dkim",
                "warn",
                "no DKIM selector configured: mail is not signed for this domain",
                "Generate a DKIM key for this domain and publish its TXT record.",
            )
        ]
    findings = []
    for selector in selectors:
        key = check_dkim(domain, selector, lookup)
        status = {"ok": "ok", "weak": "warn"}.get(key.status, "fail")
        if key.status == "weak" and key.bits and key.bits < 1024:
            status = "fail"
        fix = (
            ""
            if status == "ok"
            else (f"Generate a 2048-bit RSA or an Ed25519 key and publish its record at {selector}._domainkey.{domain}")
        )
        findings.append(Finding("dkim", status, f"DKIM selector {selector}: {key.detail}", fix))
    return findings


def _dmarc_summary(dmarc):
    """What receivers apply, where it comes from, and the organizational domain (RFC 9989 tree walk)."""
    origin = "" if dmarc.record_domain == dmarc.domain else f" (from _dmarc.{dmarc.record_domain})"
    extra = [f"np={dmarc.nonexistent_policy}"] if dmarc.nonexistent_policy else []
    extra += [f"adkim={dmarc.adkim}", f"aspf={dmarc.aspf}"] + (["t=y"] if dmarc.testing else [])
    return (
        f"DMARC {dmarc.policy_tag}={dmarc.policy} for {dmarc.domain}{origin}; {', '.join(extra)}; "
        f"organizational domain {dmarc.org_domain} (RFC 9989 DNS tree walk)"
    )


def _dmarc_without(record, names):
    """The record without these tags."""
    parts = [part.strip() for part in record.split(";") if part.strip()]
    return "; ".join(part for part in parts if part.split("=", 1)[0].strip().lower() not in names)


def _dmarc_findings(domain, lookup):
    dmarc = check_dmarc(domain, lookup)
    target = dmarc.record_domain or domain
    advice = f'_dmarc.{target} TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@{target}; adkim=r; aspf=r"'
    if dmarc.status == "temperror":
        return [Finding("dmarc", "fail", "DMARC unknown: " + "; ".join(dmarc.problems))]
    if dmarc.status == "missing":
        walked = ", ".join(dmarc.walk)
        return [Finding("dmarc", "fail", f"no DMARC record (RFC 9989 DNS tree walk: {walked})", advice)]
    if dmarc.status == "invalid":
        return [Finding("dmarc", "fail", "invalid DMARC record: " + "; ".join(dmarc.problems), advice)]
    summary = _dmarc_summary(dmarc)
    notes = "".join(f"; {note}" for note in dmarc.notes)
    current = _dmarc_without(dmarc.record, ("pct", "rf", "ri"))
    if dmarc.status == "monitoring":
        tighter = re.sub(r"\bp\s*=\s*none\b", "p=quarantine", current, flags=re.I)
        return [
            Finding(
                "dmarc",
                "warn",
                summary + ": " + "; ".join(dmarc.problems) + notes,
                f'_dmarc.{target} TXT "{tighter}" once the reports show your mail passes',
            )
        ]
    fix = ""
    if dmarc.status == "testing":
        fix = f'_dmarc.{target} TXT "{_dmarc_without(current, ("t",))}" once testing is over'
    elif dmarc.pct is not None and dmarc.pct != 100:
        fix = f'_dmarc.{target} TXT "{current}; t=y" while you test, then "{current}"'
    detail = "; " + "; ".join(dmarc.problems) if dmarc.problems else ""
    return [Finding("dmarc", "warn" if dmarc.problems else "ok", summary + detail + notes, fix)]


def _mx_findings(domain, lookup, starttls):
    hosts = mx_hosts(domain, lookup)
    if not hosts:
        return [Finding("mx", "warn", f"{domain} has no MX record: replies and bounces cannot come back")]
    summary, status = "MX: " + ", ".join(hosts), "ok"
    if starttls:
        without = [host for host in hosts if not starttls(host)]
        if without:
            status, summary = "warn", summary + f"; no STARTTLS on {', '.join(without)}"
        else:
            summary += "; all offer STARTTLS"
    return [Finding("mx", status, summary)]


def diagnose(domain, lookup, ips=(), provider=None, selectors=(), starttls=None):
    """Every check for ``domain`` as the From domain of mail sent from ``ips`` (through ``provider``).

    :param starttls: optional ``callable(mx_host) -> bool`` that says whether an MX offers STARTTLS.
    """
    domain = domain.lower().rstrip(".")
    provider = "amazon_ses" if (provider or "").startswith("amazon_ses") else provider
    findings = _spf_findings(domain, lookup, list(ips), PROVIDER_INCLUDES.get(provider))
    findings += _dkim_findings(domain, lookup, selectors)
    findings += _dmarc_findings(domain, lookup)
    findings += _mx_findings(domain, lookup, starttls)
    return Diagnosis(domain, findings)
