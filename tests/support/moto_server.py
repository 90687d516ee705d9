"""moto_server, with DynamoDB requests handled one at a time, transactions rolled back item
by item, one stream record per item an UpdateItem creates, stream reads that keep up with
writes, SQS sends that do not slow down as a queue fills, and FIFO deduplication that
outlives a deleted message.

Run with the project venv's Python, with moto_server's arguments:
    .local/venv/bin/python tests/support/moto_server.py -H 127.0.0.1 -p 5000

In AWS, a DynamoDB conditional write or transaction is atomic. moto's server handles
requests on concurrent threads and its DynamoDB backend takes no lock: two concurrent
conditional writes can both pass their condition, and a cancelled TransactWriteItems rolls
its tables back to a copy taken when it started, erasing writes committed meanwhile. Tests of
concurrent claims and transitions would then test moto's races, so this wraps moto's WSGI
application in a lock for DynamoDB requests (those whose X-Amz-Target starts with
"DynamoDB_") and DynamoDB Streams requests ("DynamoDBStreams_": a transaction appends its
stream records as it goes and removes them if it is cancelled, so a concurrent GetRecords
could otherwise read records of a write that never happened). Other services stay
concurrent (an SQS long poll must not block the rest).

That rollback copy is also slow: moto deep-copies every table a transaction names, once per
item, so each TransactWriteItems costs time in proportion to the table's size. Since the lock
already keeps other DynamoDB requests out while a transaction runs, saving and restoring only
the items the transaction names is an equivalent rollback; `_transact_write_items` does that
around moto's own code (conditions, cancellation reasons and errors stay moto's). Secondary
indexes need nothing: moto derives index queries from the table's items.

An UpdateItem (alone or in a transaction) that creates its item makes moto put the bare key
first and then update it, and each step appends a stream record: two INSERTs, the first with
only the key, where DynamoDB records one INSERT of the whole item. `_update_item` drops the
first (a stream consumer such as the business event publisher would otherwise see an item
without its attributes).

moto writes a GetRecords answer with its generic, model-driven serializer, attribute value
by attribute value: about 20 ms per record of the orders table, so a stream reader could not
keep up with the writers. `_get_records_as_json` writes the same answer with moto's own
DynamoDB JSON encoder (the records are DynamoDB JSON already; timestamps become epoch
seconds, as DynamoDB Streams sends them).

Every SQS SendMessage computes the queue's message counts, and moto reads the clock (a few
microseconds) once per message for each count, so sends slow down as a queue fills (the local
stack's expiry queue only grows). `_count_messages_at_one_instant` reads it once per count.

A FIFO queue drops a message whose deduplication id was sent in the last 5 minutes; moto
compares only with the messages still in the queue, so once a message was received and
deleted, its duplicate (a publisher's retry) is delivered again. `_add_message_deduplicated`
remembers each id for the 5 minutes, as SQS does.

All five were checked against one moto release (PATCHED_MOTO_VERSION); with another, moto's
own code runs, and a warning says so.
"""

import copy
import sys
import threading

import moto
import moto.dynamodb.models as dynamodb_models
import moto.dynamodbstreams.responses as streams_responses
import moto.server as server
import moto.sqs.models as sqs_models
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.models.utilities import dynamo_json_dump

# The moto release that the two replacements below were checked against.
PATCHED_MOTO_VERSION = "5.2.5"

_dynamodb = threading.Lock()
_run_simple = server.run_simple
_moto_transact_write_items = dynamodb_models.DynamoDBBackend.transact_write_items
_moto_update_item = dynamodb_models.DynamoDBBackend.update_item
_SERIALIZED_TARGETS = ("DynamoDB_", "DynamoDBStreams_")


def _serialize_dynamodb(app):
    def application(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith(_SERIALIZED_TARGETS):
            with _dynamodb:
                # Produce the whole response inside the lock.
                return list(app(environ, start_response))
        return app(environ, start_response)

    return application


def _run_simple_serialized(host, port, application, **options):
    return _run_simple(host, port, _serialize_dynamodb(application), **options)


class _TablesNotCopied:
    """The `copy` module as moto's DynamoDB backend sees it during one transaction: deep
    copies of anything but a Table are real, a Table's "copy" is the table itself (so moto's
    own rollback puts each table back onto itself and changes nothing)."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value, memo=None):
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


_TABLES_NOT_COPIED = _TablesNotCopied()


def _item_key(table, operation):
    """The (hash, range) key an operation of a transaction names, as moto stores it."""
    attributes = operation["Item"] if "Item" in operation else operation["Key"]
    hash_key = DynamoType(attributes[table.hash_key_attr])
    if table.range_key_attr is None:
        return hash_key, None
    return hash_key, DynamoType(attributes[table.range_key_attr])


def _saved_items(backend, transact_items):
    """Copies of the items the transaction names (None for an absent one), and the stream
    length of each table, as they are before it runs; None if an operation's table or key
    cannot be read (moto then refuses the transaction, or its odd key handling writes
    elsewhere: its own table-copy rollback handles those)."""
    items, streams = [], []
    try:
        for entry in transact_items:
            for operation in entry.values():
                table = backend.tables.get(operation.get("TableName"))
                if table is None:
                    continue
                hash_key, range_key = _item_key(table, operation)
                item = table.get_item(hash_key, range_key)
                items.append((table, hash_key, range_key, copy.deepcopy(item)))
                if table.stream_shard is not None:
                    streams.append((table.stream_shard, len(table.stream_shard.items)))
    except Exception:
        return None
    return items, streams


def _restore(saved):
    items, streams = saved
    for table, hash_key, range_key, item in reversed(items):
        if range_key is None:
            if item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item
            continue
        rows = table.items[hash_key]
        if item is None:
            rows.pop(range_key, None)
            if not rows:
                del table.items[hash_key]
        else:
            rows[range_key] = item
    # A cancelled transaction leaves no stream records.
    for shard, length in streams:
        del shard.items[length:]


def _transact_write_items(self, transact_items):
    saved = _saved_items(self, transact_items)
    if saved is None:
        return _moto_transact_write_items(self, transact_items)
    dynamodb_models.copy = _TABLES_NOT_COPIED
    try:
        return _moto_transact_write_items(self, transact_items)
    except BaseException:
        _restore(saved)
        raise
    finally:
        dynamodb_models.copy = copy


def _update_item(self, table_name, key, *args, **kwargs):
    """moto's UpdateItem, leaving one stream record for an item it creates."""
    table = self.tables.get(table_name)
    shard = table.stream_shard if table is not None else None
    length = len(shard.items) if shard is not None else 0
    item = _moto_update_item(self, table_name, key, *args, **kwargs)
    added = shard.items[length:] if shard is not None else []
    if len(added) == 2 and all(r.record["eventName"] == "INSERT" for r in added):
        # The bare key's INSERT goes; the whole item's takes its sequence number, so that
        # sequence numbers stay the shard's positions (moto's GetRecords relies on it).
        del shard.items[length]
        added[1].record["dynamodb"]["SequenceNumber"] = str(
            shard.starting_sequence_number + length
        )
    return item


def _get_records_as_json(handler):
    """moto 5.2.5's GetRecords, its answer encoded as DynamoDB JSON at once."""
    limit = handler._get_param("Limit")
    records = handler.backend.get_records(
        handler._get_param("ShardIterator"), 1000 if limit is None else limit
    )
    return dynamo_json_dump(records)


def _count_messages_at_one_instant():
    """moto 5.2.5's Queue.messages and message counts, with one clock reading each."""

    def counted(select):
        return property(lambda queue: select(queue, sqs_models.unix_time_millis()))

    sqs_models.Queue.messages = counted(
        lambda queue, now: [
            m for m in queue._messages if now > m.visible_at and now >= m.delayed_until
        ]
    )
    sqs_models.Queue.approximate_number_of_messages_delayed = counted(
        lambda queue, now: sum(1 for m in queue._messages if now < m.delayed_until)
    )
    sqs_models.Queue.approximate_number_of_messages_not_visible = counted(
        lambda queue, now: sum(1 for m in queue._messages if now <= m.visible_at)
    )


_moto_add_message = sqs_models.Queue.add_message
# Ids older than the window are forgotten once a queue remembers this many.
_DEDUPLICATION_IDS_KEPT = 10_000


def _add_message_deduplicated(queue, message):
    """moto 5.2.5's Queue.add_message, dropping a FIFO message whose deduplication id was
    sent in the last 5 minutes even if that message is gone."""
    deduplication_id = message.deduplication_id
    if queue.fifo_queue and deduplication_id is not None:
        window_ms = sqs_models.DEDUPLICATION_TIME_IN_SECONDS * 1000
        sent = message.sent_timestamp
        seen = queue.__dict__.setdefault("_deduplication_ids", {})
        first = seen.get(deduplication_id)
        if first is not None and sent - first < window_ms:
            return None
        if len(seen) >= _DEDUPLICATION_IDS_KEPT:
            for old in [i for i, at in seen.items() if sent - at >= window_ms]:
                del seen[old]
        seen[deduplication_id] = sent
    return _moto_add_message(queue, message)


server.run_simple = _run_simple_serialized
if moto.__version__ == PATCHED_MOTO_VERSION:
    dynamodb_models.DynamoDBBackend.transact_write_items = _transact_write_items
    dynamodb_models.DynamoDBBackend.update_item = _update_item
    sqs_models.Queue.add_message = _add_message_deduplicated
    streams_responses.DynamoDBStreamsHandler.get_records = _get_records_as_json
    _count_messages_at_one_instant()
    print(
        f"moto_server.py: DynamoDB transactions roll back item by item, queue counts read "
        f"the clock once, an UpdateItem creating an item leaves one stream record, stream "
        f"records are read as JSON at once, FIFO deduplication ids are kept 5 minutes "
        f"(moto {moto.__version__})",
        file=sys.stderr,
    )
else:
    print(
        f"moto_server.py: moto {moto.__version__} is not {PATCHED_MOTO_VERSION}: "
        "keeping moto's own TransactWriteItems rollback, UpdateItem stream records, "
        "GetRecords answers, queue counts and FIFO deduplication (transactions slow down as "
        "tables grow, sends as queues fill, an UpdateItem creating an item also records its "
        "bare key, stream reads are slow, a deleted message's duplicate is delivered)",
        file=sys.stderr,
    )

if __name__ == "__main__":
    server.main()
