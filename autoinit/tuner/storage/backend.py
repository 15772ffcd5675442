"""The Optuna storage behind a study: opening it, and every write to a trial this process does not run
(private Optuna APIs go through :mod:`autoinit._compat`)."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna

from autoinit import _compat
from autoinit.errors import AutoInitError, one_line
from autoinit.tuner.common.noise import quiet_optuna_experimental
from autoinit.tuner.records.record import TrialRecord
from autoinit.tuner.sources.settings import TuneSettings
from autoinit.tuner.storage.journal import Journal

JOURNAL_NAME = "study.journal"


# A subprocess of this run (a worker, a DDP rank) gets the storage through its environment, never its
# command line: any local user can read a command line (ps), only its owner a process's environment.
STORAGE_ENV = "AUTOINIT_STORAGE"
_STORAGE_FLAG = "--tune.storage"
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_QUERY_SECRET = re.compile(r"((?:^|[?&;])(?:password|passwd|pwd|pass|secret|token)=)[^&;]*", re.IGNORECASE)


def mask_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ***: ``user:password@`` (an unencoded
    ``@`` in the password included: everything up to the last ``@`` is masked) and ``?password=`` in the
    query. The one masking rule for logs, errors and output files."""
    return _URL.sub(lambda m: _mask_one(m.group(0)), text)


def _mask_one(url: str) -> str:
    scheme, _, rest = url.partition("://")
    at = rest.rfind("@")
    user_end = min((i for i in (rest.find(":"), rest.find("@")) if i >= 0), default=-1)
    if at >= 0 and rest[user_end] == ":" and user_end < at:  # user:password@...
        rest = f"{rest[:user_end]}:***{rest[at:]}"
    base, sep, query = rest.partition("?")
    return f"{scheme}://{base}{sep}" + _QUERY_SECRET.sub(r"\1***", query)


def subprocess_args(settings: TuneSettings, overrides: list[str]) -> tuple[list[str], dict[str, str]]:
    """The overrides (without ``--tune.storage``) and the environment entries that give a subprocess of
    this run the storage ``settings`` name; it reads them back with :func:`inherited_overrides`."""
    kept: list[str] = []
    skip = False
    for arg in overrides:
        if skip:
            skip = False
        elif arg == _STORAGE_FLAG:
            skip = True  # --tune.storage URL: the URL is the next argument
        elif not arg.startswith(_STORAGE_FLAG + "="):
            kept.append(arg)
    return kept, ({STORAGE_ENV: settings.storage} if settings.storage else {})


def inherited_overrides(overrides: list[str]) -> list[str]:
    """In a subprocess: ``overrides`` with the storage its parent passed through the environment."""
    url = os.environ.get(STORAGE_ENV)
    return [*overrides, f"{_STORAGE_FLAG}={url}"] if url else list(overrides)


def storage_target(settings: TuneSettings, output: Path) -> str:
    """The configured storage: an RDB URL, or a journal file path (default: study.journal in ``output``)."""
    return settings.storage or str(output / JOURNAL_NAME)


def is_rdb(target: str) -> bool:
    """An RDB URL (it has heartbeats: a dead process's trial goes stale), not a journal file."""
    return "://" in target


def describe(settings: TuneSettings, output: Path) -> str:
    """Where the study lives, safe to print."""
    return mask_url(storage_target(settings, output))


def open_storage(settings: TuneSettings, output: Path) -> optuna.storages.BaseStorage:
    """An RDB storage for a URL (with a heartbeat, so a dead worker's trial is failed and retried), else
    a journal file (safe for concurrent writers on one machine; see :mod:`autoinit.tuner.storage.journal`)."""
    target = storage_target(settings, output)
    if is_rdb(target):
        try:
            with quiet_optuna_experimental():
                return optuna.storages.RDBStorage(
                    target,
                    heartbeat_interval=settings.heartbeat_interval,
                    grace_period=3 * settings.heartbeat_interval,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3),
                )
        except Exception as exc:
            raise AutoInitError(
                f"cannot open storage {mask_url(target)} ({mask_url(one_line(exc))}): "
                "check the URL and that the server runs"
            ) from None
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(Journal(target))


def unreachable(exc: BaseException) -> BaseException | None:
    """The database error behind ``exc`` when the storage could not be reached (a server down, a network
    cut), else None. Optuna wraps it (``StorageInternalError``), and may raise an unrelated error while
    handling it, so the whole chain is searched."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (OperationalError, InterfaceError)):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


@contextmanager
def outage_is_one_line(settings: TuneSettings, output: Path) -> Iterator[None]:
    """An outage of the storage while this runs is one line (an :class:`AutoInitError`), not a traceback:
    every trial that finished is safe in the storage, and the same command resumes once it is back.
    A background thread that meets the outage first (Optuna's heartbeat) ends silently: the main thread
    meets it too and says it."""
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or unreachable(args.exc_value) is None:
            previous(args)

    threading.excepthook = hook
    try:
        yield
    except Exception as exc:
        cause = unreachable(exc)
        if cause is None:
            raise
        raise AutoInitError(
            f"lost the connection to the storage {describe(settings, output)} ({mask_url(one_line(cause))}): "
            "the finished trials are safe there; run the same command again once it is reachable"
        ) from None
    finally:
        threading.excepthook = previous


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail the running trials whose heartbeat went stale (RDB storages; a no-op without heartbeats); the
    storage's retry callback queues their parameters again."""
    with quiet_optuna_experimental():
        optuna.storages.fail_stale_trials(study)


def record_heartbeat(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Beat for a trial this process runs outside ``study.optimize`` (a population's trials)."""
    beating = _compat.heartbeat_storage(study)
    if beating is not None:
        beating.record_heartbeat(_compat.trial_id(trial))


def record_on(study: optuna.Study, trial: optuna.trial.FrozenTrial, **values: Any) -> None:
    """Set record fields on a trial another process runs (or ran)."""
    for key, value in TrialRecord.attrs(**values).items():
        _compat.set_trial_user_attr(study, trial, key, value)


def fail_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
    """Mark another process's RUNNING trial failed; False when it finished in the meantime."""
    return _compat.fail_trial(study, trial)


def trial_id(trial: optuna.Trial) -> int:
    """The storage's id of a trial, to reopen it from another process (a DDP rank)."""
    return _compat.trial_id(trial)


def reopen_trial(study: optuna.Study, trial_id: int) -> optuna.Trial:
    """A live handle on a running trial that another process of this run started."""
    return _compat.reopen_trial(study, trial_id)


def has_heartbeat(study: optuna.Study) -> bool:
    """Whether the storage fails a silent process's trial itself (an RDB: heartbeat); else (a journal
    file) the trial's owner keeps a lease on it."""
    return _compat.has_heartbeat(study)


def queued_params(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """Every parameter of a trial: those it was queued with and those it suggested."""
    return _compat.queued_params(trial)


def retry_of(trial: optuna.trial.FrozenTrial) -> list[int]:
    """The failed trials whose parameters ``trial`` runs again (queued by autoinit, or by an RDB heartbeat)."""
    own = TrialRecord.of(trial).retry_of
    return [*([own] if own is not None else []), *_compat.retried_numbers(trial)]
