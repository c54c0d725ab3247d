# make demo: create .venv, start an embedded broker, send and receive
#            notifications through oslo.messaging, print what happened.
# make test: the whole suite (unit and functional) against real services.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest -p no:cacheprovider

.PHONY: venv demo test unit functional oslo lint docs releasenotes clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg setup.py pyproject.toml \
		examples/notifbus-example-backend/setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[kafka,nats,rdkafka,embedded,speedups,test]'
	$(PY) -m pip install -q -e examples/notifbus-example-backend
	touch $@

demo: venv
	$(VENV)/bin/notifbus demo

test: venv
	$(PYTEST) tests/unit tests/functional
	$(PYTEST) tests/oslo

unit: venv
	$(PYTEST) tests/unit

functional: venv
	$(PYTEST) tests/functional
	$(PYTEST) tests/oslo

lint: venv
	$(PY) -m pip install -q ruff
	$(VENV)/bin/ruff check notifbus tests examples

docs: venv
	$(PY) -m pip install -q -r doc/requirements.txt
	$(VENV)/bin/sphinx-build -W -b html doc/source doc/build/html

releasenotes: venv
	$(PY) -m pip install -q -r doc/requirements.txt
	$(VENV)/bin/sphinx-build -W -b html releasenotes/source releasenotes/build/html

clean:
	rm -rf $(VENV) doc/build releasenotes/build *.egg-info
