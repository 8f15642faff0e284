"""TLS checks on any TCP port: handshake, chain and host name, days until the certificate expires.

Phases are timed apart (``dns_ms``, ``connect_ms``, ``tls_ms``). With ``verify`` the handshake
verifies the chain (system CAs, or ``ca_file``) and the host name, so an expired, untrusted or
wrong-host certificate fails with OpenSSL's reason; without it any certificate is accepted and
only its expiry is judged.

=====================================  ======================================
outcome                                ErrorKind
=====================================  ======================================
no handshake within the timeout        ``TIMEOUT``
name does not resolve                  ``DNS``
refused / other socket error           ``CONNECTION_REFUSED`` / ``_ERROR``
verification failed, handshake error,  ``TLS``
fewer than ``critical_days`` left
=====================================  ======================================
"""

from __future__ import annotations

import asyncio
import ssl
import time
from datetime import UTC, datetime

from cryptography import x509

from fao.prober.checks.addresses import close_stream, resolve
from fao.prober.checks.contract import Outcome, classify_os_error, describe_exception, elapsed_ms
from fao.schemas import ErrorKind, Observations, TlsCheck


class TlsChecker:
    """Runs ``TlsCheck`` specs. Keeps one SSL context per (verify, ca_file)."""

    def __init__(self) -> None:
        self._contexts: dict[tuple[bool, str | None], ssl.SSLContext] = {}

    def _context(self, spec: TlsCheck) -> ssl.SSLContext:
        key = (spec.verify, spec.ca_file)
        context = self._contexts.get(key)
        if context is None:
            context = ssl.create_default_context(cafile=spec.ca_file)
            if not spec.verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._contexts[key] = context
        return context

    async def run(self, spec: TlsCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the check's own timeout is part of its contract: the checker reports it as data
        started = time.perf_counter()
        dns_ms = connect_ms = tls_ms = None
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(timeout):
                context = self._context(spec)
                address, dns_ms = await resolve(spec.host, spec.port)
                phase = time.perf_counter()
                _, writer = await asyncio.open_connection(address, spec.port)
                connect_ms = elapsed_ms(phase)
                phase = time.perf_counter()
                await writer.start_tls(context, server_hostname=spec.server_name or spec.host)
                tls_ms = elapsed_ms(phase)
                der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        except TimeoutError:
            observations = Observations(dns_ms=dns_ms, connect_ms=connect_ms)
            return Outcome.failure(
                ErrorKind.TIMEOUT,
                f"timed out after {timeout:g}s",
                elapsed_ms(started),
                observations=observations,
            )
        except ssl.SSLCertVerificationError as exc:
            observations = Observations(dns_ms=dns_ms, connect_ms=connect_ms)
            reason = exc.verify_message or exc.reason or str(exc)
            return Outcome.failure(
                ErrorKind.TLS,
                f"certificate not valid: {reason}",
                elapsed_ms(started),
                observations=observations,
            )
        except ssl.SSLError as exc:
            observations = Observations(dns_ms=dns_ms, connect_ms=connect_ms)
            return Outcome.failure(
                ErrorKind.TLS,
                f"TLS handshake failed: {exc.reason or exc}",
                elapsed_ms(started),
                observations=observations,
            )
        except OSError as exc:
            kind, detail = classify_os_error(exc)
            return Outcome.failure(kind, detail, elapsed_ms(started))
        except Exception as exc:  # translated to data at this boundary
            return Outcome.failure(ErrorKind.INTERNAL, describe_exception(exc), elapsed_ms(started))
        finally:
            await close_stream(writer)
        latency = elapsed_ms(started)
        expires = x509.load_der_x509_certificate(der).not_valid_after_utc
        days_left = (expires - datetime.now(UTC)).total_seconds() / 86400.0
        observations = Observations(
            dns_ms=dns_ms,
            connect_ms=connect_ms,
            tls_ms=tls_ms,
            cert_expires_at=expires,
            cert_days_left=round(days_left, 2),
        )
        when = f"certificate expires {expires:%Y-%m-%d %H:%M} UTC ({days_left:.1f} days left)"
        if days_left < 0:
            return Outcome.failure(
                ErrorKind.TLS,
                f"certificate expired {expires:%Y-%m-%d %H:%M} UTC",
                latency,
                observations=observations,
            )
        if days_left < spec.critical_days:
            return Outcome.failure(
                ErrorKind.TLS, f"{when}, under {spec.critical_days:g}", latency, observations=observations
            )
        if days_left < spec.warn_days:
            return Outcome.success(latency, detail=f"warning: {when}", observations=observations)
        return Outcome.success(latency, observations=observations)

    async def aclose(self) -> None:
        return None
