#!/usr/bin/env bash
# Builds the trustbridge container image without a base image and runs it for real.
#
# Docker and base images are out of reach here, so the image is assembled `FROM scratch` with
# Debian's buildah: the release binary, the shared libraries ldd lists for it, CA certificates,
# /etc/passwd and /etc/group with the non-root user 65532, and the bundled policies. Then podman
# runs it the way Kubernetes does (read-only root, uid 65532, no capabilities, the key directory
# on a tmpfs, the demo issuer's data directory mounted read-only), the script waits for
# /readyz, exchanges one demo token, checks the JWKS and the process's uid, and stops the
# container with SIGTERM (a graceful stop exits 0). deploy/Dockerfile stays for users with a
# registry; this image has the same layout (paths, user, environment, entrypoint).
#
# Run as root from anywhere:  scripts/image.sh
# Environment: IMAGE (default localhost/trustbridge:dev), PORT (host port, default: a free one),
# BIN (use this binary instead of building target/release/trustbridge), OCI_RUNTIME (default
# runc: crun 1.8 refuses this machine's hybrid cgroup layout), KEEP_IMAGE=1 (keep the image).
set -euo pipefail
cd "$(dirname "$0")/.."

image="${IMAGE:-localhost/trustbridge:dev}"
runtime="${OCI_RUNTIME:-runc}"
work="${CARGO_TARGET_DIR:-target}/image"
uid=65532
name="trustbridge-image-check-$$"

say() { echo "== image: $*"; }
fail() { echo "image.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (rootful podman; the data directory is chowned to $uid)"
missing=()
for tool in podman buildah "$runtime" curl python3; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]} (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah "$runtime" curl python3 >/dev/null
fi

# A free loopback port unless told (the test suite may be using fixed ones).
port="${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"

# === build the binary and the root filesystem ===

if [ -n "${BIN:-}" ]; then
  bin="$BIN"
else
  say "cargo build --release"
  cargo build --release --locked --bin trustbridge
  bin="${CARGO_TARGET_DIR:-target}/release/trustbridge"
fi
[ -x "$bin" ] || fail "no binary at $bin"

rm -rf "$work"
rootfs="$work/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/etc/trustbridge/policies"
install -m 0755 "$bin" "$rootfs/usr/local/bin/trustbridge"
# Every shared object the binary loads, at the path the loader looks for it (the loader too).
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
  install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
done
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
cat > "$rootfs/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:$uid:$uid:nonroot:/home/nonroot:/sbin/nologin
EOF
cat > "$rootfs/etc/group" <<EOF
root:x:0:
nonroot:x:$uid:
EOF
echo "hosts: files dns" > "$rootfs/etc/nsswitch.conf"
cp policies/*.yaml "$rootfs/etc/trustbridge/policies/"
# Mount points: the key directory (a Secret in Kubernetes) and the data directory.
mkdir -p "$work/empty"

# === assemble the image from scratch ===

say "buildah: $image from scratch"
ctr=$(buildah from scratch)
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
buildah copy --quiet --chown 0:0 "$ctr" "$rootfs" / >/dev/null
buildah copy --quiet --chown "$uid:$uid" "$ctr" "$work/empty" /etc/trustbridge/keys >/dev/null
buildah copy --quiet --chown "$uid:$uid" "$ctr" "$work/empty" /var/lib/trustbridge >/dev/null
buildah config \
  --user "$uid:$uid" \
  --workingdir / \
  --env TRUSTBRIDGE_LISTEN=0.0.0.0:8080 \
  --env TRUSTBRIDGE_POLICIES=/etc/trustbridge/policies \
  --env TRUSTBRIDGE_KEYS=/etc/trustbridge/keys \
  --env TRUSTBRIDGE_DATA_DIR=/var/lib/trustbridge \
  --env TRUSTBRIDGE_LOG_FORMAT=json \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --port 8080 \
  --entrypoint '["/usr/local/bin/trustbridge"]' \
  --cmd serve \
  --label org.opencontainers.image.title=trustbridge \
  --label "org.opencontainers.image.version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)" \
  "$ctr"
# Replace, rather than leave dangling, an image of this name from an earlier run.
podman rmi -f "$image" >/dev/null 2>&1 || true
buildah commit --quiet --rm "$ctr" "$image" >/dev/null
trap - EXIT

say "inspect"
podman image inspect "$image" --format \
  'user={{.Config.User}} entrypoint={{.Config.Entrypoint}} cmd={{.Config.Cmd}} layers={{len .RootFS.Layers}} size={{.Size}}'
[ "$(podman image inspect "$image" --format '{{.Config.User}}')" = "$uid:$uid" ] || fail "image user is not $uid"
(cd "$rootfs" && find . -type f | sort | sed 's/^\./  /')

# === run it: read-only, non-root, one exchange ===

# The demo issuer's key, made on the host and mounted read-only, so tokens minted here verify
# in the container (as deploy/docker-compose.yaml does with .trustbridge).
data="$work/data"
install -d -m 0700 "$data"
"$bin" demo token --data-dir "$data" >/dev/null
chown -R "$uid:$uid" "$data"

# The default ulimits of rootful podman exceed this sandbox's hard limits, so ask for ours.
nofile=$(ulimit -Hn)
cleanup() {
  podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
  [ -n "${KEEP_IMAGE:-}" ] || podman rmi -f "$image" >/dev/null 2>&1 || true
}
trap cleanup EXIT

say "podman run --read-only --user $uid (runtime $runtime), 127.0.0.1:$port -> 8080"
podman --runtime "$runtime" run -d --name "$name" \
  --read-only --user "$uid:$uid" --cap-drop ALL --security-opt no-new-privileges \
  --ulimit "nofile=$nofile:$nofile" --ulimit nproc=4096:4096 \
  --mount "type=tmpfs,destination=/etc/trustbridge/keys,tmpfs-size=1m,tmpfs-mode=0700,U=true" \
  -v "$(realpath "$data"):/var/lib/trustbridge:ro" \
  -e "TRUSTBRIDGE_PUBLIC_URL=http://127.0.0.1:$port" \
  -p "127.0.0.1:$port:8080" \
  "$image" >/dev/null

base="http://127.0.0.1:$port"
for _ in $(seq 100); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  [ "$(podman inspect "$name" --format '{{.State.Running}}')" = true ] || { podman logs "$name" >&2; fail "container exited"; }
  sleep 0.2
done
curl -fsS "$base/readyz" >/dev/null || { podman logs "$name" >&2; fail "/readyz never answered 200"; }
say "/readyz 200"

pid=$(podman inspect "$name" --format '{{.State.Pid}}')
proc_uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
[ "$proc_uid" = "$uid" ] || fail "the gateway runs as uid $proc_uid, not $uid"
[ "$(podman inspect "$name" --format '{{.HostConfig.ReadonlyRootfs}}')" = true ] || fail "root filesystem is writable"
say "process uid $proc_uid, read-only root filesystem"

token=$("$bin" demo token --data-dir "$data" --subject repo:contoso/infra:ref:refs/heads/main --claim repository=contoso/infra)
curl -sS "$base/contoso/oauth2/v2.0/token" \
  -d grant_type=client_credentials \
  -d client_id=deploy-bot \
  -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
  -d "client_assertion=$token" \
  -d scope=api://payments/.default > "$work/response.json"
curl -fsS "$base/contoso/discovery/v2.0/keys" > "$work/jwks.json"
# Check the answer without printing the token: the issuer, audience and a published kid.
python3 - "$work/response.json" "$work/jwks.json" "$base/contoso/v2.0" <<'PY'
import base64, json, sys

response = json.load(open(sys.argv[1]))
if "access_token" not in response:
    sys.exit(f"image.sh: exchange refused: {response.get('error')}: {response.get('error_description')}")
def part(i):
    p = response["access_token"].split(".")[i]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
header, claims = part(0), part(1)
kids = {k["kid"] for k in json.load(open(sys.argv[2]))["keys"]}
assert claims["iss"] == sys.argv[3], claims["iss"]
assert claims["aud"] == "api://payments", claims["aud"]
assert header["kid"] in kids, "signing kid not in the JWKS"
print(f"== image: exchange 200: iss={claims['iss']} aud={claims['aud']} roles={claims.get('roles')} kid in JWKS")
PY

say "podman stop (SIGTERM, graceful shutdown)"
podman stop -t 30 "$name" >/dev/null
code=$(podman inspect "$name" --format '{{.State.ExitCode}}')
[ "$code" = 0 ] || { podman logs "$name" >&2; fail "exit code $code after SIGTERM"; }
say "stopped, exit code 0: ok"
