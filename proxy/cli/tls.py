"""The HTTPS listener: its socket and the TLS context its certificate lives in, reloaded on SIGHUP.

A reload loads the new certificate and key into the context the listener already uses: connections made after
it get the new certificate, connections already open (a long download, say) keep the session they began with.
A pair that does not load (a missing file, a key not matching) leaves the old one serving, with one error line.
"""

from __future__ import annotations

import logging
import socket
import ssl
from pathlib import Path

log = logging.getLogger("s3cache")


def _context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


class TlsListener:
    def __init__(self, sock: socket.socket, cert_file: Path, key_file: Path) -> None:
        self.sock = sock
        self.cert_file, self.key_file = cert_file, key_file
        self.context = _context(cert_file, key_file)

    def reload(self) -> None:
        try:
            _context(self.cert_file, self.key_file)  # a pair that does not load must not half-replace the live one
            self.context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as error:
            log.error("TLS certificate not reloaded, the previous one still serves: %s", error)
            return
        log.info("TLS certificate reloaded from %s", self.cert_file)
