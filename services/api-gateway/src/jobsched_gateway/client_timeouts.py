"""uvicorn's HTTP/1.1 protocols with a deadline for the client's side: a connection that
has not sent a whole request (headers and body) within CLIENT_TIMEOUT_SECONDS of
opening, or of its previous answer, is closed. uvicorn's keep-alive timer alone ends
only a connection that sends nothing: one byte now and then would hold it for ever.
The deadline runs only while the server waits for the client; a long answer, such as
an event stream, is not limited."""

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class RequestDeadline:
    """Counts requests received whole and answers sent: while they are equal, the server
    waits for the client, and the deadline runs."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    timeout_keep_alive: int

    def _start_deadline(self) -> None:
        self.requests_whole = 0
        self.answers_sent = 0
        self.request_deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _request_whole(self) -> None:
        self.requests_whole += 1
        self._disarm()

    def _answer_sent(self) -> None:
        self.answers_sent += 1
        if self.answers_sent >= self.requests_whole and not self.transport.is_closing():
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self.request_deadline = self.loop.call_later(self.timeout_keep_alive, self._too_slow)

    def _disarm(self) -> None:
        if self.request_deadline is not None:
            self.request_deadline.cancel()
            self.request_deadline = None

    def _too_slow(self) -> None:
        self.request_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


class DeadlineH11Protocol(RequestDeadline, H11Protocol):
    """h11, pure Python: what uvicorn takes without httptools."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_deadline()

    def data_received(self, data: bytes) -> None:
        before = self.conn.their_state
        super().data_received(data)
        if before is not h11.DONE and self.conn.their_state is h11.DONE:
            self._request_whole()

    def on_response_complete(self) -> None:
        self._answer_sent()
        super().on_response_complete()  # may start a pipelined request, already whole
        if self.conn.their_state is h11.DONE and self.answers_sent == self.requests_whole:
            self._request_whole()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def _httptools_protocol() -> type[Any] | None:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return None

    class DeadlineHttpToolsProtocol(RequestDeadline, HttpToolsProtocol):
        """httptools, HTTP parsing in C: what uvicorn takes when it is installed."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._start_deadline()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._request_whole()

        def on_response_complete(self) -> None:
            self._answer_sent()
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return DeadlineHttpToolsProtocol


DeadlineHttpToolsProtocol = _httptools_protocol()


def deadline_protocol() -> type[Any]:
    """The protocol uvicorn's `auto` would take, with the deadline."""
    return DeadlineHttpToolsProtocol or DeadlineH11Protocol
