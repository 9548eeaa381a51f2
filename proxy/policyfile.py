"""Reading the access policy: the policy file (``auth.policy_file``) and the mounts' modes and users, as rules.

The file is TOML (the configuration's own format, comments included), or JSON when its name ends in ``.json``::

    [groups]                       # groups of users declared here, beside those an OIDC token lists
    ml = ["alice", "bob"]

    [[rules]]
    principals = ["group:ml"]      # user:NAME, group:NAME, anonymous, authenticated, *
    bucket = "datasets"            # a glob; "*" (the default) is every bucket
    prefix = "train/"              # of the key; "" (the default) is the whole bucket
    actions = ["read", "list"]     # read, list, write, delete, multipart, tagging, acl, an AWS operation name, or *
    effect = "allow"               # or "deny", which wins over any allow

An action is the operations of that access class in proxy.operations (``read`` is GetObject and HeadObject), so
the file and the operation table cannot disagree. A mount maps onto the same rules: read-only denies everyone the
operations that write, write-only the reads a write-only bucket does not answer, ``users`` everyone else.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from conf.settings import ConfigError, MountSettings, Settings
from proxy.policy import ANONYMOUS, AUTHENTICATED, EVERYONE, Policy, Rule

ALL_ACTIONS = "*"


class OperationFacts(Protocol):
    """What the rules are made of, read from an operation's record (proxy.operations.Operation, a wing above)."""

    @property
    def name(self) -> str: ...

    @property
    def access(self) -> str: ...

    @property
    def writes(self) -> bool: ...

    @property
    def write_only_ok(self) -> bool: ...


def _principal(value: str) -> str:
    kind, sep, name = value.partition(":")
    if value in (EVERYONE, ANONYMOUS, AUTHENTICATED) or (sep and kind in ("user", "group") and name):
        return value
    raise ValueError(f"{value!r} is not a principal: user:NAME, group:NAME, {ANONYMOUS}, {AUTHENTICATED} or "
                     f"{EVERYONE}")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RuleEntry(_Strict):
    principals: list[Annotated[str, AfterValidator(_principal)]] = Field(min_length=1)
    actions: list[str] = Field(min_length=1)
    bucket: str = Field("*", min_length=1)
    prefix: str = ""
    effect: Literal["allow", "deny"] = "allow"


class PolicyFile(_Strict):
    groups: dict[str, list[str]] = Field(default_factory=dict)
    rules: list[RuleEntry] = Field(default_factory=list)


def _operations_of(actions: Sequence[str], operations: Sequence[OperationFacts]) -> frozenset[str]:
    names: set[str] = set()
    for action in actions:
        found = {op.name for op in operations if action in (ALL_ACTIONS, op.access, op.name)}
        if not found:
            classes = sorted({op.access for op in operations})
            raise ValueError(f"unknown action {action!r}: expected one of {', '.join(classes)}, an AWS operation "
                             f"name or {ALL_ACTIONS}")
        names |= found
    return frozenset(names)


def describe(path: Path, index: int, entry: RuleEntry) -> str:
    """How a decision names a rule of the file: where it is and what it says."""
    return (f"{path.name} rules.{index} ({entry.effect} {', '.join(entry.principals)} {', '.join(entry.actions)} "
            f"on s3://{entry.bucket}/{entry.prefix}*)")


def read_policy_file(path: Path, operations: Sequence[OperationFacts]) -> tuple[list[Rule], dict[str, list[str]]]:
    """The rules and groups of a policy file; ConfigError naming the file and the entry otherwise."""
    where = f"auth.policy_file: {path}"
    try:
        text = path.read_text()
        parsed = PolicyFile.model_validate(json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read it: {exc}") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        raise ConfigError(f"{where}: {'.'.join(str(p) for p in error['loc'])}: {message}") from None
    rules = []
    for index, entry in enumerate(parsed.rules):
        try:
            names = _operations_of(entry.actions, operations)
        except ValueError as exc:
            raise ConfigError(f"{where}: rules.{index}.actions: {exc}") from None
        rules.append(Rule(entry.effect, frozenset(entry.principals), names, entry.bucket, entry.prefix,
                          source=describe(path, index, entry)))
    return rules, parsed.groups


def mount_rules(mounts: Iterable[MountSettings], operations: Sequence[OperationFacts]) -> list[Rule]:
    """A mount's mode and users, as deny rules on its bucket."""
    everyone = frozenset({EVERYONE})
    rules = []
    for mount in mounts:
        bucket = mount.bucket
        if mount.mode == "read-only":
            rules.append(Rule("deny", everyone, frozenset(op.name for op in operations if op.writes), bucket,
                              source=f"bucket {bucket} is read-only", told=True))
        elif mount.mode == "write-only":
            rules.append(Rule("deny", everyone, frozenset(op.name for op in operations
                                                          if not op.writes and not op.write_only_ok), bucket,
                              source=f"bucket {bucket} is write-only", told=True))
        if mount.users is not None:
            rules.append(Rule("deny", everyone, frozenset(op.name for op in operations), bucket,
                              except_principals=frozenset(f"user:{user}" for user in mount.users),
                              source=f"bucket {bucket} admits only its users"))
    return rules


def load_policy(settings: Settings, operations: Sequence[OperationFacts]) -> Policy:
    """The worker's one policy: the mounts' rules, and the policy file's (then default deny) when configured."""
    rules = mount_rules(settings.mounts, operations)
    path = settings.auth.policy_file
    if path is None:
        return Policy(rules)
    file_rules, groups = read_policy_file(path, operations)
    return Policy(rules + file_rules, groups, default_allow=False,
                  default_source=f"no rule of {path.name} allows it (default deny)")
