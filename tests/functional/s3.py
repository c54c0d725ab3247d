"""A local S3 server (moto) that Tansu brokers keep their log in."""

import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from notifbus.embedded import EmbeddedBroker, free_port


class LocalS3:
    def __init__(self):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process = None

    def __enter__(self):
        server = Path(sys.executable).with_name("moto_server")
        self.process = subprocess.Popen(
            [str(server), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port),
                                         0.2).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def __exit__(self, *exc_info):
        self.process.terminate()
        self.process.wait(10)

    @property
    def env(self):
        return {"AWS_ENDPOINT": self.endpoint, "AWS_ALLOW_HTTP": "true",
                "AWS_ACCESS_KEY_ID": "notifbus",
                "AWS_SECRET_ACCESS_KEY": "notifbus",
                "AWS_DEFAULT_REGION": "us-east-1"}

    def new_bucket(self):
        import boto3

        name = f"tansu-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=self.endpoint,
                     aws_access_key_id="notifbus",
                     aws_secret_access_key="notifbus",
                     region_name="us-east-1").create_bucket(Bucket=name)
        return name

    def broker(self, bucket, port=None):
        """An (unstarted) broker keeping its log in ``bucket``."""
        return EmbeddedBroker(port=port, storage=f"s3://{bucket}/",
                              env=self.env)
