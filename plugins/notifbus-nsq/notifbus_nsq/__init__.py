"""NSQ backend for notifbus (``notifbus+nsq://``); see
:mod:`notifbus_nsq.backend`."""
