"""An ASGI guard in front of Gradio: a queue request without a session id gets a 400, not a 500.

Gradio files such an event under a made-up id it never opened a message queue for, and the lookup
fails with a ``KeyError`` (HTTP 500, a traceback in the log). Without a session id the client could
not read the result anyway, so the request is refused up front with a one-line reason.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_MAX_BODY = 1_000_000  # a queue request carries file *references*, never file contents


class SessionGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" or not str(
            scope.get("path", "")
        ).endswith("/queue/join"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = bool(message.get("more_body")) and size <= _MAX_BODY
        body = b"".join(chunks)
        if size > _MAX_BODY:
            await _refuse(send, "request too large")
            return
        try:
            data = json.loads(body)
        except ValueError:
            data = None  # malformed: Gradio answers that itself
        session = data.get("session_hash") if isinstance(data, dict) else ""
        if isinstance(data, dict) and (not isinstance(session, str) or not session.strip()):
            await _refuse(send, "session_hash is required: open /gradio_api/queue/data?session_hash=<id> "
                                "with the same id to read the result")
            return
        await self._forward(scope, body, receive, send)

    async def _forward(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()  # later reads wait for the real disconnect
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _refuse(send: Send, detail: str) -> None:
    payload = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
