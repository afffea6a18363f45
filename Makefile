# The two commands of the quick start: `make run` and `make test`.
# Each does its own set-up, so both work on a fresh clone.

VENV    := .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.requirements-installed
PYTEST_ARGS ?=

.PHONY: run stop test lint bench screenshots check-config system-deps redis-dep second-issuer clean run-https

## Virtualenv with the pinned requirements (re-installed when they change).
$(STAMP): requirements.txt
	@$(call apt_install,python3-venv)
	test -x $(VENV)/bin/pip || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

## Debian packages the suite needs: python3-venv (Debian's python3 lacks
## ensurepip without it), redis-server (for the embedded Redis),
## chromium and chromium-driver (for the browser tests), docker-compose (only
## to validate docker-compose.yml; no Docker engine is needed), wrk (the load
## generator of `make bench` and its smoke test), redis-sentinel and redis-tools
## (redis-cli; the Sentinel and Cluster tests of tests/redis_topologies), nodejs and npm (the second
## issuer of tests/second_issuer; node 18 or later), nginx-light (the TLS
## front of `make run-https` and tests/deploy), haproxy (the load balancer
## of tests/deploy's several-hosts test) and caddy (only to validate
## deploy/caddy/Caddyfile). Installed only when missing, and
## only where we are root or have sudo.
define apt_install
	missing=""; for pkg in $(1); do \
	  case $$pkg in \
	    redis-server) command -v redis-server >/dev/null 2>&1 || missing="$$missing $$pkg";; \
	    redis-sentinel) command -v redis-sentinel >/dev/null 2>&1 || missing="$$missing $$pkg";; \
	    redis-tools) command -v redis-cli >/dev/null 2>&1 || missing="$$missing $$pkg";; \
	    chromium) test -x /usr/bin/chromium || missing="$$missing $$pkg";; \
	    chromium-driver) test -x /usr/bin/chromedriver || missing="$$missing $$pkg";; \
	    docker-compose) command -v docker-compose >/dev/null 2>&1 || missing="$$missing $$pkg";; \
	    wrk) command -v wrk >/dev/null 2>&1 || missing="$$missing $$pkg";; \
	    python3-venv) python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$$missing $$pkg";; \
	    nodejs) command -v node >/dev/null 2>&1 || missing="$$missing $$pkg";; \
	    npm) command -v npm >/dev/null 2>&1 || missing="$$missing $$pkg";; \
	    nginx-light) test -x /usr/sbin/nginx || missing="$$missing $$pkg";; \
	    haproxy) test -x /usr/sbin/haproxy || missing="$$missing $$pkg";; \
	    caddy) command -v caddy >/dev/null 2>&1 || missing="$$missing $$pkg";; \
	  esac; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; \
	  else echo "please install:$$missing (apt-get install$$missing)"; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

redis-dep:
	@if [ -z "$$REDIS_URL" ] && ! grep -qs '^REDIS_URL=.' .env; then $(call apt_install,redis-server); fi

system-deps:
	@$(call apt_install,redis-server redis-sentinel redis-tools chromium chromium-driver docker-compose wrk nginx-light haproxy caddy)

## Validate every component's settings (one line per problem; warnings for
## values that are valid but probably wrong, such as an ISSUER ending in "/").
check-config: $(STAMP)
	@$(PYTHON) -m common.launcher --check

## Start Redis (embedded unless REDIS_URL), the dev issuer (unless ISSUER points
## elsewhere), the resource server and every app; Ctrl-C or `make stop` stops
## everything and exits 0. The launcher is run directly, without a shell in
## between, so that a Ctrl-C reaches it and make reports no error.
run: $(STAMP) redis-dep
	@$(PYTHON) -m common.launcher

## `make run` behind nginx on https (README, "Deploying"): a local CA and a
## certificate for localhost in instance/tls/ (generated, never committed),
## https://localhost:8443 the issuer, :8441 the web app, :8442 the SPA, :8444
## the service, :8445 the API; the servers stay on their *_BIND addresses
## (127.0.0.1:9000, :5001, ...) with TRUSTED_PROXIES=1. Debian's nginx-light
## is installed when missing. `make stop` stops it as it stops `make run`.
run-https: $(STAMP) redis-dep
	@$(call apt_install,nginx-light)
	@$(PYTHON) -m common.launcher --https

## Stop the suite `make run` started from this checkout in another terminal
## (the launcher's PID is in instance/suite.json while it runs).
stop: $(STAMP)
	@$(PYTHON) -m common.launcher --stop

## The house style (pyproject.toml's [tool.ruff]): lint rules and formatting.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## The independent OpenID Provider of tests/second_issuer (panva's
## oidc-provider, pinned by its package-lock.json), installed with npm when
## node_modules is missing or older than the lock file; Debian's nodejs and
## npm only when missing.
SECOND_ISSUER := tests/second_issuer
$(SECOND_ISSUER)/node_modules/.package-lock.json: $(SECOND_ISSUER)/package-lock.json
	@$(call apt_install,nodejs npm)
	cd $(SECOND_ISSUER) && npm ci --no-audit --no-fund
	touch $@

second-issuer: $(SECOND_ISSUER)/node_modules/.package-lock.json

## Every test: the style check, then unit, integration (real processes, real
## Redis) and browser (Chromium).
test: $(STAMP) system-deps second-issuer lint
	$(PYTHON) -m pytest $(PYTEST_ARGS)

## Bench-only packages (a peer validator, profilers), kept out of requirements.txt.
BENCH_STAMP := $(VENV)/.bench-requirements-installed
$(BENCH_STAMP): benchmarks/requirements.txt $(STAMP)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r benchmarks/requirements.txt
	touch $(BENCH_STAMP)

## Re-take the README's screenshots (docs/screenshots) with the browser tests.
screenshots: $(STAMP) system-deps
	UPDATE_SCREENSHOTS=1 $(PYTHON) -m pytest tests/web_app/test_browser.py tests/web_app/test_par.py \
	  tests/spa_app/test_browser.py tests/spa_app/test_dpop_browser.py tests/dev_issuer/test_browser.py

## The peers of the side-by-side API figures (benchmarks/peers: the vendors'
## quickstart APIs) in a virtualenv of their own, never in .venv: their
## dependencies (okta-jwt-verifier's among them) may conflict with ours.
PEERS_VENV  := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.requirements-installed
$(PEERS_STAMP): benchmarks/peers/requirements.txt
	@$(call apt_install,python3-venv)
	test -x $(PEERS_VENV)/bin/pip || python3 -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r benchmarks/peers/requirements.txt
	touch $(PEERS_STAMP)

## Performance figures (see benchmarks/): one table, goals reported, not enforced.
## Needs Debian's wrk (the HTTP load generator), installed when missing.
bench: $(STAMP) $(BENCH_STAMP) $(PEERS_STAMP) redis-dep
	@$(call apt_install,wrk)
	$(PYTHON) -m benchmarks

## Remove what the commands made; keys you generated under instance/ are kept.
clean:
	rm -rf $(VENV) $(PEERS_VENV) .pytest_cache instance/redis instance/test-logs instance/screenshots
