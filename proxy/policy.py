"""Access policy: whether a caller may do an operation on a bucket and key, the one place that is decided.

Rules come from the policy file (``auth.policy_file``) and from the mounts (their mode and users), both turned into
the same ``Rule`` by proxy.policyfile. A rule names principals (``user:NAME``, ``group:NAME``, ``anonymous``,
``authenticated``, ``*``), the AWS operations it covers, a bucket (a glob) and a key prefix, and whether it allows
or denies. A deny that matches wins; else an allow that matches; else the default: deny once a policy file is
configured, allow without one (so mounts alone restrict only what their own rules deny).

The key a request is judged on is its object key; a listing is judged on its ``prefix`` parameter (a listing of
``public/`` is within a rule for ``public/``; without one, only a rule for the whole bucket matches); any other
bucket-level request on ``""``, so only a rule for the whole bucket covers it; ListBuckets is bucket ``""``,
which only a rule for every bucket (``*``) covers. A copy is also judged
as a GetObject of its source. DeleteObjects is judged key by key by its handler (``Operation.per_key``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal, Protocol

from cache.s3.errors import S3Error
from proxy.headers import COPY_SOURCE, split_copy_source
from proxy.http import Request

log = logging.getLogger("s3cache.policy")

EVERYONE = "*"
ANONYMOUS = "anonymous"
AUTHENTICATED = "authenticated"
COPY_SOURCE_OPERATION = "GetObject"  # what a copy does to its source, for the rules


class Operation(Protocol):
    """What the policy reads of an operation's record (proxy.operations.Operation, a wing above)."""

    @property
    def name(self) -> str: ...

    @property
    def copies(self) -> bool: ...  # reads the object x-amz-copy-source names

    @property
    def per_key(self) -> bool: ...  # its handler judges each key it names (DeleteObjects)

    @property
    def level(self) -> str: ...  # service, bucket or object

    @property
    def prefix_scoped(self) -> bool: ...  # a listing, judged on its prefix parameter


@dataclass(frozen=True, slots=True)
class Rule:
    effect: Literal["allow", "deny"]
    principals: frozenset[str]
    operations: frozenset[str]  # AWS operation names
    bucket: str = "*"  # a glob (fnmatch, case-sensitive)
    prefix: str = ""  # of the key
    except_principals: frozenset[str] = frozenset()  # callers it does not apply to, whatever else they are
    source: str = ""  # how a decision names the rule (logs, the CLI)
    told: bool = False  # the client may be told it (a mount's mode); a policy file's rules stay with the operator

    def matches(self, principals: frozenset[str], operation: str, bucket: str, key: str) -> bool:
        return (operation in self.operations and key.startswith(self.prefix)
                and not self.principals.isdisjoint(principals) and self.except_principals.isdisjoint(principals)
                and fnmatchcase(bucket, self.bucket))


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str  # the rule that decided, or the default
    told: bool = False  # the reason may go into the client's error message


class Policy:
    """The rules of one worker, with the groups the policy file declares."""

    def __init__(self, rules: Iterable[Rule], groups: Mapping[str, Iterable[str]] | None = None,
                 default_allow: bool = True, default_source: str = "") -> None:
        rules = list(rules)
        self.denies = [rule for rule in rules if rule.effect == "deny"]
        self.allows = [rule for rule in rules if rule.effect == "allow"]
        self.default_allow = default_allow
        self.default_source = default_source or ("no rule denies it" if default_allow else "no rule allows it")
        self.member_of: dict[str, set[str]] = {}
        for group, users in (groups or {}).items():
            for user in users:
                self.member_of.setdefault(user, set()).add(group)
        self.open = default_allow and not self.denies  # nothing to judge: the hot path skips it all

    def principals(self, user: str | None, groups: Iterable[str] = ()) -> frozenset[str]:
        """Every name a rule may know this caller by."""
        if user is None:
            return frozenset({EVERYONE, ANONYMOUS})
        return frozenset({EVERYONE, AUTHENTICATED, f"user:{user}", *(f"group:{g}" for g in groups),
                          *(f"group:{g}" for g in self.member_of.get(user, ()))})

    def decide(self, user: str | None, groups: Iterable[str], operation: str, bucket: str, key: str) -> Decision:
        principals = self.principals(user, groups)
        for rule in self.denies:
            if rule.matches(principals, operation, bucket, key):
                return Decision(False, rule.source, rule.told)
        for rule in self.allows:
            if rule.matches(principals, operation, bucket, key):
                return Decision(True, rule.source)
        return Decision(self.default_allow, self.default_source)


OPEN = Policy(())  # no policy file, no mounts: everyone may do everything


def resource(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}" if bucket else "s3://"


def check(policy: Policy, request: Request, operation: str, bucket: str, key: str) -> None:
    """Raise 403 AccessDenied, logged once with the user, operation and resource, unless the policy allows it."""
    decision = policy.decide(request.user, request.groups, operation, bucket, key)
    if not decision.allowed:
        log.info("AccessDenied: %s %s %s: %s", request.user or ANONYMOUS, operation, resource(bucket, key),
                 decision.reason)
        raise S3Error("AccessDenied", f"Access Denied: {decision.reason}" if decision.told else "Access Denied")


def judged_key(operation: Operation, key: str) -> str:
    """The key an operation is judged on: an object's key, a listing's prefix; "" for the rest (the bucket itself,
    whatever ``prefix`` parameter it is sent, so a rule for a prefix never reaches a bucket's tags or the bucket)."""
    return key if operation.level == "object" or operation.prefix_scoped else ""


def authorize(policy: Policy, request: Request, operation: Operation) -> None:
    """Judge a request after routing and before its handler: the operation on its bucket and key, and a copy's
    read of its source."""
    if policy.open or operation.per_key:
        return
    key = request.key if operation.level == "object" else request.query.get("prefix", "")
    check(policy, request, operation.name, request.bucket or "", judged_key(operation, key))
    source = request.headers.get(COPY_SOURCE)
    if source is not None and operation.copies:
        src_bucket, src_key, _ = split_copy_source(source)
        if src_bucket:  # none named: the copy itself refuses it
            check(policy, request, COPY_SOURCE_OPERATION, src_bucket, src_key)


def denied_keys(policy: Policy, request: Request, operation: str, keys: Iterable[str]) -> set[str]:
    """The keys of a request naming many (DeleteObjects) the policy refuses it, logged in one line."""
    if policy.open:
        return set()
    bucket = request.bucket or ""
    refused: dict[str, str] = {}
    for key in keys:
        decision = policy.decide(request.user, request.groups, operation, bucket, key)
        if not decision.allowed:
            refused[key] = decision.reason
    if refused:
        first, reason = next(iter(refused.items()))
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        log.info("AccessDenied: %s %s %s%s: %s", request.user or ANONYMOUS, operation, resource(bucket, first), more,
                 reason)
    return set(refused)
