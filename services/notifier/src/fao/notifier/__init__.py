"""The notifier: turns incident events into LINE messages for the teams that own the systems.

Modules, one concept each:

- ``settings``: ``NotifierSettings`` (``FAO_*`` environment variables);
- ``routing``: system → team → LINE groups (platform incidents → every platform team's groups);
- ``render`` (+ ``templates/messages_<lang>.yaml``): which events are sent (``should_send``) and
  their messages: the Flex bubble (or a short text), its altText and a plain text;
- ``deliveries``: the delivery records in ``deliveries`` (the durable queue), the deterministic
  retry keys and the order rule of an incident's messages to one group (``plan_lane``);
- ``line_channel``: the LINE Messaging API sender and how its answers are classified;
- ``outbox``: where messages go when no LINE access token is configured, and the notices;
- ``workers``: one worker per LINE group sends its deliveries in order, with its own retries;
- ``watch``: undelivered and failing deliveries on /metrics, the "delivery failing" notice;
- ``escalation_schedule`` (pure) and ``escalation``: a team's escalation policy on durable timers,
  each due step occurrence claimed once and recorded as deliveries;
- ``oa_reports``: the "your report is resolved" push to Official Account reporters;
- ``dispatcher``: one event through routing and rendering to recorded deliveries, and the
  supervisor that sweeps the deliveries (start-up, crash recovery) and ticks the watch;
- ``app``: the FastStream wiring (``build``) that ``python -m fao.notifier`` runs.
"""
