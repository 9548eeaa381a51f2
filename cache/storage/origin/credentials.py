"""The credentials origin requests are signed with: explicit settings first, else the whole AWS chain, refreshed.

The chain is awscrt's (the AWS Common Runtime the SDKs use, already s3cache's signer): ``new_default_chain``
reads the environment, the shared config and credentials files (static keys, ``credential_process``, SSO,
``role_arn`` with a source profile), a web identity token (an EKS pod's IRSA), the ECS/EKS container endpoint and
the instance metadata service, in the SDKs' order; ``origin.profile`` names one profile of the files instead.

Signing never waits on it. The credentials in hand are a frozen snapshot the signer reads; temporary ones (those
with an expiry) are fetched again in the background ``refresh_before_s`` before they expire, or after half their
remaining life when that is shorter, on a thread (a ``credential_process`` runs a command; STS is a network round
trip). awscrt caches behind that call and only fetches anew within five minutes of the expiry, so a fetch that
brings the same credentials back is simply tried again after half of what is left. A failed fetch keeps the
credentials in hand (they may still be good), is logged, and is tried again. No credentials anywhere: requests
to the origin go unsigned (a public origin), and the chain is asked again now and then.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from awscrt import auth

log = logging.getLogger("s3cache")

FETCH_TIMEOUT_S = 30.0
MIN_DELAY_S = 1.0  # never ask the chain more often than this
RETRY_MAX_S = 30.0  # after a failed fetch, try again within this (sooner if the credentials expire sooner)
ABSENT_RETRY_S = 300.0  # no credentials anywhere: ask again this often, in case some appear


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiration: float | None = None  # seconds since the epoch; None: they do not expire


Fetch = Callable[[], Credentials]


def chain(profile: str | None) -> Fetch:
    """A fetch from awscrt's default chain, or from one profile of the shared files (raises when none answers)."""
    providers: list[auth.AwsCredentialsProvider] = []

    def fetch() -> Credentials:
        if not providers:  # made on first use: a profile provider reads the files when it is made
            providers.append(auth.AwsCredentialsProvider.new_profile(profile_name=profile) if profile
                             else auth.AwsCredentialsProvider.new_default_chain())
        got = providers[0].get_credentials().result(timeout=FETCH_TIMEOUT_S)
        expiration: datetime.datetime | None = got.expiration
        return Credentials(got.access_key_id, got.secret_access_key, got.session_token or None,
                           expiration.timestamp() if expiration is not None else None)
    return fetch


class OriginCredentials:
    """The credentials in hand (``current()``, read by the signer on every request) and their refresh."""

    def __init__(self, fetch: Fetch | None, static: Credentials | None = None, refresh_before_s: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.fetch = fetch
        self.credentials = static
        self.refresh_before_s = refresh_before_s
        self.clock = clock
        self.failures = 0
        self._task: asyncio.Task[None] | None = None

    def current(self) -> Credentials | None:
        return self.credentials

    def load(self) -> None:
        """The first fetch, at start, before anything is signed (a slow chain delays the start, not a request)."""
        if self.fetch is not None:
            self._take(self._fetch_logged())

    def delay(self) -> float:
        """Seconds until the next fetch."""
        credentials = self.credentials
        if credentials is None:
            return ABSENT_RETRY_S if not self.failures else RETRY_MAX_S
        if credentials.expiration is None:
            return float("inf")  # static: nothing to refresh
        remaining = credentials.expiration - self.clock()
        if self.failures:
            return max(MIN_DELAY_S, min(RETRY_MAX_S, remaining / 2))
        return max(MIN_DELAY_S, remaining - min(self.refresh_before_s, remaining / 2))

    async def refresh(self) -> None:
        """One fetch, on a thread; the credentials in hand are replaced only by good ones."""
        self._take(await asyncio.to_thread(self._fetch_logged))

    async def start(self) -> None:
        if self.fetch is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            delay = self.delay()
            if delay == float("inf"):
                return
            await asyncio.sleep(delay)
            await self.refresh()

    def _fetch_logged(self) -> Credentials | None:
        assert self.fetch is not None
        try:
            return self.fetch()
        except Exception as exc:  # noqa: BLE001 - any failure of the chain: keep what is in hand, say so, retry
            if self.credentials is None and not self.failures:
                log.info("origin credentials: none found (%s); origin requests go unsigned", _cause(exc))
            else:
                log.warning("origin credentials: refresh failed (%s); keeping the credentials in hand", _cause(exc))
            self.failures += 1
            return None

    def _take(self, credentials: Credentials | None) -> None:
        if credentials is None:
            return
        if credentials != self.credentials:
            expires = (datetime.datetime.fromtimestamp(credentials.expiration, datetime.UTC).isoformat()
                       if credentials.expiration is not None else "never")
            log.info("origin credentials: access key %s, expiring %s", credentials.access_key_id, expires)
        self.credentials = credentials
        self.failures = 0


def _cause(exc: Exception) -> str:
    """What failed, without anything a credential file or command might have put in a message at length."""
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def origin_credentials(access_key_id: str | None, secret_access_key: str | None, profile: str | None,
                       refresh_before_s: float) -> OriginCredentials:
    """Explicit settings (both halves) first, static; else the chain, loaded now and refreshed once started."""
    if access_key_id and secret_access_key:
        return OriginCredentials(None, Credentials(access_key_id, secret_access_key))
    credentials = OriginCredentials(chain(profile), refresh_before_s=refresh_before_s)
    credentials.load()
    return credentials
