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
