"""The ``fao`` command: apply config, run reports, start the embedded system."""
