"""Property test of the REST API from its own OpenAPI document (schemathesis): for every
operation, generated requests (valid and invalid) never get a 5xx, and every error is problem
details. The gateway's app runs on uvicorn on 127.0.0.1 over real NATS and FerretDB; examples are
bounded so the run stays well under a minute."""

from __future__ import annotations

import asyncio
from typing import Any, Final

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo.asynchronous.database import AsyncDatabase
from schemathesis.core.result import Ok
from services.gateway.tests.webstack import web_settings, web_stack

from fao.gateway.app import PublicServer
from fao.runtime.store import Document

EXAMPLES: Final = 12


def _exercise(base_url: str, spec: dict[str, object], token: str) -> tuple[list[str], dict[int, int]]:
    """Runs every operation's examples (blocking: in a thread beside the server's loop); the
    failures and how many answers of each status were seen."""
    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    statuses: dict[int, int] = {}
    operations = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the OpenAPI document has an invalid operation: {result}"
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        @given(case=operation.as_strategy(), authorised=st.booleans())
        def run(case: schemathesis.Case[Any], authorised: bool) -> None:
            headers = {"Authorization": f"Bearer {token}"} if authorised else {}
            response = case.call(base_url=base_url, headers=headers, timeout=10)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}"
                )
            elif response.status_code >= 400:
                kind = (response.headers.get("content-type") or [""])[0]
                if kind != "application/problem+json":
                    failures.append(f"{case.method} {case.formatted_path}: {response.status_code} as {kind}")

        run()
    assert operations >= 15, f"only {operations} operations in the document"
    return failures, statuses


async def test_no_generated_request_gets_a_5xx(nats_url: str, mongo_db: AsyncDatabase[Document]) -> None:
    async with web_stack(nats_url, mongo_db, web_settings(web_command_wait=0.0)) as web:
        server = PublicServer(web.app, "127.0.0.1", 0)
        await server.start()
        try:
            base = f"http://127.0.0.1:{server.port}"
            async with httpx.AsyncClient() as client:
                spec = (await client.get(f"{base}/api/v1/openapi.json")).json()
            failures, statuses = await asyncio.to_thread(
                _exercise, f"{base}/api/v1", spec, web.tokens["admin"]
            )
        finally:
            await server.stop()
    assert failures == []
    # the requests really reached the handlers: answers, refusals and invalid input all seen
    assert statuses.get(200, 0) >= 10
    assert statuses.get(401, 0) >= 20
    assert statuses.get(422, 0) + statuses.get(404, 0) > 10
