"""OIDC: a JWT from an identity provider names the caller, verified against the provider's signing keys (a JWKS).

The token arrives as ``Authorization: Bearer <jwt>`` or as the SigV4 session token (``X-Amz-Security-Token``,
header or presigned query), so boto3 carries it unchanged beside any access key (AIStore's trick). Only RS256
and ES256 verify (``alg=none`` and the HMAC algorithms, which would turn a public key into a shared secret,
never); the signature is checked before any claim; ``exp`` is required, ``nbf`` and ``iat`` are honoured, ``iss``
and ``aud`` must be the configured ones, all within a leeway. The user is one claim (``sub``), the groups another
(``groups``). Every refusal is 403 AccessDenied naming its cause; no token is ever written to a log.

The JWKS, a file or an http(s) URL, is held in memory and read again ``refresh_s`` after the last good read; a
token whose ``kid`` is not in it makes one read at once, at most every ``min_refresh_s`` (forged kids cannot make
a worker hammer its provider). A URL due for its periodic read is fetched by a background thread while the keys
in hand go on serving; only a first load or an unknown kid fetches inline. A failed read keeps the keys in hand.
A verified token is remembered until its ``exp`` (or until the JWKS changes), so a client's next request costs a
dict lookup, not a signature check.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from jwt import PyJWK

from cache.s3.errors import S3Error

log = logging.getLogger("s3cache")

ALGORITHMS = ("RS256", "ES256")
_KEY_TYPE = {"RS256": ("RSA", None), "ES256": ("EC", "P-256")}  # alg -> (kty, crv) of the keys it verifies with
_MAX_JWKS_BYTES = 1 << 20
_REMEMBERED = 4096  # verified tokens kept (then forgotten all at once)

Loader = Callable[[], bytes]
Clock = Callable[[], float]


def denied(cause: str) -> S3Error:
    return S3Error("AccessDenied", f"Access Denied: OIDC token refused: {cause}")


class Principal(str):
    """A user name that also carries the groups its token listed (for access rules that look at groups)."""

    groups: tuple[str, ...]

    def __new__(cls, name: str, groups: Iterable[str] = ()) -> Principal:
        self = super().__new__(cls, name)
        self.groups = tuple(groups)
        return self


def groups_of(user: str | None) -> tuple[str, ...]:
    """The groups authentication found for a user: an OIDC token's; none for every other kind of user."""
    return getattr(user, "groups", ())


def loader_of(location: str, timeout_s: float) -> Loader:
    """A function that reads the JWKS at location: an http(s) URL, a file:// URL or a file path."""
    if location.startswith(("http://", "https://")):
        def fetch() -> bytes:
            request = urllib.request.Request(location, headers={"accept": "application/json",
                                                                "user-agent": "s3cache"})
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                data: bytes = response.read(_MAX_JWKS_BYTES + 1)
            if len(data) > _MAX_JWKS_BYTES:
                raise ValueError(f"larger than {_MAX_JWKS_BYTES} bytes")
            return data
        return fetch
    path = Path(urlsplit(location).path if location.startswith("file://") else location)
    return path.read_bytes


def parse_jwks(data: bytes) -> dict[str, PyJWK]:
    """kid -> key of every key in a JWKS that RS256 or ES256 can verify with ("" for a key without a kid); keys
    of other types, curves, algorithms or uses are left out."""
    document = json.loads(data)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS: no \"keys\" list")
    keys: dict[str, PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        for alg, (kty, crv) in _KEY_TYPE.items():
            if entry.get("kty") == kty and entry.get("crv") == crv and entry.get("alg", alg) == alg:
                try:
                    keys[str(entry.get("kid", ""))] = PyJWK(entry, alg)
                except jwt.PyJWTError:
                    pass  # an unusable key is no key
    return keys


class Jwks:
    """The identity provider's signing keys, read from their location and refreshed as the module says."""

    def __init__(self, location: str, load: Loader, refresh_s: float = 300.0, min_refresh_s: float = 10.0,
                 background: bool | None = None, clock: Clock = time.monotonic) -> None:
        self.location = location
        self._load = load
        self._refresh_s = refresh_s
        self._min_refresh_s = min_refresh_s
        self._background = location.startswith(("http://", "https://")) if background is None else background
        self._clock = clock
        self._keys: dict[str, PyJWK] | None = None
        self._data: bytes | None = None
        self._loaded = -math.inf  # clock of the last good read
        self._tried = -math.inf  # clock of the last read, good or not
        self._lock = threading.Lock()
        self._refreshing = False
        self.version = 0  # goes up whenever the keys change
        self.reads = 0

    def refresh(self) -> None:
        """Read the JWKS now; a failure keeps the keys in hand (and is logged, once a read)."""
        with self._lock:
            self._tried = self._clock()
            self.reads += 1
            try:
                data = self._load()
                keys = parse_jwks(data)
            except Exception as error:  # noqa: BLE001 - a provider down or a half-written file: keep the keys
                log.warning("OIDC: could not read the JWKS at %s (%s: %s); keeping the %d keys in hand",
                            self.location, type(error).__name__, error, len(self._keys or {}))
                return
            finally:
                self._refreshing = False
            self._loaded = self._clock()
            if data != self._data:
                self._keys, self._data = keys, data
                self.version += 1

    def current(self) -> int:
        """The keys' version, after the periodic read if one is due (in the background for a URL)."""
        now = self._clock()
        if self._keys is None:
            if now - self._tried >= self._min_refresh_s:
                self.refresh()
        elif now - self._loaded >= self._refresh_s and now - self._tried >= self._min_refresh_s:
            if not self._background:
                self.refresh()
            elif not self._refreshing:
                self._refreshing = True
                self._tried = now
                threading.Thread(target=self.refresh, name="s3cache-jwks", daemon=True).start()
        return self.version

    def _find(self, kid: str | None, alg: str) -> PyJWK | None:
        keys = self._keys or {}
        if kid is not None:
            return keys.get(kid)
        fitting = [key for key in keys.values() if key.algorithm_name == alg]
        return fitting[0] if len(fitting) == 1 else None  # no kid: only a JWKS with one such key says which

    def key(self, kid: str | None, alg: str) -> PyJWK:
        self.current()
        key = self._find(kid, alg)
        if key is None and self._clock() - self._tried >= self._min_refresh_s:
            self.refresh()  # an unknown kid: the provider may have rotated its keys
            key = self._find(kid, alg)
        if key is None:
            if self._keys is None:
                raise denied("the identity provider's signing keys (JWKS) could not be read")
            raise denied("unknown signing key" + (" (kid not in the JWKS)" if kid is not None else ""))
        if key.algorithm_name != alg:
            raise denied(f"algorithm not allowed for this key (the key is {key.algorithm_name})")
        return key


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    """A claim by name, or by a dotted path into nested objects (``realm_access.roles``) when no claim has the
    whole name (namespaced claims such as ``https://example.com/groups`` hold dots)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


class Verifier:
    """Verifies tokens: signature by the JWKS, then the time, issuer and audience claims; names the user."""

    def __init__(self, jwks: Jwks, issuer: str, audience: str, leeway_s: float = 30.0, user_claim: str = "sub",
                 groups_claim: str = "groups", clock: Clock = time.time) -> None:
        self.jwks = jwks
        self._issuer = issuer
        self._audience = audience
        self._leeway_s = leeway_s
        self._user_claim = user_claim
        self._groups_claim = groups_claim
        self._clock = clock
        self._verified: dict[str, tuple[Principal, float, int]] = {}  # token -> (user, good until, keys' version)

    def verify(self, token: str) -> Principal:
        version = self.jwks.current()
        remembered = self._verified.get(token)
        if remembered is not None:
            user, until, seen = remembered
            if seen == version and self._clock() < until:
                return user
            del self._verified[token]
        try:
            user, until = self._verify(token)
        except S3Error:
            raise
        except Exception as error:  # noqa: BLE001 - whatever a hostile token finds: a refusal, never a 500
            log.warning("OIDC: a token could not be verified (%s)", type(error).__name__)
            raise denied("not a valid JWT") from None
        if len(self._verified) >= _REMEMBERED:
            self._verified.clear()
        self._verified[token] = (user, until, self.jwks.version)
        return user

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise denied("not a well-formed JWT") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise denied("algorithm not allowed (only RS256 and ES256 are)")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise denied("not a well-formed JWT (its kid is not a string)")
        key = self.jwks.key(kid, alg)
        try:
            claims = jwt.decode(token, key, algorithms=[alg], audience=self._audience, issuer=self._issuer,
                                leeway=self._leeway_s, options={"require": ["exp", "iss", "aud"]})
        except jwt.InvalidSignatureError:
            raise denied("bad signature") from None
        except jwt.ExpiredSignatureError:
            raise denied("expired") from None
        except jwt.ImmatureSignatureError:
            raise denied("not yet valid") from None
        except jwt.InvalidAudienceError:
            raise denied("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise denied("wrong issuer") from None
        except jwt.MissingRequiredClaimError as error:
            raise denied(f"it has no {error.claim} claim") from None
        except jwt.InvalidAlgorithmError:
            raise denied("algorithm not allowed (only RS256 and ES256 are)") from None
        except jwt.PyJWTError:
            raise denied("not a valid JWT") from None
        name = _claim(claims, self._user_claim)
        if not isinstance(name, str) or not name or not name.isprintable() or len(name) > 256:
            raise denied(f"its {self._user_claim} claim names no user")
        groups = _claim(claims, self._groups_claim)
        if isinstance(groups, str):
            groups = [groups]
        listed = [group for group in groups if isinstance(group, str)] if isinstance(groups, list) else []
        return Principal(name, listed), float(claims["exp"]) + self._leeway_s


@functools.lru_cache(maxsize=8)
def verifier(location: str, issuer: str, audience: str, leeway_s: float, user_claim: str, groups_claim: str,
             refresh_s: float, min_refresh_s: float, timeout_s: float) -> Verifier:
    """The one verifier of a configuration, its JWKS read on first use."""
    jwks = Jwks(location, loader_of(location, timeout_s), refresh_s, min_refresh_s)
    return Verifier(jwks, issuer, audience, leeway_s, user_claim, groups_claim)
