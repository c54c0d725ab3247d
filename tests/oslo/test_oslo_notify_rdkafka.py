"""oslo.messaging's ``NotifyTestCase``, unmodified, over
``notifbus+rdkafka://``.

On Apache Kafka the URL has no query and the configuration no override,
as for the kafka backend (``test_oslo_notify.py``), on a broker of its
own (see ``conftest.py``). Only the kafka backend runs these tests on
Tansu too: the rdkafka backend's consumer groups are checked on Tansu by
the functional tests and the eventlet hub checks.
"""

import pytest
from oslo_messaging.tests.functional import test_functional


@pytest.mark.usefixtures("rdkafka_on_apache_kafka")
class RdkafkaNotifyOnApacheKafka(test_functional.NotifyTestCase):
    pass
