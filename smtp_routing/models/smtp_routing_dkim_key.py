# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import email.generator
import io
import logging
import re

from odoo import api, fields, models, tools
from odoo.exceptions import UserError, ValidationError
from odoo.tools import email_domain_extract, email_normalize

from ..tools import dkim, pipelining
from ..tools.headers import RawHeader
from .access import require_admin
from .smtp_routing_secret_mixin import ADMINS, secret_field

_logger = logging.getLogger(__name__)
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_SELECTOR = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class SmtpRoutingDkimKey(models.Model):
    """A DKIM key for one sender domain: outgoing mail From that domain is signed with it."""

    _name = "smtp_routing.dkim.key"
    _inherit = "smtp_routing.secret.mixin"
    _description = "DKIM Key"
    _order = "domain, selector"
    _rec_name = "domain"
    _smtp_routing_secret_fields = {"private_key": "private_key_encrypted"}

    domain = fields.Char(required=True, help="The From domain to sign for, e.g. practice.example.")
    selector = fields.Char(required=True, default=lambda self: f"odoo{fields.Date.today().year}")
    algorithm = fields.Selection(
        [("rsa", "RSA 2048"), ("ed25519", "Ed25519")],
        default="rsa",
        required=True,
        help="RSA is understood by every receiver; Ed25519 keys are short but newer.",
    )
    active = fields.Boolean(default=True, help="Only active keys sign mail.")
    private_key = secret_field(
        string="Private Key",
        groups=ADMINS,
        help="Write-only: paste an existing private key (PEM, RSA or Ed25519) to sign with it instead of a "
        "generated one. It is encrypted at once and never shown again.",
    )
    private_key_encrypted = fields.Char(groups=ADMINS, copy=False, readonly=True, exportable=False)
    dns_name = fields.Char(string="Publish At", compute="_compute_dns_name")
    # Stored: the private key is decrypted when it is generated and when mail is signed, not to show a form.
    dns_record = fields.Char(string="TXT Record", compute="_compute_dns_record", store=True)

    _sql_constraints = [("domain_selector_unique", "UNIQUE(domain, selector)", "This selector already exists.")]

    @api.depends("domain", "selector")
    def _compute_dns_name(self):
        for key in self:
            key.dns_name = f"{key.selector}._domainkey.{key.domain}" if key.domain and key.selector else False

    @api.depends("private_key_encrypted")
    def _compute_dns_record(self):
        for key in self:
            pem = key._private_pem(raise_if_missing=False)
            key.dns_record = dkim.public_record(pem) if pem else False

    @api.constrains("domain", "selector")
    def _check_names(self):
        for key in self:
            if not _DOMAIN.match(key.domain or ""):
                raise ValidationError(
                    self.env._("%(domain)s is not a domain name (e.g. practice.example).", domain=key.domain)
                )
            if not _SELECTOR.match(key.selector or ""):
                raise ValidationError(
                    self.env._(
                        "The selector %(selector)s may hold letters, digits and dashes only.", selector=key.selector
                    )
                )

    def _smtp_routing_secret_accepted(self, name, value):
        """A pasted key must be a private key of the chosen kind (its TXT record is derived from it)."""
        try:
            record = dkim.public_record(value)
        except (ValueError, TypeError) as error:
            raise ValidationError(
                self.env._(
                    "The private key for %(domain)s is not an RSA or Ed25519 key in PEM form.", domain=self.domain
                )
            ) from error
        if ("k=ed25519" in record) != (self.algorithm == "ed25519"):
            raise ValidationError(
                self.env._("The private key for %(domain)s does not match the chosen algorithm.", domain=self.domain)
            )
        bits = dkim.rsa_bits(value)
        if bits is not None and bits < dkim.MIN_RSA_BITS:
            raise ValidationError(
                self.env._(
                    "The private key for %(domain)s has %(bits)s bits: receivers ignore DKIM signatures made with RSA "
                    "keys of less than 1024 bits. Paste a key of 2048 bits, or leave the field empty and generate one.",
                    domain=self.domain,
                    bits=bits,
                )
            )
        return True

    def _smtp_routing_secret_message(self, error, server=None, field=None):
        """The mixin speaks of a server's password: a DKIM key that cannot be opened is named as such."""
        key = server or self[:1]
        if error.code == "wrong_key":
            return self.env._(
                "The private key of the DKIM key %(selector)s of %(domain)s cannot be decrypted with the key in use. "
                "Restore the key it was encrypted with (environment variable SMTP_ROUTING_KEYS, odoo.conf option "
                "smtp_routing_keys, or the key file in Odoo's data directory), or generate a new one and publish its "
                "TXT record.",
                selector=key.selector,
                domain=key.domain,
            )
        if error.code == "not_encrypted":
            return self.env._(
                "The private key of the DKIM key %(selector)s of %(domain)s is not in the expected encrypted form: "
                "generate a new one and publish its TXT record.",
                selector=key.selector,
                domain=key.domain,
            )
        return super()._smtp_routing_secret_message(error, server, field=field)

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            for name in ("domain", "selector"):
                if vals.get(name):
                    vals[name] = vals[name].strip().lower()
        keys = super().create(vals_list)
        keys.invalidate_recordset(["private_key"])  # what was pasted is not kept, not even in the cache
        keys.filtered(lambda k: not k.sudo().private_key_encrypted).action_generate_key()
        self.env.registry.clear_cache()
        return keys

    def write(self, vals):
        result = super().write(vals)
        if "private_key" in vals:
            self.invalidate_recordset(["private_key"])
        self.env.registry.clear_cache()
        return result

    def unlink(self):
        result = super().unlink()
        self.env.registry.clear_cache()
        return result

    def action_generate_key(self):
        """A new key pair (replaces the current one: publish the new record before mail is signed with it)."""
        require_admin(self.env)
        for key in self:
            pem, _record = dkim.generate_key(key.algorithm)
            key.sudo().private_key_encrypted = key._smtp_routing_encrypt(pem)
        self.env.registry.clear_cache()
        return True

    def _private_pem(self, raise_if_missing=True):
        self.ensure_one()
        stored = self.sudo().private_key_encrypted
        if not stored:
            if raise_if_missing:
                raise UserError(
                    self.env._("The DKIM key for %(domain)s has no private key: generate one.", domain=self.domain)
                )
            return None
        return self._smtp_routing_reveal("private_key", missing_ok=not raise_if_missing)

    @api.model
    @tools.ormcache()
    def _smtp_routing_signing_keys(self):
        """{domain: (selector, key id)} of the active keys (cached; cleared when keys change)."""
        keys = self.sudo().search([("active", "=", True)], order="id desc")
        result = {}
        for key in keys:
            result.setdefault(key.domain, (key.selector, key.id))
        return result

    @api.model
    def _smtp_routing_sign(self, message):
        """Sign ``message`` with the DKIM key of its From domain, once the headers are final (after Odoo's
        rewrites: ir.mail_server._prepare_email_message calls this last)."""
        keys = self._smtp_routing_signing_keys()
        if not keys:
            return
        domain = email_domain_extract(email_normalize(message["From"] or "") or "")
        if domain not in keys:
            return
        selector, key_id = keys[domain]
        pem = self.sudo().browse(key_id)._private_pem(raise_if_missing=False)
        if not pem:
            _logger.warning("smtp_routing: DKIM key %s for %s cannot be read; mail sent unsigned", selector, domain)
            return
        del message["DKIM-Signature"]
        buffer = io.BytesIO()
        # the same generator smtplib.send_message() uses, so the signed bytes are the sent bytes
        email.generator.BytesGenerator(buffer).flatten(message, linesep="\r\n")
        pipelining.remember_flattened(message, buffer.getvalue())  # sent as these bytes plus the signature
        value = dkim.sign(buffer.getvalue(), domain, selector, pem)
        # written as is, folded only at its spaces: the email package would turn a long h= list into encoded words
        message["DKIM-Signature"] = RawHeader("DKIM-Signature", dkim.foldable(value), max_line=78)
