"""Origin credentials that really expire: a worker whose only credentials come from a ``credential_process``
(through awscrt's chain), each answer a new access key valid for a few seconds, reads cold objects from a moto
origin through a relay that records the access key of every request it carries.

moto accepts any key, so the proof is in the relay's record: reads go on across several expiries, byte for byte;
the origin sees one key after another, in order; and no request reaches it signed with a key past its expiry.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

from rig.origin import CountingProxy
from tests.conftest import make_client
from tests.e2e.conftest import StartWorker

LIFETIME_S = 8  # each answer of the process expires this long after it is given
READ_FOR_S = 18.0
PROCESS = """\
import datetime, json, pathlib, sys
record = pathlib.Path(sys.argv[1])
n = len(record.read_text().splitlines()) + 1 if record.exists() else 1
expiration = datetime.datetime.now(datetime.UTC).replace(microsecond=0) + datetime.timedelta(seconds={lifetime})
with record.open("a") as out:
    out.write(f"ROTATING{{n}} {{expiration.timestamp()}}\\n")
print(json.dumps({{"Version": 1, "AccessKeyId": f"ROTATING{{n}}", "SecretAccessKey": f"secret-{{n}}",
                  "SessionToken": f"token-{{n}}", "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}}))
"""


def test_origin_reads_continue_across_expiring_credentials(
        counting: CountingProxy, origin_s3, start_worker: StartWorker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bucket = f"cred-{uuid.uuid4().hex[:10]}"
    origin_s3.create_bucket(Bucket=bucket)
    bodies = {f"obj-{i:03d}": os.urandom(1000 + i) for i in range(int(READ_FOR_S / 0.3) + 10)}
    for key, body in bodies.items():
        origin_s3.put_object(Bucket=bucket, Key=key, Body=body)

    script, record, config = tmp_path / "process.py", tmp_path / "issued.txt", tmp_path / "aws-config"
    script.write_text(PROCESS.format(lifetime=LIFETIME_S))
    config.write_text(f"[default]\ncredential_process = {sys.executable} {script} {record}\n")
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "default",
           "AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
           "AWS_EC2_METADATA_DISABLED": "true"}
    worker = start_worker(counting.url, env=env)
    s3 = make_client(worker.url)

    started = time.time()
    keys = iter(bodies)
    read = 0
    while time.time() - started < READ_FOR_S:
        key = next(keys)
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == bodies[key]  # cold: from the origin
        read += 1
        time.sleep(0.3)

    issued = {key: float(expiry) for key, expiry in (line.split() for line in record.read_text().splitlines())}
    seen = [s for s in counting.requests() if s.path == f"/{bucket}" or s.path.startswith(f"/{bucket}/")]
    assert len(seen) >= read
    used = [s.access_key for s in seen]
    assert set(used) <= set(issued), used  # every request signed, each with a key the process gave
    distinct = list(dict.fromkeys(used))
    assert len(distinct) >= 3, distinct  # at least two rotations while reading
    assert distinct == sorted(distinct, key=lambda k: int(k.removeprefix("ROTATING")))  # one after another
    late = [(s.access_key, s.at, issued[s.access_key]) for s in seen if s.at >= issued[s.access_key or ""]]
    assert late == []  # refreshed before each expiry, never after
    log = worker.log()
    for key in distinct:
        assert f"origin credentials: access key {key}, expiring" in log
    assert "secret-1" not in log and "token-1" not in log
