"""Consumer-group mechanics of the inbound stream (docs/streams.md, "Inbound").

At-least-once delivery made safe: an entry is acknowledged only after its handler returned (the
handler commits its own transaction), so a consumer that dies in between leaves the entry pending;
any consumer of the group reclaims it with XAUTOCLAIM once it has been idle long enough, and the
handler's idempotency (unique WhatsApp id, monotonic statuses) makes the second run a no-op.
Entries are handled a read at a time (``batch_handler``: one call, one outcome per entry) and
acknowledged together with one XACK, which is what keeps the consumer's cost per entry small.
With a ``submit_handler`` (what ``manage.py consume_inbound`` uses) handling a read has two
steps: the handler sends the read's work to the database and returns what finishes it; the
consumer reads and validates the next entries while PostgreSQL works and hands them to the
handler, which prepares them and, when it needs the connection, has the consumer finish the read
in flight before it sends the next one. Anything else that needs the database (a dead letter, the
disk checks below, reclaiming, stopping) finishes the read in flight first.
An entry that keeps failing is recorded as a dead letter after N deliveries and acknowledged, so
one poison entry never blocks the stream; nothing is ever dropped without a record.

With ``make_durable`` the handler may commit without waiting for the disk (PostgreSQL's
asynchronous commit: the rows are stored and visible at once, on disk a moment later): entries
are then acknowledged only once they are on disk, so a database crash can lose no acknowledged
entry, and the disk flush stays off the path from XADD to stored. With ``durable_position`` as
well, the consumer does not wait for the disk while entries keep coming: at most every
``ack_delay_ms`` it asks where the database's log ends and how much of it is on disk (one cheap
query) and acknowledges the entries committed before a position the disk has reached
(PostgreSQL writes asynchronous commits within a fraction of a second on its own). It calls
``make_durable()``, a flush it waits for, only after ``ack_delay_ms`` without new entries, when
an entry has waited ``MAX_ACK_WAIT_S``, and when stopping.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from apps.channels import contract

logger = logging.getLogger(__name__)


# Entries waiting this long for the database to write its log on its own are flushed instead
# (PostgreSQL's default wal_writer_delay, 200 ms, has them on disk well before).
MAX_ACK_WAIT_S = 1.0


class PermanentEventError(Exception):
    """The entry can never be processed (e.g. unknown session): dead-letter it at once."""

    code = "permanent_failure"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


@dataclass(frozen=True)
class DeadLetter:
    """What the consumer could not process, handed to the dead-letter sink."""

    entry_id: str
    raw_event: str | None
    document: dict[str, Any] | None
    error_code: str
    error: str
    deliveries: int


Handler = Callable[[dict[str, Any]], None]
# One outcome per document, in order: None when handled (and committed), else the error.
BatchHandler = Callable[[list[dict[str, Any]]], list[BaseException | None]]
# Starts handling a read and returns what finishes it (waits, returns the outcomes as above).
# It calls its second argument before it first uses the database connection: the consumer
# finishes the read in flight then (see InboundConsumer._process).
SubmitHandler = Callable[
    [list[dict[str, Any]], Callable[[], None]], Callable[[], list[BaseException | None]]
]
DeadLetterSink = Callable[[DeadLetter], None]
# A valid entry: (entry id, its raw event, the parsed document, deliveries so far).
_Valid = tuple[str, str | None, dict[str, Any], int]


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _compare_ids(a: str, b: str) -> int:
    ams, aseq = (int(part) for part in a.split("-"))
    bms, bseq = (int(part) for part in b.split("-"))
    return (ams > bms or (ams == bms and aseq > bseq)) - (ams < bms or (ams == bms and aseq < bseq))


def trim_consumed(client: redis.Redis, stream: str) -> int:
    """Trim entries every group has consumed and acknowledged; never a blind MAXLEN.

    The bound is, over every group, the smaller of its last-delivered id and its oldest pending
    id; XTRIM MINID keeps everything at or after it (gateway-node/src/streams.js trimConsumed).
    """
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError as exc:
        if "no such key" in str(exc).lower():
            return 0
        raise
    if not groups:
        return 0
    min_id: str | None = None
    for group in groups:
        bound = str(group["last-delivered-id"])
        pending = client.xpending(stream, group["name"])
        if pending["pending"] and _compare_ids(str(pending["min"]), bound) < 0:
            bound = str(pending["min"])
        if min_id is None or _compare_ids(bound, min_id) < 0:
            min_id = bound
    if not min_id or min_id == "0-0":
        return 0
    return int(client.xtrim(stream, minid=min_id, approximate=False))


class InboundConsumer:
    """Reads ``stream`` in consumer group ``group`` and hands the valid documents of each read to
    ``batch_handler`` (or each one to ``handler``)."""

    def __init__(
        self,
        *,
        client: redis.Redis,
        dead_letter: DeadLetterSink,
        handler: Handler | None = None,
        batch_handler: BatchHandler | None = None,
        submit_handler: SubmitHandler | None = None,
        make_durable: Callable[[], None] | None = None,
        durable_position: Callable[[], tuple[int, int]] | None = None,
        ack_delay_ms: int = 50,
        stream: str | None = None,
        group: str = contract.INBOUND_GROUP,
        consumer: str | None = None,
        batch: int = 50,
        block_ms: int = 2000,
        claim_idle_ms: int = 30000,
        max_deliveries: int = 5,
        trim_every_s: float = 60.0,
    ) -> None:
        if sum(given is not None for given in (handler, batch_handler, submit_handler)) != 1:
            raise TypeError("give the consumer one of handler, batch_handler, submit_handler")
        self.client = client
        self.handler = handler
        self.batch_handler = batch_handler
        self.submit_handler = submit_handler
        if durable_position is not None and make_durable is None:
            raise TypeError("durable_position needs make_durable (the flush when idle)")
        self.make_durable = make_durable
        self.durable_position = durable_position
        self.ack_delay_ms = ack_delay_ms
        self.dead_letter = dead_letter
        self.stream = stream or contract.inbound_stream()
        self.group = group
        self.consumer = consumer or default_consumer_name()
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.trim_every_s = trim_every_s
        self.stopping = False
        self.processed = 0
        # Handled entries not known to be on disk yet: those without a log position, since
        # when, and those with one (the end of the log when they were all committed).
        self._unflushed: list[str] = []
        self._unflushed_since = 0.0
        # (log position, entry ids, when the first of them was handled)
        self._positioned: list[tuple[int, list[str], float]] = []
        self._next_check = 0.0
        self._last_entry_at = 0.0
        self._next_claim = 0.0
        self._next_trim = time.monotonic() + trim_every_s
        # A read the submit_handler started and nobody finished yet: (its entries, finish).
        self._in_flight: tuple[list[_Valid], Callable[[], list[BaseException | None]]] | None = None
        self._needed_error: Exception | None = None

    def ensure_group(self) -> None:
        """Create the group at id 0 (events written before the first consumer are not skipped)."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def stop(self) -> None:
        """Ask the loop to stop after the read in hand (signal handlers call this)."""
        self.stopping = True

    def run(self, *, until_idle: bool = False) -> None:
        """Consume until stop() (or, with ``until_idle``, until a read returns nothing)."""
        self.ensure_group()
        try:
            while not self.stopping:
                try:
                    got = self.step()
                except redis.ConnectionError:
                    logger.exception("inbound stream unreachable; retrying")
                    time.sleep(1)
                    continue
                if until_idle and not got:
                    return
        finally:
            self._complete()
            if self._waiting():
                self.flush()

    def _waiting(self) -> bool:
        return bool(self._unflushed or self._positioned)

    def flush(self) -> None:
        """Make what was handled durable (waiting for the disk), then acknowledge it."""
        self._settle(wait=True)

    def _settle(self, *, wait: bool) -> None:
        """Acknowledge (one XACK) the handled entries on disk: all of them after a flush
        (``wait``), else those committed before the log position the disk has reached."""
        self._complete()  # the read in flight first: the queries below need the connection
        if not self._waiting():
            return
        self._next_check = time.monotonic() + self.ack_delay_ms / 1000
        if wait or self.durable_position is None:
            if self.make_durable is not None:
                self.make_durable()
            done = self._unflushed + [entry for _at, ids, _t in self._positioned for entry in ids]
            self._unflushed, self._positioned = [], []
        else:
            written, on_disk = self.durable_position()
            if self._unflushed:
                # Committed before this query: they lie before the log's end it returned.
                self._positioned.append((written, self._unflushed, self._unflushed_since))
                self._unflushed = []
            done = [entry for at, ids, _t in self._positioned if at <= on_disk for entry in ids]
            self._positioned = [group for group in self._positioned if group[0] > on_disk]
        if done:
            self.client.xack(self.stream, self.group, *done)
            self.processed += len(done)

    def step(self) -> int:
        """One round: reclaim abandoned entries when due, trim when due, read new ones."""
        handled = 0
        now = time.monotonic()
        if now >= self._next_claim:
            self._complete()
            handled += self.reclaim()
            # Claim at least as often as an entry can become idle enough to be claimed.
            self._next_claim = now + max(self.claim_idle_ms / 2000, 0.05)
        if self.trim_every_s and now >= self._next_trim:
            self._next_trim = now + self.trim_every_s
            trim_consumed(self.client, self.stream)
        got = 0
        if self._in_flight is not None:
            # Look for the next read while the database stores the one in flight: it is
            # validated and the one in flight finished, then it is sent in its turn.
            got = self._read(block=None)
            if got and not self._settle_due():
                return handled + got
            self._complete()
        if not got:
            got = self._read(block=self._block())
            if got and self._in_flight is not None and not self._settle_due():
                return handled + got
            self._complete()
        handled += got
        if not self._waiting():
            return handled
        try:
            now = time.monotonic()
            if self.durable_position is None:
                if not handled or (now - self._unflushed_since) * 1000 >= self.ack_delay_ms:
                    self._settle(wait=True)
            else:
                if now >= self._next_check:
                    self._settle(wait=False)  # acknowledge what is on disk already
                if self._waiting() and (
                    (now - self._last_entry_at) * 1000 >= self.ack_delay_ms
                    or now - self._oldest_waiting() >= MAX_ACK_WAIT_S
                ):
                    # ack_delay_ms without new entries, or a disk that does not catch up on its
                    # own (a long wal_writer_delay): flush rather than keep them waiting.
                    self._settle(wait=True)
        except Exception:
            # The database is unreachable: the entries stay pending (unacknowledged) and the
            # next round tries again; a consumer that dies meanwhile loses nothing either.
            logger.exception("could not flush %s entries; retrying", self._waiting_count())
            time.sleep(1)
        return handled

    def _block(self) -> int | None:
        """How long the next read may wait for new entries (ms; None: only look)."""
        if not self._waiting():
            return min(self.block_ms, max(self.claim_idle_ms // 2, 1))
        if self.durable_position is None:
            return None  # only look (no wait): nothing new means idle, the moment to flush
        # Wait for new entries until the next check of the disk is due (never 0: forever).
        return max(math.ceil((self._next_check - time.monotonic()) * 1000), 1)

    def _settle_due(self) -> bool:
        """Whether step() has entries to acknowledge or flush now (see its settling part)."""
        if not self._waiting():
            return False
        if self.durable_position is None:
            return True
        now = time.monotonic()
        return now >= self._next_check or now - self._oldest_waiting() >= MAX_ACK_WAIT_S

    def _oldest_waiting(self) -> float:
        if self._positioned:
            return self._positioned[0][2]
        return self._unflushed_since if self._unflushed else time.monotonic()

    def _waiting_count(self) -> int:
        return len(self._unflushed) + sum(len(ids) for _at, ids, _t in self._positioned)

    def _read(self, *, block: int | None) -> int:
        response: Any = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=self.batch, block=block
        )
        handled = 0
        for _stream, entries in response or []:
            self._process([(entry_id, fields, 1) for entry_id, fields in entries])
            handled += len(entries)
        return handled

    def reclaim(self) -> int:
        """XAUTOCLAIM entries idle past ``claim_idle_ms`` (dead consumers', or own failures)."""
        handled = 0
        cursor = "0-0"
        while not self.stopping:
            claimed: Any = self.client.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=self.claim_idle_ms,
                start_id=cursor,
                count=self.batch,
            )
            next_cursor, entries, deleted = claimed[0], claimed[1], claimed[2]
            if deleted:
                # Pending ids whose entry no longer exists: nothing to process, clear them.
                self.client.xack(self.stream, self.group, *deleted)
            gone = [entry_id for entry_id, fields in entries if fields is None]
            if gone:
                self.client.xack(self.stream, self.group, *gone)
            claimed_entries = [
                (entry_id, fields, self._deliveries(entry_id))
                for entry_id, fields in entries
                if fields is not None
            ]
            self._process(claimed_entries)
            handled += len(claimed_entries)
            if next_cursor in ("0-0", b"0-0"):
                return handled
            cursor = next_cursor
        return handled

    def _deliveries(self, entry_id: str) -> int:
        info = self.client.xpending_range(self.stream, self.group, entry_id, entry_id, 1)
        return int(info[0]["times_delivered"]) if info else 1

    def process(self, entry_id: str, fields: dict[str, str], *, deliveries: int) -> None:
        self.process_many([(entry_id, fields, deliveries)])

    def process_many(self, entries: list[tuple[str, dict[str, str], int]]) -> None:
        """Validate, handle and acknowledge entries given as (id, fields, deliveries so far)."""
        self._process(entries)
        self._complete()

    def _process(self, entries: list[tuple[str, dict[str, str], int]]) -> None:
        """process_many, except that a read the submit_handler started may be left in flight:
        the read in flight before it is finished first, once this one is validated and the
        submit_handler needs the database (so that both overlap with PostgreSQL's work)."""
        if entries:
            self._last_entry_at = time.monotonic()
        valid: list[_Valid] = []
        invalid: list[tuple[str, str | None, str, int]] = []
        for entry_id, fields, deliveries in entries:
            raw = fields.get(contract.ENTRY_FIELD) if isinstance(fields, dict) else None
            try:
                document = contract.parse_entry(fields, direction="inbound")
            except contract.ContractError as exc:
                invalid.append((entry_id, raw, str(exc), deliveries))
                continue
            valid.append((entry_id, raw, document, deliveries))
        if invalid:
            self._complete()  # dead letters are written in the database
        # A malformed entry will never become valid: record it now instead of retrying.
        for entry_id, raw, error, deliveries in invalid:
            self._bury(entry_id, raw, None, "invalid_event", error, deliveries)
        if not valid:
            return
        documents = [document for _id, _raw, document, _n in valid]
        if self.submit_handler is None:
            self._complete()
            self._conclude(valid, self._handle(documents))
            return
        try:
            finish = self.submit_handler(documents, self._connection_needed)
        except Exception as exc:
            self._complete()
            self._conclude(valid, [exc] * len(valid))
            return
        self._complete()  # (a handler that did not need the database)
        self._in_flight = (valid, finish)
        if self._needed_error is not None:
            # Finishing the read before failed (Redis unreachable for its XACK): raised here,
            # not inside the handler, which would take it for this read's failure.
            failure, self._needed_error = self._needed_error, None
            raise failure

    def _connection_needed(self) -> None:
        """Passed to the submit_handler: it is about to use the database connection."""
        try:
            self._complete()
        except Exception as exc:
            self._needed_error = exc

    def _complete(self) -> None:
        """Finish the read in flight (wait for the database), then acknowledge or retry it."""
        if self._in_flight is None:
            return
        valid, finish = self._in_flight
        self._in_flight = None
        try:
            outcomes = finish()
        except Exception as exc:
            outcomes = [exc] * len(valid)
        if len(outcomes) != len(valid):
            raise RuntimeError("the submit handler must return one outcome per document")
        self._conclude(valid, outcomes)

    def _conclude(self, valid: list[_Valid], outcomes: list[BaseException | None]) -> None:
        done: list[str] = []
        for (entry_id, raw, document, deliveries), error in zip(valid, outcomes, strict=True):
            if error is None:
                done.append(entry_id)
            elif isinstance(error, PermanentEventError):
                self._bury(entry_id, raw, document, error.code, str(error), deliveries)
            elif deliveries >= self.max_deliveries:
                logger.error(
                    "inbound entry failed %s times; dead-lettering it: %r",
                    deliveries,
                    error,
                    extra={"entry_id": entry_id, "event_type": document.get("type")},
                )
                self._bury(entry_id, raw, document, "max_deliveries", repr(error), deliveries)
            else:
                # Left pending: XAUTOCLAIM retries it after claim_idle_ms.
                logger.warning(
                    "inbound entry failed (delivery %s of %s); will retry: %r",
                    deliveries,
                    self.max_deliveries,
                    error,
                    extra={"entry_id": entry_id, "event_type": document.get("type")},
                )
        if done and self.make_durable is None:
            self.client.xack(self.stream, self.group, *done)
            self.processed += len(done)
        elif done:
            if not self._unflushed:
                self._unflushed_since = time.monotonic()
            if not self._waiting():
                self._next_check = self._unflushed_since + self.ack_delay_ms / 1000
            self._unflushed.extend(done)

    def _handle(self, documents: list[dict[str, Any]]) -> list[BaseException | None]:
        if self.batch_handler is not None:
            try:
                outcomes = self.batch_handler(documents)
            except Exception as exc:
                return [exc] * len(documents)
            if len(outcomes) != len(documents):
                raise RuntimeError("the batch handler must return one outcome per document")
            return outcomes
        assert self.handler is not None
        one_by_one: list[BaseException | None] = []
        for document in documents:
            try:
                self.handler(document)
            except Exception as exc:
                one_by_one.append(exc)
            else:
                one_by_one.append(None)
        return one_by_one

    def _bury(
        self,
        entry_id: str,
        raw: str | None,
        document: dict[str, Any] | None,
        code: str,
        error: str,
        deliveries: int,
    ) -> None:
        # Record first, acknowledge second: if recording fails the entry stays pending.
        try:
            self.dead_letter(
                DeadLetter(
                    entry_id=entry_id,
                    raw_event=raw,
                    document=document,
                    error_code=code,
                    error=error,
                    deliveries=deliveries,
                )
            )
        except Exception:
            logger.exception("could not record a dead letter; the entry stays pending")
            return
        self.client.xack(self.stream, self.group, entry_id)
        logger.warning(
            "inbound entry dead-lettered (%s): %s", code, error[:300], extra={"entry_id": entry_id}
        )
