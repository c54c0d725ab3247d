"""An example notifbus backend, shipped as a package of its own.

See :mod:`notifbus_example.backend` and the package's README.
"""
