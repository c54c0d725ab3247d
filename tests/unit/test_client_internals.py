"""The client-internals adapters refuse a client version they were not
written for, naming the version found and the fix."""

import kafka
import pytest

from notifbus.backends.kafka import internals


def test_the_installed_kafka_python_is_accepted():
    internals.check()
    assert kafka.__version__ in internals.TESTED


@pytest.mark.parametrize("version", ["2.0.2", "4.0.0"])
def test_a_kafka_python_outside_the_tested_range_is_refused(version):
    with pytest.raises(ImportError) as caught:
        internals.check(version=version)
    message = str(caught.value)
    assert f"kafka-python {version} is installed" in message
    assert "pip install 'kafka-python>=3.0.0,<4.0.0'" in message


def test_a_kafka_python_without_a_method_used_is_refused():
    class Coordinator:
        def _perform_assignment(self):
            pass

    with pytest.raises(ImportError) as caught:
        internals.check(version="3.0.12", methods=(
            (Coordinator, "_perform_assignment"),
            (Coordinator, "_build_metadata_snapshot")))
    message = str(caught.value)
    assert "lacks Coordinator._build_metadata_snapshot" in message
    assert "_perform_assignment" not in message


def test_a_consumer_without_the_attributes_turns_features_off():
    class Bare:
        pass

    bare = Bare()
    assert internals.coordinator_unknown(bare) is None
    assert internals.group_stable(bare) is False
    assert internals.partition_states(bare) == {}
    assert internals.take_unreadable_batch(bare) is None
    assert internals.wrap_perform_assignment(bare, None) is False


def test_the_tested_range_is_the_kafka_extra_of_setup_cfg():
    import configparser
    import pathlib

    setup = configparser.ConfigParser()
    setup.read(pathlib.Path(__file__).parents[2] / "setup.cfg")
    requirements = setup["options.extras_require"]["kafka"].split()
    assert f"kafka-python{internals.TESTED_RANGE}" in requirements


@pytest.mark.parametrize("version", ["2.5.0", "3.0.0"])
def test_a_nats_py_outside_the_tested_range_is_refused(version):
    from notifbus.backends.nats import internals as nats_internals

    with pytest.raises(ImportError) as caught:
        nats_internals.check(version=version)
    message = str(caught.value)
    assert f"nats-py {version} is installed" in message
    assert "pip install 'nats-py>=2.6,<3'" in message


def test_the_tested_nats_range_is_the_nats_extra_of_setup_cfg():
    import configparser
    import pathlib

    from notifbus.backends.nats import internals as nats_internals

    nats_internals.check()
    setup = configparser.ConfigParser()
    setup.read(pathlib.Path(__file__).parents[2] / "setup.cfg")
    requirements = setup["options.extras_require"]["nats"].split()
    assert f"nats-py{nats_internals.TESTED_RANGE}" in requirements
