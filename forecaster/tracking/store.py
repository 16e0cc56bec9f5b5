"""The tracking store, opened safely: checked before anything runs, created once however many
processes start at once, repaired when a crash left it half-built, cleared of orphaned runs.

`open_store(uri)` is what every command calls before it touches MLflow:

1. `check_uri`: the URI's scheme and form; for SQLite, that the database's directory can be
   created and written and that an existing file is an SQLite database; for a server, that it
   answers within a few seconds (MLflow itself would retry for minutes); for a database server,
   that its driver is installed and its port accepts a connection.
2. `prepare_sqlite`: a SQLite store is created, and its schema checked, under an inter-process
   file lock beside the database, so processes started in the same second never race through
   MLflow's schema migration (which is not transactional on SQLite and, raced, leaves a store
   no later process can open). A store a crash left half-built with no runs in it is moved
   aside and built afresh; one that holds runs is reported with the commands that fix it.
3. `close_orphans`: a run left RUNNING by a process of this host that no longer exists (killed
   by SIGKILL or the out-of-memory killer, a power cut) is ended FAILED with the reason.
   Every run records where its process runs (`process_tags`) for this.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from forecaster.errors import ConfigError

log = logging.getLogger(__name__)

HOST_TAG = "forecaster.host"
PID_TAG = "forecaster.pid"
PROCESS_START_TAG = "forecaster.process_start"  # tells a reused PID from the run's process
CHECKPOINT_TAG = "forecaster.checkpoint_dir"
FAILURE_REASON_TAG = "failure_reason"

DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")
SCHEMES = ("sqlite", "http", "https", *DATABASE_SCHEMES, "databricks")
CONNECT_TIMEOUT = 5.0  # seconds to wait for a server before calling the URI unreachable
LOCK_TIMEOUT = 300.0  # creating a store takes seconds; a lock held this long is stuck
_SQLITE_HEADER = b"SQLite format 3\x00"
_URI_EXAMPLES = (
    "sqlite:////absolute/path/mlflow.db, http://host:5000 (an `mlflow server`) or "
    "postgresql://user:password@host:5432/db"
)


def open_store(uri: str) -> MlflowClient:
    """Check `uri`, create or repair a SQLite store, end orphaned runs; the client."""
    check_uri(uri)
    database = sqlite_path(uri)
    if database is not None:
        prepare_sqlite(database, uri)
    client = MlflowClient(uri)
    close_orphans(client)
    return client


# -- 1. the URI --------------------------------------------------------------------------------


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (absolute with four slashes, else relative to the
    working directory); None for other stores and in-memory SQLite."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    database = uri[len(prefix) :].split("?", 1)[0]
    if database in ("", ":memory:"):
        return None
    return Path(database).resolve()


def check_uri(uri: str) -> None:
    """Raise `ConfigError` naming `tracking.uri` and the fix unless MLflow can track to `uri`."""
    if not uri or not uri.strip():
        raise ConfigError(
            "tracking.uri is empty. Fix: unset it for the default store, or set it to "
            f"{_URI_EXAMPLES}."
        )
    scheme, separator, rest = uri.partition("://")
    if not separator:
        _reject_non_uri(uri)
    scheme = scheme.lower()
    dialect = scheme.split("+", 1)[0]  # postgresql+psycopg2://...
    if scheme == "file":
        raise ConfigError(
            f"tracking.uri={uri!r} is a file store (a directory of runs), which MLflow 3 no "
            "longer tracks to. Fix: use a SQLite database instead, e.g. "
            f"tracking.uri=sqlite:///{Path(rest or '.').resolve() / 'mlflow.db'}."
        )
    if dialect not in SCHEMES:
        raise ConfigError(
            f"tracking.uri={uri!r} has the unknown scheme {scheme!r}: MLflow tracks to "
            f"{', '.join(SCHEMES)}. Fix: use e.g. {_URI_EXAMPLES}."
        )
    if dialect == "sqlite":
        _check_sqlite(uri)
    elif dialect in ("http", "https"):
        _check_server(uri)
    elif dialect in DATABASE_SCHEMES:
        _check_database(uri, dialect)


def _reject_non_uri(uri: str) -> None:
    for scheme in SCHEMES + ("file",):
        if uri.lower().startswith(scheme) and not uri[len(scheme) :].startswith("://"):
            start = "sqlite:///, then the path" if scheme == "sqlite" else f"{scheme}://"
            raise ConfigError(
                f"tracking.uri={uri!r} is not a well-formed URI: it should start with {start}. "
                f"Fix: write it like {_URI_EXAMPLES}."
            )
    directory = Path(uri).expanduser().resolve()
    raise ConfigError(
        f"tracking.uri={uri!r} is a directory path, which MLflow reads as a file store (a "
        "directory of runs) and MLflow 3 no longer tracks to. Fix: use a SQLite database "
        f"instead, e.g. tracking.uri=sqlite:///{directory / 'mlflow.db'}."
    )


def _check_sqlite(uri: str) -> None:
    if not uri.startswith("sqlite:///"):
        raise ConfigError(
            f"tracking.uri={uri!r} is not a well-formed SQLite URI: the path follows "
            "'sqlite:///' (three slashes, then the path: four slashes for an absolute one). "
            "Fix: write it like sqlite:////absolute/path/mlflow.db."
        )
    database = sqlite_path(uri)
    if database is None:
        raise ConfigError(
            f"tracking.uri={uri!r} names no database file, so runs would be lost when the "
            "process ends. Fix: name a file, e.g. sqlite:////absolute/path/mlflow.db."
        )
    if database.is_dir():
        raise ConfigError(
            f"tracking.uri={uri!r}: {database} is a directory, not a database file. Fix: name "
            f"a file in it, e.g. tracking.uri=sqlite:///{database / 'mlflow.db'}."
        )
    directory = database.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"tracking.uri={uri!r}: cannot create the directory {directory} for the store "
            f"({error.strerror}). Fix: choose a location you can write to."
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(
            f"tracking.uri={uri!r}: the directory {directory} is not writable (SQLite writes "
            "its journal beside the database). Fix: choose a location you can write to, or "
            "make that directory writable."
        )
    if database.exists():
        with database.open("rb") as file:
            head = file.read(len(_SQLITE_HEADER))
        if head and head != _SQLITE_HEADER:
            raise ConfigError(
                f"tracking.uri={uri!r}: {database} is not an SQLite database (it begins "
                f"{head[:12]!r}). Fix: point tracking.uri at an MLflow .db file, or at a new "
                "file name to create a store."
            )
        if not os.access(database, os.W_OK):
            raise ConfigError(
                f"tracking.uri={uri!r}: {database} is read-only. Fix: make it writable, or "
                "track to another store."
            )


def _check_server(uri: str) -> None:
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=CONNECT_TIMEOUT):
            return
    except urllib.error.HTTPError:
        return  # it answers: MLflow's own calls say what it thinks of us (e.g. credentials)
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        reason = getattr(reason, "strerror", None) or reason  # "Connection refused"
        raise ConfigError(
            f"tracking.uri={uri!r}: no MLflow server answers there ({reason}, after "
            f"{CONNECT_TIMEOUT:g} s). Fix: start it (mlflow server --host 127.0.0.1 --port "
            f"{urllib.parse.urlsplit(uri).port or 5000} ...) or correct tracking.uri."
        ) from None


def _check_database(uri: str, dialect: str) -> None:
    import sqlalchemy  # MLflow's dependency; imported here, as only database URIs need it

    try:
        url = sqlalchemy.engine.make_url(uri)
        url.get_dialect().import_dbapi()
    except ImportError as error:
        driver = {"postgresql": '"psycopg[binary]"', "mysql": "pymysql", "mssql": "pyodbc"}
        raise ConfigError(
            f"tracking.uri={_redact(uri)!r}: the {dialect} driver is not installed "
            f"({error}). Fix: pip install {driver[dialect]}."
        ) from None
    except sqlalchemy.exc.ArgumentError as error:
        raise ConfigError(f"tracking.uri={_redact(uri)!r} is not a database URI: {error}") from None
    port = url.port or {"postgresql": 5432, "mysql": 3306, "mssql": 1433}[dialect]
    try:
        socket.create_connection((url.host or "localhost", port), timeout=CONNECT_TIMEOUT).close()
    except OSError as error:
        raise ConfigError(
            f"tracking.uri={_redact(uri)!r}: the database server at {url.host}:{port} does not "
            f"answer ({error.strerror or error}). Fix: start it, or correct tracking.uri."
        ) from None


def _redact(uri: str) -> str:
    """The URI without its password, for messages."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def check_artifact_location(location: str, key: str) -> None:
    """A local artifact location (a path or file: URI) must be creatable; remote ones are the
    server's business."""
    parts = urllib.parse.urlsplit(location)
    if parts.scheme not in ("", "file"):
        return
    path = Path(urllib.parse.unquote(parts.path) if parts.scheme else location).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"{key}: cannot create the artifact directory {path} ({error.strerror}). Fix: "
            "set tracking.artifact_location to a directory you can write to."
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{key}: the artifact directory {path} is not writable. Fix: set "
            "tracking.artifact_location to a directory you can write to."
        )


# -- 2. a SQLite store's schema ----------------------------------------------------------------


def prepare_sqlite(database: Path, uri: str) -> None:
    """Create the store's schema, or check it, under a lock no other process holds meanwhile."""
    lock = FileLock(f"{database}.lock", timeout=LOCK_TIMEOUT)
    try:
        with lock:
            _prepare_sqlite(database, uri)
    except Timeout:
        raise ConfigError(
            f"tracking.uri={uri!r}: another process has held {lock.lock_file} for "
            f"{LOCK_TIMEOUT:g} s while creating the store. If none is running, delete that file."
        ) from None


def _prepare_sqlite(database: Path, uri: str) -> None:
    schema = _read_schema(database)
    if schema.current:
        return
    if schema.tables and not schema.runs:
        moved = database.with_name(f"{database.name}.incomplete-{datetime.now(UTC):%Y%m%dT%H%M%S}")
        database.rename(moved)
        log.warning(
            "The tracking store %s was left half-built by a process that died while creating "
            "it (schema revision %s of %s, no runs in it): moved it to %s and built it afresh.",
            database,
            schema.revision,
            schema.head,
            moved,
        )
    elif schema.tables:
        raise ConfigError(_damaged_store_message(database, uri, schema))
    _create_schema(uri)


class _Schema:
    """What a SQLite store holds of MLflow's schema."""

    def __init__(
        self,
        tables: set[str],
        revision: str | None,
        head: str,
        missing: set[str],
        runs: int,
    ) -> None:
        self.tables, self.revision, self.head, self.missing, self.runs = (
            tables,
            revision,
            head,
            missing,
            runs,
        )
        # Leftover `_alembic_tmp_*` copies beside a complete schema are harmless.
        self.current = bool(tables) and not missing and revision == head

    @property
    def leftovers(self) -> list[str]:
        return sorted(t for t in self.tables if t.startswith("_alembic_tmp_"))


def _read_schema(database: Path) -> _Schema:
    # MLflow's own record of its schema: the tables its models define and the newest revision
    # of its migrations (private helpers; the mlflow pin in pyproject.toml keeps them stable).
    from mlflow.store.db.base_sql_model import Base
    from mlflow.store.db.utils import _get_latest_schema_revision
    from mlflow.store.tracking import sqlalchemy_store  # noqa: F401  (defines the tables)

    head = _get_latest_schema_revision()
    if not database.exists() or database.stat().st_size == 0:
        return _Schema(set(), None, head, set(), 0)
    with sqlite3.connect(database) as connection:
        tables = {
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        revision = None
        if "alembic_version" in tables:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = row[0] if row else None
        runs = 0
        if "runs" in tables:
            runs = connection.execute("SELECT count(*) FROM runs").fetchone()[0]
    connection.close()
    missing = set(Base.metadata.tables) - tables
    return _Schema(tables, revision, head, missing, runs)


def _create_schema(uri: str) -> None:
    """MLflow builds a store's schema (all of its migrations) the first time it opens it."""
    started = time.monotonic()
    MlflowClient(uri).search_experiments(max_results=1)
    log.info("created the tracking store %s in %.1f s", uri, time.monotonic() - started)


def _damaged_store_message(database: Path, uri: str, schema: _Schema) -> str:
    backup = f"cp {database} {database}.bak"
    if not schema.missing and not schema.leftovers:
        return (
            f"tracking.uri={uri!r}: the store holds {schema.runs} runs in schema revision "
            f"{schema.revision}, and this MLflow needs {schema.head} (the store was written by "
            f"another MLflow version). Fix: back it up and upgrade it: {backup} && mlflow db "
            f"upgrade {uri}"
        )
    # An interrupted migration. SQLite migrations copy a table to `_alembic_tmp_<name>`, drop
    # the original and rename the copy: while the original exists, the copy is disposable.
    disposable = [t for t in schema.leftovers if t.removeprefix("_alembic_tmp_") in schema.tables]
    lost = [t for t in schema.leftovers if t not in disposable]
    problem = (
        f"tracking.uri={uri!r}: the store holds {schema.runs} runs but its schema is incomplete "
        f"(revision {schema.revision} of {schema.head}; missing tables {sorted(schema.missing)}; "
        f"leftovers of an interrupted migration {schema.leftovers})."
    )
    if lost:
        return (
            f"{problem} The migration stopped after dropping {sorted(schema.missing)} and "
            f"before renaming their copies {lost} into place. Fix: restore {database} from a "
            "backup."
        )
    drop = "; ".join(f"DROP TABLE {t}" for t in disposable)
    return (
        f"{problem} Fix: back it up, drop the leftover copies and finish the migration: "
        f"{backup} && python -c \"import sqlite3; sqlite3.connect('{database}')"
        f".executescript('{drop}')\" && mlflow db upgrade {uri}"
    )


# -- 3. orphaned runs --------------------------------------------------------------------------


def process_tags() -> dict[str, str]:
    """Where this process runs: enough for a later process on this host to tell whether it is
    still alive."""
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(os.getpid()),
        PROCESS_START_TAG: _process_start(os.getpid()) or "",
    }


def _process_start(pid: int) -> str | None:
    """The boot and the start time of process `pid` (Linux), which a reused PID does not share;
    None when unknown or the process does not exist."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 is the start time; the command name (field 2) may hold spaces, so count after it.
    return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"


def process_alive(tags: dict[str, str]) -> bool | None:
    """Whether the process a run's tags name still runs; None for another host's run."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return None
    pid = int(tags[PID_TAG])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's process
    recorded = tags.get(PROCESS_START_TAG)
    return not recorded or _process_start(pid) in (recorded, None)


def close_orphans(client: MlflowClient) -> list[str]:
    """End FAILED every RUNNING run whose process on this host is gone; their ids."""
    host = socket.gethostname()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    running = client.search_runs(
        experiments,
        filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
        max_results=1000,
    )
    closed = []
    for run in running:
        tags = run.data.tags
        if process_alive(tags) is not False:
            continue
        reason = orphan_reason(run.info.run_id, tags)
        client.set_tag(run.info.run_id, FAILURE_REASON_TAG, reason)
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
        log.warning("run %s: %s", run.info.run_id, reason)
        closed.append(run.info.run_id)
    return closed


def orphan_reason(run_id: str, tags: dict[str, str]) -> str:
    reason = (
        f"orphaned: its process (pid {tags.get(PID_TAG)} on {tags.get(HOST_TAG)}) ended without "
        "ending the run: it was killed (SIGKILL, the out-of-memory killer) or the machine went "
        "down."
    )
    if tags.get(CHECKPOINT_TAG):
        reason += f" Continue it with: python -m forecaster train resume={run_id}"
    return reason
