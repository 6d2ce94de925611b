"""Changes announced by other processes that share a PostgreSQL backing database.

Owns one background thread per store that LISTENs on :data:`opsmgr.store.engine.CHANGES_CHANNEL` with a
dedicated connection and hands every change it hears to the store's listeners (:meth:`Store.on_change`),
exactly as the store hands over the changes of this process's own transactions. Whenever it is not
listening (at start, after a lost connection) it announces a change of everything, since notifications sent
meanwhile are lost: listeners then reload rather than trust what they cached. A SQLite store belongs to one
server, so there is nothing to listen to. May import ``opsmgr.store.engine``, psycopg and SQLAlchemy's URL
parser.
"""

from __future__ import annotations

import logging
import threading

import sqlalchemy as sa

from opsmgr.store.engine import CHANGES_CHANNEL, Change, Store

log = logging.getLogger(__name__)

EVERYTHING = Change("*", "*")
_WAKE_S = 1.0  # how often the thread looks at its stop flag while no notification arrives
_RECONNECT_MAX_S = 10.0


def libpq_conninfo(url: str) -> str | None:
    """The libpq connection string of a PostgreSQL SQLAlchemy URL; None for any other engine."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    return str(parsed.set(drivername="postgresql").render_as_string(hide_password=False))


class ChangeListener:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._conninfo = libpq_conninfo(store.url)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()

    def start(self) -> ChangeListener:
        if self._conninfo is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"listen {self.store.name}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(_WAKE_S * 3)

    def _run(self) -> None:
        import psycopg

        delay = 0.2
        while not self._stop.is_set():
            try:
                with psycopg.connect(str(self._conninfo), autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {CHANGES_CHANNEL}")
                    self.listening.set()
                    self.store.announce([EVERYTHING])
                    delay = 0.2
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=_WAKE_S):
                            self.store.announce([Change.parse(note.payload)])
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning("not listening for changes of the %s (retrying): %s", self.store.name, exc)
                self.store.announce([EVERYTHING])
                self._stop.wait(delay)
                delay = min(delay * 2, _RECONNECT_MAX_S)
            except Exception:  # a listener's bug must not end the thread: caches would then never reload
                log.exception("a change listener of the %s failed", self.store.name)
                self._stop.wait(delay)
        self.listening.clear()
