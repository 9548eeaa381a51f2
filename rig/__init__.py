"""The rig: the real processes that tests and benchmarks run s3cache among, in one place.

It owns starting, waiting for and stopping every process they need, each on a free 127.0.0.1 port and
stopped by its PID, and the readings taken from them:

- ``rig.processes``: ``Worker`` (one ``s3cache serve``), ``free_port``, ``wait_http``, ``stop_process``,
  ``sigterm_raises``, ``s3_env`` (a CLI client's environment), ``scrape`` (a worker's Prometheus samples);
- ``rig.origin``: an S3 origin, ``MotoOrigin`` (moto's server), seen through ``CountingProxy`` (counts and
  can delay what reaches it), in-process or in a child process of its own (``ProxyProcess``);
- ``rig.redis``: ``RedisServer``, a throwaway redis-server;
- ``rig.nginx``: ``Nginx`` running the shipped ``deploy/nginx/s3cache.conf``, and ``start_nginx``;
- ``rig.cluster``: ``Cluster``, nginx in front of three workers sharing one Redis and one origin;
- ``rig.bench``: the benchmarks' ``Rig``, a slowed origin and workers over it;
- ``rig.report``: what benchmarks measure with and write (sizes, /proc readings, report files).

It is not shipped (setuptools packages only proxy, cache and conf); it imports s3cache only by running it.
Tests and benchmarks import it from the repository root; it never imports ``tests`` or ``benchmarks``.
"""
