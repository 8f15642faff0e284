"""The notifier: turns incident events into LINE messages for the teams that own the systems.

Modules, one concept each:

- ``settings``: ``NotifierSettings`` (``FAO_*`` environment variables);
- ``routing``: system → team → LINE groups (platform incidents → every platform team's groups);
- ``render`` (+ ``templates/messages_<lang>.yaml``): which events are sent (``should_send``) and
  their messages: the Flex bubble (or a short text), its altText and a plain text;
- ``deliveries``: the claim-before-send records in ``deliveries`` and the deterministic retry keys;
- ``line_channel``: the LINE Messaging API sender and how its answers are classified;
- ``outbox``: where messages go when no LINE access token is configured;
- ``dispatcher``: one event through routing, claims, sending and the in-process retries;
- ``app``: the FastStream wiring (``build``) that ``python -m fao.notifier`` runs.
"""
