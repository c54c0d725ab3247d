"""Sphinx configuration of the notifbus release notes (built by reno)."""

project = "notifbus release notes"
copyright = "notifbus developers"
author = "notifbus developers"
# The release notes are not tied to one version of the package.
version = release = ""

extensions = [
    "reno.sphinxext",
]

master_doc = "index"
exclude_patterns = []
pygments_style = "sphinx"

html_theme = "alabaster"
