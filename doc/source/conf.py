"""Sphinx configuration of the notifbus documentation.

The package must be installed (``pip install -e .[kafka,test]``, as tox and
``make docs`` do): autodoc imports it, and the ``show-options`` directive
finds its options through the ``oslo.config.opts`` entry point.
"""

import warnings

# oslo.messaging imports eventlet, which warns on import; nothing to act on
# while building the docs.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import notifbus  # noqa: E402

project = "notifbus"
copyright = "notifbus developers"
author = "notifbus developers"
version = release = notifbus.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "oslo_config.sphinxext",
]

# Document members in source order, so the contract reads as written.
autodoc_member_order = "bysource"

master_doc = "index"
exclude_patterns = []
pygments_style = "sphinx"

html_theme = "alabaster"
html_theme_options = {
    "description": "Log-bus notification transport for oslo.messaging",
}
