"""proxy.policyfile and proxy.policy.Policy: the policy file's rules, judged by the worker's one evaluator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cache.s3.errors import S3Error
from conf.settings import ConfigError, MountSettings, Settings
from proxy.cli.main import main
from proxy.http import Request
from proxy.operations import BY_NAME, OPERATIONS
from proxy.policy import Policy, authorize
from proxy.policyfile import load_policy

EXAMPLE = Path(__file__).resolve().parents[3] / "conf" / "policy.example.toml"

POLICY = """
[groups]
ml = ["alice", "bob"]

[[rules]]
principals = ["group:ml"]
bucket = "datasets"
actions = ["read", "list"]

[[rules]]
principals = ["user:alice"]
bucket = "datasets"
prefix = "scratch/"
actions = ["write", "delete", "multipart"]

[[rules]]
principals = ["anonymous"]
bucket = "datasets"
prefix = "public/"
actions = ["read"]

[[rules]]
principals = ["authenticated"]
bucket = "team-*"
actions = ["GetObjectTagging"]

[[rules]]
principals = ["group:admins"]
actions = ["*"]

[[rules]]
principals = ["*"]
bucket = "datasets"
prefix = "secret/"
actions = ["read"]
effect = "deny"
"""


def policy_of(tmp_path: Path, text: str = POLICY, name: str = "policy.toml", **settings: object) -> Policy:
    path = tmp_path / name
    path.write_text(text)
    return load_policy(Settings.model_validate({"auth": {"policy_file": str(path)}, **settings}), OPERATIONS)


def allows(policy: Policy, user: str | None, operation: str, bucket: str, key: str = "",
           groups: tuple[str, ...] = ()) -> bool:
    return policy.decide(user, groups, operation, bucket, key).allowed


def test_actions_are_the_access_classes_of_the_operation_table(tmp_path: Path) -> None:
    policy = policy_of(tmp_path)
    assert allows(policy, "bob", "GetObject", "datasets", "a/b")
    assert allows(policy, "bob", "HeadObject", "datasets", "a/b")
    assert allows(policy, "bob", "ListObjectsV2", "datasets")
    assert allows(policy, "bob", "HeadBucket", "datasets")
    assert not allows(policy, "bob", "PutObject", "datasets", "a/b")
    assert not allows(policy, "bob", "GetObjectTagging", "datasets", "a/b")  # tagging is its own action


def test_default_deny_once_a_file_is_configured(tmp_path: Path) -> None:
    policy = policy_of(tmp_path)
    decision = policy.decide("mallory", (), "GetObject", "datasets", "a")
    assert not decision.allowed and "default deny" in decision.reason
    assert not allows(policy, "bob", "GetObject", "elsewhere", "a")
    assert not policy.open


def test_prefix_rules(tmp_path: Path) -> None:
    policy = policy_of(tmp_path)
    for operation in ("PutObject", "DeleteObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
        assert allows(policy, "alice", operation, "datasets", "scratch/x")
        assert not allows(policy, "alice", operation, "datasets", "train/x")
        assert not allows(policy, "bob", operation, "datasets", "scratch/x")
    assert not allows(policy, "alice", "CreateBucket", "datasets")  # bucket level: key "" is not under scratch/


def test_a_listing_is_judged_on_its_prefix(tmp_path: Path) -> None:
    policy = policy_of(tmp_path, '[[rules]]\nprincipals = ["user:u"]\nbucket = "b"\nprefix = "p/"\nactions = ["list"]\n')
    assert allows(policy, "u", "ListObjectsV2", "b", "p/")
    assert allows(policy, "u", "ListObjectsV2", "b", "p/deeper")
    assert not allows(policy, "u", "ListObjectsV2", "b", "")
    assert not allows(policy, "u", "ListObjectsV2", "b", "q/")
    assert not allows(policy, "u", "ListBuckets", "")  # only a rule for every bucket covers ListBuckets


def test_list_buckets_needs_a_rule_for_every_bucket(tmp_path: Path) -> None:
    policy = policy_of(tmp_path)
    assert allows(policy, "x", "ListBuckets", "", groups=("admins",))
    assert not allows(policy, "bob", "ListBuckets", "")


def test_groups_from_the_file_and_from_the_token(tmp_path: Path) -> None:
    policy = policy_of(tmp_path)
    assert allows(policy, "bob", "GetObject", "datasets", "k")  # declared in [groups]
    assert allows(policy, "zed", "GetObject", "datasets", "k", groups=("ml",))  # an OIDC token's groups
    assert not allows(policy, "zed", "GetObject", "datasets", "k", groups=("other",))
    assert allows(policy, "zed", "DeleteBucket", "anything", groups=("admins",))


def test_anonymous_and_authenticated(tmp_path: Path) -> None:
    policy = policy_of(tmp_path)
    assert allows(policy, None, "GetObject", "datasets", "public/a")
    assert not allows(policy, None, "GetObject", "datasets", "train/a")
    assert not allows(policy, "bob-is-not-anonymous", "GetObject", "datasets", "public/a")
    assert allows(policy, "anyone", "GetObjectTagging", "team-red", "k")
    assert not allows(policy, None, "GetObjectTagging", "team-red", "k")  # anonymous is not authenticated
    assert not allows(policy, "anyone", "GetObjectTagging", "red-team", "k")


def test_a_matching_deny_wins(tmp_path: Path) -> None:
    policy = policy_of(tmp_path)
    decision = policy.decide("x", ("admins",), "GetObject", "datasets", "secret/plans")
    assert not decision.allowed
    assert decision.reason == "policy.toml rules.5 (deny * read on s3://datasets/secret/*)"
    assert allows(policy, "x", "PutObject", "datasets", "secret/plans", groups=("admins",))


def test_the_mounts_rules_apply_beside_the_file(tmp_path: Path) -> None:
    mounts = [{"bucket": "datasets", "uri": "file:///nowhere", "mode": "read-only"}]
    policy = policy_of(tmp_path, mounts=mounts)
    assert allows(policy, "bob", "GetObject", "datasets", "k")
    decision = policy.decide("x", ("admins",), "PutObject", "datasets", "k")
    assert not decision.allowed and decision.reason == "bucket datasets is read-only"


def test_no_file_allows_what_the_mounts_allow() -> None:
    policy = load_policy(Settings(mounts=[MountSettings(bucket="m", uri="file:///x", users=["u"])]), OPERATIONS)
    assert allows(policy, None, "PutObject", "anything", "k")
    assert allows(policy, "u", "PutObject", "m", "k")
    assert not allows(policy, "v", "GetObject", "m", "k")
    assert load_policy(Settings(), OPERATIONS).open


def test_json_is_read_too(tmp_path: Path) -> None:
    text = json.dumps({"groups": {"g": ["u"]}, "rules": [{"principals": ["group:g"], "actions": ["read"]}]})
    policy = policy_of(tmp_path, text, name="policy.json")
    assert allows(policy, "u", "GetObject", "any", "k")
    assert not allows(policy, "u", "PutObject", "any", "k")


@pytest.mark.parametrize(("text", "message"), [
    ('[[rules]]\nprincipals = ["user:u"]\nactions = ["reed"]\n', "rules.0.actions: unknown action 'reed'"),
    ('[[rules]]\nprincipals = ["bob"]\nactions = ["read"]\n', "rules.0.principals.0: Value error, 'bob' is not a"),
    ('[[rules]]\nprincipals = ["user:u"]\nactions = []\n', "rules.0.actions: List should have at least 1 item"),
    ('[[rules]]\nprincipals = ["user:u"]\nactions = ["read"]\neffect = "maybe"\n', "rules.0.effect: Input should be"),
    ('[[rules]]\nprincipal = ["user:u"]\nactions = ["read"]\n', "rules.0.principals: Field required"),
    ('[[rules]]\nprincipals = ["user:u"]\nactions = ["read"]\nbuckets = ["b"]\n', "rules.0.buckets: unknown key"),
    ('[[rules]\n', "Expected ']]' at the end of an array declaration (at line 1"),
])
def test_bad_files_stop_the_start_with_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        policy_of(tmp_path, text)
    assert str(caught.value).startswith(f"auth.policy_file: {tmp_path / 'policy.toml'}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        load_policy(Settings.model_validate({"auth": {"policy_file": str(tmp_path / "absent.toml")}}), OPERATIONS)


def test_the_example_policy_loads_and_says_what_it_means() -> None:
    policy = load_policy(Settings.model_validate({"auth": {"policy_file": str(EXAMPLE)}}), OPERATIONS)
    assert allows(policy, "alice", "GetObject", "datasets", "train/0001.tar")
    assert allows(policy, "alice", "UploadPart", "datasets", "scratch/ckpt")
    assert not allows(policy, "alice", "PutObject", "datasets", "train/0001.tar")
    assert allows(policy, None, "GetObject", "datasets", "public/readme")
    assert allows(policy, "carol", "DeleteObject", "datasets", "train/0001.tar")
    assert not allows(policy, "carol", "DeleteObject", "datasets", "published/model")


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["policy", "check", "--policy-file", str(EXAMPLE), *args])
    return code, capsys.readouterr().out


def test_cli_says_allowed_and_which_rule(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(capsys, "--user", "alice", "--action", "read", "s3://datasets/train/x")
    assert code == 0
    assert out == ("allowed: alice read s3://datasets/train/x (GetObject, HeadObject, GetObjectAttributes): "
                   "policy.example.toml rules.0 (allow group:ml-team read, list on s3://datasets/*)\n")


def test_cli_says_denied_and_why(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(capsys, "--user", "alice", "--action", "PutObject", "s3://datasets/train/x")
    assert code == 1
    assert out == ("denied: alice PutObject s3://datasets/train/x (PutObject): no rule of policy.example.toml "
                   "allows it (default deny)\n")
    code, out = check(capsys, "--user", "dan", "--group", "ops", "--action", "delete", "s3://datasets/published/m")
    assert code == 1 and "rules.4 (deny group:ops delete on s3://datasets/published/*)" in out


def test_cli_groups_and_anonymous(capsys: pytest.CaptureFixture[str]) -> None:
    assert check(capsys, "--user", "dan", "--group", "ml-team", "--action", "list", "s3://datasets/")[0] == 0
    code, out = check(capsys, "--action", "read", "s3://datasets/public/a")
    assert code == 0 and out.startswith("allowed: anonymous read s3://datasets/public/a")
    code, out = check(capsys, "--action", "read", "s3://datasets/train/a")
    assert code == 1 and out.startswith("denied: anonymous read")


def test_cli_refuses_what_it_cannot_judge(capsys: pytest.CaptureFixture[str]) -> None:
    assert check(capsys, "--user", "u", "--action", "reed", "s3://b/k")[0] == 2
    assert check(capsys, "--user", "u", "--action", "read", "http://b/k")[0] == 2
    assert main(["policy", "check", "--policy-file", "/nonexistent.toml", "--action", "read", "s3://b/k"]) == 2


async def _receive() -> dict[str, object]:
    return {"type": "http.request", "body": b""}


def judge(policy: Policy, operation: str, path: str, query: str, user: str) -> bool:
    """authorize() on a request as the worker builds it: True if allowed."""
    request = Request({"method": BY_NAME[operation].method, "path": path, "query_string": query.encode(),
                       "headers": []}, _receive)
    request.user = user
    try:
        authorize(policy, request, BY_NAME[operation])
    except S3Error as error:
        assert (error.code, error.status, error.message) == ("AccessDenied", 403, "Access Denied")  # no rule told
        return False
    return True


def test_only_listings_are_judged_on_their_prefix_parameter(tmp_path: Path) -> None:
    policy = policy_of(tmp_path, '[[rules]]\nprincipals = ["user:u"]\nbucket = "b"\nprefix = "p/"\n'
                                 'actions = ["list", "tagging", "multipart", "delete"]\n')
    assert judge(policy, "ListObjectsV2", "/b", "list-type=2&prefix=p/", "u")
    assert judge(policy, "ListObjects", "/b", "prefix=p/x", "u")
    assert judge(policy, "ListMultipartUploads", "/b", "uploads&prefix=p/", "u")
    assert not judge(policy, "ListObjectsV2", "/b", "list-type=2", "u")
    # a prefix parameter does not put the bucket itself, its tags or its deletion within a rule for a prefix
    assert not judge(policy, "PutBucketTagging", "/b", "tagging&prefix=p/", "u")
    assert not judge(policy, "DeleteBucket", "/b", "prefix=p/", "u")
    assert not judge(policy, "HeadBucket", "/b", "prefix=p/", "u")
    assert judge(policy, "GetObjectTagging", "/b/p/k", "tagging", "u")


def test_cli_judges_each_operation_on_what_the_worker_would(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(capsys, "--user", "alice", "--action", "tagging", "s3://datasets/scratch/x")
    assert code == 1
    assert out.splitlines() == [
        "denied: alice tagging s3://datasets/scratch/x (GetBucketTagging, PutBucketTagging, DeleteBucketTagging): "
        "no rule of policy.example.toml allows it (default deny)",
        "allowed: alice tagging s3://datasets/scratch/x (GetObjectTagging, PutObjectTagging, DeleteObjectTagging): "
        "policy.example.toml rules.1 (allow group:ml-team write, delete, multipart, tagging on s3://datasets/scratch/*)"]
