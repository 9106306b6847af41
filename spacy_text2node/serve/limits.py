"""An ASGI middleware that refuses request bodies over a size, before or while they are read."""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable, Dict

Message = Dict[str, Any]


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Answer 413 to a request whose body is over `max_bytes` (by Content-Length, or counted as it arrives).

    app (Callable): the ASGI app.
    max_bytes (int): the largest body accepted.
    """

    def __init__(self, app: Callable, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def _message(self, size: str) -> str:
        return (
            f"The request body is {size}, over the limit of {self.max_bytes:,} bytes (--max-body-bytes): send fewer "
            f"or shorter texts per request, or start the server with a larger --max-body-bytes."
        )

    async def _refuse(self, send: Callable[[Message], Awaitable[None]], size: str) -> None:
        body = json.dumps({"detail": self._message(size)}).encode("utf-8")
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Message, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send, f"{int(length):,} bytes")
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, f"more than {self.max_bytes:,} bytes")
