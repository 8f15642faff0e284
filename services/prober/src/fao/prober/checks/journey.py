"""Multi-step web journeys: ordered HTTP requests in one aiohttp session that keeps cookies.

Each journey gets its own session and cookie jar (a login's session cookie must reach the next
step, never another monitor). Before each step its ``${variable}`` placeholders are filled from
what earlier steps extracted and ``${env:NAME}`` from the environment (secrets such as a login
password are never in config, nor in details: a detail names the step, not the values sent).
Each step is timed (``Observations.steps``); the journey stops at the first failing step, whose
number, name and reason are the result's detail, e.g. ``step 2 (log in): keyword 'Welcome' not
found``. Error kinds are those of the ``http`` check (``checks/http.py``); a step whose
``extract`` expression finds nothing is ``UNEXPECTED_ANSWER``; the monitor's timeout bounds the
whole journey.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping

import aiohttp

from fao.prober.checks.contract import MissingSecretError, Outcome, elapsed_ms, secret
from fao.prober.checks.http import (
    DEFAULT_USER_AGENT,
    KEYWORD_READ_LIMIT,
    classify_http_error,
    keyword_problem,
    read_limited,
)
from fao.schemas import ErrorKind, JourneyCheck, JourneyStep, Observations, StepTiming

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


class _StepFailedError(Exception):
    def __init__(self, kind: ErrorKind, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.status = status


def _fill(text: str, variables: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("env:"):
            return secret(name[4:]) or ""
        return variables[name]

    return _PLACEHOLDER.sub(value, text)


class JourneyChecker:
    """Runs ``JourneyCheck`` specs; one short-lived session per journey."""

    async def run(self, spec: JourneyCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the check's own timeout is part of its contract: the checker reports it as data
        started = time.perf_counter()
        steps: list[StepTiming] = []
        variables: dict[str, str] = {}
        status: int | None = None
        connector = aiohttp.TCPConnector(force_close=True, ssl=spec.verify_tls)
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # keep cookies of IP-address hosts too
            headers={"User-Agent": DEFAULT_USER_AGENT},
            trust_env=False,
        )
        try:
            async with asyncio.timeout(timeout):
                for step in spec.steps:
                    step_started = time.perf_counter()
                    try:
                        status = await self._step(session, spec, step, variables)
                    except BaseException:
                        steps.append(StepTiming(name=step.name, ms=elapsed_ms(step_started), ok=False))
                        raise
                    steps.append(StepTiming(name=step.name, ms=elapsed_ms(step_started), ok=True))
        except _StepFailedError as exc:
            return self._failed(spec, exc.kind, exc.reason, started, steps, exc.status)
        except MissingSecretError as exc:
            return self._failed(spec, ErrorKind.INTERNAL, str(exc), started, steps, None)
        except Exception as exc:  # translated to data at this boundary
            kind, reason = classify_http_error(exc, timeout)
            if kind is ErrorKind.TIMEOUT:
                reason = f"journey timed out after {timeout:g}s"
            return self._failed(spec, kind, reason, started, steps, None)
        finally:
            await session.close()
        return Outcome.success(elapsed_ms(started), status, observations=Observations(steps=steps))

    @staticmethod
    def _failed(
        spec: JourneyCheck,
        kind: ErrorKind,
        reason: str,
        started: float,
        steps: list[StepTiming],
        status: int | None,
    ) -> Outcome:
        """The failing step is the last one timed (every step is timed, passed or not)."""
        number = max(1, len(steps))
        step = spec.steps[number - 1]
        return Outcome.failure(
            kind,
            f"step {number} ({step.name}): {reason}",
            elapsed_ms(started),
            status,
            observations=Observations(steps=steps),
        )

    async def _step(
        self, session: aiohttp.ClientSession, spec: JourneyCheck, step: JourneyStep, variables: dict[str, str]
    ) -> int:
        url = _fill(step.url, variables)
        headers = {name: _fill(value, variables) for name, value in step.headers.items()}
        data: dict[str, str] | str | None = None
        if step.form:
            data = {name: _fill(value, variables) for name, value in step.form.items()}
        elif step.body is not None:
            data = _fill(step.body, variables)
        async with session.request(
            step.method, url, headers=headers or None, data=data, allow_redirects=spec.follow_redirects
        ) as response:
            status = response.status
            if status not in step.expected_status:
                raise _StepFailedError(ErrorKind.HTTP_STATUS, f"HTTP {status}", status)
            if step.keyword is None and not step.extract:
                return status
            body, _ = await read_limited(response.content, KEYWORD_READ_LIMIT)
            if step.keyword is not None:
                problem = keyword_problem(step.keyword, step.keyword_absent, body, response.charset)
                if problem is not None:
                    raise _StepFailedError(ErrorKind.KEYWORD, problem, status)
            if step.extract:
                text = body.decode(response.charset or "utf-8", errors="replace")
                for name, pattern in step.extract.items():
                    found = re.search(pattern, text)
                    if found is None:
                        raise _StepFailedError(
                            ErrorKind.UNEXPECTED_ANSWER, f"nothing to extract for {name}", status
                        )
                    variables[name] = found.group(1)
            return status

    async def aclose(self) -> None:
        return None
