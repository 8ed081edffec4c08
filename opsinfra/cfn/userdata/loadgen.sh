#!/bin/bash
# First boot of a load-generation instance (the loadgen stack): the master or a worker, by LOADGEN_ROLE.
# The hard stop comes first: whatever happens later, the instance powers off at StopAt, and the launch template's
# InstanceInitiatedShutdownBehavior=terminate turns that into a termination.
set -euo pipefail

# Empty on an instance; the tests run the script under a scratch directory.
root="${SHOP_ROOT:-}"
home="$root/opt/loadgen"
mkdir -p "$root/etc" "$home/tests" "$home/results"
cat > "$root/etc/loadgen.env" <<'LOADGEN_EOF'
AWS_REGION={{Region}}
LOADGEN_ROLE={{Role}}
LOADGEN_STOP_AT={{StopAt}}
LOADGEN_BUCKET={{Bucket}}
LOADGEN_PREFIX={{Prefix}}
LOADGEN_MASTER={{MasterIp}}
LOADGEN_WORKERS={{Workers}}
LOADGEN_HOST={{TargetHost}}
LOADGEN_PEAK_USERS={{PeakUsers}}
LOADGEN_TIME_SCALE={{TimeScale}}
LOADGEN_EOF
set -a
# shellcheck source=/dev/null
. "$root/etc/loadgen.env"
set +a

log() { echo "loadgen: $*"; }

stop_at=$(date -u -d "$LOADGEN_STOP_AT" '+%Y-%m-%d %H:%M:%S UTC')
systemd-run --unit loadgen-stop --on-calendar="$stop_at" /usr/sbin/shutdown -h now
log "hard stop at $stop_at"

dnf install -y python3.11 python3.11-pip
python3.11 -m venv "$home/venv"
# The fleet's only download from outside AWS: locust at the version the repository pins (requirements/dev.in).
"$home/venv/bin/pip" install --quiet "locust=={{LocustVersion}}"
aws s3 cp --only-show-errors --region "$AWS_REGION" "s3://$LOADGEN_BUCKET/$LOADGEN_PREFIX/loadtests.tar.gz" - \
  | tar -xz -C "$home/tests"
cd "$home/tests"

if [[ "$LOADGEN_ROLE" == "worker" ]]; then
  # A worker retries until the master listens; the master's address is fixed by the template.
  exec "$home/venv/bin/locust" -f loadtests/locustfile.py --worker --master-host "$LOADGEN_MASTER"
fi

started=$(date -u '+%Y%m%dT%H%M%SZ')
results="s3://$LOADGEN_BUCKET/$LOADGEN_PREFIX/results/$started/"
status=0
"$home/venv/bin/locust" -f loadtests/locustfile.py --master --headless --expect-workers "$LOADGEN_WORKERS" \
  --host "$LOADGEN_HOST" --peak-users "$LOADGEN_PEAK_USERS" --time-scale "$LOADGEN_TIME_SCALE" \
  --results-dir "$home/results" --csv "$home/results/locust" --html "$home/results/report.html" || status=$?
echo "$status" > "$home/results/exit-code"
aws s3 cp --only-show-errors --recursive --region "$AWS_REGION" "$home/results" "$results"
log "results in $results (locust exit $status)"
# The run is over: the master goes now, the workers at StopAt (or when the stack is destroyed).
shutdown -h now
