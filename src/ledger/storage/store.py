"""One ledger's storage: its backend, its connection, the codec, and eventsourcing's Application,
which makes eventsourcing's table and knows how events map to rows."""

from __future__ import annotations

import threading
from collections.abc import Callable

from eventsourcing.application import Application
from eventsourcing.persistence import Mapper
from eventsourcing.utils import Environment, EnvType

from .base import APPLICATION_NAME, Backend, Database
from .codec import OrjsonTranscoder


class LedgerApplication(Application[str]):
    """eventsourcing's Application, configured only by the ledger's own settings."""

    name = APPLICATION_NAME

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        # Not os.environ: an unrelated PERSISTENCE_MODULE in the shell must not redirect the ledger.
        return Environment(name, dict(env or {}))


class Store:
    """The backend with the ledger's one connection. eventsourcing's Application is made when first
    needed (`application`): a ledger opened to read whose views are all there never makes it."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.db: Database = backend.database()
        self.transcoder = OrjsonTranscoder()
        self._application: LedgerApplication | None = None
        self._lock = threading.Lock()

    @property
    def application(self) -> LedgerApplication:
        """eventsourcing's Application; making it makes eventsourcing's table if it is not there."""
        if self._application is None:
            with self._lock:
                if self._application is None:
                    with self.backend.setting_up():
                        self._application = LedgerApplication(env=self.backend.environment())
        return self._application

    @property
    def application_made(self) -> bool:
        return self._application is not None

    def set_up(self, then: Callable[[], None]) -> None:
        """Make eventsourcing's table and Application, then `then()` (the views' tables), in the
        backend's set-up turn: processes opening one new store take turns."""
        with self._lock, self.backend.setting_up():
            if self._application is None:
                self._application = LedgerApplication(env=self.backend.environment())
            then()

    @property
    def mapper(self) -> Mapper[str]:
        return self.application.mapper

    def close(self) -> None:
        self.db.close()
        if self._application is not None:
            self._application.close()
