"""`Stack`: bring the local servers up, report on them, and take down what we started."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import psutil

from souk.settings import Settings
from souk.stack import procs
from souk.stack.base import QUIET, Component, Progress, one_line, unreachable
from souk.stack.endpoints import Endpoints, running_entry
from souk.stack.errors import ServerStartError, ServerUnreachable, StackError
from souk.stack.kafka import KafkaComponent
from souk.stack.postgres import PostgresComponent
from souk.stack.state import LOCK_FILE, Entry, StateFile
from souk.stack.status import ComponentStatus, Managed
from souk.stack.urls import redact_url
from souk.stack.valkey import ValkeyComponent

#: How long a configured (external) server gets to answer `souk up`/`status`.
EXTERNAL_TIMEOUT_S = 5.0
#: How long a recorded server of ours gets to answer before `up` gives up on it.
REUSE_TIMEOUT_S = 5.0


class Stack:
    """The local stack of one Souk home: PostgreSQL, Redis (Valkey) and Kafka (Tansu)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.state_dir
        self.state = StateFile(self.home)
        components: list[Component] = [
            PostgresComponent(self.home),
            ValkeyComponent(self.home),
            KafkaComponent(self.home),
        ]
        self._components = {c.name: c for c in components}

    @property
    def component_names(self) -> tuple[str, ...]:
        """Component names in start order: ``("postgres", "redis", "kafka")``."""
        return tuple(self._components)

    def component(self, name: str) -> Component:
        """The component called ``name``."""
        try:
            return self._components[name]
        except KeyError:
            known = ", ".join(self._components)
            raise StackError(f"unknown component {name!r}: use one of {known}") from None

    # -- up ----------------------------------------------------------------------------------

    def up(self, on_progress: Callable[[str], None] | None = None) -> Endpoints:
        """Use each configured server or start/reuse the embedded one; return the endpoints."""
        urls = {name: self.up_component(name, on_progress) for name in self.component_names}
        return Endpoints(urls["postgres"], urls["redis"], urls["kafka"])

    def up_component(self, name: str, on_progress: Callable[[str], None] | None = None) -> str:
        """Bring one component up (see `up`) and return its URL."""
        component = self.component(name)
        progress: Progress = on_progress or QUIET
        configured = component.info.configured_url(self.settings)
        if configured is not None:
            return self._check_external(component, configured, progress)
        with self.state.locked():
            return self._ensure_embedded(component, progress)

    def _check_external(self, component: Component, url: str, progress: Progress) -> str:
        """Health-check a configured server; never start anything for it."""
        info = component.info
        progress(f"{info.title}: checking {redact_url(url)} (from {info.env_var})")
        try:
            component.probe(url, timeout=EXTERNAL_TIMEOUT_S)
        except Exception as error:
            raise unreachable(info, url, error) from None
        progress(f"{info.title}: using the external server at {redact_url(url)}")
        return url

    def _ensure_embedded(self, component: Component, progress: Progress) -> str:
        """Reuse our recorded server if it is healthy, else clean stale state and start one."""
        engine = component.engine
        entries = self.state.load()
        if self.state.unreadable:
            progress(f"ignoring an unreadable {self.state.path}")
            self.state.save(entries)
        entry = entries.get(component.name)
        # A server that died is restarted on its old port when free, so clients that
        # resolved its URL before (a running relay, say) reconnect by themselves.
        preferred_port = entry.port if entry is not None else component.default_port
        if entry is not None:
            proc = procs.matching_process(entry.pid, entry.binary, entry.create_time)
            if proc is not None:
                self._verify_reused(component, entry, proc)
                progress(f"{engine}: reusing the running server (pid {entry.pid}, {entry.url})")
                return entry.url
            progress(f"{engine}: cleaned stale state ({procs.describe_pid(entry.pid)})")
            self.state.drop(component.name)

        adopted = component.recover(progress)
        if adopted is not None:
            self.state.put(component.name, adopted)
            return adopted.url

        component.prepare(progress)
        tried: set[int] = set()
        while True:
            port = procs.pick_port(preferred_port, avoid=tried)
            if port != preferred_port and not tried:
                progress(f"{engine}: port {preferred_port} is in use; using {port} instead")
            progress(f"{engine}: starting on 127.0.0.1:{port}")
            started = time.monotonic()
            try:
                entry = component.launch(port, progress)
                break
            except ServerStartError:
                # Another process (a parallel test worker, say) grabbed the port between our
                # check and the server's bind: try the next one, a couple of times.
                if len(tried) >= 2 or not procs.port_in_use(port):
                    raise
                tried.add(port)
                progress(f"{engine}: port {port} was taken while starting; trying another")
        self.state.put(component.name, entry)
        took = time.monotonic() - started
        progress(f"{engine}: ready at {entry.url} in {took:.1f} s (pid {entry.pid})")
        return entry.url

    def _verify_reused(self, component: Component, entry: Entry, proc: psutil.Process) -> None:
        """A recorded server that is alive must still listen and answer, or we stop short."""
        problem: BaseException | str | None = None
        if not procs.listens_on(proc, entry.port):
            problem = f"not listening on port {entry.port}"
        else:
            try:
                component.probe(entry.url, timeout=REUSE_TIMEOUT_S)
            except Exception as error:
                problem = error
        if problem is not None:
            raise ServerUnreachable(
                component.name,
                redact_url(entry.url),
                f"{component.engine} (pid {entry.pid}) is running but not answering "
                f"({one_line(problem)}): run `souk down` then `souk up`; see {entry.log_file}",
            )

    # -- down --------------------------------------------------------------------------------

    def down(self, purge: bool = False) -> list[str]:
        """Stop only the servers this home started; ``purge`` also deletes their data and logs."""
        if not self.home.exists():
            return []
        stopped: list[str] = []
        with self.state.locked():
            entries = self.state.load()
            for component in reversed(list(self._components.values())):
                if self._stop_component(component, entries.get(component.name)):
                    stopped.append(component.name)
                self.state.drop(component.name)
            if purge:
                for component in self._components.values():
                    component.purge()
                self.state.save({})
        if purge:
            self._remove_home_leftovers()
        return stopped

    def _stop_component(self, component: Component, entry: Entry | None) -> bool:
        """Stop our recorded server and any lost one of this home; True if anything ran."""
        victims: list[psutil.Process] = []
        if entry is not None:
            proc = procs.matching_process(entry.pid, entry.binary, entry.create_time)
            if proc is not None:
                victims.append(proc)
        # Also servers of this home whose stack.json entry was lost, so nothing is left behind.
        victims.extend(p for p in component.orphans() if p.pid not in {v.pid for v in victims})
        for proc in victims:
            survivors = component.stop(proc)
            if survivors:
                pids = ", ".join(str(p.pid) for p in survivors)
                raise StackError(
                    f"{component.engine} did not stop (pids {pids} still running): "
                    f"kill them by hand (kill -9 {pids.replace(', ', ' ')})"
                )
        return bool(victims)

    def _remove_home_leftovers(self) -> None:
        """After a purge, drop the lock file, and the logs folder and home if they are empty."""
        with contextlib.suppress(OSError):
            (self.home / LOCK_FILE).unlink(missing_ok=True)
        for folder in (self.home / "logs", self.home):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only succeeds when empty: other tools' state stays

    # -- status ------------------------------------------------------------------------------

    def status(self) -> list[ComponentStatus]:
        """Name, url, up/down, version and managed-by of each component (Kafka: topics, lag)."""
        entries = self.state.load()
        return [self._status(c, entries.get(c.name)) for c in self._components.values()]

    def _status(self, component: Component, entry: Entry | None) -> ComponentStatus:
        """Status of one component; never raises for a server that is down."""
        configured = component.info.configured_url(self.settings)
        if configured is not None:
            return self._probe_status(component, configured, None, "external")
        live = running_entry(entry)
        if live is None:
            why = (
                f"stale state ({procs.describe_pid(entry.pid)}): run `souk up`"
                if entry is not None
                else "not started: run `souk up`"
            )
            return ComponentStatus(
                name=component.name,
                engine=component.engine,
                url=entry.url if entry is not None else None,
                up=False,
                version=None,
                managed="embedded",
                pid=None,
                error=why,
            )
        return self._probe_status(component, live.url, live, "embedded")

    def _probe_status(
        self, component: Component, url: str, entry: Entry | None, managed: Managed
    ) -> ComponentStatus:
        """Ask the server at ``url`` for its version (and Kafka details)."""
        name, shown = component.name, redact_url(url)
        engine = component.engine if managed == "embedded" else component.info.title
        pid = entry.pid if entry is not None else None
        try:
            component.probe(url, timeout=EXTERNAL_TIMEOUT_S)
            version = component.version(url, entry)
        except Exception as error:
            return ComponentStatus(name, engine, shown, False, None, managed, pid, one_line(error))
        status = ComponentStatus(name, engine, shown, True, version, managed, pid)
        if isinstance(component, KafkaComponent):
            try:
                topics, groups = component.details(url)
            except Exception as error:
                return ComponentStatus(
                    name, engine, shown, True, version, managed, pid,
                    f"could not list topics/groups: {one_line(error)}",
                )  # fmt: skip
            status = ComponentStatus(
                name, engine, shown, True, version, managed, pid, None, topics, groups
            )
        return status
