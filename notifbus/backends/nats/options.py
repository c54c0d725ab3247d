"""The ``[notifbus_nats]`` options."""

from typing import List

from oslo_config import cfg


def list_opts() -> List[cfg.Opt]:
    """The options of ``[notifbus_nats]``, new objects at each call."""
    return [
        cfg.StrOpt("stream_prefix", default="notifbus",
                   help="Prefix of the streams and subjects notifbus uses: "
                        "topic T is stream <prefix>_T (dots made underscores) "
                        "with subjects <prefix>.T.<partition>. Letters, "
                        "digits, '-' and '_' only."),
        cfg.StrOpt("retention", default="limits",
                   choices=["limits", "interest"],
                   help="Retention of streams that notifbus creates: 'limits' "
                        "keeps records until max_age_s or max_bytes (store "
                        "and forward, replay); 'interest' drops a record once "
                        "every durable consumer acknowledged it, and at once "
                        "when there is none."),
        cfg.IntOpt("max_age_s", default=604800, min=0,
                   help="Age after which a stream drops records, in seconds; "
                        "0 keeps them forever."),
        cfg.IntOpt("max_bytes", default=-1, min=-1,
                   help="Size after which a stream drops its oldest records, "
                        "in bytes; -1 is unlimited."),
        cfg.IntOpt("replicas", default=1, min=1, max=5,
                   help="Replicas of streams that notifbus creates."),
        cfg.StrOpt("storage", default="file", choices=["file", "memory"],
                   help="Storage of streams that notifbus creates."),
        cfg.IntOpt("ack_wait_s", default=30, min=1,
                   help="How long JetStream waits for a record to be "
                        "acknowledged before it redelivers it, in seconds. A "
                        "live listener keeps the records it holds from being "
                        "redelivered; this is how soon those of a dead one "
                        "are."),
        cfg.IntOpt("max_ack_pending", default=10000, min=-1,
                   help="Most records a consumer group may hold "
                        "unacknowledged; JetStream delivers no more until "
                        "some are acknowledged. -1 is unlimited."),
        cfg.IntOpt("inactive_threshold_s", default=0, min=0,
                   help="Delete a durable consumer that nobody pulled from "
                        "for this long, in seconds; 0 keeps it forever."),
        cfg.StrOpt("auto_offset_reset", default="earliest",
                   choices=["earliest", "latest"],
                   help="Where a new durable consumer (a group reading a "
                        "stream for the first time) starts: 'earliest' "
                        "delivers what was stored before (store and forward), "
                        "'latest' only what is sent after."),
        cfg.IntOpt("deliver_start_sequence", default=0, min=0,
                   help="Replay: a new durable consumer starts at this stream "
                        "sequence instead of per auto_offset_reset; 0 is "
                        "unset."),
        cfg.StrOpt("deliver_start_time",
                   help="Replay: a new durable consumer starts at the first "
                        "record stored at or after this time, ISO 8601 with a "
                        "time zone (2024-05-01T12:00:00+00:00)."),
        cfg.FloatOpt("pull_expires_s", default=1.0, min=0.01,
                     help="Longest time a pull request waits at the server "
                          "for records, in seconds; a poll with a shorter "
                          "timeout waits that long. A listener that stops "
                          "waits for its pull requests to end (at most this "
                          "long) before giving its records back."),
        cfg.FloatOpt("connect_timeout_s", default=5.0, min=0.1,
                     help="How long connecting may take before the attempt "
                          "fails with a clear error, in seconds."),
        cfg.FloatOpt("reconnect_time_wait_s", default=1.0, min=0.0,
                     help="Wait between two reconnection attempts to one "
                          "server, in seconds."),
        cfg.IntOpt("max_reconnect_attempts", default=-1, min=-1,
                   help="Reconnection attempts per server after a connection "
                        "was lost, before the client gives up (the next use "
                        "connects anew); -1 retries forever."),
        cfg.StrOpt("client_name", default="notifbus",
                   help="Connection name shown in the server's monitoring."),
        cfg.StrOpt("user",
                   help="User name; the transport URL's user name wins."),
        cfg.StrOpt("password", secret=True,
                   help="Password; the transport URL's password wins."),
        cfg.StrOpt("token", secret=True,
                   help="Authentication token, instead of a user and "
                        "password."),
        cfg.BoolOpt("tls", default=False,
                    help="Connect with TLS. Implied by tls_cafile and "
                         "tls_certfile. A server that does not offer TLS is "
                         "refused."),
        cfg.StrOpt("tls_cafile",
                   help="CA bundle that verifies the servers' certificates; "
                        "the system's CAs when unset."),
        cfg.StrOpt("tls_certfile", help="Client certificate (mutual TLS)."),
        cfg.StrOpt("tls_keyfile", help="Client private key (mutual TLS)."),
        cfg.BoolOpt("tls_verify", default=True,
                    help="Verify the server certificate and its host name. "
                         "Turning it off exposes the connection to anyone on "
                         "the path."),
        cfg.StrOpt("tls_hostname",
                   help="Host name to verify the server certificate against, "
                        "when the URL names servers by address."),
    ]
