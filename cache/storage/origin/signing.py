"""Signing requests to an S3 origin with SigV4, by the AWS Common Runtime (awscrt).

awscrt is the signer the AWS SDKs themselves use (C, ~20 us a request here); s3cache already depends
on it for CRC32C/CRC64NVME. Bodies are sent as UNSIGNED-PAYLOAD so a streamed upload is never hashed
twice or held to be hashed.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from awscrt import auth
from awscrt import http as crt_http


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def resolve_credentials(
    access_key_id: str | None, secret_access_key: str | None, env: Mapping[str, str], profile: str | None = None
) -> Credentials | None:
    """Explicit settings, else the standard AWS environment variables, else the shared credentials file.

    None means anonymous requests (a public origin).
    """
    if access_key_id and secret_access_key:
        return Credentials(access_key_id, secret_access_key)
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env.get("AWS_SESSION_TOKEN"))
    path = Path(env.get("AWS_SHARED_CREDENTIALS_FILE", Path.home() / ".aws" / "credentials"))
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
    except (OSError, configparser.Error):
        return None
    section = profile or env.get("AWS_PROFILE", "default")
    if parser.has_section(section) and parser.has_option(section, "aws_access_key_id") \
            and parser.has_option(section, "aws_secret_access_key"):  # half a pair is no credentials, as above
        return Credentials(parser.get(section, "aws_access_key_id"), parser.get(section, "aws_secret_access_key"),
                           parser.get(section, "aws_session_token", fallback=None))
    return None


class Signer:
    def __init__(self, credentials: Credentials, region: str) -> None:
        provider = auth.AwsCredentialsProvider.new_static(
            credentials.access_key_id, credentials.secret_access_key, credentials.session_token)
        self._config = auth.AwsSigningConfig(
            algorithm=auth.AwsSigningAlgorithm.V4,
            signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
            credentials_provider=provider,
            region=region,
            service="s3",
            use_double_uri_encode=False,  # S3 signs the path as sent, encoded once
            should_normalize_uri_path=False,  # keys may contain "//" and "./": they are names, not paths
            signed_body_value=auth.AwsSignedBodyValue.UNSIGNED_PAYLOAD,
            signed_body_header_type=auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256,
        )

    def sign(self, method: str, path_and_query: str, headers: dict[str, str]) -> dict[str, str]:
        """headers (which must include host) plus the SigV4 ones.

        An ``x-amz-content-sha256`` among headers (e.g. STREAMING-UNSIGNED-PAYLOAD-TRAILER) is the body value signed;
        otherwise the body is UNSIGNED-PAYLOAD.
        """
        headers = dict(headers)
        payload = headers.pop("x-amz-content-sha256", None)
        config = self._config if payload is None else self._config.replace(signed_body_value=payload)
        request = crt_http.HttpRequest(method, path_and_query, headers=crt_http.HttpHeaders(list(headers.items())))
        auth.aws_sign_request(request, config).result()
        return dict(request.headers)
