# smtp_routing developer commands. Only Python 3.11 and the PostgreSQL binaries
# are needed; everything else is installed into .venv / .venv-odoo on first use.
PYTHON ?= python3

.PHONY: test demo bench lint clean

test:  ## lint + framework-free suite + Odoo suite (when ODOO_PATH names an Odoo 18 tree)
	$(PYTHON) scripts/run_tests.py

demo:  ## PostgreSQL + loopback SMTP sinks + Odoo with smtp_routing; sends a batch; serves until Ctrl-C
	$(PYTHON) scripts/demo.py

bench:  ## stock Odoo 18 vs smtp_routing queue throughput and limited-rate accuracy (needs ODOO_PATH)
	$(PYTHON) scripts/bench.py

lint:
	$(PYTHON) -c "import sys; sys.path.insert(0, 'scripts'); import devenv, subprocess; \
	sys.exit(subprocess.call([str(devenv.ensure_test_venv()), '-m', 'ruff', 'check', '.']))"

clean:
	rm -rf .venv .venv-odoo
