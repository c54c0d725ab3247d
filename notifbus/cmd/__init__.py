"""Command line tools: ``notifbus demo`` and what an operator needs."""
