#!/bin/bash
# First boot of an app instance (cloud-init runs this once). What must happen on every boot lives in
# shop-release.service. No `set -x`: the reference's trace wrote its database password into the instance logs.
set -euo pipefail

# Empty on an instance; the tests run the script under a scratch directory.
root="${SHOP_ROOT:-}"

# Amazon Linux 2023's python3 is 3.9, too old for Django 5.2. nginx is the front (shop-nginx.service): only its
# binary is used, with the release's config (shop/nginx), never the package's nginx.service.
# The baked image (bake_image) has them: rpm says so, and dnf (and its repository metadata) is skipped.
packages=(python3.11 python3.11-pip amazon-cloudwatch-agent nginx)
if rpm -q "${packages[@]}" >/dev/null 2>&1; then
  echo "user-data: packages already installed (baked image)"
else
  dnf install -y "${packages[@]}"
fi

if ! id shop >/dev/null 2>&1; then
  useradd --system --home-dir /opt/shop --no-create-home --shell /sbin/nologin shop
fi
install -d -m 0755 "$root/etc/shop" "$root/opt/shop" "$root/opt/shop/releases" "$root/usr/local/sbin" \
  "$root/etc/systemd/system" "$root/etc/logrotate.d" "$root/opt/aws/amazon-cloudwatch-agent/etc"
# Readable by the CloudWatch agent, whichever user it runs as; the logs hold no secret.
install -d -m 0755 -o shop -g shop "$root/var/log/shop"

# Names and ARNs only: the app reads its secrets with boto3 at start, so none sits in a file or the environment.
cat > "$root/etc/shop/instance.env" <<'SHOP_EOF'
AWS_REGION={{Region}}
SHOP_RELEASE_PARAMETER={{ReleaseParameter}}
SHOP_ALLOW_PARAMETER={{AllowParameter}}
SHOP_LIFECYCLE_HOOK={{LifecycleHook}}
SHOP_APP_PORT={{AppPort}}
SHOP_BOOT_TIMEOUT={{BootTimeout}}
SHOP_EOF

cat > "$root/etc/shop/app.env" <<'SHOP_EOF'
AWS_REGION={{Region}}
AWS_DEFAULT_REGION={{Region}}
DJANGO_DEBUG=0
DJANGO_ALLOWED_HOSTS={{AllowedHosts}}
APP_SECRET_ARN={{AppSecretArn}}
DB_SECRET_ARN={{DbSecretArn}}
DATABASE_URL=postgres://{{ProxyEndpoint}}:5432/{{DatabaseName}}
DATABASE_PROXY=rds
REDIS_URL=rediss://{{CacheEndpoint}}:6379/0
TRUSTED_PROXY_COUNT=3
GUNICORN_WORKERS={{GunicornWorkers}}
GUNICORN_THREADS={{GunicornThreads}}
METRICS_NAMESPACE={{MetricsNamespace}}
METRICS_EMF_FILE=/var/log/shop/metrics.log
SHOP_EOF

cat > "$root/etc/shop/migrate.env" <<'SHOP_EOF'
DB_MASTER_SECRET_ARN={{DbMasterSecretArn}}
DB_APP_SECRET_ARN={{DbSecretArn}}
SHOP_EOF
chmod 0644 "$root/etc/shop/instance.env" "$root/etc/shop/app.env"
chmod 0600 "$root/etc/shop/migrate.env"

cat > "$root/usr/local/sbin/shop-release" <<'SHOP_EOF'
{{File:shop-release.sh}}
SHOP_EOF
cat > "$root/usr/local/sbin/shop-migrate" <<'SHOP_EOF'
{{File:shop-migrate.sh}}
SHOP_EOF
cat > "$root/usr/local/sbin/shop-db-role" <<'SHOP_EOF'
{{File:shop-db-role.py}}
SHOP_EOF
chmod 0755 "$root/usr/local/sbin/shop-release" "$root/usr/local/sbin/shop-migrate" "$root/usr/local/sbin/shop-db-role"

cat > "$root/etc/systemd/system/shop.service" <<'SHOP_EOF'
{{File:shop.service}}
SHOP_EOF
cat > "$root/etc/systemd/system/shop-release.service" <<'SHOP_EOF'
{{File:shop-release.service}}
SHOP_EOF
cat > "$root/etc/systemd/system/shop-nginx.service" <<'SHOP_EOF'
{{File:shop-nginx.service}}
SHOP_EOF
cat > "$root/etc/logrotate.d/shop" <<'SHOP_EOF'
{{File:logrotate.conf}}
SHOP_EOF
cat > "$root/opt/aws/amazon-cloudwatch-agent/etc/shop.json" <<'SHOP_EOF'
{{File:cloudwatch-agent.json}}
SHOP_EOF

amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c "file:/opt/aws/amazon-cloudwatch-agent/etc/shop.json"

systemctl daemon-reload
systemctl enable shop-release.service
# --no-block: cloud-init must not wait for the release; the launch lifecycle hook holds the instance instead.
systemctl start --no-block shop-release.service
