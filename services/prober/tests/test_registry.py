"""The checker registry: every check type has a checker, and a check never raises."""

from __future__ import annotations

import typing

from fao.prober.checks import BUILTIN_CHECKERS, CheckerRegistry, Outcome
from fao.prober.checks.contract import DETAIL_MAX, describe_exception, short_detail
from fao.schemas import PROBER_SKIPS, CheckSpec, ErrorKind, HttpCheck, TcpCheck


class _RaisingChecker:
    """Breaks the contract on purpose."""

    def __init__(self) -> None:
        self.closed = False

    async def run(self, spec: TcpCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the Checker signature
        raise RuntimeError("boom\nwith a second line")

    async def aclose(self) -> None:
        self.closed = True
        raise RuntimeError("cannot close")


class _RecordingChecker:
    def __init__(self) -> None:
        self.closed = False
        self.calls: list[tuple[TcpCheck, float]] = []

    async def run(self, spec: TcpCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the Checker signature
        self.calls.append((spec, timeout))
        return Outcome.success(1.5)

    async def aclose(self) -> None:
        self.closed = True


def test_every_check_type_in_the_contract_has_a_builtin_checker() -> None:
    union = typing.get_args(CheckSpec)[0]
    types = {typing.get_args(model.model_fields["type"].annotation)[0] for model in typing.get_args(union)}
    types -= PROBER_SKIPS
    assert "push" not in types
    assert types == set(BUILTIN_CHECKERS)
    assert CheckerRegistry.builtin().types == frozenset(types)


async def test_run_dispatches_on_the_spec_type() -> None:
    tcp = _RecordingChecker()
    registry = CheckerRegistry({"tcp": tcp})
    spec = TcpCheck(host="db.internal", port=5432)
    outcome = await registry.run(spec, 3.0)
    assert outcome.ok
    assert tcp.calls == [(spec, 3.0)]


async def test_check_type_without_checker_is_internal_failure() -> None:
    registry = CheckerRegistry({"tcp": _RecordingChecker()})
    outcome = await registry.run(HttpCheck.model_validate({"url": "http://127.0.0.1/"}), 1.0)
    assert outcome.error_kind is ErrorKind.INTERNAL
    assert outcome.detail == "no checker for check type 'http'"


async def test_checker_that_raises_becomes_internal_failure() -> None:
    registry = CheckerRegistry({"tcp": _RaisingChecker()})
    outcome = await registry.run(TcpCheck(host="127.0.0.1", port=1), 1.0)
    assert not outcome.ok
    assert outcome.error_kind is ErrorKind.INTERNAL
    assert outcome.detail == "RuntimeError: boom with a second line"


async def test_aclose_closes_every_checker_even_if_one_fails() -> None:
    raising, recording = _RaisingChecker(), _RecordingChecker()
    await CheckerRegistry({"a": raising, "b": recording}).aclose()
    assert raising.closed
    assert recording.closed


def test_details_are_one_short_line() -> None:
    assert short_detail("a\n  b\tc") == "a b c"
    long = short_detail("x" * 1000)
    assert len(long) == DETAIL_MAX
    assert long.endswith("…")
    assert describe_exception(TimeoutError()) == "TimeoutError"
    assert Outcome.failure(ErrorKind.PROTOCOL, "y" * 300, 1.0).detail == "y" * 199 + "…"
