"""A zenoh 0.11 session that can be closed without deadlocking the process.

Why this exists (eclipse-zenoh 0.11.0rc3, the version fourier-grx-client pins): dropping a zenoh
``Session`` blocks in Rust until its network tasks have finished, and it does so while the calling
thread holds the GIL. A network task that is delivering a sample at that moment calls into Python
(the subscriber callback, or the callback's ``drop`` hook when the task holds the last reference
to an undeclared subscriber) and waits for the GIL. Neither side can proceed: the process hangs
and ignores SIGINT and SIGTERM. fourier-grx-client's ``close()`` undeclares its subscribers and
drops the session at once, so with the GRX server streaming joint states at 100 Hz about one
shutdown in six hung (gdb: main thread in ``Session::drop`` -> ``block_in_place``, zenoh's ``rx``
thread in ``PyClosure::drop`` -> ``take_gil``).

The fix is an ordering, not a timeout: every Python callable handed to zenoh through this wrapper
is counted, and its ``drop`` hook (which zenoh calls when it lets go of the callable) uncounts it.
``close()`` undeclares subscribers and queryables, waits with the GIL released until zenoh has
let go of every callable, and only then drops the session; from that moment no zenoh thread can
need the GIL again. Callbacks are called directly on zenoh's thread (no per-subscriber Python
reader thread, which zenoh would otherwise start and which kept the interpreter from exiting).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import zenoh

_log = logging.getLogger(__name__)

# Sessions whose callables zenoh did not release in time: never dropped (see TrackedSession.close).
_PARKED: list[Any] = []


class TrackedSession:
    """Wraps a ``zenoh.Session``; counts the callables zenoh holds; ``close()`` drops it safely.

    Duck-types the parts of ``zenoh.Session`` that fourier-grx-client and the loopback fakes use
    (``declare_subscriber``, ``declare_queryable``, ``declare_publisher``, ``get``, ``put``,
    ``close``); anything else is forwarded unchanged.
    """

    def __init__(self, session: Any) -> None:
        self._session = session
        self._cond = threading.Condition()
        self._held = 0  # callables zenoh still references
        self._declared: list[Any] = []  # subscribers and queryables to undeclare on close
        self._publishers: list[Any] = []

    @classmethod
    def open(cls, config: Any) -> TrackedSession:
        return cls(zenoh.open(config))

    # ------------------------------------------------------------------ counted callables
    def _track(self, handler: Any) -> tuple[Any, Any]:
        """(zenoh.Closure with a counting drop hook, the handler's receiver or None)."""
        if isinstance(handler, zenoh.IHandler):  # e.g. zenoh.Queue(): its receiver goes back to the caller
            call, drop, receiver = handler.closure.call, handler.closure.drop, handler.receiver
        elif isinstance(handler, zenoh.IClosure):
            call, drop, receiver = handler.call, handler.drop, None
        elif callable(handler):
            call, drop, receiver = handler, None, None
        else:
            raise TypeError(f"zenoh handler must be callable or a zenoh handler: {type(handler).__name__}")
        with self._cond:
            self._held += 1
        released = threading.Event()

        def counted_drop() -> None:
            if released.is_set():  # zenoh calls drop once; be safe anyway
                return
            released.set()
            try:
                if drop is not None:
                    drop()
            finally:
                with self._cond:
                    self._held -= 1
                    self._cond.notify_all()

        return zenoh.Closure((call, counted_drop)), receiver

    @property
    def held_callables(self) -> int:
        with self._cond:
            return self._held

    # ------------------------------------------------------------------ zenoh.Session API
    def declare_subscriber(self, keyexpr: Any, handler: Any, **kwargs: Any) -> Any:
        closure, receiver = self._track(handler)
        sub = self._require().declare_subscriber(keyexpr, closure, **kwargs)
        sub.receiver = receiver
        self._declared.append(sub)
        return sub

    def declare_queryable(self, keyexpr: Any, handler: Any, **kwargs: Any) -> Any:
        closure, receiver = self._track(handler)
        queryable = self._require().declare_queryable(keyexpr, closure, **kwargs)
        queryable.receiver = receiver
        self._declared.append(queryable)
        return queryable

    def declare_publisher(self, keyexpr: Any, **kwargs: Any) -> Any:
        pub = self._require().declare_publisher(keyexpr, **kwargs)
        self._publishers.append(pub)
        return pub

    def get(self, selector: Any, handler: Any, **kwargs: Any) -> Any:
        closure, receiver = self._track(handler)
        self._require().get(selector, closure, **kwargs)
        return receiver

    def __getattr__(self, name: str) -> Any:  # put, delete, info, ...
        return getattr(self._require(), name)

    def _require(self) -> Any:
        if self._session is None:
            raise RuntimeError("zenoh session is closed")
        return self._session

    @property
    def closed(self) -> bool:
        return self._session is None

    # ------------------------------------------------------------------ shutdown
    def close(self, release_timeout: float = 2.0) -> bool:
        """Undeclare everything, wait (GIL released) until zenoh holds no Python callable, drop the session.

        Idempotent. Returns True when the session was dropped. If zenoh still holds a callable after
        ``release_timeout`` s (a query that never finalises), dropping the session could deadlock, so it
        is parked instead: kept referenced until the process exits, and logged.
        """
        session, self._session = self._session, None
        if session is None:
            return True
        for handle in reversed(self._declared):
            try:
                handle.undeclare()  # the callable is dropped here or by zenoh's thread right after
            except Exception as exc:  # an already-undeclared handle
                _log.debug("zenoh undeclare failed: %r", exc)
        self._declared.clear()
        for pub in self._publishers:
            try:
                pub.undeclare()
            except Exception as exc:
                _log.debug("zenoh publisher undeclare failed: %r", exc)
        self._publishers.clear()
        deadline = time.monotonic() + release_timeout
        with self._cond:
            while self._held > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)  # releases the GIL: zenoh's threads finish their callbacks
            held = self._held
        if held:
            _log.warning("zenoh still holds %d Python callback(s) after %.1f s; leaving the session open "
                         "until the process exits instead of risking a GIL deadlock", held, release_timeout)
            _PARKED.append(session)
            return False
        del session  # the last reference: Session::drop runs here, with no Python left to call
        return True

