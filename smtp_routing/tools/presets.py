"""Provider presets: connection settings and published sending limits.

Limits are the providers' published figures at the time of writing (they change;
the UI calls them suggestions). ``None`` means "no published fixed limit".

``Preset.connections`` is how many connections smtp_routing opens at once to the
provider (the server's *Connections* setting). Where the provider publishes a
limit on simultaneous connections it is in ``PublishedLimits.connections`` and
``Preset.connections_source`` says where; elsewhere the value is a conservative
guess (``connections_source`` empty).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedLimits:
    per_minute: int | None = None
    per_hour: int | None = None
    per_day: int | None = None
    recipients_per_message: int | None = None
    recipients_per_day: int | None = None
    max_message_mb: float | None = None
    counts_recipients: bool = False  # the provider counts recipients, not messages
    connections: int | None = None  # simultaneous SMTP connections the provider allows


@dataclass(frozen=True)
class Preset:
    code: str
    label: str
    host: str
    port: int
    encryption: str  # "none", "starttls" or "ssl" (Odoo's smtp_encryption values)
    limits: PublishedLimits
    note: str = ""
    connections: int = 4  # what smtp_routing opens at once (default of the server's Connections)
    connections_source: str = ""  # where the provider publishes its connection limit; empty: our guess


SES_REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-south-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "sa-east-1",
    "me-south-1",
    "af-south-1",
)

_PRESETS = (
    Preset(
        "gmail",
        "Gmail (personal account)",
        "smtp.gmail.com",
        587,
        "starttls",
        PublishedLimits(per_day=500, recipients_per_message=100, max_message_mb=25, counts_recipients=True),
        "About 500 recipients per day. Meant for one person's mail, not for a practice's bulk mail.",
        # Google publishes no limit on simultaneous SMTP connections; with 500 a day, more connections buy
        # nothing: a conservative guess.
        connections=2,
    ),
    Preset(
        "google_workspace",
        "Google Workspace",
        "smtp.gmail.com",
        587,
        "starttls",
        PublishedLimits(per_day=2000, recipients_per_message=100, max_message_mb=25, counts_recipients=True),
        "2,000 messages per day per user, at most 100 recipients per message.",
        connections=4,  # no published SMTP connection limit: a conservative guess
    ),
    Preset(
        "microsoft365",
        "Microsoft 365 / Exchange Online",
        "smtp.office365.com",
        587,
        "starttls",
        PublishedLimits(
            per_minute=30,
            recipients_per_day=10000,
            recipients_per_message=500,
            max_message_mb=35,
            counts_recipients=True,
            connections=3,
        ),
        "30 messages per minute and 10,000 recipients per day per mailbox. SMTP AUTH must be enabled for the mailbox.",
        # A fourth connection gets "432 4.3.2 Concurrent connections limit exceeded".
        connections=3,
        connections_source="https://learn.microsoft.com/en-us/exchange/troubleshoot/send-emails/smtp-submission-improvements",
    ),
    Preset(
        "sendgrid",
        "SendGrid",
        "smtp.sendgrid.net",
        587,
        "starttls",
        PublishedLimits(recipients_per_message=1000, max_message_mb=30, connections=10000),
        "User name is the literal 'apikey'; the password is an API key. Daily volume depends on the plan.",
        # SendGrid allows up to 10,000 concurrent connections from one server; 8 is plenty for one Odoo.
        connections=8,
        connections_source="https://docs.sendgrid.com/for-developers/sending-email/integrating-with-the-smtp-api",
    ),
    Preset(
        "postmark",
        "Postmark",
        "smtp.postmarkapp.com",
        587,
        "starttls",
        PublishedLimits(recipients_per_message=50, max_message_mb=10),
        "User name and password are both the server API token.",
        connections=4,  # no published SMTP connection limit: a conservative guess
    ),
    Preset(
        "mailgun",
        "Mailgun",
        "smtp.mailgun.org",
        587,
        "starttls",
        PublishedLimits(recipients_per_message=1000, max_message_mb=25),
        "Use the EU host smtp.eu.mailgun.org for EU-region domains.",
        connections=4,  # no published SMTP connection limit: a conservative guess
    ),
    Preset(
        "generic",
        "Generic SMTP server",
        "",
        587,
        "starttls",
        PublishedLimits(),
        "Any server: fill in the host your provider gives you.",
    ),
)

SES_LIMITS = PublishedLimits(per_day=50000, max_message_mb=40, recipients_per_message=50)


def ses_preset(region):
    if region not in SES_REGIONS:
        raise KeyError(region)
    return Preset(
        f"amazon_ses_{region}",
        f"Amazon SES ({region})",
        f"email-smtp.{region}.amazonaws.com",
        587,
        "starttls",
        SES_LIMITS,
        "SMTP credentials are created in the SES console (not the AWS access key). The sending quota "
        "depends on the account; new accounts start in the sandbox (200 per day).",
        # AWS caps the send rate per second (by account), not connections, and suggests sending from several
        # threads; 4 is a conservative guess. Set a throttle at the account's maximum send rate.
        connections=4,
    )


PRESETS = {preset.code: preset for preset in _PRESETS}
PRESETS.update({f"amazon_ses_{region}": ses_preset(region) for region in SES_REGIONS})


def get(code):
    return PRESETS[code]


def selection():
    """(code, label) pairs for a selection field, generic last."""
    ordered = [preset for preset in PRESETS.values() if preset.code != "generic"] + [PRESETS["generic"]]
    return [(preset.code, preset.label) for preset in ordered]


def describe_limits(limits):
    """Readable summary of a preset's limits, in English (the model translates the frame)."""
    parts = []
    if limits.per_minute:
        parts.append(f"{limits.per_minute:,} per minute")
    if limits.per_hour:
        parts.append(f"{limits.per_hour:,} per hour")
    if limits.per_day:
        unit = "recipients" if limits.counts_recipients else "messages"
        parts.append(f"{limits.per_day:,} {unit} per day")
    if limits.recipients_per_day:
        parts.append(f"{limits.recipients_per_day:,} recipients per day")
    if limits.recipients_per_message:
        parts.append(f"{limits.recipients_per_message:,} recipients per message")
    if limits.max_message_mb:
        parts.append(f"{limits.max_message_mb:g} MB per message")
    if limits.connections:
        parts.append(f"{limits.connections:,} connections at once")
    return ", ".join(parts)


# Free consumer mailbox domains: a company server sending as one of these gets
# banned for bulk use, and fails DMARC when it relays through another provider.
CONSUMER_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "hotmail.co.uk",
        "hotmail.fr",
        "hotmail.es",
        "outlook.es",
        "outlook.fr",
        "yahoo.com",
        "yahoo.es",
        "yahoo.fr",
        "yahoo.co.uk",
        "ymail.com",
        "aol.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "mail.com",
        "proton.me",
        "protonmail.com",
        "zoho.com",
        "yandex.com",
        "yandex.ru",
        "mail.ru",
        "qq.com",
        "163.com",
    }
)


def is_consumer_address(address):
    if not address or "@" not in address:
        return False
    return address.rsplit("@", 1)[1].strip().strip(">").lower() in CONSUMER_DOMAINS


SAFETY_MARGIN = 0.9  # a little below the provider's published limits: other clients of the mailbox count too


def suggested_limits(preset, margin=SAFETY_MARGIN):
    """The server settings (field name -> value) that keep under ``preset``'s published limits.

    The shortest published window becomes the throttle (per minute, else per hour, else 24 hours, which
    matches the rolling day Google counts); the other published windows become the hourly and daily caps.
    Each is ``margin`` of the provider's figure, rounded down, and at least 1.

    >>> suggested_limits(PRESETS["microsoft365"])["smtp_routing_throttle_max"]
    27
    >>> values = suggested_limits(PRESETS["gmail"])
    >>> [values[f"smtp_routing_throttle_{key}"] for key in ("max", "duration", "unit")]
    [450, 24, 'hours']
    >>> suggested_limits(PRESETS["microsoft365"])["smtp_routing_daily_max"]
    9000
    >>> suggested_limits(PRESETS["generic"])
    {}
    """
    limits = preset.limits

    def below(value):
        return max(int(value * margin), 1)

    windows = [
        ("per_minute", limits.per_minute, 1, "minutes"),
        ("per_hour", limits.per_hour, 1, "hours"),
        ("per_day", limits.per_day or limits.recipients_per_day, 24, "hours"),
    ]
    published = [(name, value, duration, unit) for name, value, duration, unit in windows if value]
    if not published:
        return {}
    values = {}
    name, value, duration, unit = published[0]
    values.update(
        smtp_routing_throttle_max=below(value),
        smtp_routing_throttle_duration=duration,
        smtp_routing_throttle_unit=unit,
    )
    for name, value, _duration, _unit in published[1:]:
        field = "smtp_routing_hourly_max" if name == "per_hour" else "smtp_routing_daily_max"
        values[field] = below(value)
    values["smtp_routing_count_recipients"] = limits.counts_recipients
    if limits.max_message_mb:
        values["max_email_size"] = limits.max_message_mb
    return values
