# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import re

from odoo import api, fields, models, tools
from odoo.exceptions import UserError, ValidationError

from ..tools import dkim, secrets
from .access import require_admin
from .ir_mail_server import _keyring

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_SELECTOR = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class SmtpRoutingDkimKey(models.Model):
    """A DKIM key for one sender domain: outgoing mail From that domain is signed with it."""

    _name = "smtp_routing.dkim.key"
    _description = "DKIM Key"
    _order = "domain, selector"
    _rec_name = "domain"

    domain = fields.Char(required=True, help="The From domain to sign for, e.g. practice.example.")
    selector = fields.Char(required=True, default=lambda self: f"odoo{fields.Date.today().year}")
    algorithm = fields.Selection(
        [("rsa", "RSA 2048"), ("ed25519", "Ed25519")],
        default="rsa",
        required=True,
        help="RSA is understood by every receiver; Ed25519 keys are short but newer.",
    )
    active = fields.Boolean(default=True, help="Only active keys sign mail.")
    private_key_encrypted = fields.Char(groups="base.group_system", copy=False, readonly=True, exportable=False)
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

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            for name in ("domain", "selector"):
                if vals.get(name):
                    vals[name] = vals[name].strip().lower()
        keys = super().create(vals_list)
        keys.filtered(lambda k: not k.sudo().private_key_encrypted).action_generate_key()
        self.env.registry.clear_cache()
        return keys

    def write(self, vals):
        result = super().write(vals)
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
            key.sudo().private_key_encrypted = secrets.encrypt(pem, _keyring())
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
        try:
            return secrets.decrypt(stored, _keyring())
        except secrets.SecretError:
            if raise_if_missing:
                raise
            return None

    @api.model
    @tools.ormcache()
    def _smtp_routing_signing_keys(self):
        """{domain: (selector, key id)} of the active keys (cached; cleared when keys change)."""
        keys = self.sudo().search([("active", "=", True)], order="id desc")
        result = {}
        for key in keys:
            result.setdefault(key.domain, (key.selector, key.id))
        return result
