"""notifbus: a log-bus notification transport for oslo.messaging.

Services select it with a transport URL such as
``notifbus+kafka://h1:9092,h2:9092/?acks=all``; the part after ``+`` names
the backend, loaded through stevedore from the ``notifbus.backends`` group.
"""

__version__ = "0.1.0"
