"""`s3cache policy check`: what the access policy would answer a request, and which rule decides it.

Reads the same settings a worker would (``--config``, then ``S3CACHE_*`` variables), so the mounts' rules and the
policy file's are judged together, by the worker's own evaluator (proxy.policy).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from conf.settings import ConfigError, load_settings
from proxy.operations import OPERATIONS
from proxy.policy import ANONYMOUS, judged_key, resource
from proxy.policyfile import ALL_ACTIONS, load_policy


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = commands.add_parser("policy", help="ask the access policy what a request would get",
                                 description="Judge requests against the access policy (auth.policy_file and the "
                                 "mounts) without a worker.")
    actions = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="say whether a user may do an action on s3://bucket/key, and which rule decides",
        description="Say whether USER may do ACTION on s3://BUCKET/KEY and which rule decides, for each operation "
                    "of the action. Exit status 0: every operation allowed; 1: one or more denied; 2: bad "
                    "configuration.")
    check.add_argument("--config", type=Path, metavar="FILE", help="the worker's TOML settings file")
    check.add_argument("--policy-file", type=Path, metavar="FILE", help="the policy file (default: the settings' "
                       "auth.policy_file)")
    check.add_argument("--user", metavar="USER", help="the caller's user (access key or token user; default: "
                       "anonymous)")
    check.add_argument("--group", action="append", default=[], metavar="GROUP",
                       help="a group the caller's token lists (repeatable)")
    check.add_argument("--action", required=True, metavar="ACTION",
                       help="read, list, write, delete, multipart, tagging, acl, an AWS operation name, or *")
    check.add_argument("target", metavar="s3://BUCKET/KEY", help="the resource (a listing: its prefix as KEY)")


def run(args: argparse.Namespace) -> int:
    target = urlsplit(args.target)
    if target.scheme != "s3":
        print(f"s3cache: {args.target!r} is not an s3://bucket/key URI", file=sys.stderr)
        return 2
    bucket, key = target.netloc, target.path.lstrip("/")
    try:
        overrides = {"auth": {"policy_file": args.policy_file}} if args.policy_file else None
        policy = load_policy(load_settings(args.config, dict(os.environ), overrides), OPERATIONS)
    except ConfigError as error:
        print(f"s3cache: invalid configuration: {error}", file=sys.stderr)
        return 2
    operations = [op for op in OPERATIONS if args.action in (ALL_ACTIONS, op.access, op.name)]
    if not operations:
        print(f"s3cache: unknown action {args.action!r}", file=sys.stderr)
        return 2
    outcomes: dict[tuple[bool, str], list[str]] = {}
    for operation in operations:  # each judged on what the worker would judge it on
        decision = policy.decide(args.user, args.group, operation.name, bucket, judged_key(operation, key))
        outcomes.setdefault((decision.allowed, decision.reason), []).append(operation.name)
    who = args.user or ANONYMOUS
    for (allowed, reason), names in outcomes.items():
        print(f"{'allowed' if allowed else 'denied'}: {who} {args.action} {resource(bucket, key)} "
              f"({', '.join(names)}): {reason}")
    return 0 if all(allowed for allowed, _ in outcomes) else 1
