"""Aware datetimes to and from protobuf Timestamps, for every service's messages."""

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    set_timestamp(ts, value)
    return ts


def set_timestamp(field: Timestamp, value: datetime | None) -> None:
    """Sets a message's Timestamp field in place (a field assigned whole is copied);
    None leaves it unset."""
    if value is not None:
        since = value - EPOCH
        field.seconds = since.days * 86400 + since.seconds
        field.nanos = since.microseconds * 1000


def from_timestamp(ts: Timestamp) -> datetime:
    return EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)
