import pytest

from smtp_routing.tools import presets


@pytest.mark.parametrize(
    ("code", "host", "port", "encryption"),
    [
        ("gmail", "smtp.gmail.com", 587, "starttls"),
        ("google_workspace", "smtp.gmail.com", 587, "starttls"),
        ("microsoft365", "smtp.office365.com", 587, "starttls"),
        ("sendgrid", "smtp.sendgrid.net", 587, "starttls"),
        ("postmark", "smtp.postmarkapp.com", 587, "starttls"),
        ("mailgun", "smtp.mailgun.org", 587, "starttls"),
        ("amazon_ses_eu-west-1", "email-smtp.eu-west-1.amazonaws.com", 587, "starttls"),
    ],
)
def test_preset_connection_settings(code, host, port, encryption):
    preset = presets.get(code)
    assert (preset.host, preset.port, preset.encryption) == (host, port, encryption)


def test_published_limits():
    assert presets.get("gmail").limits.per_day == 500
    workspace = presets.get("google_workspace").limits
    assert (workspace.per_day, workspace.recipients_per_message) == (2000, 100)
    microsoft = presets.get("microsoft365").limits
    assert (microsoft.per_minute, microsoft.recipients_per_day) == (30, 10000)
    assert "30 per minute" in presets.describe_limits(microsoft)
    assert "10,000 recipients per day" in presets.describe_limits(microsoft)


def test_selection_has_every_preset_once_generic_last():
    codes = [code for code, _label in presets.selection()]
    assert len(codes) == len(set(codes)) == len(presets.PRESETS)
    assert codes[-1] == "generic"
    assert sum(code.startswith("amazon_ses_") for code in codes) == len(presets.SES_REGIONS)


def test_unknown_ses_region():
    with pytest.raises(KeyError):
        presets.ses_preset("mars-north-1")


@pytest.mark.parametrize(
    ("address", "consumer"),
    [
        ("someone@gmail.com", True),
        ("Someone@Hotmail.COM", True),
        ("x@outlook.com", True),
        ("x@yahoo.com", True),
        ("office@practice.example", False),
        ("x@gmail.com.practice.example", False),
        ("", False),
        (None, False),
        ("no-at-sign", False),
    ],
)
def test_consumer_addresses(address, consumer):
    assert presets.is_consumer_address(address) is consumer


CONNECTIONS_MIN, CONNECTIONS_MAX = 1, 16  # the server form's range


def test_every_preset_opens_a_sane_number_of_connections():
    for preset in presets.PRESETS.values():
        assert CONNECTIONS_MIN <= preset.connections <= CONNECTIONS_MAX, preset.code
        published = preset.limits.connections
        if published:  # never more than the provider allows, and we say where it says so
            assert preset.connections <= published, preset.code
            assert preset.connections_source.startswith("https://"), preset.code
    assert presets.get("generic").connections == 4


def test_published_connection_limits():
    microsoft = presets.get("microsoft365")
    assert microsoft.connections == microsoft.limits.connections == 3
    assert "learn.microsoft.com" in microsoft.connections_source
    assert "3 connections at once" in presets.describe_limits(microsoft.limits)
    sendgrid = presets.get("sendgrid")
    assert sendgrid.limits.connections == 10000 and sendgrid.connections == 8
    assert "10,000 connections at once" in presets.describe_limits(sendgrid.limits)
    assert "connections" not in presets.describe_limits(presets.get("gmail").limits)  # nothing published


def test_suggested_limits_stay_below_what_each_provider_publishes():
    for preset in presets.PRESETS.values():
        values = presets.suggested_limits(preset)
        limits = preset.limits
        windows = [v for v in (limits.per_minute, limits.per_hour, limits.per_day or limits.recipients_per_day) if v]
        if not windows:
            assert values == {}, preset.code
            continue
        assert values["smtp_routing_throttle_max"] < windows[0], preset.code
        assert values["smtp_routing_count_recipients"] == limits.counts_recipients
        for field in ("smtp_routing_hourly_max", "smtp_routing_daily_max"):
            assert values.get(field, 0) < max(windows), (preset.code, field)


def test_suggested_limits_for_microsoft_365_are_people_sized():
    values = presets.suggested_limits(presets.get("microsoft365"))
    assert values == {
        "smtp_routing_throttle_max": 27,
        "smtp_routing_throttle_duration": 1,
        "smtp_routing_throttle_unit": "minutes",
        "smtp_routing_daily_max": 9000,
        "smtp_routing_count_recipients": True,
        "max_email_size": 35,
    }
