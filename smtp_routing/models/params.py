# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Reading smtp_routing's system parameters (ir.config_parameter) the same way everywhere.

Not a model: a helper the models, wizards and the sending engine share.
"""

ON = ("1", "True", "true")
OFF = ("0", "False", "false")


def flag(env, key, default):
    """A yes/no parameter: ``default`` when unset; only an explicit opposite value changes it."""
    value = env["ir.config_parameter"].sudo().get_param(key)
    return value not in OFF if default else value in ON


def integer(env, key, default):
    """A whole-number parameter: ``default`` when unset or not a number."""
    try:
        return int(env["ir.config_parameter"].sudo().get_param(key, default))
    except (TypeError, ValueError):
        return default
