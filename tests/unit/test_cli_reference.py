"""The generated documents are committed up to date: the command
reference (``tools/cli_reference.py``) and the sample configuration
(``oslo-config-generator --config-file
etc/oslo-config-generator/notifbus.conf``)."""

import importlib.util
import pathlib

from oslo_config import generator

from notifbus import backends, opts

ROOT = pathlib.Path(__file__).resolve().parents[2]
GENERATOR_CONFIG = ROOT / "etc" / "oslo-config-generator" / "notifbus.conf"
SAMPLE = ROOT / "etc" / "notifbus.conf.sample"


def _cli_reference():
    spec = importlib.util.spec_from_file_location(
        "cli_reference", ROOT / "tools" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date():
    tool = _cli_reference()
    assert tool.OUTPUT.read_text() == tool.render(), (
        "doc/source/cli-commands.inc is stale: run "
        "python tools/cli_reference.py")


def test_cli_reference_documents_every_command():
    text = _cli_reference().render()
    for command in ("notifbus topics list", "notifbus topics delete",
                    "notifbus groups describe", "notifbus check",
                    "notifbus replay"):
        assert f"``{command}``\n" in text
    assert "``--headers``" in text
    assert "``--yes``" in text


def test_sample_config_is_up_to_date(tmp_path):
    generated = tmp_path / "notifbus.conf.sample"
    generator.main(["--config-file", str(GENERATOR_CONFIG),
                    "--output-file", str(generated)])
    assert SAMPLE.read_text() == generated.read_text(), (
        "etc/notifbus.conf.sample is stale: run oslo-config-generator "
        "--config-file etc/oslo-config-generator/notifbus.conf")


def test_sample_names_the_builtin_backends_only():
    # the example plugin of examples/ is installed in the test environment
    assert "example" in backends.names()
    groups = [group for group, _ in opts.list_opts()]
    assert groups == ["notifbus", "notifbus_kafka", "notifbus_memory",
                      "notifbus_nats", "notifbus_rdkafka"]
    sample = SAMPLE.read_text()
    assert "[notifbus_example]" not in sample
    assert [line for line in sample.splitlines() if line.startswith("[")] \
        == ["[DEFAULT]"] + [f"[{group}]" for group in groups]


def test_every_choice_is_described():
    for group, group_opts in opts.list_opts():
        for opt in group_opts:
            for value, text in (getattr(opt.type, "choices", None)
                                or {}).items():
                assert text, f"[{group}] {opt.dest}={value} has no " \
                             f"description in notifbus.opts.CHOICES"


def test_list_opts_leaves_the_options_alone():
    before = {opt.dest: dict(opt.type.choices) for opt in opts.notifbus_opts
              if getattr(opt.type, "choices", None)}
    opts.list_opts()
    assert before == {opt.dest: dict(opt.type.choices)
                      for opt in opts.notifbus_opts
                      if getattr(opt.type, "choices", None)}
