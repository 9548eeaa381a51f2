"""The suite that judges "never slower than the origin": ``python -m benchmarks run [--quick]``.

- ``run``: flags, the order of the workloads, the report files;
- ``stage``: the origin model (``moto_server``'s ranged moto behind rig.origin's throttling relay), the worker,
  nginx serving files, and the reference clients (boto3 pool, transfer manager);
- ``small``, ``large``, ``paths``, ``torch_epoch``, ``triton``, ``fanin``, ``rss``: one workload each, returning
  rows;
- ``rows``: a row, and the targets judged on rows; ``render``: the markdown; ``plots``: the PNGs.
"""
