"""cache.storage.origin.transport: the pieces of the origin client that are decisions rather than library calls."""

from __future__ import annotations

import pytest

from cache.storage.origin.transport import AiohttpTransport, make_transport, tls_context


def test_proxy_from_the_environment_unless_no_proxy_exempts_the_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,.internal.example")
    transport = AiohttpTransport(1.0, 1.0, 1, tls_context(None))
    assert transport._proxy_for("https://s3.us-east-1.amazonaws.com/bkt/k") == "http://proxy.example:3128"
    assert transport._proxy_for("https://minio.internal.example:9000/bkt") is None
    assert transport._proxy_for("http://127.0.0.1:9000/bkt/k") is None
    assert transport._proxy_for("http://other.example/bkt") is None  # no HTTP_PROXY: plain http goes direct


def test_an_unknown_client_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown origin HTTP client 'curl'"):
        make_transport("curl", connect_timeout_s=1, read_timeout_s=1, max_connections=1)
