"""``notifbus bench``: publish rates of notifbus and its baselines, side by
side, in one run against one broker. Imported only when that command
runs: :mod:`notifbus.cmd.bench` declares its options, and
:mod:`~notifbus.bench.command` does what they ask.

- :mod:`~notifbus.bench.rows`: the rows (what each one publishes through)
  and how ``--rows`` names them;
- :mod:`~notifbus.bench.runner`: runs each row in a child process of its
  own, within a time limit, and shows progress;
- :mod:`~notifbus.bench.worker`: the child (``python -m
  notifbus.bench.worker SPEC``), which publishes, consumes back and prints
  one JSON result;
- :mod:`~notifbus.bench.stats` and :mod:`~notifbus.bench.table`: the
  percentiles, ratios and the printed tables;
- :mod:`~notifbus.bench.memory`: ``--memory``, the RSS of the notifbus
  rows over a long publish and while the broker is stalled;
- :mod:`~notifbus.bench.scaling`: ``--producers`` and ``--consumers``,
  groups of processes started together and their aggregated rates.
"""
