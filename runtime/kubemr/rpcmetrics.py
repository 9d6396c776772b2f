"""Timings of every gRPC call a process serves or makes, by method (interceptors).

``kubemr_grpc_server_handling_seconds`` and ``kubemr_grpc_client_handling_seconds`` on the
process's :class:`~kubemr.metrics.RuntimeMetrics`; the master's and the shuffle's servers
and every worker channel install them (after :mod:`kubemr.auth`'s, which refuse first).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from kubemr.metrics import RuntimeMetrics


def server_interceptor(metrics: RuntimeMetrics) -> grpc.aio.ServerInterceptor:
    """A gRPC server interceptor timing every call by method."""
    return _ServerTimer(metrics)


def client_interceptors(metrics: RuntimeMetrics) -> list[grpc.aio.ClientInterceptor]:
    """gRPC client interceptors timing every call by method."""
    return [_UnaryTimer(metrics), _StreamTimer(metrics)]


def _method(full: str | bytes) -> str:
    text = full.decode() if isinstance(full, bytes) else full
    return text.rsplit("/", 1)[-1]


class _ServerTimer(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, metrics: RuntimeMetrics) -> None:
        self.metrics = metrics

    async def intercept_service(
        self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = _method(details.method)
        record = self.metrics.observe
        name = "kubemr_grpc_server_handling_seconds"
        if handler.unary_unary is not None:
            unary = handler.unary_unary

            async def timed_unary(request: Any, context: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await unary(request, context)
                finally:
                    record(name, time.perf_counter() - started, method)

            return grpc.unary_unary_rpc_method_handler(
                timed_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            stream = handler.unary_stream

            async def timed_stream(request: Any, context: Any) -> AsyncIterator[Any]:
                started = time.perf_counter()
                try:
                    async for item in stream(request, context):
                        yield item
                finally:
                    record(name, time.perf_counter() - started, method)

            return grpc.unary_stream_rpc_method_handler(
                timed_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


class _CallTimer:
    """Times a client call until it is done (the unary and the streaming case alike)."""

    def __init__(self, metrics: RuntimeMetrics) -> None:
        self.metrics = metrics

    async def _timed(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        started = time.perf_counter()
        method = _method(details.method)
        call = await continuation(details, request)
        call.add_done_callback(
            lambda _: self.metrics.observe(
                "kubemr_grpc_client_handling_seconds", time.perf_counter() - started, method
            )
        )
        return call


class _UnaryTimer(_CallTimer, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await self._timed(continuation, details, request)


class _StreamTimer(_CallTimer, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await self._timed(continuation, details, request)
