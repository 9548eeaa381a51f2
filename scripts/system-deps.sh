#!/usr/bin/env bash
# Debian packages s3cache's tests and benchmarks run for real: nginx, redis-server, wrk, and the S3 clients
# rclone and s3cmd (tests/clients).
# Installs what is missing when running as root; otherwise says what to install.
set -euo pipefail
need=()
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
for tool in nginx redis-server wrk rclone s3cmd; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || need+=("$tool")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Installing nginx or redis may start system services on their default ports; the tests use their own.
else
  echo "missing Debian packages: ${need[*]} (run as root to install them, or install them yourself)" >&2
  exit 1
fi
