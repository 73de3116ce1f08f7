"""Framework-free core of smtp_routing.

Plain functions over plain values (routing, limits, SMTP error classes,
secrets, DNS checks, ESMTP pipelining over an open session). Nothing under
this package imports ``odoo``: a ruff rule (TID251) guards the boundary, and
the framework-free test suite imports it with no Odoo installed.
"""
