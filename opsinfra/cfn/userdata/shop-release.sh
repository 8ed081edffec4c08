#!/bin/bash
# Every boot (shop-release.service): install the release named in the SSM parameter when it is not the current
# one, start gunicorn and nginx in front of it, wait for /health through nginx, then complete the launch
# lifecycle action. The hook fires when an
# instance first boots into the warm pool and again when it leaves it, so a warmed instance comes back with
# the current release, not the one it first booted with.
# `shop-release install VERSION BUNDLE` only installs a release (shop-migrate does, before any instance switches).
set -euo pipefail

root="${SHOP_ROOT:-}"
# Absent while an image is baked (`install` only): the image carries no configuration.
if [[ -f "$root/etc/shop/instance.env" ]]; then
  # shellcheck source=/dev/null
  . "$root/etc/shop/instance.env"
fi
releases="$root/opt/shop/releases"
current_link="$root/opt/shop/current"
imds="http://169.254.169.254/latest"

log() { echo "shop-release: $*"; }

metadata() {
  local token
  token=$(curl -fsS -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" "$imds/api/token")
  curl -fsS -H "X-aws-ec2-metadata-token: $token" "$imds/meta-data/$1"
}

release_field() {
  python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

install_release() {
  local version="$1" bundle="$2" target="$releases/$1" download
  download=$(mktemp -d)
  log "installing $version from $bundle"
  aws s3 cp --only-show-errors --region "$AWS_REGION" "$bundle" "$download/bundle.tar.gz"
  rm -rf "$target"
  mkdir -p "$target"
  tar -xzf "$download/bundle.tar.gz" -C "$target"
  rm -rf "$download"
  python3.11 -m venv "$target/venv"
  # The bundle carries its own wheels: an instance never reaches PyPI.
  "$target/venv/bin/pip" install --quiet --no-index --find-links "$target/wheels" -r "$target/requirements/base.txt"
  (
    set -a
    # collectstatic needs no secret or endpoint: without app.env (an image bake) it runs on the defaults.
    if [[ -f "$root/etc/shop/app.env" ]]; then
      # shellcheck source=/dev/null
      . "$root/etc/shop/app.env"
    fi
    set +a
    SHOP_VERSION="$version" "$target/venv/bin/python" "$target/manage.py" collectstatic --noinput --verbosity 0
  )
  # shop.service sees the release read-only (ProtectSystem=strict): compile the bytecode now.
  "$target/venv/bin/python" -m compileall -q "$target"
  touch "$target/.installed"
}

valid_version() {
  [[ "$1" =~ ^[A-Za-z0-9._+-]+$ ]]
}

ensure_installed() {
  if [[ -f "$releases/$1/.installed" ]]; then
    log "release $1 is installed"
  else
    install_release "$1" "$2"
  fi
}

switch_to() {
  local version="$1" previous="$2" old name
  ln -sfn "releases/$version" "$current_link"
  echo "SHOP_VERSION=$version" > "$root/etc/shop/release.env"
  for old in "$releases"/*; do
    name=$(basename "$old")
    if [[ "$name" != "$version" && "$name" != "$previous" ]]; then
      rm -rf "$old"
    fi
  done
}

write_front_config() {
  # nginx's config comes from the release (shop/nginx), sized for app.env's workers and threads.
  (
    set -a
    # shellcheck source=/dev/null
    . "$root/etc/shop/app.env"
    set +a
    cd "$current_link"
    venv/bin/python -m shop.nginx render --listen "$SHOP_APP_PORT" --upstream unix:/run/shop/gunicorn.sock \
      --run-dir /run/shop-nginx --log-dir /var/log/shop --workers "$GUNICORN_WORKERS" \
      --threads "$GUNICORN_THREADS" --user nginx
  ) > "$root/etc/shop/nginx.conf.new"
  mv "$root/etc/shop/nginx.conf.new" "$root/etc/shop/nginx.conf"
}

wait_for_health() {
  local deadline=$((SECONDS + SHOP_BOOT_TIMEOUT))
  while ((SECONDS < deadline)); do
    if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$SHOP_APP_PORT/health"; then
      return 0
    fi
    sleep 2
  done
  return 1
}

complete_lifecycle() {
  local result="$1" instance group
  instance=$(metadata instance-id)
  # Needs instance metadata tags on (the launch template's InstanceMetadataTags).
  if ! group=$(metadata tags/instance/aws:autoscaling:groupName); then
    log "not in an Auto Scaling group: no lifecycle action to complete"
    return 0
  fi
  if aws autoscaling complete-lifecycle-action --region "$AWS_REGION" \
    --lifecycle-hook-name "$SHOP_LIFECYCLE_HOOK" --auto-scaling-group-name "$group" \
    --instance-id "$instance" --lifecycle-action-result "$result"; then
    log "lifecycle action completed: $result"
  else
    log "no pending lifecycle action (an ordinary reboot)"
  fi
}

write_allow_list() {
  # RATELIMIT_ALLOW_IPS (docs/loadgen.md); prints "changed" if it changed
  local allowed file="$root/etc/shop/allow.env"
  allowed=$(aws ssm get-parameter --region "$AWS_REGION" --name "$SHOP_ALLOW_PARAMETER" \
    --query Parameter.Value --output text 2>/dev/null) || allowed=""
  [[ "$allowed" =~ ^[0-9a-fA-F.:/,]*$ ]] || allowed=""
  if [[ "$(cat "$file" 2>/dev/null)" != "RATELIMIT_ALLOW_IPS=$allowed" ]]; then
    echo "RATELIMIT_ALLOW_IPS=$allowed" > "$file"
    echo changed
  fi
}

main() {
  local value version bundle current="" allow_changed
  value=$(aws ssm get-parameter --region "$AWS_REGION" --name "$SHOP_RELEASE_PARAMETER" \
    --query Parameter.Value --output text)
  version=$(release_field "$value" version)
  bundle=$(release_field "$value" bundle)
  if ! valid_version "$version"; then
    log "refusing release name $version"
    complete_lifecycle ABANDON
    exit 1
  fi
  if [[ -L "$current_link" ]]; then
    current=$(basename "$(readlink "$current_link")")
  fi
  allow_changed=$(write_allow_list)
  if [[ "$version" != "$current" || -n "$allow_changed" ]]; then
    ensure_installed "$version" "$bundle"
    switch_to "$version" "$current"
    systemctl restart shop.service
  else
    log "release $version is current"
    systemctl start shop.service
  fi
  write_front_config
  systemctl reload-or-restart shop-nginx.service
  if wait_for_health; then
    log "release $version answers /health"
    complete_lifecycle CONTINUE
  else
    log "release $version did not answer /health within ${SHOP_BOOT_TIMEOUT}s"
    complete_lifecycle ABANDON
    exit 1
  fi
}

if [[ "${1:-}" == install ]]; then
  if ! valid_version "${2:-}"; then
    log "refusing release name ${2:-}"
    exit 2
  fi
  ensure_installed "$2" "$3"
else
  main
fi
