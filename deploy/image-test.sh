#!/usr/bin/env bash
# Builds the service's container image and runs it the way production does: read-only root,
# non-root user, no capabilities, the database on a writable volume, a one-off `migrate`
# before the server. Waits for /readyz, runs one GraphQL query, calls the image's
# healthcheck, and stops it with SIGTERM (it must drain and exit 0). Any failed step fails
# the script.
#
#   deploy/image-test.sh                 from the repository root
#
# The image is built by buildah from deploy/Containerfile.local (the final stage of the
# Dockerfile, from a binary compiled here), because the Dockerfile's golang builder image
# needs a registry. Without podman and buildah (IMAGE_TEST_MODE=binary, or auto when they
# are missing) it tests the binary as the image runs it instead: CGO_ENABLED=0, started with
# `env -i` in an empty directory.
#
# Environment: IMAGE_TEST_MODE (auto|image|binary), IMAGE_TEST_PORT (18080),
# PODMAN_RUNTIME (runc when installed: crun refuses hybrid cgroup v1/v2 hosts),
# PODMAN_RUN_OPTS (ulimits no higher than this host allows; podman's defaults need
# CAP_SYS_RESOURCE).
set -euo pipefail

cd "$(dirname "$0")/.."
mode=${IMAGE_TEST_MODE:-auto}
port=${IMAGE_TEST_PORT:-18080}
image=localhost/shop-api:image-test
container=shop-api-image-test-$$
work=$(mktemp -d)

step() { printf '\n== %s\n' "$*"; }
fail() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

if [[ $mode == auto ]]; then
  if command -v podman >/dev/null && command -v buildah >/dev/null; then mode=image; else
    echo "podman/buildah not installed: testing the binary as the image runs it" >&2
    mode=binary
  fi
fi

podman_cmd=(podman)
if [[ -n ${PODMAN_RUNTIME:-} ]]; then podman_cmd+=(--runtime "$PODMAN_RUNTIME")
elif command -v runc >/dev/null; then podman_cmd+=(--runtime runc); fi
read -r -a run_opts <<<"${PODMAN_RUN_OPTS:---ulimit nofile=$(ulimit -n):$(ulimit -Hn) --ulimit nproc=32768:32768}"

server_pid=
cleanup() {
  if [[ $mode == image ]]; then
    "${podman_cmd[@]}" rm -f -t 0 "$container" >/dev/null 2>&1 || true
  elif [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

step "build the binary (CGO_ENABLED=0, -trimpath, -s -w)"
mkdir -p "$work/context/data" "$work/db" "$work/empty"
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
query() {
  local body
  body=$(curl -fsS -m 5 "http://127.0.0.1:$port/graphql" -H 'Content-Type: application/json' \
    -d '{"query":"{ products(first: 2) { totalCount nodes { name price { amount currency } } } }"}') \
    || fail "POST /graphql"
  echo "graphql: $body"
  grep -q '"data":{"products":{"totalCount":36' <<<"$body" || fail "want the 36 demo products, got $body"
  grep -q '"errors"' <<<"$body" && fail "the query returned errors"
  return 0
}
# healthcheck runs the binary's healthcheck subcommand ("$@" runs it where the server runs).
healthcheck() {
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  if [[ $rc == 0 ]]; then echo "healthcheck: ok"; return 0; fi
  if grep -q 'unknown command "healthcheck"' <<<"$out"; then
    echo "WARNING: this build has no healthcheck subcommand yet; the image's HEALTHCHECK would fail" >&2
    return 0
  fi
  fail "healthcheck exited $rc: $out"
}

if [[ $mode == binary ]]; then
  step "run the binary with only its environment, in an empty directory"
  (cd "$work/empty" && exec env -i PORT="$port" "$work/context/shop-api" migrate) | tee "$work/migrate.log"
  grep -q 'migrations applied' "$work/migrate.log" || fail "migrate"
  (cd "$work/empty" && exec env -i PORT="$port" "$work/context/shop-api") >"$work/server.log" 2>&1 &
  server_pid=$!
  wait_ready
  query
  healthcheck env -i PORT="$port" "$work/context/shop-api" healthcheck
  step "SIGTERM: drain and exit 0"
  kill -TERM "$server_pid"
  rc=0; wait "$server_pid" || rc=$?
  server_pid=
  cat "$work/server.log"
  [[ $rc == 0 ]] || fail "the server exited $rc after SIGTERM"
  [[ -z $(ls -A "$work/empty" | grep -v '^shop.db') ]] || fail "the server wrote more than its database: $(ls -A "$work/empty")"
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

# The volume stands for a PersistentVolume or emptyDir; the container user must write to it.
# Podman schedules HEALTHCHECK with systemd timers, which hosts without systemd lack: the
# step below runs the same command with podman exec instead.
chmod 0777 "$work/db"
run=("${podman_cmd[@]}" run "${run_opts[@]}" --read-only --cap-drop=ALL --security-opt=no-new-privileges
  --no-healthcheck --network=host -v "$work/db:/data" -e PORT="$port")

step "one-off migrate, as the compose service and the Kubernetes Job run it"
"${run[@]}" --rm "$image" migrate | tee "$work/migrate.log" || fail "podman run ... migrate"
grep -q 'migrations applied' "$work/migrate.log" || fail "migrate printed no confirmation"

step "run the image: read-only root, no capabilities, embedded mode on the volume"
"${run[@]}" -d --name "$container" "$image" >/dev/null || fail "podman run -d"
wait_ready
query
healthcheck "${podman_cmd[@]}" exec "$container" /shop-api healthcheck
[[ -f $work/db/shop.db ]] || fail "the database is not on the volume"

step "SIGTERM: drain and exit 0"
"${podman_cmd[@]}" stop -t 30 "$container" >/dev/null || fail "podman stop"
rc=$("${podman_cmd[@]}" inspect "$container" --format '{{.State.ExitCode}}')
"${podman_cmd[@]}" logs "$container"
[[ $rc == 0 ]] || fail "the container exited $rc after SIGTERM"
"${podman_cmd[@]}" logs "$container" 2>&1 | grep -q 'shutting down' || fail "no drain in the log"
echo; echo "PASS (image mode)"
