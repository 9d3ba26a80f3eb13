"""Identity-keyed cache keys for large immutable objects (GpuModel, GiProfile, Spec)."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class ByIdentity(Generic[T]):
    """Hashes and compares an object by identity: a cheap cache key for large frozen objects.

    Caches that hold the wrapper hold the object too, so an id is never reused for another object while cached.
    """

    __slots__ = ("obj",)

    def __init__(self, obj: T) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ByIdentity) and other.obj is self.obj
