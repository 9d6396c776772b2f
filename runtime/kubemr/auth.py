"""Authentication of the job's gRPC calls (control: Master; data: Shuffle).

Every process of a job shares one secret token (``KUBEMR_TOKEN``: the operator puts it in
the per-job Secret ``<job>-token``; ``kubemr run`` draws a fresh one per job). Clients
send it as call metadata, ``authorization: Bearer <token>``; servers compare it in
constant time (:func:`hmac.compare_digest`) before any handler runs, and refuse any other
call with ``UNAUTHENTICATED``, counted in ``kubemr_auth_refused_total{service}``.

An empty token means unauthenticated, which the command line only allows with an explicit
``--insecure``. The HTTP monitoring endpoints (``/metrics``, ``/status``, ``/healthz``)
are not covered: they are read-only and the operator and Prometheus read them.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from kubemr.metrics import RuntimeMetrics

METADATA_KEY = "authorization"
SCHEME = "Bearer "
REFUSED_METRIC = "kubemr_auth_refused_total"


def call_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """The metadata a client adds to each call (none without a token)."""
    return ((METADATA_KEY, SCHEME + token),) if token else ()


def _presented(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == METADATA_KEY:
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            return text[len(SCHEME) :] if text.startswith(SCHEME) else None
    return None


def authentic(token: str, metadata: Any) -> bool:
    """Whether a call's metadata carries ``token`` (compared in constant time)."""
    presented = _presented(metadata)
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode(), token.encode())


class ServerAuth(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls that do not carry the job's token, before any handler runs.

    Put it first in the server's interceptors, so refused calls reach nothing else."""

    def __init__(self, token: str, service: str, metrics: RuntimeMetrics) -> None:
        if not token:
            raise ValueError("ServerAuth needs a token")
        self.token = token
        self.service = service
        self.metrics = metrics

    async def intercept_service(
        self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = await continuation(details)
        if handler is None or authentic(self.token, details.invocation_metadata):
            return handler
        self.metrics.inc(REFUSED_METRIC, 1, self.service)
        message = "missing or wrong job token"
        if handler.unary_stream is not None:

            async def refuse_stream(request: Any, context: Any) -> AsyncIterator[Any]:
                del request
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
                yield  # pragma: no cover (abort raises)

            return grpc.unary_stream_rpc_method_handler(
                refuse_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        async def refuse(request: Any, context: Any) -> Any:
            del request
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

        return grpc.unary_unary_rpc_method_handler(
            refuse,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def server_interceptors(
    token: str, service: str, metrics: RuntimeMetrics
) -> list[grpc.aio.ServerInterceptor]:
    """The authenticating interceptor for ``token`` (none when it is empty: insecure)."""
    return [ServerAuth(token, service, metrics)] if token else []


def _with_token(details: Any, token: str) -> Any:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    metadata.add(METADATA_KEY, SCHEME + token)
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


class _UnaryToken(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self.token = token

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await continuation(_with_token(details, self.token), request)


class _StreamToken(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self.token = token

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await continuation(_with_token(details, self.token), request)


def client_interceptors(token: str) -> list[grpc.aio.ClientInterceptor]:
    """Client interceptors adding the token to every call (none when it is empty)."""
    return [_UnaryToken(token), _StreamToken(token)] if token else []
