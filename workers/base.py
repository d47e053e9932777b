"""Base classes of every EVA task: one failure path, so nothing is lost.

Use ``base=TenantBoundTask`` for work on tenant data and ``base=PlatformTask`` for work in the
public schema. Both

* retry *transient* errors (:data:`TRANSIENT_EXCEPTIONS`, :class:`TransientError`, plus a task's
  own ``transient_exceptions``) with exponential backoff and jitter, up to ``max_retries``
  (default ``EVA_TASK_MAX_RETRIES``);
* record a dead letter (apps.ops, public schema) when a task fails for good: retries exhausted,
  a permanent error, a time limit hit, or a worker that died while running it
  ``EVA_TASK_MAX_DELIVERIES`` times — with the task name, arguments, tenant schema, error,
  traceback and attempts, so ``manage.py dlq replay`` can run it again in the right schema;
* mark the dead letter ``replayed`` when a replay of it succeeds.

Tasks must not write their own failure hooks. Tasks should be idempotent: with late
acknowledgement a task whose worker died is delivered again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
from typing import Any

import redis
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import task_failure, task_success, worker_init
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django_tenants.utils import get_public_schema_name
from tenant_schemas_celery.task import TenantTask

from eva.db import current_schema, use_public_schema

logger = logging.getLogger("eva.tasks")


class TransientError(Exception):
    """Raise from a task for a failure worth retrying (a remote API answered 503, a lock busy)."""


class PermanentError(Exception):
    """Raise from a task for a failure no retry can fix: dead-lettered at once."""


class TenantRequiredError(PermanentError, RuntimeError):
    """A tenant task was sent without a tenant schema (from the public schema)."""


class DeliveryLimitExceeded(PermanentError):
    """The task started too many times without finishing: its worker keeps dying on it."""

    def __init__(self, message: str, *, runs: int = 0) -> None:
        super().__init__(message)
        self.runs = runs  # starts that died, counted as attempts on the dead letter


# Errors that say "the world was briefly unavailable", not "this work is wrong". Builtin
# ConnectionError/TimeoutError cover sockets (refused, reset, timed out) and HTTP clients built
# on them; Django's OperationalError/InterfaceError cover a lost or restarting database.
TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    TransientError,
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
)


def is_transient(exc: BaseException, extra: tuple[type[BaseException], ...] = ()) -> bool:
    if isinstance(exc, PermanentError | SoftTimeLimitExceeded):
        return False
    return isinstance(exc, TRANSIENT_EXCEPTIONS + tuple(extra))


def backoff_delay(retries: int, *, base: float, cap: float) -> float:
    """Seconds before retry number ``retries + 1``: exponential, capped, with jitter.

    "Equal jitter": half the delay is fixed, half random, so tasks that failed together (the
    database restarted) do not all come back in the same second, and none comes back at once.
    """
    delay = min(cap, base * (2 ** max(0, retries)))
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - not cryptographic


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def _header(request: Any, key: str) -> Any:
    """A message header; with the Redis transport custom headers may sit on the request itself."""
    headers = getattr(request, "headers", None) or {}
    if key in headers:
        return headers[key]
    return request.get(key) if hasattr(request, "get") else None


def _qualified_name(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__name__}"


def _redis() -> redis.Redis:
    from apps.ops.stream import redis_client

    return redis_client()


def _run_key(task_id: str) -> str:
    return f"eva:tasks:run:{task_id}"


class EvaTask(TenantTask):
    """Retry with backoff on transient errors; dead letter on final failure. Not used directly."""

    abstract = True

    #: None: ``settings.EVA_TASK_MAX_RETRIES``. Celery's own ``max_retries`` default (3) is
    #: replaced so that every task follows the operator's setting unless it says otherwise.
    max_retries: int | None = None
    #: Backoff base and cap in seconds; None: EVA_TASK_RETRY_BACKOFF / EVA_TASK_RETRY_BACKOFF_MAX.
    #: (Celery's own ``retry_backoff*`` belong to its autoretry_for, which EVA does not use.)
    backoff_base: float | None = None
    backoff_cap: float | None = None
    #: Extra exception classes this task treats as transient (e.g. its HTTP client's errors).
    transient_exceptions: tuple[type[BaseException], ...] = ()
    #: A hard time limit is a final failure (dead-lettered), not a reason to redeliver forever.
    acks_on_timeout = True
    #: Record dead letters with this tenant schema (None: platform work, never tenant-bound).
    records_tenant = True
    #: False for periodic housekeeping whose next scheduled run is its retry (the monitor):
    #: its failures are logged, not dead-lettered.
    dead_letters = True

    # --- running ---------------------------------------------------------------------------

    def _prepare_schema(self) -> None:
        """Hook: check or set the schema before the body runs."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        run_key = self._delivery_start()
        try:
            self._prepare_schema()
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            if self.request.called_directly or not is_transient(exc, self.transient_exceptions):
                raise
            logger.warning(
                "task %s failed transiently (attempt %s): %s: %s",
                self.name,
                self.request.retries + 1,
                type(exc).__name__,
                exc,
            )
            # Raises Retry (a new message, same task id and headers) or, once max_retries is
            # reached, re-raises exc, which ends in on_failure and a dead letter.
            raise self.retry(exc=exc) from exc
        finally:
            if run_key:
                try:
                    _redis().delete(run_key)
                except redis.RedisError:
                    logger.warning("could not clear the delivery counter %s", run_key)

    def _delivery_start(self) -> str | None:
        """Count starts of this message; refuse a task whose worker died on it too often.

        The counter is removed when the body finishes in any way (success, failure, retry), so
        it only grows when the process running it is killed (OOM, kill -9, hard time limit): the
        message comes back (late ack + reject on worker lost) and is counted again. It also
        keeps the schema, for the failure hook the worker's main process runs on a hard time
        limit, where the message headers are not at hand.
        """
        request = self.request
        if request.called_directly or not request.id or request.is_eager:
            return None
        key = _run_key(str(request.id))
        try:
            client = _redis()
            pipe = client.pipeline()
            pipe.hincrby(key, "starts", 1)
            pipe.hset(
                key,
                mapping={
                    "schema": str(_header(request, "_schema_name") or current_schema()),
                    "replay_of": str(_header(request, "eva_dead_letter_id") or ""),
                    "retries": str(request.retries or 0),
                    "host": str(request.hostname or socket.gethostname()),
                },
            )
            pipe.expire(key, int(_setting("CELERY_VISIBILITY_TIMEOUT", 3600)) * 4)
            starts = int(pipe.execute()[0])
        except redis.RedisError:
            return None
        limit = int(_setting("EVA_TASK_MAX_DELIVERIES", 3))
        if starts > limit:
            with contextlib.suppress(redis.RedisError):
                client.delete(key)  # this delivery ends here, dead-lettered
            raise DeliveryLimitExceeded(
                f"task {self.name} started {starts - 1} times without finishing (limit {limit}):"
                " its worker process died each time (killed, out of memory)",
                runs=starts - 1,
            )
        return key

    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: Any = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Any:
        """Celery's retry with EVA's defaults: the configured limit and backoff with jitter."""
        if max_retries is None:
            max_retries = self.retry_limit()
        if countdown is None and eta is None:
            countdown = backoff_delay(
                self.request.retries or 0,
                base=float(
                    self.backoff_base
                    if self.backoff_base is not None
                    else _setting("EVA_TASK_RETRY_BACKOFF", 2.0)
                ),
                cap=float(
                    self.backoff_cap
                    if self.backoff_cap is not None
                    else _setting("EVA_TASK_RETRY_BACKOFF_MAX", 300.0)
                ),
            )
        return super().retry(
            args, kwargs, exc, throw, eta, countdown, max_retries=max_retries, **options
        )

    def retry_limit(self) -> int:
        if self.max_retries is not None:
            return int(self.max_retries)
        return int(_setting("EVA_TASK_MAX_RETRIES", 5))

    # --- outcomes --------------------------------------------------------------------------

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        replay_of = _header(self.request, "eva_dead_letter_id")
        if replay_of:
            from apps.ops.services import dead_letter_mark_replayed

            dead_letter_mark_replayed(dead_letter_id=int(replay_of), replay_task_id=task_id)
        super().on_success(retval, task_id, args, kwargs)

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        super().on_failure(exc, task_id, args, kwargs, einfo)
        if not self.dead_letters:
            logger.error("periodic task %s failed: %s: %s", self.name, type(exc).__name__, exc)
            return
        record_task_failure(
            task=self, exc=exc, task_id=task_id, args=args, kwargs=kwargs, einfo=einfo
        )


class TenantBoundTask(EvaTask):
    """Base for tasks that work on tenant data: refuses to run in the public schema.

    tenant-schemas-celery switches the connection to the schema the task was sent from before
    the task body runs; a task sent from the public schema would otherwise query public tables
    (or fail obscurely), so it is rejected outright — a permanent failure, dead-lettered, never
    retried.
    """

    abstract = True

    def _prepare_schema(self) -> None:
        if current_schema() == get_public_schema_name():
            raise TenantRequiredError(
                f"task {self.name} needs a tenant schema but was sent from the public schema"
            )


class PlatformTask(EvaTask):
    """Base for platform work in the public schema (whatever schema it was sent from)."""

    abstract = True
    records_tenant = False

    def _prepare_schema(self) -> None:
        if current_schema() != get_public_schema_name():
            use_public_schema()


# --- recording -------------------------------------------------------------------------------


def _failure_context(task: Any, task_id: str) -> dict[str, Any]:
    """Schema, replay id, attempts and host of the failed run.

    In the worker child the request is at hand. On a hard time limit Celery calls on_failure in
    the main process without it; the delivery record written at start holds what we need.
    """
    request = task.request
    if request is not None and request.id == task_id:
        delivery = request.delivery_info or {}
        return {
            "schema": _header(request, "_schema_name") or current_schema(),
            "replay_of": _header(request, "eva_dead_letter_id") or "",
            "attempts": int(request.retries or 0) + 1,
            "host": request.hostname or socket.gethostname(),
            "queue": delivery.get("routing_key") or "",
        }
    stored: dict[str, str] = {}
    try:
        stored = _redis().hgetall(_run_key(task_id)) or {}  # type: ignore[assignment]
        _redis().delete(_run_key(task_id))
    except redis.RedisError:
        logger.warning("no delivery record for task %s (Redis unavailable)", task_id)
    return {
        "schema": stored.get("schema") or None,
        "replay_of": stored.get("replay_of") or "",
        "attempts": int(stored.get("retries") or 0) + 1,
        "host": stored.get("host") or socket.gethostname(),
        "queue": "",
    }


def record_task_failure(
    *, task: Any, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
) -> None:
    """Write the dead letter of a task that failed for good. Never raises.

    If the database is what failed, the full record goes to the dead-letter stream instead and
    the dlq-monitor stores it later; if Redis is down too, the record is logged whole.
    """
    from apps.ops.services import dead_letter_record, dead_letter_replay_failed
    from apps.ops.stream import dead_letter_publish

    context = _failure_context(task, task_id)
    context["attempts"] = max(int(context["attempts"]), int(getattr(exc, "runs", 0) or 0))
    tenant = context["schema"] if getattr(task, "records_tenant", True) else None
    error = str(exc) or repr(exc)
    traceback = str(getattr(einfo, "traceback", "") or "")
    record = {
        "source": "task",
        "name": str(task.name),
        "payload": {
            "args": list(args or []),
            "kwargs": dict(kwargs or {}),
            "queue": context["queue"],
        },
        "tenant_schema": tenant,
        "error": error,
        "exception_type": _qualified_name(exc),
        "traceback": traceback,
        "attempts": context["attempts"],
        "worker_host": str(context["host"]),
    }
    try:
        if context["replay_of"]:
            dead_letter = dead_letter_replay_failed(
                dead_letter_id=int(context["replay_of"]),
                replay_task_id=task_id,
                error=error,
                exception_type=record["exception_type"],
                traceback=traceback,
                attempts=context["attempts"],
                worker_host=record["worker_host"],
            )
            if dead_letter is not None:
                logger.error(
                    "replay %s of dead letter #%s failed: %s", task_id, dead_letter.pk, error
                )
                return
        dead_letter = dead_letter_record(task_id=task_id, **record)
        logger.error(
            "task %s failed for good after %s attempt(s); dead letter #%s",
            task.name,
            context["attempts"],
            dead_letter.pk,
        )
    except Exception as store_exc:
        logger.exception("could not store the dead letter of task %s[%s]", task.name, task_id)
        dead_letter_publish(
            {
                "event": "unstored",
                "store_error": f"{type(store_exc).__name__}: {store_exc}",
                "record": json.dumps({**record, "task_id": task_id}, default=str),
            }
        )


@task_failure.connect(dispatch_uid="eva_dead_letter_other_tasks")
def _dead_letter_other_tasks(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    kwargs: Any = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    """Tasks written without an EVA base class still get a dead letter when they fail."""
    if sender is None or isinstance(sender, EvaTask) or exception is None or not task_id:
        return
    record_task_failure(
        task=sender, exc=exception, task_id=task_id, args=args, kwargs=kwargs, einfo=einfo
    )


@task_success.connect(dispatch_uid="eva_replayed_other_tasks")
def _replayed_other_tasks(sender: Any = None, **_: Any) -> None:
    """A replay of a task written without an EVA base class still marks its dead letter."""
    if sender is None or isinstance(sender, EvaTask):
        return
    replay_of = _header(sender.request, "eva_dead_letter_id")
    if replay_of:
        from apps.ops.services import dead_letter_mark_replayed

        dead_letter_mark_replayed(dead_letter_id=int(replay_of), replay_task_id=sender.request.id)


@worker_init.connect(dispatch_uid="eva_reliability_check")
def _refuse_unreliable_settings(**_: Any) -> None:
    """A worker must not start with settings that lose tasks (apps/ops/checks.py).

    SystemExit, not an ordinary exception: Celery logs and swallows exceptions raised by signal
    receivers, and the worker would start anyway.
    """
    from django.core.checks import ERROR

    from apps.ops.checks import reliability_problems

    errors = [p for p in reliability_problems() if p.level >= ERROR]
    if errors:
        message = "unreliable Celery settings, refusing to start: " + " ".join(
            f"[{p.id}] {p.msg}" for p in errors
        )
        logger.critical(message)
        raise SystemExit(message)
