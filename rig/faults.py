"""What a faulty origin does wrong, drawn per request: the fault plan the counting proxy (rig/origin.py) follows.

On a fraction of the object GETs it relays, the proxy answers an S3 error instead (500 InternalError, 503
ServiceUnavailable, 503 SlowDown), resets the connection halfway through the body, or closes it halfway (fewer
bytes than its Content-Length). Draws come from one seeded generator, so a run's faults can be replayed; what
was injected is counted by kind.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field

ERRORS = ((500, "InternalError"), (503, "ServiceUnavailable"), (503, "SlowDown"))
KINDS = ("error", "reset", "short")


@dataclass
class Faults:
    error_rate: float = 0.0  # answered with one of errors, never reaching the origin
    reset_rate: float = 0.0  # the connection reset (RST) halfway through the body
    short_rate: float = 0.0  # the connection closed halfway through the body: fewer bytes than Content-Length
    errors: tuple[tuple[int, str], ...] = ERRORS
    seed: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    _random: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def draw(self) -> str | None:
        """The fault of one object GET (one of KINDS), or None: relayed as it is."""
        with self._lock:
            roll = self._random.random()
            for kind, rate in zip(KINDS, (self.error_rate, self.reset_rate, self.short_rate), strict=True):
                if roll < rate:
                    self.injected[kind] += 1
                    return kind
                roll -= rate
            return None

    def error(self) -> tuple[int, bytes]:
        """An error answer: its status and S3 error XML."""
        with self._lock:
            status, code = self._random.choice(self.errors)
            self.injected[code] += 1
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                f"<Message>injected by the test origin</Message><RequestId>fault</RequestId></Error>")
        return status, body.encode()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.injected)
