"""What the Feetech and Dynamixel codecs share: the decoded packet and the incremental decoder loop."""

from __future__ import annotations

from dataclasses import dataclass

# A decoder never holds more than this many unparsed bytes: a flood of garbage is dropped, not stored.
MAX_BUFFER = 4096


@dataclass(frozen=True, slots=True)
class Packet:
    """One decoded frame.

    ``code`` is the instruction (host -> servo) or, for a status packet, the error byte.
    ``params`` are the parameter bytes (Dynamixel: with byte stuffing already removed).
    ``trailing`` is how many bytes were still buffered behind this frame when it was decoded.
    """

    id: int
    code: int
    params: bytes
    trailing: int = 0


class StreamDecoder:
    """Base of the incremental decoders: buffer bytes, extract frames, drop what cannot be a frame.

    Subclasses implement ``_try_decode`` which returns a ``Packet`` (consumed from the buffer),
    ``None`` (need more bytes) or an ``int`` n > 0 (drop n leading bytes and search again).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.discarded_bytes = 0
        self.checksum_errors = 0
        self.packets = 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[Packet]:
        """Add bytes; return every complete frame now available. Never raises on any input."""
        self._buf += data
        out: list[Packet] = []
        while True:
            result = self._try_decode()
            if result is None:
                break
            if isinstance(result, Packet):
                out.append(result)
                self.packets += 1
                continue
            del self._buf[:result]
            self.discarded_bytes += result
        if len(self._buf) > MAX_BUFFER:
            drop = len(self._buf) - MAX_BUFFER
            del self._buf[:drop]
            self.discarded_bytes += drop
        return out

    def reset(self) -> None:
        """Forget buffered bytes (a bus does this before each transaction)."""
        self.discarded_bytes += len(self._buf)
        self._buf.clear()

    @property
    def pending(self) -> int:
        return len(self._buf)

    def _try_decode(self) -> Packet | None | int:  # pragma: no cover - abstract
        raise NotImplementedError
