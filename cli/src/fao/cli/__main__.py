"""``python -m fao.cli`` (same as the ``fao`` script)."""

from fao.cli.main import app

app()
