#!/bin/sh
# Writes this Redis pod's redis.conf and sentinel.conf into /conf (an emptyDir: Sentinel rewrites its own
# file as it learns the topology). Runs as the init container of every s3cache-redis-node pod.
set -eu

domain="s3cache-redis-nodes.${POD_NAMESPACE}.svc.cluster.local"
self="${POD_NAME}.${domain}"
sentinels="s3cache-redis-sentinel.${POD_NAMESPACE}.svc.cluster.local"

# Which node is the master now: the sentinels know after a failover, and a restarted node must come back as
# a replica of the new master, not as a second master. No sentinel answers (the first start, or every node
# was down at once): node 0 is the master.
master=""
if answer=$(timeout 5 redis-cli -h "$sentinels" -p 26379 sentinel get-master-addr-by-name s3cache 2>/dev/null); then
  master=$(printf '%s\n' "$answer" | head -n 1)
fi
case "$master" in
  *" "*) master="" ;;                  # an error reply, not a host name
esac
if [ -z "$master" ]; then
  master="s3cache-redis-node-0.${domain}"
fi
echo "s3cache-redis: this is ${self}, master ${master}"

cat > /conf/redis.conf <<CONF
port 6379
bind * -::*
protected-mode no
# The placement map is rebuilt by the workers after a loss: nothing is kept on disk.
save ""
appendonly no
maxmemory-policy noeviction
dir /data
replica-announce-ip ${self}
CONF
if [ "$master" != "$self" ]; then
  echo "replicaof ${master} 6379" >> /conf/redis.conf
fi

cat > /conf/sentinel.conf <<CONF
port 26379
dir /tmp
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip ${self}
sentinel monitor s3cache ${master} 6379 2
sentinel down-after-milliseconds s3cache 5000
sentinel failover-timeout s3cache 60000
sentinel parallel-syncs s3cache 1
CONF
