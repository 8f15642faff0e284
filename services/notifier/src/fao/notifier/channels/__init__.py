"""Delivery channels as plug-ins: one module per channel, registered in ``registry``.

- ``contract``: the ``Channel`` protocol (``name``, ``idempotent``, ``timeout``, ``start``/``stop``,
  ``send(target, message, key) -> Receipt`` raising ``DeliveryError``);
- ``line``: LINE push (``fao.notifier.line_channel``), guarded by ``monthly_limit``;
- ``email``: SMTP with STARTTLS (aiosmtplib); ``webhook``: a signed JSON POST;
- ``outbox``: the ``outbox`` collection, LINE's stand-in without an access token;
- ``registry``: ``BUILTIN_CHANNELS`` and the ``ChannelRegistry`` of a process.

Adding a channel: write ``channels/<name>.py`` with a class satisfying ``Channel`` and add one line
to ``registry.BUILTIN_CHANNELS`` (and its name to ``fao.schemas.people.ChannelName`` for config).
This package's ``__init__`` imports only the contract: ``line_channel`` uses it, and the registry
imports ``line_channel``.
"""

from fao.notifier.channels.contract import Channel, Outgoing, Receipt

__all__ = ["Channel", "Outgoing", "Receipt"]
