"""The prober: runs the checks of the monitors assigned to it and publishes their results.

Pure core (no NATS, no KV): ``checks`` (check-type plug-ins), ``scheduler`` (when each monitor runs
next), ``runner`` (the asyncio loop that drives both) and ``sink`` (batched result publishing).
"""
