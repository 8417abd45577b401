# Shared by the bench scripts (sourced, from the repository root): wrk and nginx
# installed, two cores to pin the proxy and the load apart, a release build, a work
# directory and the processes started in it cleaned up on exit, and two free ports
# ($up_port for the upstream, $proxy_port for the proxy).
need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx; then
  apt-get update -qq && apt-get install -y -qq wrk nginx >/dev/null
fi
if [ "$(nproc)" -lt 2 ]; then echo "needs 2 cores to pin proxy and load apart" >&2; exit 1; fi

cargo build --release --quiet
bin=target/release/understudy
# shellcheck source=scripts/work_setup.sh
. scripts/work_setup.sh
up_port=$(free_port)
proxy_port=$(free_port)

# wrk's latency percentile `$1` (50%, 99%) from its --latency output on stdin.
pct() { awk -v p="$1" '$1==p {print $2}'; }

# CPU seconds (user+sys) a process has used, from /proc/<pid>/stat.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14+$15)/hz}' "/proc/$1/stat"; }
