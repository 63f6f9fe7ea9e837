#!/usr/bin/env bash
# Builds the service's container image and runs it the way production does: read-only root,
# non-root user, no capabilities, host network, against the host's PostgreSQL and Redis, a
# one-off `migrate` before the server. Waits for /readyz, runs one GraphQL query, calls the
# healthcheck subcommand inside the container, stops it with SIGTERM (it must drain and exit
# 0), and removes the container and the image. Any failed step fails the script.
#
#   deploy/image-test.sh                 from the repository root
#
# The image is built by buildah from deploy/Containerfile.local (the final stage of the
# Dockerfile, from a binary compiled here), because the Dockerfile's golang builder image
# needs a registry.
#
# Modes (IMAGE_TEST_MODE): `image` needs podman and buildah and fails without them (CI runs
# this one); `binary` tests the binary as the image runs it: CGO_ENABLED=0, started with
# `env -i` in an empty directory it cannot write, as uid 65532 (setpriv) when run as root;
# `auto` (the default) is `image` when podman and buildah are installed, else `binary` with a
# warning.
#
# Environment: DATABASE_URL (a PostgreSQL URL whose user may CREATEDB; the test works in a
# database of its own, dropped at the end), REDIS_URL (keys under a prefix of its own, deleted
# at the end), IMAGE_TEST_PORT (a free one in 20000–29999), PODMAN_RUNTIME (runc when
# installed: crun refuses hybrid cgroup v1/v2 hosts), PODMAN_RUN_OPTS (ulimits no higher than
# this host allows; podman's defaults need CAP_SYS_RESOURCE).
set -euo pipefail

cd "$(dirname "$0")/.."
mode=${IMAGE_TEST_MODE:-auto}
# A free port unless told: other runs of this script may share the machine (host network).
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 10000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  echo "no free port found" >&2; return 1
}
port=${IMAGE_TEST_PORT:-$(free_port)}
admin_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379/0}
image=localhost/shop-api:image-test-$$
container=shop-api-image-test-$$
work=$(mktemp -d)
chmod 0755 "$work" # the binary mode's non-root user reads the binary from here

step() { printf '\n== %s\n' "$*"; }
fail() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

case $mode in
auto)
  if command -v podman >/dev/null && command -v buildah >/dev/null; then mode=image; else
    echo "WARNING: podman/buildah not installed: testing the binary as the image runs it, not the image" >&2
    mode=binary
  fi ;;
image) command -v podman >/dev/null && command -v buildah >/dev/null || fail "IMAGE_TEST_MODE=image needs podman and buildah" ;;
binary) ;;
*) fail "IMAGE_TEST_MODE: want auto, image or binary, got $mode" ;;
esac
command -v psql >/dev/null && command -v redis-cli >/dev/null || fail "psql and redis-cli are needed to prepare and clean up"

podman_cmd=(podman)
if [[ -n ${PODMAN_RUNTIME:-} ]]; then podman_cmd+=(--runtime "$PODMAN_RUNTIME")
elif command -v runc >/dev/null; then podman_cmd+=(--runtime runc); fi
read -r -a run_opts <<<"${PODMAN_RUN_OPTS:---ulimit nofile=$(ulimit -n):$(ulimit -Hn) --ulimit nproc=32768:32768}"

# A database and a Redis prefix of the test's own on the shared services.
db=shop_image_test_$$_$RANDOM
prefix=shop-image-test-$$-$RANDOM:
base=${admin_url%%\?*}
db_url="${base%/*}/$db${admin_url#"$base"}"

server_pid=
cleanup() {
  if [[ $mode == image ]]; then
    "${podman_cmd[@]}" rm -f -t 0 "$container" >/dev/null 2>&1 || true
    podman rmi -f "$image" >/dev/null 2>&1 || true
  elif [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null || true
  fi
  psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -u "$redis_url" --scan --pattern "$prefix*" | xargs -r redis-cli -u "$redis_url" del >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

step "services: database $db, Redis prefix $prefix"
psql "$admin_url" -qc "CREATE DATABASE $db" || fail "cannot create a database with DATABASE_URL"
redis-cli -u "$redis_url" ping >/dev/null || fail "Redis at REDIS_URL does not answer"
# What production gives the image: the services and a key. A merchant who signs up creates
# the products of the query below (production never creates the demo accounts).
server_env=(PORT="$port" APP_ENV=production DATABASE_URL="$db_url" REDIS_URL="$redis_url" REDIS_PREFIX="$prefix"
  JWT_SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')")

step "build the binary (CGO_ENABLED=0, -trimpath, -s -w)"
mkdir -p "$work/context/data" "$work/empty"
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$work/context/shop-api" . || fail "go build"
go version -m "$work/context/shop-api" | grep -q 'CGO_ENABLED=0' || fail "the binary was not built with CGO_ENABLED=0"
ls -l "$work/context/shop-api"

# The server's answers, whichever way it runs.
wait_ready() {
  for _ in $(seq 60); do
    if curl -fsS -m 2 "http://127.0.0.1:$port/readyz" >"$work/readyz" 2>/dev/null; then
      echo "readyz: $(cat "$work/readyz")"
      return 0
    fi
    sleep 0.5
  done
  fail "/readyz did not answer 200 within 30 s"
}
gql() {
  curl -fsS -m 5 "http://127.0.0.1:$port/graphql" -H 'Content-Type: application/json' "$@"
}
seed() {
  local token body
  body=$(gql -d '{"query":"mutation { signUp(input: {email: \"merchant-'"$RANDOM"'@image.example\", name: \"Image merchant\", password: \"image-password\", role: MERCHANT}) { token } }"}') ||
    fail "signUp as a merchant"
  token=$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' <<<"$body")
  [[ -n $token ]] || fail "the merchant could not sign up: $body"
  for n in 1 2 3; do
    body=$(gql -H "Authorization: Bearer $token" \
      -d '{"query":"mutation { createProduct(input: {name: \"Image product '"$n"'\", price: 1250, stock: 5}) { product { id } userErrors { code } } }"}') ||
      fail "createProduct"
    grep -q '"userErrors":\[\]' <<<"$body" || fail "createProduct: $body"
  done
  echo "a merchant signed up and created 3 products"
}
query() {
  local body
  body=$(gql -d '{"query":"{ products(first: 2) { totalCount nodes { name price { amount currency } } } }"}') \
    || fail "POST /graphql"
  echo "graphql: $body"
  grep -q '"data":{"products":{"totalCount":3' <<<"$body" || fail "want the 3 products the merchant created, got $body"
  grep -q '"errors"' <<<"$body" && fail "the query returned errors"
  return 0
}
# healthcheck runs the binary's healthcheck subcommand ("$@" runs it where the server runs).
healthcheck() {
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  [[ $rc == 0 ]] || fail "healthcheck exited $rc: $out"
  echo "healthcheck: ok"
}

if [[ $mode == binary ]]; then
  as_user=() who=$(id -un)
  if [[ $(id -u) == 0 ]]; then
    command -v setpriv >/dev/null || fail "setpriv (util-linux) is needed to drop root"
    as_user=(setpriv --reuid=65532 --regid=65532 --clear-groups --no-new-privs) who="uid 65532"
  fi
  step "run the binary with only its environment, in an empty directory, as $who"
  (cd "$work/empty" && exec env -i "${server_env[@]}" "${as_user[@]}" "$work/context/shop-api" migrate) | tee "$work/migrate.log"
  grep -q 'migrations applied' "$work/migrate.log" || fail "migrate"
  (cd "$work/empty" && exec env -i "${server_env[@]}" "${as_user[@]}" "$work/context/shop-api") >"$work/server.log" 2>&1 &
  server_pid=$!
  wait_ready
  seed
  query
  healthcheck env -i PORT="$port" "${as_user[@]}" "$work/context/shop-api" healthcheck
  step "SIGTERM: drain and exit 0"
  kill -TERM "$server_pid"
  rc=0; wait "$server_pid" || rc=$?
  server_pid=
  cat "$work/server.log"
  [[ $rc == 0 ]] || fail "the server exited $rc after SIGTERM"
  [[ -z $(ls -A "$work/empty") ]] || fail "the server wrote to its directory: $(ls -A "$work/empty")"
  echo; echo "PASS (binary mode)"
  exit 0
fi

step "build the image with buildah (deploy/Containerfile.local)"
cp /etc/ssl/certs/ca-certificates.crt "$work/context/" || fail "no CA bundle at /etc/ssl/certs/ca-certificates.crt"
buildah bud --format docker -f deploy/Containerfile.local -t "$image" "$work/context" || fail "buildah bud"
user=$(podman image inspect "$image" --format '{{.Config.User}}')
[[ $user == 65532:65532 ]] || fail "image user is '$user', want 65532:65532"
podman image inspect "$image" --format '{{json .Config.Healthcheck}}' | grep -q healthcheck || fail "the image has no HEALTHCHECK"
if "${podman_cmd[@]}" run --rm "${run_opts[@]}" --entrypoint /bin/sh "$image" -c true >/dev/null 2>&1; then
  fail "the image has a shell"
fi

# Podman schedules HEALTHCHECK with systemd timers, which hosts without systemd lack: the
# step below runs the same command with podman exec instead.
run=("${podman_cmd[@]}" run "${run_opts[@]}" --read-only --cap-drop=ALL --security-opt=no-new-privileges
  --no-healthcheck --network=host)
for kv in "${server_env[@]}"; do run+=(-e "$kv"); done

step "one-off migrate, as the compose service and the Kubernetes Job run it"
"${run[@]}" --rm "$image" migrate | tee "$work/migrate.log" || fail "podman run ... migrate"
grep -q 'migrations applied' "$work/migrate.log" || fail "migrate printed no confirmation"

step "run the image: read-only root, no capabilities, the host's PostgreSQL and Redis"
"${run[@]}" -d --name "$container" "$image" >/dev/null || fail "podman run -d"
wait_ready
seed
query
healthcheck "${podman_cmd[@]}" exec "$container" /shop-api healthcheck
uid=$("${podman_cmd[@]}" top "$container" huser 2>/dev/null | tail -1 | tr -d ' ')
[[ $uid == 65532 ]] || fail "the server runs as '$uid', want 65532"

step "SIGTERM: drain and exit 0"
"${podman_cmd[@]}" stop -t 30 "$container" >/dev/null || fail "podman stop"
rc=$("${podman_cmd[@]}" inspect "$container" --format '{{.State.ExitCode}}')
"${podman_cmd[@]}" logs "$container"
[[ $rc == 0 ]] || fail "the container exited $rc after SIGTERM"
"${podman_cmd[@]}" logs "$container" 2>&1 | grep -q 'shutting down' || fail "no drain in the log"
echo; echo "PASS (image mode)"
