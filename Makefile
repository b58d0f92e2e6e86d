# Two commands matter: `make up` runs the whole system, `make test` runs the whole suite.
# Both create the virtual environment on first use; nothing has to be installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: up test lint bench-ingest clean-var help speech-packages test-packages test-deploy deploy-packages

help:
	@echo "make up     - create .venv, install, start the whole system (wall at http://127.0.0.1:8000)"
	@echo "make test   - create .venv if needed and run the whole test suite (installs chromium and espeak-ng for their tests when root)"
	@echo "make lint   - ruff"

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3-venv is missing; installing it with apt-get"; \
	  rm -rf $(VENV); apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

up: $(STAMP) speech-packages
	$(BIN)/ioc up

# Debian packages: espeak-ng for the radio's Vietnamese text-to-speech (`make up` and the tests) and
# chromium for the browser tests (tests/browser). Installed when missing and we are root; otherwise
# (or when apt-get fails, e.g. offline) speech is refused with a clear message and the tests that
# need them skip with the reason.
CHROMIUM ?= /usr/bin/chromium
SPEECH_PACKAGES = $(if $(shell command -v espeak-ng),,espeak-ng)
TEST_PACKAGES = $(SPEECH_PACKAGES) $(if $(wildcard $(CHROMIUM)),,chromium) $(RTSP_PACKAGES)
# Debian's Mosquitto for the broker confinement tests (ACLs, TLS; tests/test_broker_confined.py).
TEST_PACKAGES += $(if $(wildcard /usr/sbin/mosquitto),,mosquitto)
# A real RTSP server (GStreamer's, on Debian's python3) for the camera tests (tests/test_detect_rtsp.py).
RTSP_PACKAGES = $(if $(wildcard /usr/lib/*/girepository-1.0/GstRtspServer-1.0.typelib),,gir1.2-gst-rtsp-server-1.0) \
  $(if $(wildcard /usr/lib/python3/dist-packages/gi),,python3-gi) \
  $(if $(wildcard /usr/lib/*/gstreamer-1.0/libgstx264.so),,gstreamer1.0-plugins-ugly) \
  $(if $(wildcard /usr/lib/*/gstreamer-1.0/libgstrtp.so),,gstreamer1.0-plugins-good)

define apt_install
	@missing="$(strip $(1))"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's $$missing"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; } \
	    || echo "apt-get could not install $$missing: what needs it is skipped or refused with the reason"; \
	else \
	  echo "$$missing missing and we are not root: what needs it is skipped or refused (sudo apt-get install -y $$missing)"; \
	fi
endef

speech-packages:
	$(call apt_install,$(SPEECH_PACKAGES))

test-packages:
	$(call apt_install,$(TEST_PACKAGES))

# pytest exits 5 when it collected no tests: that is not a failure of the code under test.
test: $(STAMP) test-packages
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

# The production shape (tests/deploy, docs/deploy.md): PostgreSQL primary + standby, TLS Mosquitto,
# HAProxy, two API replicas, two ingest workers, the radio service; kills and a failover. About 1-2
# minutes on 2 cores; not part of `make test` (marker `deploy`).
PG_BIN ?= /usr/lib/postgresql/15/bin
DEPLOY_PACKAGES = $(if $(shell command -v haproxy),,haproxy) $(if $(wildcard /usr/sbin/mosquitto),,mosquitto) \
	$(if $(wildcard $(PG_BIN)/initdb),,postgresql-15)

deploy-packages:
	$(call apt_install,$(DEPLOY_PACKAGES))

test-deploy: $(STAMP) deploy-packages
	$(BIN)/python -m pytest tests/deploy -m deploy $(PYTEST_ARGS)

bench-ingest: $(STAMP)
	$(BIN)/ioc bench ingest --messages 20000 --workers 1 --json

lint: $(STAMP)
	$(BIN)/ruff check ioc ingest detectors feeds dashboards tests

clean-var:
	rm -rf var/
