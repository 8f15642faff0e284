"""Shared plumbing for Fao services: settings, logging, bus and store set-up, health and metrics,
the service runner, and launchers for a local nats-server and FerretDB."""
