"""moto's S3 server, with ranged GETs that read only their range (as S3's cost the bytes they return).

Two changes to how moto costs, none to what it answers:

- moto answers a ranged GET by reading the whole object and slicing it (``FakeKey.value``, then
``S3Response._handle_range_header``): one 4 MiB block of a 1 GiB object costs a 1 GiB read, so a cache that
fills blocks (and the transfer manager's 8 MiB parts) would be judged by moto's cost rather than the
origin model's. Here, while a GET with a Range header is answered, a key's value is a window onto its
buffer that reads only what the range slices out; every other request is moto's own.
- moto's dispatcher lists its own package directory (~180 stat calls) on every request to find the service
  (``moto.backends.list_of_moto_modules``): ~40 % of a small GET's CPU, making the origin's own CPU the
  bottleneck of every small-object row on 2 cores. The list is taken once.

    python -m benchmarks.suite.moto_server -H 127.0.0.1 -p PORT   (what ``RangedMoto`` runs)
"""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Any

from rig.origin import MotoOrigin
from rig.processes import ROOT, free_port, wait_http


class _Window:
    """A key's bytes, read from its buffer only where sliced."""

    def __init__(self, key: Any) -> None:
        self.key = key

    def __len__(self) -> int:
        return int(self.key.size)

    def __getitem__(self, part: slice) -> bytes:
        start, stop, _ = part.indices(len(self))
        with self.key.lock:
            self.key._value_buffer.seek(start)
            return bytes(self.key._value_buffer.read(max(0, stop - start)))

    def __bytes__(self) -> bytes:
        return self[0:len(self)]


def patch_moto() -> None:
    from moto import backends
    from moto.s3.models import FakeKey
    from moto.s3.responses import S3Response

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules

    ranged = threading.local()
    whole = FakeKey.value

    def value(self: Any) -> Any:
        return _Window(self) if getattr(ranged, "on", False) else whole.fget(self)

    FakeKey.value = property(value, whole.fset)  # type: ignore[assignment]
    key_response = S3Response.key_response

    def ranged_key_response(self: Any, request: Any, full_url: str, headers: Any) -> Any:
        ranged.on = request.method == "GET" and bool(request.headers.get("range"))
        try:
            status, response_headers, body = key_response(self, request, full_url, headers)
        finally:
            ranged.on = False
        return status, response_headers, bytes(body) if isinstance(body, _Window) else body

    S3Response.key_response = ranged_key_response  # type: ignore[method-assign]


@dataclass
class RangedMoto(MotoOrigin):
    """rig.origin.MotoOrigin, running this module's patched server instead of ``moto_server``."""

    def start(self) -> RangedMoto:
        self.port = self.port or free_port()
        log = open(self.workdir / f"moto-{self.port}.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.suite.moto_server", "-H", "127.0.0.1",
                                      "-p", str(self.port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_http(self.url + "/moto-api/", proc=self.proc, timeout_s=30)
        return self


if __name__ == "__main__":
    patch_moto()
    from moto.server import main

    sys.argv[0] = "moto_server"
    main()
