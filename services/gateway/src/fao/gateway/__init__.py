"""The gateway: Fao's public HTTP edge. Today: the LINE webhook.

Modules, one concept each:

- ``settings``: ``GatewaySettings`` (``FAO_*`` environment variables);
- ``signature``: LINE's ``X-Line-Signature`` (HMAC-SHA256 of the raw body, constant-time check);
- ``events``: a webhook body read tolerantly into ``WebhookEvent``s;
- ``postback``: the postback data of the notifier's buttons and of the gateway's quick replies;
- ``replies`` (+ ``templates/replies_th.yaml``): the Thai texts people are answered with;
- ``store``: the gateway's collections (event claims, groups, reports, rate-limit slots) and the
  reads of the inventory and of incidents;
- ``commands``: deterministic command ids, report references, publishing to ``FAO_COMMANDS``;
- ``membership``: who may acknowledge or resolve an incident;
- ``incidents``: Acknowledge / Resolve postbacks → commands, or a refusal;
- ``rejections``: a command the correlator refused → a reply to the person, within a bounded wait;
- ``reports``: Official Account reports → manual incidents, quick replies, rate limit;
- ``line_api``: replies and group look-ups through line-bot-sdk (or nothing, without a token);
- ``webhook``: one verified webhook's events → claims, effects, follow-ups;
- ``app``: the FastAPI app, the uvicorn server and the service wiring (``build``).
"""
