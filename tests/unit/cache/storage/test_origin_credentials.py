"""cache.storage.origin.credentials: explicit settings first, else awscrt's chain (read from this process's
environment and files, as a worker's would be), and the refresh of temporary credentials before they expire."""

from __future__ import annotations

import asyncio
import datetime
import sys
import time
from pathlib import Path

import pytest

from cache.storage.origin.credentials import Credentials, OriginCredentials, origin_credentials

CREDENTIALS_FILE = """\
[default]
aws_access_key_id = FILE_DEFAULT_KEY
aws_secret_access_key = file-default-secret

[work]
aws_access_key_id = FILE_WORK_KEY
aws_secret_access_key = file-work-secret
aws_session_token = file-work-token
"""


@pytest.fixture(autouse=True)
def aws_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Whoever runs the tests: no AWS variables, empty shared files, no instance metadata service."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / "credentials").write_text("")
    (tmp_path / "config").write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def resolve(access_key_id: str | None = None, secret: str | None = None, profile: str | None = None) \
        -> Credentials | None:
    return origin_credentials(access_key_id, secret, profile, 300.0).current()


def test_explicit_settings_win_over_everything(aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENV_KEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    (aws_env / "credentials").write_text(CREDENTIALS_FILE)
    assert resolve("EXPLICIT", "explicit-secret") == Credentials("EXPLICIT", "explicit-secret")
    assert resolve("EXPLICIT", "explicit-secret", "work") == Credentials("EXPLICIT", "explicit-secret")


def test_the_environment_comes_first_in_the_chain(aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (aws_env / "credentials").write_text(CREDENTIALS_FILE)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENV_KEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    assert resolve() == Credentials("ENV_KEY", "env-secret")
    assert resolve("EXPLICIT", None) == Credentials("ENV_KEY", "env-secret")  # half a pair is not used
    monkeypatch.setenv("AWS_SESSION_TOKEN", "tok")
    assert resolve() == Credentials("ENV_KEY", "env-secret", "tok")


def test_the_shared_files_profiles(aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (aws_env / "credentials").write_text(CREDENTIALS_FILE)
    work = Credentials("FILE_WORK_KEY", "file-work-secret", "file-work-token")
    assert resolve() == Credentials("FILE_DEFAULT_KEY", "file-default-secret")
    assert resolve(profile="work") == work
    monkeypatch.setenv("AWS_PROFILE", "work")
    assert resolve() == work


def test_nothing_anywhere_is_unsigned(aws_env: Path) -> None:
    assert resolve() is None
    assert resolve("", "") is None
    assert resolve(profile="missing") is None
    (aws_env / "credentials").write_text("[default]\naws_access_key_id = ONLY_THE_KEY\n")
    assert resolve() is None


def test_a_credential_process_gives_credentials_that_expire(aws_env: Path) -> None:
    expiration = datetime.datetime.now(datetime.UTC).replace(microsecond=0) + datetime.timedelta(hours=1)
    script = aws_env / "process.py"
    script.write_text("import json\nprint(json.dumps(" + repr({
        "Version": 1, "AccessKeyId": "PROCESS_KEY", "SecretAccessKey": "process-secret",
        "SessionToken": "process-token", "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}) + "))\n")
    (aws_env / "config").write_text(f"[default]\ncredential_process = {sys.executable} {script}\n")
    assert resolve() == Credentials("PROCESS_KEY", "process-secret", "process-token", expiration.timestamp())


def test_secrets_stay_out_of_the_repr() -> None:
    shown = repr(Credentials("AKID", "the-secret", "the-token", 1.0))
    assert "AKID" in shown and "the-secret" not in shown and "the-token" not in shown


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def holder(expires_in_s: float | None, refresh_before_s: float = 300.0) -> tuple[OriginCredentials, Clock]:
    clock = Clock()
    expiration = clock.now + expires_in_s if expires_in_s is not None else None
    fetched = iter(Credentials(f"KEY{n}", "s", "t", expiration) for n in range(100))
    credentials = OriginCredentials(lambda: next(fetched), refresh_before_s=refresh_before_s, clock=clock)
    credentials.load()
    return credentials, clock


def test_refresh_is_due_before_the_expiry() -> None:
    assert holder(3600)[0].delay() == 3300  # refresh_before_s ahead
    assert holder(900)[0].delay() == 600
    assert holder(12)[0].delay() == 6  # a short life: after half of it
    assert holder(0.5)[0].delay() == 1.0  # never more often than a second
    assert holder(None)[0].delay() == float("inf")  # they do not expire: never
    assert holder(3600, refresh_before_s=60)[0].delay() == 3540


def test_a_refresh_takes_the_new_credentials() -> None:
    credentials, _ = holder(12)
    assert credentials.current() is not None and credentials.current().access_key_id == "KEY0"  # type: ignore[union-attr]
    asyncio.run(credentials.refresh())
    assert credentials.current().access_key_id == "KEY1"  # type: ignore[union-attr]


def test_a_failed_refresh_keeps_the_credentials_in_hand(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    fresh = Credentials("KEY1", "s", "t", clock.now + 3600)
    answers: list[Credentials | Exception] = [Credentials("KEY0", "s", "t", clock.now + 100),
                                              RuntimeError("sts unreachable"), fresh]

    def fetch() -> Credentials:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer
    credentials = OriginCredentials(fetch, clock=clock)
    credentials.load()
    asyncio.run(credentials.refresh())
    assert credentials.current() == Credentials("KEY0", "s", "t", clock.now + 100)
    assert "refresh failed (RuntimeError: sts unreachable); keeping the credentials in hand" in caplog.text
    assert credentials.delay() == 30  # tried again soon: min(30 s, half of what is left)
    clock.now += 90
    assert credentials.delay() == 5
    asyncio.run(credentials.refresh())
    assert credentials.current() == fresh and credentials.failures == 0


def test_the_background_task_refreshes_until_stopped() -> None:
    calls: list[float] = []

    def fetch() -> Credentials:
        calls.append(0)
        return Credentials(f"KEY{len(calls)}", "s", "t", time.time() + 0.5)

    async def scenario() -> None:
        credentials = OriginCredentials(fetch)
        credentials.load()
        await credentials.start()
        await asyncio.sleep(2.5)  # due every second (the floor): about two refreshes
        await credentials.stop()
        seen = len(calls)
        assert seen >= 2 and credentials.current().access_key_id == f"KEY{seen}"  # type: ignore[union-attr]
        await asyncio.sleep(1.2)
        assert len(calls) == seen  # stopped
    asyncio.run(scenario())


def test_static_credentials_start_no_task() -> None:
    async def scenario() -> None:
        credentials = OriginCredentials(None, Credentials("A", "s"))
        await credentials.start()
        assert credentials._task is None
        await credentials.stop()
    asyncio.run(scenario())

