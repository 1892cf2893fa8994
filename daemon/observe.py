"""The outermost wrapper around every gRPC call: request id, metrics, draining.

:class:`ObservingInterceptor` runs before authentication, so it sees every
call, refused ones included. It gives the call its request id, which every
log line of the call carries, counts the call by RPC, level and outcome,
times it, and keeps the count of calls in flight that a drain waits for.

A drain works in two steps. :meth:`ObservingInterceptor.begin_drain` makes
every new niemphong.v1 call fail at once with ``DAEMON_STOPPING`` (health
checks still answer, with NOT_SERVING). When the grace period is over,
:meth:`ObservingInterceptor.stop_streams` ends each request stream at its
next message with the same reason, so that a seal stops before its envelope
is finished and registers nothing.

Handlers record what a call touched in ``CallContext.facts`` (see
``identity.py``). The wrapper shares one facts dict with the CallContext that
the authentication interceptor builds, and reads it when the call ends.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from niemphong.daemon import metrics
from niemphong.daemon.errors import ServiceError, abort
from niemphong.daemon.logs import request_id_var

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
_API_PREFIX = "/niemphong."
_STATUS_DETAILS_HEADER = "grpc-status-details-bin"


class ObservedContext:
    """A servicer context carrying the call's request id and facts dict."""

    def __init__(self, context: grpc.ServicerContext, request_id: str) -> None:
        self._context = context
        self.request_id = request_id
        self.facts: dict[str, str | int] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def rpc_label(method: str) -> str:
    """Return the RPC label for a full method name: ``/pkg.Service/Method`` becomes ``Service/Method``."""
    service, _, name = method.lstrip("/").rpartition("/")
    if service.startswith("niemphong."):
        service = service.rsplit(".", 1)[-1]
    return f"{service}/{name}"


def reason_from_trailers(metadata: Any) -> str | None:
    """Return the ErrorInfo reason of a failed call from its trailing metadata, or None."""
    for key, value in metadata or ():
        if key != _STATUS_DETAILS_HEADER:
            continue
        status = status_pb2.Status()
        status.ParseFromString(value)
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return info.reason or None
    return None


class _Call:
    """The bookkeeping of one call between its start and its end."""

    def __init__(self, method: str, context: grpc.ServicerContext) -> None:
        self.rpc = rpc_label(method)
        self.started = time.monotonic()
        self.context = ObservedContext(context, uuid.uuid4().hex[:16])
        self.outcome: str | None = None


# Called with the method and the call's context when a drain refuses a call,
# so that the audit trail, which sits inside this wrapper, can record it.
DrainRefusalHook = Callable[[str, "ObservedContext", ServiceError], None]


class ObservingInterceptor(grpc.ServerInterceptor):
    """Give every call a request id, count and time it, and track calls in flight.

    Args:
        on_drain_refusal: called for each call refused with DAEMON_STOPPING.
    """

    def __init__(self, on_drain_refusal: DrainRefusalHook | None = None) -> None:
        self._on_drain_refusal = on_drain_refusal
        self._in_flight = 0
        self._idle = threading.Condition()
        self._draining = threading.Event()
        self._streams_stopped = threading.Event()

    @property
    def in_flight(self) -> int:
        with self._idle:
            return self._in_flight

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no call is in flight; return False if ``timeout`` seconds passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    def begin_drain(self) -> None:
        """Fail every new niemphong.v1 call with DAEMON_STOPPING, from now on."""
        self._draining.set()

    def stop_streams(self) -> None:
        """End every request stream at its next message with DAEMON_STOPPING, from now on."""
        self._streams_stopped.set()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method

        streaming_in = handler.request_streaming
        if handler.response_streaming:
            factory = grpc.stream_stream_rpc_method_handler if streaming_in else grpc.unary_stream_rpc_method_handler
            behavior = handler.stream_stream if streaming_in else handler.unary_stream
            wrapped = self._wrap_stream(method, behavior, streaming_in)
        else:
            factory = grpc.stream_unary_rpc_method_handler if streaming_in else grpc.unary_unary_rpc_method_handler
            behavior = handler.stream_unary if streaming_in else handler.unary_unary
            wrapped = self._wrap_unary(method, behavior, streaming_in)
        return factory(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap_unary(self, method: str, behavior: Callable[..., Any], streaming_in: bool) -> Callable[..., Any]:
        def observed(request: Any, context: grpc.ServicerContext) -> Any:
            call = self._begin(method, context)
            if streaming_in:
                request = self._until_stopped(request)
            try:
                try:
                    self._refuse_while_draining(method, call.context)
                    return behavior(request, call.context)
                except ServiceError as error:
                    abort(call.context, error)
                    raise
            except BaseException as exc:
                self._failed(call, exc)
                raise
            finally:
                self._end(call)

        return observed

    def _wrap_stream(
        self, method: str, behavior: Callable[..., Iterator[Any]], streaming_in: bool
    ) -> Callable[..., Iterator[Any]]:
        def observed(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            call = self._begin(method, context)
            if streaming_in:
                request = self._until_stopped(request)
            try:
                try:
                    self._refuse_while_draining(method, call.context)
                    yield from behavior(request, call.context)
                except ServiceError as error:
                    # A handler that lets DAEMON_STOPPING (or any reason)
                    # escape still ends with a rich status, not UNKNOWN.
                    abort(call.context, error)
                    raise
            except BaseException as exc:
                # GeneratorExit lands here when the server drops the stream:
                # the client went away or gRPC cancelled it at the end of a drain.
                self._failed(call, exc)
                raise
            finally:
                self._end(call)

        return observed

    def _refuse_while_draining(self, method: str, context: ObservedContext) -> None:
        if self._draining.is_set() and method.startswith(_API_PREFIX):
            error = ServiceError("DAEMON_STOPPING", "niemphongd is stopping and accepts no new calls")
            if self._on_drain_refusal is not None:
                self._on_drain_refusal(method, context, error)
            raise error

    def _until_stopped(self, requests: Iterator[Any]) -> Iterator[Any]:
        for message in requests:
            if self._streams_stopped.is_set():
                raise ServiceError("DAEMON_STOPPING", "niemphongd is stopping; the call ended before it completed")
            yield message

    def _begin(self, method: str, context: grpc.ServicerContext) -> _Call:
        call = _Call(method, context)
        request_id_var.set(call.context.request_id)
        with self._idle:
            self._in_flight += 1
        metrics.RPC_IN_FLIGHT.labels(call.rpc).inc()
        return call

    def _failed(self, call: _Call, exc: BaseException) -> None:
        context = call.context
        code = context.code()
        if isinstance(exc, GeneratorExit) or (code is None and not context.is_active()):
            call.outcome = grpc.StatusCode.CANCELLED.name
        elif code is None or code == grpc.StatusCode.OK:
            call.outcome = grpc.StatusCode.UNKNOWN.name
            log.error("request %s to %s failed: %s", context.request_id, call.rpc, type(exc).__name__, exc_info=exc)
        else:
            call.outcome = code.name
        # The rich status replaced the trailers; put the request id back so
        # that a client can quote it when reporting the failure.
        trailers = tuple(context.trailing_metadata() or ())
        if all(key != REQUEST_ID_HEADER for key, _ in trailers):
            context.set_trailing_metadata(trailers + ((REQUEST_ID_HEADER, context.request_id),))

    def _end(self, call: _Call) -> None:
        context = call.context
        facts = context.facts
        level = metrics.level_label(facts.get("level"))
        outcome = call.outcome or _finished_outcome(context)
        elapsed = time.monotonic() - call.started

        metrics.RPC_REQUESTS.labels(call.rpc, level, outcome).inc()
        metrics.RPC_DURATION.labels(call.rpc, level).observe(elapsed)
        if outcome != grpc.StatusCode.OK.name:
            reason = facts.get("reason") or reason_from_trailers(context.trailing_metadata())
            if reason is not None:
                metrics.REFUSALS.labels(call.rpc, level, str(reason)).inc()
        else:
            _count_bytes(call.rpc, level, facts)
        log.debug("request %s to %s finished: %s in %.3f s", context.request_id, call.rpc, outcome, elapsed)

        metrics.RPC_IN_FLIGHT.labels(call.rpc).dec()
        request_id_var.set("-")
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()


def _finished_outcome(context: ObservedContext) -> str:
    code = context.code()
    return (code or grpc.StatusCode.OK).name


def _count_bytes(rpc: str, level: str, facts: dict[str, str | int]) -> None:
    plaintext = facts.get("plaintext_bytes")
    if not isinstance(plaintext, int):
        return
    if rpc == "EnvelopeService/Seal":
        metrics.SEALED_BYTES.labels(level).inc(plaintext)
        envelope_bytes = facts.get("envelope_bytes")
        if isinstance(envelope_bytes, int):
            metrics.ENVELOPE_BYTES.labels(level).inc(envelope_bytes)
    elif rpc == "EnvelopeService/Open":
        metrics.OPENED_BYTES.labels(level).inc(plaintext)
