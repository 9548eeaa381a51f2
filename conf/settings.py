"""The one typed settings model of s3cache and how it is loaded.

Precedence, lowest first: built-in defaults, a TOML file (``--config``), ``S3CACHE_<SECTION>_<FIELD>``
environment variables, then explicit overrides (CLI flags). Every numeric field carries its unit in
its name; byte sizes also accept ``K``/``M``/``G``/``T`` suffixes (powers of 1024, ``KiB`` spelling too).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    SerializationInfo,
    ValidationError,
    model_validator,
)

ENV_PREFIX = "S3CACHE_"

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


class ConfigError(ValueError):
    """Configuration that cannot be used; the message is one line naming the key."""


def parse_size(value: object) -> object:
    """``"64M"``, ``"4 MiB"``, ``"1g"`` or an int -> bytes; anything else is left for validation."""
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if not match:
            raise ValueError(f"not a size: {value!r} (use bytes or a K/M/G/T suffix)")
        number, unit = match.groups()
        return int(float(number) * _SIZE_UNITS[unit.lower()])
    return value


Bytes = Annotated[int, BeforeValidator(parse_size), Field(ge=0)]

REVEAL_SECRETS = "reveal_secrets"  # model_dump(mode="json", context={REVEAL_SECRETS: True}): secrets in clear


def _secret_json(value: SecretStr, info: SerializationInfo) -> str:
    """A secret in JSON is masked, unless the dump is the settings handed to `serve --processes N` children."""
    context = info.context
    return value.get_secret_value() if isinstance(context, dict) and context.get(REVEAL_SECRETS) else str(value)


# A secret setting: its repr, str and JSON show "**********"; the value is .get_secret_value().
Secret = Annotated[SecretStr, PlainSerializer(_secret_json, when_used="json")]


def _secrets_json(value: dict[str, str], info: SerializationInfo) -> dict[str, str]:
    context = info.context
    reveal = isinstance(context, dict) and context.get(REVEAL_SECRETS)
    return dict(value) if reveal else {name: "**********" for name in value}


# Name -> secret (auth.users): left out of repr, masked in any dump (unless REVEAL_SECRETS).
Secrets = Annotated[dict[str, str], PlainSerializer(_secrets_json, when_used="always")]


def _domain_list(value: object) -> object:
    """The environment gives a string: domains separated by commas. Hosts compare without case or final dot."""
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, list):
        return [item.strip().lower().rstrip(".") for item in items if isinstance(item, str) and item.strip()]
    return items


Domains = Annotated[list[str], BeforeValidator(_domain_list)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(29998, ge=0, le=65535, description="TCP port (Alluxio's S3 port); 0 picks a free one.")
    processes: int = Field(1, ge=1, le=64, description="uvicorn worker processes; one per core is the sweet spot.")
    region: str = Field("us-east-1", description="Region reported by GetBucketLocation and x-amz-bucket-region.")
    domains: Domains = Field(default_factory=list, description="Domains served virtual-hosted-style: a Host of "
                               "<bucket>.<domain> names the bucket (bucket.s3cache.example.com/key); a Host that is a "
                               "domain itself, or any other, is path style. Empty: path style only. Comma-separated "
                               "in the environment.")
    keepalive_timeout_s: float = Field(75.0, gt=0, description="Idle keep-alive timeout of client connections.")
    max_header_bytes: Bytes = Field(8192, ge=1024, description="Largest request header section (the sum of each "
                                    "header's name and value): S3's 8 KiB; larger is 400 RequestHeaderSectionTooLarge.")
    max_headers: int = Field(100, ge=16, description="Most request headers (Apache's LimitRequestFields); more is "
                             "400 RequestHeaderSectionTooLarge.")
    header_timeout_s: float = Field(20.0, gt=0, description="A request's headers must all arrive within this of its "
                                    "first byte, or the connection is closed.")
    keepalive_idle_s: float = Field(20.0, gt=0, description="A new connection that sends no request within this is "
                                    "closed (keepalive_timeout_s is the idle time allowed after a request).")
    max_connections: int = Field(1000, ge=1, description="Open client connections (and requests in flight) per "
                                 "process; requests beyond it are answered 503 (uvicorn's limit_concurrency).")
    drain_s: float = Field(30.0, ge=0, description="On SIGTERM, how long requests in flight (a long download, say) "
                           "may take to finish before the worker exits anyway.")
    drain_delay_s: float = Field(0.0, ge=0, description="On SIGTERM, how long /_s3cache/readyz answers 503 while "
                                 "the worker still serves, so a load balancer stops sending it requests first "
                                 "(Kubernetes' preStop sleep does the same).")
    max_inflight_requests: int = Field(512, ge=0, description="S3 requests answered at once per process; one "
                                       "more is refused at once with 503 SlowDown and Retry-After: 1, which SDKs "
                                       "retry (0: no limit).")
    tls_port: int = Field(29996, ge=0, le=65535, description="HTTPS port (Alluxio's), served beside the HTTP "
                          "port when tls_cert_file and tls_key_file are set; 0 picks a free one.")
    tls_cert_file: Path | None = Field(None, description="PEM certificate (chain) of the HTTPS listener; read "
                                       "again on SIGHUP, connections already open keep the one they began with.")
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file; read again with it.")
    https_only: bool = Field(False, description="Refuse S3 and peer requests on the HTTP port (403 AccessDenied "
                             "naming the HTTPS port); its /_s3cache/healthz and readyz still answer. Needs TLS.")

    @model_validator(mode="after")
    def _tls_complete(self) -> ServerSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("server.tls_cert_file and server.tls_key_file go together")
        if self.https_only and self.tls_cert_file is None:
            raise ValueError("server.https_only needs server.tls_cert_file and server.tls_key_file")
        if self.processes > 1 and self.tls_cert_file is not None:
            raise ValueError("server.tls_cert_file: the HTTPS listener is served by one process (processes = 1); "
                             "run one worker per core, or terminate TLS in front of them")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None


class StorageSettings(_Section):
    data_dir: Path = Field(Path("data"), description="Directory under storage: each sub-directory is a bucket.")
    fsync: bool = Field(False, description="fsync objects before they are renamed into place (durability vs. speed).")
    write_lock_wait_s: float = Field(10.0, gt=0, description="How long a write waits for the key while another write "
                                     "of it holds it (a conditional write holds it from its judgement to its end, "
                                     "in a cluster through Redis); past it, 409 ConditionalRequestConflict.")


class OriginSettings(_Section):
    endpoint: str | None = Field(None, description="S3 origin URL (http://host:port); unset = no origin, the "
                                 "directory under storage serves every bucket.")
    region: str = Field("us-east-1", description="Region the origin's requests are signed for.")
    access_key_id: str | None = Field(None, description="Origin credentials; unset = the AWS chain (awscrt's): "
                                      "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, the shared "
                                      "files (keys, credential_process, SSO, role_arn), a web identity token, the "
                                      "container endpoint, the instance metadata service; refreshed before expiry.")
    secret_access_key: Secret | None = Field(None, description="Secret for access_key_id.")
    profile: str | None = Field(None, description="Take the origin credentials from this profile of the shared "
                                "config and credentials files alone (default: the whole chain, whose profile is "
                                "AWS_PROFILE or 'default').")
    credentials_refresh_before_s: float = Field(300.0, gt=0, description="Temporary origin credentials are fetched "
                                                "again this long before they expire (after half their remaining "
                                                "life, if that is sooner), in the background.")
    addressing_style: Literal["path", "virtual"] = Field("path", description="path: host/bucket/key; virtual: "
                                                         "bucket.host/key.")
    connect_timeout_s: float = Field(5.0, gt=0, description="Connect timeout of origin requests.")
    read_timeout_s: float = Field(60.0, gt=0, description="Read timeout of origin requests.")
    retries: int = Field(3, ge=0, le=10, description="Retries of idempotent origin requests (backoff 0.1 s doubling, "
                         "with jitter); a body that breaks off is resumed from the byte reached, each resumption "
                         "one retry.")
    max_connections: int = Field(64, ge=1, description="Pooled connections to the origin.")
    ca_bundle: Path | None = Field(None, description="PEM file of the certificate authorities trusted for an https "
                                   "origin; unset = AWS_CA_BUNDLE, else the system's store.")
    http_client: Literal["aiohttp", "httpx"] = Field("aiohttp", description="HTTP library of the origin client: "
                                                     "aiohttp (default: a fraction of httpx's CPU per request, see "
                                                     "benchmarks/cold_warm.py) or httpx.")


class MountSettings(_Section):
    bucket: str = Field(description="Bucket name clients use.")
    uri: str = Field(description="s3://origin-bucket[/prefix] (through [origin]) or file:///directory.")
    mode: Literal["read-write", "read-only", "write-only"] = Field("read-write", description="Access mode.")
    users: list[str] | None = Field(None, description="Users allowed (access keys); unset = everyone.")


class CacheSettings(_Section):
    cache_dir: Path = Field(Path(".s3cache-blocks"), description="Local directory for cached blocks.")
    capacity_bytes: Bytes = Field(10 << 30, description="Upper bound of cached bytes on this worker; 0 = gateway.")
    block_size_bytes: Bytes = Field(4 << 20, ge=64 << 10, le=64 << 20, description="Size of a cache block (64K-64M).")
    eviction: Literal["lru", "s3fifo"] = Field("s3fifo", description="Eviction policy of the block store: "
                                               "s3fifo (default: beat LRU on every skewed trace measured) or lru.")
    metadata_ttl_s: float = Field(60.0, ge=0, description="How long object metadata from the origin is trusted: "
                                  "changes made directly at the origin show after this.")
    list_ttl_s: float = Field(60.0, ge=0, description="How long a listing page from the origin is kept: writes through "
                              "s3cache drop a bucket's pages at once on every worker, changes made directly at the "
                              "origin show after this (0 = off: every listing asks the origin).")
    readahead_blocks: int = Field(2, ge=0, le=64, description="Blocks fetched ahead of a sequential reader at first "
                                  "(0: no read-ahead).")
    peer_copy_after_reads: int = Field(0, ge=0, description="Keep a local copy of a block once it has been read "
                                       "from peers this many times (0: never). Each copy takes a block of this "
                                       "worker's capacity: a block hot everywhere may be held once per worker.")
    readahead_max_blocks: int = Field(16, ge=0, le=1024, description="The widest read-ahead a sequential reader earns: "
                                      "the window doubles with every block it reads, up to this.")
    max_fills: int = Field(16, ge=1, le=1024, description="Blocks fetched from the origin at once (bounds memory: "
                           "max_fills x block size).")
    max_waiting_fills: int = Field(256, ge=0, description="Origin fills queued for one of the max_fills slots; "
                                   "while more wait, S3 requests are refused with 503 SlowDown and Retry-After: 1 "
                                   "instead of queueing without bound (0: no limit).")


_REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://", "redis+cluster://")


def _redis_url(value: str | None) -> str | None:
    """cluster.redis_url names one of the kinds of Redis cache/cluster/connect.py reads (which checks the rest of the
    URL when the worker starts: a ConfigError too)."""
    if value and not value.lower().startswith(_REDIS_SCHEMES):
        shown = value.split("://", 1)[0] + "://..." if "://" in value else value  # no password in the error
        raise ValueError(f"{shown!r} is not a Redis URL: expected {', '.join(_REDIS_SCHEMES)}")
    return value


class ClusterSettings(_Section):
    redis_url: Annotated[str | None, AfterValidator(_redis_url)] = Field(
        None, description="Redis for the shared placement map, unset = a standalone worker: "
        "redis://[[user]:password@]host[:port][/db] (rediss:// for TLS, unix:///path.sock?db=N), "
        "redis+sentinel://[password@]host:port[,host:port...]/service_name[/db] (the master those Sentinels name), "
        "or redis+cluster://[password@]host:port[,host:port...] (Redis Cluster seed nodes).")
    advertise_url: str | None = Field(None, description="URL other workers and redirected clients reach this "
                                      "worker at; default http://<host>:<port>, https://<host>:<tls_port> with TLS.")
    worker_id: str | None = Field(None, description="Stable id of this worker in the cluster; default the "
                                  "advertised URL (a restarted worker keeps its blocks).")
    secret: Secret | None = Field(None, description="Shared secret of the cluster: peers and redirect tokens are "
                                  "authenticated with it. Required with redis_url (or secret_file).")
    secret_file: Path | None = Field(None, description="File holding the cluster secret (surrounding whitespace "
                                     "dropped), read at start: keeps it out of the command line and the config.")
    previous_secret: Secret | None = Field(None, description="The secret being rotated out: peer requests and "
                                           "redirect tokens signed with it are still accepted, new ones are signed "
                                           "with secret. Drop it once every worker has the new secret.")
    previous_secret_file: Path | None = Field(None, description="File holding previous_secret (as secret_file).")
    peer_request_ttl_s: float = Field(30.0, gt=0, le=3600, description="Lifetime of the signature on a peer "
                                      "request: a captured one is refused after this (allow for clock skew).")
    data_path: Literal["proxy", "redirect", "auto"] = Field(
        "proxy", description="How a read of blocks held elsewhere is served: proxy (stream them from the "
        "holder), redirect (307 to the holder), auto (redirect clients that follow 307, proxy the rest).")
    heartbeat_ttl_s: float = Field(3.0, gt=0, description="A worker that has not heartbeated for this long is "
                                   "gone; heartbeats go every third of it.")
    redirect_token_ttl_s: float = Field(60.0, gt=0, description="Lifetime of the signed token in a redirect.")
    peer_timeout_s: float = Field(10.0, gt=0, description="A block read from a peer not done within this (its "
                                  "answer and its bytes, whether the peer stopped answering or answers slowly) is "
                                  "given up: the rest comes from the next holder, the owner or the origin.")
    peer_ca_file: Path | None = Field(None, description="CA bundle (PEM) the HTTPS certificates of peers are "
                                      "checked against; default the system's. Peers are reached at their "
                                      "advertised URL, https when they serve TLS.")
    invalidation_timeout_s: float = Field(2.0, gt=0, description="How long a write waits for every other worker "
                                          "to drop the key's metadata before it is answered (read-after-write on "
                                          "every worker); one that has not by then is logged, and may serve the "
                                          "old version until cache.metadata_ttl_s.")
    namespace: str = Field("s3cache", description="Prefix of every Redis key: clusters may share a Redis.")


class AuthSettings(_Section):
    mode: Literal["simple", "sigv4", "oidc"] = Field(
        "simple", description="simple: the user is the access key a request names, unchecked (Alluxio's SIMPLE); "
        "sigv4: SigV4 signatures (header or presigned) are verified against [auth.users]; oidc: a JWT (Bearer, or "
        "the SigV4 session token) verified against oidc_jwks names the user, requests without one are judged as "
        "in sigv4.")
    users: Secrets = Field(default_factory=dict, repr=False, description="Access key -> secret key, for "
                                  "sigv4. Pachyderm's rule (access key = secret key = the job token) is "
                                  "{token = token}. Left out of the settings' repr.")
    anonymous: bool = Field(False, description="sigv4 mode: let unsigned requests in as the anonymous user.")
    max_skew_s: float = Field(900.0, gt=0, description="Largest clock difference accepted in a signed request.")
    sigv2: bool = Field(True, description="Accept SigV2 (AWS <key>:<signature> headers, AWSAccessKeyId presigned "
                        "URLs), verified like SigV4 in sigv4 and oidc modes; false answers them 400 InvalidRequest "
                        "(use AWS4-HMAC-SHA256), in every mode.")
    oidc_jwks: str | None = Field(None, description="oidc mode: the identity provider's signing keys, a JWKS file "
                                  "or an http(s) URL (its jwks_uri). Required with mode oidc.")
    oidc_issuer: str | None = Field(None, description="oidc mode: the iss every token must carry. Required.")
    oidc_audience: str | None = Field(None, description="oidc mode: the aud every token must name. Required.")
    oidc_leeway_s: float = Field(30.0, ge=0, le=3600, description="Clock leeway for a token's exp, nbf and iat.")
    oidc_user_claim: str = Field("sub", min_length=1, description="The claim naming the user (a dotted path "
                                 "reaches into nested claims).")
    oidc_groups_claim: str = Field("groups", min_length=1, description="The claim listing the user's groups.")
    oidc_jwks_refresh_s: float = Field(300.0, gt=0, description="The JWKS is read again this long after the last "
                                       "good read (a URL in the background).")
    oidc_jwks_min_refresh_s: float = Field(10.0, gt=0, description="A token with an unknown kid makes the JWKS be "
                                           "read again at once, at most this often.")
    oidc_jwks_timeout_s: float = Field(5.0, gt=0, description="Timeout of fetching a JWKS URL.")
    policy_file: Path | None = Field(None, description="Access policy (TOML, or JSON if named *.json): which "
                                     "users and groups may do which actions on which bucket and key prefix "
                                     "(conf/policy.example.toml). Once set, whatever no rule allows is refused "
                                     "with 403 AccessDenied; unset, everything the mounts allow is allowed.")

    @model_validator(mode="after")
    def _oidc_complete(self) -> AuthSettings:
        missing = [name for name in ("oidc_jwks", "oidc_issuer", "oidc_audience") if not getattr(self, name)]
        if self.mode == "oidc" and missing:
            raise ValueError(f"mode oidc needs {', '.join('auth.' + name for name in missing)}")
        return self


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    access_log: bool = Field(True, description="One line per request on the s3cache.access logger: user, "
                             "operation, bucket, key, status, bytes, latency, the request id the client saw "
                             "(x-amz-request-id), cache hit or miss and what served the blocks (local, peer, "
                             "origin, mixed; - when no block was read).")
    format: Literal["text", "json"] = Field("text", description="text: one line per record, fields separated by "
                                            "spaces; json: one JSON object per line (JSON lines) for every logger, "
                                            "the access log's fields as keys of their own.")


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    origin: OriginSettings = OriginSettings()
    cache: CacheSettings = CacheSettings()
    cluster: ClusterSettings = ClusterSettings()
    auth: AuthSettings = AuthSettings()
    log: LogSettings = LogSettings()
    mounts: list[MountSettings] = Field(default_factory=list, description="Buckets mapped to locations: "
                                        "[[mounts]] tables in TOML, --mount NAME=URI[,ro] on the command line.")


SECTIONS: dict[str, type[_Section]] = {
    name: info.annotation  # type: ignore[misc]
    for name, info in Settings.model_fields.items()
    if name != "mounts"
}


def env_name(section: str, field: str) -> str:
    return f"{ENV_PREFIX}{section}_{field}".upper()


def _from_env(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for section, model in SECTIONS.items():
        for field in model.model_fields:
            value = env.get(env_name(section, field))
            if value is not None:
                found.setdefault(section, {})[field] = value
    return found


def _merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        for section, values in layer.items():
            if section == "mounts":  # a list: a later layer replaces it whole
                merged[section] = values
                continue
            if not isinstance(values, Mapping):
                raise ConfigError(f"{section}: expected a [{section}] table, got {type(values).__name__}")
            merged.setdefault(section, {}).update(values)
    return merged


def _origin(loc: tuple[Any, ...], env: Mapping[str, str], overrides: Mapping[str, Any]) -> str:
    if len(loc) < 2 or loc[0] == "mounts":
        return ""
    section, field = str(loc[0]), str(loc[1])
    if field in overrides.get(section, {}):
        return " (from the command line)"
    if env_name(section, field) in env:
        return f" (from {env_name(section, field)})"
    return ""


def load_settings(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings; raises ConfigError with one line naming the offending key."""
    env = env if env is not None else {}
    overrides = {s: (f if s == "mounts" else {k: v for k, v in f.items() if v is not None})
                 for s, f in (overrides or {}).items()}
    file_layer: dict[str, Any] = {}
    if config_file is not None:
        try:
            file_layer = tomllib.loads(Path(config_file).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {config_file}: no such file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file}: {exc}") from None
    try:
        settings = Settings.model_validate(_merge(file_layer, _from_env(env), overrides))
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        raise ConfigError(f"{key}: {message}{_origin(error['loc'], env, overrides)}") from None
    return _with_secret_file(settings)


def _with_secret_file(settings: Settings) -> Settings:
    """cluster.secret read from cluster.secret_file (and previous_secret from previous_secret_file), so the secret
    need not be on a command line (where every user of the host reads it in /proc/PID/cmdline) nor in a config
    file."""
    cluster = settings.cluster
    update: dict[str, SecretStr] = {}
    for field in ("secret", "previous_secret"):
        path: Path | None = getattr(cluster, f"{field}_file")
        if path is None:
            continue
        if getattr(cluster, field) is not None:
            raise ConfigError(f"cluster.{field}_file: give the cluster {field.replace('_', ' ')} or a file holding "
                              "it, not both")
        try:
            secret = path.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cluster.{field}_file: cannot read {path}: {exc}") from None
        if not secret:
            raise ConfigError(f"cluster.{field}_file: {path} is empty")
        update[field] = SecretStr(secret)
    if not update:
        return settings
    return settings.model_copy(update={"cluster": cluster.model_copy(update=update)})


def describe() -> list[tuple[str, str, object, str]]:
    """(section, field, default, description) for every setting: the source of docs and examples."""
    rows = []
    for section, model in SECTIONS.items():
        for field, info in model.model_fields.items():
            rows.append((section, field, info.get_default(call_default_factory=True), info.description or ""))
    return rows
