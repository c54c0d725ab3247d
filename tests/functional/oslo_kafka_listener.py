"""An oslo ``kafka://`` notification listener in a process of its own, for
tests that kill it: ``python -m tests.functional.oslo_kafka_listener
<bootstrap servers> <topic> <pool>``.

Prints ``probe <payload>`` for each ``migration.probe`` notification and
``read <payload id>`` for each other one it dispatched, which takes 0.2 s
each, one at a time (``executor_thread_pool_size = 1``).
"""

import sys
import threading
import time

import oslo_messaging


class Endpoint:
    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        if event_type == "migration.probe":
            print("probe", payload, flush=True)
        else:
            time.sleep(0.2)
            print("read", payload["id"], flush=True)


def main(bootstrap_servers, topic, pool):
    from tests.functional.test_kafka_migration import oslo_conf

    conf = oslo_conf()
    conf.set_override("executor_thread_pool_size", 1)
    transport = oslo_messaging.get_notification_transport(
        conf, url=f"kafka://{bootstrap_servers}/")
    server = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [Endpoint()],
        executor="threading", pool=pool)
    server.start()
    threading.Event().wait()


if __name__ == "__main__":
    main(*sys.argv[1:])
