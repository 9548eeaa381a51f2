"""Virtual-hosted-style addressing: the bucket a Host names (server.domains), resolved once when the request is
read; path style stays for every other Host; a redirected virtual-hosted read is sent on path style, its token
over the bucket the Host named."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from cache.s3.errors import S3Error
from conf.settings import ConfigError, load_settings
from proxy.http import Request, virtual_bucket
from proxy.operations import resolve
from proxy.redirect import _temporary_redirect, check_token, take_token
from tests.unit.proxy.test_redirect import TARGET, context

DOMAINS = ("s3cache.example.com", "localhost")


@pytest.mark.parametrize(("host", "bucket"), [
    ("data.s3cache.example.com", "data"),
    ("data.s3cache.example.com:8080", "data"),
    ("Data.S3Cache.Example.COM", "data"),  # a host name has no case
    ("data.s3cache.example.com.", "data"),  # nor a final dot
    ("my.dotted.bucket.localhost:29998", "my.dotted.bucket"),
    ("s3cache.example.com", None),  # exactly a domain: path style
    ("localhost:29998", None),
    ("127.0.0.1:29998", None),
    ("[::1]:29998", None),
    ("data.example.com", None),  # not one of the domains
    ("datas3cache.example.com", None),  # ends like one, but is no sub-domain of it
    (".localhost", None),
    (None, None),  # HTTP/1.0, no Host
])
def test_the_bucket_a_host_names(host: str | None, bucket: str | None) -> None:
    assert virtual_bucket(host, DOMAINS) == bucket


def request(path: str, host: str, domains: tuple[str, ...] = DOMAINS, method: str = "GET",
            query: bytes = b"") -> Request:
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": query,
             "headers": [(b"host", host.encode())]}

    async def receive() -> dict[str, object]:
        raise AssertionError("nothing reads a body here")

    return Request(scope, receive, domains)


def test_a_virtual_hosted_request_takes_its_whole_path_as_the_key() -> None:
    r = request("/dir/file.txt", "data.localhost:8080")
    assert (r.bucket, r.key, r.level) == ("data", "dir/file.txt", "object")
    r = request("//leading/slash", "data.localhost")
    assert (r.bucket, r.key) == ("data", "/leading/slash")
    r = request("/", "data.localhost", query=b"list-type=2")
    assert (r.bucket, r.key, r.level) == ("data", "", "bucket")
    assert resolve(r).name == "ListObjectsV2"
    assert resolve(request("/k", "data.localhost", method="PUT")).name == "PutObject"


def test_other_hosts_stay_path_style() -> None:
    for host in ("localhost:8080", "127.0.0.1:8080", "data.elsewhere.org"):
        r = request("/data/dir/file.txt", host)
        assert (r.bucket, r.key) == ("data", "dir/file.txt")
    assert request("/", "localhost").level == "service"
    r = request("/data/k", "data.localhost", domains=())  # no domains set: path style whatever the Host
    assert (r.bucket, r.key) == ("data", "k")
    with pytest.raises(S3Error) as exc:
        request("//k", "localhost")
    assert exc.value.code == "InvalidBucketName"


def test_a_redirected_virtual_hosted_read_goes_on_path_style() -> None:
    ctx = context()
    r = request("/dir/k", "data.localhost:8080")
    r.user = "alice"
    response = _temporary_redirect(ctx, r, resolve(r), TARGET)
    location = urlsplit(response.headers["location"])
    assert (f"{location.scheme}://{location.netloc}", location.path) == (TARGET, "/data/dir/k")
    # where it lands, a worker's address: path style, and the token admits exactly that read
    landed = request(location.path, location.netloc, query=location.query.encode())
    token = take_token(landed)
    assert token is not None
    check_token(ctx, landed, resolve(landed), token)
    assert (landed.bucket, landed.key, landed.user) == ("data", "dir/k", "alice")


def test_domains_from_every_layer() -> None:
    settings = load_settings(env={"S3CACHE_SERVER_DOMAINS": "s3cache.example.com, LocalHost."})
    assert settings.server.domains == ["s3cache.example.com", "localhost"]
    assert load_settings().server.domains == []
    with pytest.raises(ConfigError, match=r"server\.domains"):
        load_settings(overrides={"server": {"domains": 5}})
