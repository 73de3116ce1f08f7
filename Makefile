# smtp_routing developer commands. Only Python 3.11 and the PostgreSQL binaries
# are needed; everything else is installed into .venv / .venv-odoo on first use.
PYTHON ?= python3

.PHONY: test demo bench pot screenshots lint clean

test:  ## lint + framework-free suite + Odoo suite (when ODOO_PATH names an Odoo 18 tree)
	$(PYTHON) scripts/run_tests.py

demo:  ## PostgreSQL + loopback SMTP sinks + Odoo with smtp_routing; sends a batch; serves until Ctrl-C
	$(PYTHON) scripts/demo.py

bench:  ## stock Odoo 18 vs smtp_routing: throughput, at 0/20/50 ms round trip, raw SMTP limit, limited rate (needs ODOO_PATH)
	$(PYTHON) scripts/bench.py

pot:  ## regenerate smtp_routing/i18n/smtp_routing.pot with Odoo's exporter (needs ODOO_PATH); then update es.po
	$(PYTHON) scripts/export_pot.py

screenshots:  ## the README's screenshots, from the running demo in headless Chromium (needs ODOO_PATH, chromium)
	$(PYTHON) scripts/screenshots.py

lint:
	$(PYTHON) -c "import sys; sys.path.insert(0, 'scripts'); import devenv, subprocess; \
	sys.exit(subprocess.call([str(devenv.ensure_test_venv()), '-m', 'ruff', 'check', '.']))"

clean:
	rm -rf .venv .venv-odoo
