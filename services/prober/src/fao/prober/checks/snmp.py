"""SNMP GET of one OID with pysnmp (v2c community or v3 USM user), no retries: the check's timeout
bounds the one request.

=====================================  ======================
outcome                                ErrorKind
=====================================  ======================
no answer within the timeout           ``TIMEOUT``
wrong community / unknown v3 user,     ``AUTH``
wrong keys
no such object / an error status       ``PROTOCOL``
the host name does not resolve         ``DNS``
value not ``expected`` / out of range  ``UNEXPECTED_ANSWER``
a named secret is not set              ``INTERNAL``
=====================================  ======================

A v2c agent does not answer a wrong community at all, so that shows as ``TIMEOUT``.

SNMP engines are kept (creating one costs ≈0.3 s of CPU here): one for every v2c check, and one
per distinct v3 user and keys, because pysnmp keys its v3 users by name in an engine and two
devices with the same user name but different keys would otherwise overwrite each other.
"""

from __future__ import annotations

import hashlib
import socket
import time
from typing import Any

from pysnmp.hlapi.v3arch import asyncio as snmp
from pysnmp.proto import errind, rfc1905

from fao.prober.checks.contract import (
    MissingSecretError,
    Outcome,
    classify_os_error,
    describe_exception,
    elapsed_ms,
    secret,
)
from fao.schemas import ErrorKind, Observations, SnmpCheck, SnmpV3User

_AUTH: dict[str, tuple[int, ...]] = {
    "MD5": snmp.USM_AUTH_HMAC96_MD5,
    "SHA": snmp.USM_AUTH_HMAC96_SHA,
    "SHA224": snmp.USM_AUTH_HMAC128_SHA224,
    "SHA256": snmp.USM_AUTH_HMAC192_SHA256,
    "SHA384": snmp.USM_AUTH_HMAC256_SHA384,
    "SHA512": snmp.USM_AUTH_HMAC384_SHA512,
}
_PRIV: dict[str, tuple[int, ...]] = {
    "DES": snmp.USM_PRIV_CBC56_DES,
    "AES": snmp.USM_PRIV_CFB128_AES,
    "AES192": snmp.USM_PRIV_CFB192_AES,
    "AES256": snmp.USM_PRIV_CFB256_AES,
}
_AUTH_INDICATIONS = (
    errind.UnknownUserName,
    errind.WrongDigest,
    errind.UnknownSecurityName,
    errind.AuthenticationFailure,
    errind.DecryptionError,
    errind.UnsupportedSecurityLevel,
)


def _credentials(spec: SnmpCheck) -> tuple[str, snmp.CommunityData | snmp.UsmUserData]:
    """The engine key (``v2c``, or a digest of the v3 user and its keys) and the credentials."""
    if spec.version == "2c":
        return "v2c", snmp.CommunityData(secret(spec.community_env) or "public", mpModel=1)
    user: SnmpV3User = spec.v3_user  # type: ignore[assignment]  # the model requires it for version 3
    auth_key, priv_key = secret(user.auth_key_env), secret(user.priv_key_env)
    identity = "\0".join(
        [user.name, user.auth_protocol or "", auth_key or "", user.priv_protocol or "", priv_key or ""]
    )
    key = "v3:" + hashlib.sha256(identity.encode()).hexdigest()
    return key, snmp.UsmUserData(
        user.name,
        authKey=auth_key,
        privKey=priv_key,
        authProtocol=_AUTH[user.auth_protocol] if user.auth_protocol else snmp.USM_AUTH_NONE,
        privProtocol=_PRIV[user.priv_protocol] if user.priv_protocol else snmp.USM_PRIV_NONE,
    )


class SnmpChecker:
    """Runs ``SnmpCheck`` specs; engines are created on first use and kept (see the module docstring)."""

    def __init__(self) -> None:
        self._engines: dict[str, snmp.SnmpEngine] = {}

    async def run(self, spec: SnmpCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the check's own timeout is part of its contract: the checker reports it as data
        started = time.perf_counter()
        try:
            key, credentials = _credentials(spec)
            engine = self._engines.get(key)
            if engine is None:
                engine = self._engines[key] = snmp.SnmpEngine()
            target = await snmp.UdpTransportTarget.create((spec.host, spec.port), timeout=timeout, retries=0)
            indication, status, index, binds = await snmp.get_cmd(
                engine,
                credentials,
                target,
                snmp.ContextData(),
                snmp.ObjectType(snmp.ObjectIdentity(spec.oid)),
            )
        except MissingSecretError as exc:
            return Outcome.failure(ErrorKind.INTERNAL, str(exc), elapsed_ms(started))
        except Exception as exc:  # pysnmp reports DNS failures and the like as exceptions
            lookup = exc.__cause__ or exc.__context__
            if isinstance(lookup, socket.gaierror):  # pysnmp's own text repeats it three times
                return Outcome.failure(*classify_os_error(lookup), elapsed_ms(started))
            return Outcome.failure(ErrorKind.INTERNAL, describe_exception(exc), elapsed_ms(started))
        latency = elapsed_ms(started)
        if indication:
            if isinstance(indication, errind.RequestTimedOut):
                return Outcome.failure(ErrorKind.TIMEOUT, f"no answer within {timeout:g}s", latency)
            if isinstance(indication, _AUTH_INDICATIONS):
                return Outcome.failure(ErrorKind.AUTH, f"SNMP: {indication}", latency)
            return Outcome.failure(ErrorKind.PROTOCOL, f"SNMP: {indication}", latency)
        if status:
            return Outcome.failure(
                ErrorKind.PROTOCOL, f"SNMP error: {status.prettyPrint()} at {index}", latency
            )
        value: Any = binds[0][1]
        if isinstance(value, rfc1905.NoSuchObject | rfc1905.NoSuchInstance | rfc1905.EndOfMibView):
            return Outcome.failure(ErrorKind.PROTOCOL, f"{spec.oid}: {value.prettyPrint()}", latency)
        text = value.prettyPrint()
        observations = Observations(answer=text[:500])
        problem = _value_problem(spec, text)
        if problem is not None:
            return Outcome.failure(ErrorKind.UNEXPECTED_ANSWER, problem, latency, observations=observations)
        return Outcome.success(latency, observations=observations)

    async def aclose(self) -> None:
        engines, self._engines = self._engines, {}
        for engine in engines.values():
            engine.close_dispatcher()


def _value_problem(spec: SnmpCheck, text: str) -> str | None:
    if spec.expected is not None and text != spec.expected:
        return f"{spec.oid} is {text!r}, expected {spec.expected!r}"
    if spec.min is None and spec.max is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return f"{spec.oid} is {text!r}, not a number"
    if spec.min is not None and number < spec.min:
        return f"{spec.oid} is {text}, below {spec.min:g}"
    if spec.max is not None and number > spec.max:
        return f"{spec.oid} is {text}, above {spec.max:g}"
    return None
