"""Signing requests to an S3 origin with SigV4, by the AWS Common Runtime (awscrt).

awscrt is the signer the AWS SDKs themselves use (C, ~20 us a request here); s3cache already depends
on it for CRC32C/CRC64NVME. Bodies are sent as UNSIGNED-PAYLOAD so a streamed upload is never hashed
twice or held to be hashed. Where the credentials come from, and their refresh: cache.storage.origin.credentials.
"""

from __future__ import annotations

from collections.abc import Callable

from awscrt import auth
from awscrt import http as crt_http

from cache.storage.origin.credentials import Credentials


class Signer:
    """Signs with whatever credentials are in hand when a request goes out (cache.storage.origin.credentials keeps
    them fresh); none in hand, the request goes unsigned (a public origin)."""

    def __init__(self, credentials: Callable[[], Credentials | None], region: str) -> None:
        self.credentials = credentials
        self.region = region
        self._signed_with: Credentials | None = None
        self._config: auth.AwsSigningConfig | None = None

    def _config_for(self, credentials: Credentials) -> auth.AwsSigningConfig:
        """The signing config of these credentials: made again only when they change (a refresh)."""
        if self._config is None or credentials is not self._signed_with:
            self._config = auth.AwsSigningConfig(
                algorithm=auth.AwsSigningAlgorithm.V4,
                signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
                credentials_provider=auth.AwsCredentialsProvider.new_static(
                    credentials.access_key_id, credentials.secret_access_key, credentials.session_token),
                region=self.region,
                service="s3",
                use_double_uri_encode=False,  # S3 signs the path as sent, encoded once
                should_normalize_uri_path=False,  # keys may contain "//" and "./": they are names, not paths
                signed_body_value=auth.AwsSignedBodyValue.UNSIGNED_PAYLOAD,
                signed_body_header_type=auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256,
            )
            self._signed_with = credentials
        return self._config

    def sign(self, method: str, path_and_query: str, headers: dict[str, str]) -> dict[str, str]:
        """headers (which must include host) plus the SigV4 ones.

        An ``x-amz-content-sha256`` among headers (e.g. STREAMING-UNSIGNED-PAYLOAD-TRAILER) is the body value signed;
        otherwise the body is UNSIGNED-PAYLOAD.
        """
        credentials = self.credentials()
        if credentials is None:
            return dict(headers)
        headers = dict(headers)
        payload = headers.pop("x-amz-content-sha256", None)
        config = self._config_for(credentials)
        if payload is not None:
            config = config.replace(signed_body_value=payload)
        request = crt_http.HttpRequest(method, path_and_query, headers=crt_http.HttpHeaders(list(headers.items())))
        auth.aws_sign_request(request, config).result()
        return dict(request.headers)
