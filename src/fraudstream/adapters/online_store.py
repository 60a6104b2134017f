"""Online store adapter: the latest card and merchant feature states in Redis.

The streaming scorer publishes, after each micro-batch, the states it updated
(``publish_states``); the API reads one card's and one merchant's state per
request (``OnlineStore.get_async`` in its event loop, ``OnlineStore.get`` elsewhere;
one round trip) to compute exactly the features the stream would compute for a new
transaction.

Keys are ``<prefix>:<feature-set version>:card:<card_id>`` and
``...:merchant:<merchant_id>``; values are ``features.codec`` blobs. A new
feature-set version therefore starts from fresh keys, and a blob that still does
not decode under this version is treated as absent (the entity is scored as new)
rather than fed to a model under other rules. Every key expires 31 days after its
last write: a card idle for 30 days has the state of a new card anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar

import redis
import redis.asyncio

from fraudstream.features.card import CardState
from fraudstream.features.catalogue import FEATURE_SET_VERSION, STATE_TTL_S
from fraudstream.features.codec import (
    StateDecodeError,
    decode_card,
    decode_merchant,
    encode_card,
    encode_merchant,
)
from fraudstream.features.merchant import MerchantState
from fraudstream.settings import RedisSettings

if TYPE_CHECKING:
    from redis.client import Pipeline

S = TypeVar("S")
_CHUNK = 500  # commands per pipeline round trip when publishing


class OnlineStoreError(RuntimeError):
    """Redis cannot be reached or refused the request; names the address and the cause.

    ``transient``: Redis was unreachable (a retry may succeed), not a refusal such as
    bad credentials (``adapters.retry`` reads it)."""

    transient: bool = False


@dataclass(frozen=True)
class States:
    """A card's and a merchant's current states (None when the store has none)."""

    card: CardState | None
    merchant: MerchantState | None


class OnlineStore:
    """Typed access to the states in one Redis database; thread-safe (a connection pool).

    ``get_async`` uses a second, asyncio client, created on its first call in the
    calling event loop (one per API worker process) and closed by ``aclose``.
    """

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self.client = redis.Redis(**self._connection())
        self._async_client: redis.asyncio.Redis | None = None
        self._prefix = f"{settings.key_prefix}:{FEATURE_SET_VERSION}"

    def _connection(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "host": settings.host,
            "port": settings.port,
            "db": settings.db,
            "password": settings.password.get_secret_value() if settings.password else None,
            "socket_timeout": settings.timeout_s,
            "socket_connect_timeout": settings.timeout_s,
        }

    def card_key(self, card_id: str) -> str:
        return f"{self._prefix}:card:{card_id}"

    def merchant_key(self, merchant_id: str) -> str:
        return f"{self._prefix}:merchant:{merchant_id}"

    def ping(self) -> None:
        """Raise OnlineStoreError unless Redis answers."""
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise self._error(exc) from None

    def get(self, card_id: str, merchant_id: str) -> States:
        """Both states in one round trip (MGET). Undecodable blobs count as absent."""
        try:
            card_blob, merchant_blob = self.client.mget(
                [self.card_key(card_id), self.merchant_key(merchant_id)]
            )
        except redis.RedisError as exc:
            raise self._error(exc) from None
        return _states(card_blob, merchant_blob)

    async def get_async(self, card_id: str, merchant_id: str) -> States:
        """``get`` without blocking the event loop: the API's request path."""
        if self._async_client is None:
            self._async_client = redis.asyncio.Redis(**self._connection())
        try:
            card_blob, merchant_blob = await self._async_client.mget(
                [self.card_key(card_id), self.merchant_key(merchant_id)]
            )
        except redis.RedisError as exc:
            raise self._error(exc) from None
        return _states(card_blob, merchant_blob)

    def put(
        self,
        cards: Mapping[str, CardState | bytes],
        merchants: Mapping[str, MerchantState | bytes],
    ) -> int:
        """Write states (each with the TTL), pipelined in chunks; returns how many were written.

        Idempotent: writing the same states again leaves the store as it was. Last
        write wins per key, so callers publish states in event-time order per entity.
        """
        # States may arrive already encoded (the scorer moves them as codec bytes).
        blobs = [
            (self.card_key(k), v if isinstance(v, bytes) else encode_card(v))
            for k, v in cards.items()
        ]
        blobs += [
            (self.merchant_key(k), v if isinstance(v, bytes) else encode_merchant(v))
            for k, v in merchants.items()
        ]
        items = iter(blobs)
        try:
            while chunk := list(islice(items, _CHUNK)):
                pipe: Pipeline = self.client.pipeline(transaction=False)
                for key, blob in chunk:
                    # The SET command itself: redis-py's ``set`` wrapper inspects its
                    # arguments on every call (26.5 against 21 us of CPU per key here).
                    pipe.execute_command("SET", key, blob, "EX", int(STATE_TTL_S))  # type: ignore[no-untyped-call]
                pipe.execute()
        except redis.RedisError as exc:
            raise self._error(exc) from None
        return len(blobs)

    def delete(self, card_ids: Iterable[str] = (), merchant_ids: Iterable[str] = ()) -> None:
        keys = [self.card_key(c) for c in card_ids] + [self.merchant_key(m) for m in merchant_ids]
        if keys:
            self.client.delete(*keys)

    def close(self) -> None:
        self.client.close()

    async def aclose(self) -> None:
        """Close the asyncio client, in the event loop that used it."""
        if self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None

    def _error(self, exc: redis.RedisError) -> OnlineStoreError:
        where = f"{self.settings.host}:{self.settings.port}/{self.settings.db}"
        error = OnlineStoreError(
            f"online store (Redis at {where}): {exc}; is the platform up "
            "(`fraudstream platform status`) and FRAUDSTREAM_REDIS_PASSWORD right?"
        )
        error.transient = isinstance(
            exc, redis.ConnectionError | redis.TimeoutError
        ) and not isinstance(exc, redis.AuthenticationError)
        return error


def _states(card_blob: object, merchant_blob: object) -> States:
    return States(_decoded(card_blob, decode_card), _decoded(merchant_blob, decode_merchant))


def _decoded(blob: object, decode: Callable[[bytes], S]) -> S | None:
    if not isinstance(blob, bytes):
        return None
    try:
        return decode(blob)
    except StateDecodeError:
        return None


def publish_states(
    store: OnlineStore,
    cards: Mapping[str, CardState],
    merchants: Mapping[str, MerchantState],
) -> int:
    """Publish the states a micro-batch updated; the scorer calls it once per batch.

    Call it after the batch's scores are written, so the API never sees a state
    that includes a transaction whose score is not yet stored. Returns the number
    of states written.
    """
    return store.put(cards, merchants)
