#!/bin/bash
# First boot of a load-generation instance (the loadgen stack): the master or a worker, by LOADGEN_ROLE.
# The hard stop comes first: whatever happens later, the instance powers off at StopAt, and the launch template's
# InstanceInitiatedShutdownBehavior=terminate turns that into a termination.
set -euo pipefail

root="${SHOP_ROOT:-}"
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
python3.11 -m venv /opt/loadgen/venv
# The fleet's only download from outside AWS: locust at the version the repository pins (requirements/dev.txt).
/opt/loadgen/venv/bin/pip install --quiet "locust=={{LocustVersion}}"
mkdir -p /opt/loadgen/tests /opt/loadgen/results
aws s3 cp --only-show-errors --region "$AWS_REGION" "s3://$LOADGEN_BUCKET/$LOADGEN_PREFIX/loadtests.tar.gz" - \
  | tar -xz -C /opt/loadgen/tests
cd /opt/loadgen/tests

if [[ "$LOADGEN_ROLE" == "worker" ]]; then
  # A worker retries until the master listens; the master's address is fixed by the template.
  exec /opt/loadgen/venv/bin/locust -f loadtests/locustfile.py --worker --master-host "$LOADGEN_MASTER"
fi

started=$(date -u '+%Y%m%dT%H%M%SZ')
status=0
/opt/loadgen/venv/bin/locust -f loadtests/locustfile.py --master --headless --expect-workers "$LOADGEN_WORKERS" \
  --host "$LOADGEN_HOST" --peak-users "$LOADGEN_PEAK_USERS" --time-scale "$LOADGEN_TIME_SCALE" \
  --results-dir /opt/loadgen/results --csv /opt/loadgen/results/locust --html /opt/loadgen/results/report.html \
  || status=$?
echo "$status" > /opt/loadgen/results/exit-code
aws s3 cp --only-show-errors --recursive --region "$AWS_REGION" /opt/loadgen/results \
  "s3://$LOADGEN_BUCKET/$LOADGEN_PREFIX/results/$started/"
log "results in s3://$LOADGEN_BUCKET/$LOADGEN_PREFIX/results/$started/ (locust exit $status)"
# The run is over: the master goes now, the workers at StopAt (or when the stack is destroyed).
/usr/sbin/shutdown -h now
