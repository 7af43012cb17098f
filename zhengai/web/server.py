"""Running the pages: composition over a store, and uvicorn.

uvicorn serves requests on one event loop, so a slow client holds a socket, not a thread. Two
more limits keep slow clients from piling up: ``SlowClientH11`` closes a connection that has not
sent a complete request head within ``header_timeout`` seconds (uvicorn itself would wait
forever), and ``Guard`` (``security.py``) gives the body ``body_timeout``. ``limit_concurrency``
answers 503 beyond that many connections. Access logs are off: ``Guard`` logs the path without
the query (which may carry a signed token).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from zhengai.web.app import create_app
from zhengai.web.security import WebSettings

__all__ = ["build_app", "serve", "ServerThread", "SlowClientH11", "config_for"]


class SlowClientH11(H11Protocol):
    """H11Protocol that closes a connection whose request head does not arrive in time."""

    header_timeout = 10.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn logs access lines whenever its logger has a handler (root's counts), whatever
        # the config says; an access line carries the query, i.e. a signed token: never
        self.access_log = False

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def data_received(self, data: bytes) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self._arm()  # a new request head is starting (also after keep-alive)
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # the head is complete: the app (and Guard's body timeout) take over

    def _too_slow(self) -> None:
        self._head_deadline = None
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)


class _CachedDirectory:
    """The stored directory, re-read at most every ``ttl`` seconds."""

    def __init__(self, store, ttl: float = 60.0):
        self.store, self.ttl = store, ttl
        self._value, self._at = None, 0.0
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            if self._value is None or time.monotonic() - self._at > self.ttl:
                self._value, self._at = self.store.directory.load(), time.monotonic()
            return self._value


def build_app(
    store_url: str,
    *,
    rules_folder=None,
    secret: bytes | str | None = None,
    channels: tuple[str, ...] = ("console", "file"),
    settings: WebSettings | None = None,
    broker: str | None = None,
    topic_prefix: str = "",
):
    """The app over a store, like ``zhengai warnings`` builds its service. ``secret`` defaults to
    the environment (``$ZHENGAI_LINK_SECRET`` / ``$ZHENGAI_LINK_SECRET_FILE``)."""
    from zhengai.rules.loader import load_rulebook
    from zhengai.warnings.links import load_secret
    from zhengai.warnings.service import WarningService
    from zhengai.warnings.store import WarningStore

    secret = secret or load_secret()
    if not secret:
        raise ValueError(
            "set $ZHENGAI_LINK_SECRET or $ZHENGAI_LINK_SECRET_FILE: the web pages sign their forms with it"
        )
    store = WarningStore(store_url)
    rules = load_rulebook(rules_folder)
    service = WarningService(store, lambda: rules, _CachedDirectory(store), channels=channels)
    delivery = None  # 填报 values: Kafka with a broker, else the embedded pipeline over the store
    if broker:
        from zhengai.forms.delivery import open_delivery

        delivery = open_delivery(store, rules, broker=broker, topic_prefix=topic_prefix)
    return create_app(service, lambda: rules, secret, settings=settings, forms_delivery=delivery)


def config_for(app, host: str, port: int, settings: WebSettings | None = None) -> uvicorn.Config:
    settings = settings or WebSettings()
    protocol = type("ZhengaiH11", (SlowClientH11,), {"header_timeout": settings.header_timeout})
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        access_log=False,
        log_config=None,
        timeout_keep_alive=5,
        limit_concurrency=1000,
        h11_max_incomplete_event_size=16 * 1024,
        server_header=False,
        proxy_headers=False,
        lifespan="off",
    )


def serve(app, host: str = "127.0.0.1", port: int = 8080, settings: WebSettings | None = None) -> None:
    uvicorn.Server(config_for(app, host, port, settings)).run()


class ServerThread:
    """The app on uvicorn in a background thread (tests, embedded use): ``with ServerThread(app)
    as s: s.base_url``. Port 0 picks a free port."""

    def __init__(
        self,
        app,
        host: str = "127.0.0.1",
        port: int = 0,
        settings: WebSettings | None = None,
        ready: Callable[[], None] | None = None,
    ):
        self.server = uvicorn.Server(config_for(app, host, port, settings))
        # not the main thread: uvicorn (>= 0.29) installs no signal handlers there
        self._thread = threading.Thread(target=self.server.run, name="zhengai-web", daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web server did not start")
            time.sleep(0.02)
        return self

    @property
    def base_url(self) -> str:
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self._thread.join(10)
