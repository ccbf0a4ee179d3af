#!/usr/bin/env bash
# Validates the deployment files offline (see deploy/README.md):
#   - the Kubernetes manifests against the Kubernetes JSON schemas bundled with the PyPI package
#     kubernetes-validate, strictly (unknown fields are errors), for each version of K8S_VERSIONS;
#   - deploy/compose.yaml against the Compose specification's schema vendored in check-jsonschema;
#   - every YAML file with yamllint;
#   - deploy/nginx/nginx.conf with `nginx -t`, the replicas' host names replaced by 127.0.0.1
#     (nginx resolves upstream names while testing), when nginx is installed.
# VENV (default ${TMPDIR:-/tmp}/jigsaw-deploy-venv) is created with the pinned tools when missing.
set -euo pipefail

DEPLOY="$(cd "$(dirname "$0")" && pwd)"
VENV="${VENV:-${TMPDIR:-/tmp}/jigsaw-deploy-venv}"
K8S_VERSIONS="${K8S_VERSIONS:-1.29.0 1.33.0 1.37.0}"
TOOLS="kubernetes-validate==1.37.0 check-jsonschema==0.39.0 yamllint==1.38.0"

if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/check-jsonschema" ] || [ ! -x "$VENV/bin/yamllint" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q $TOOLS
fi

cd "$DEPLOY"
manifests=()
for file in k8s/*.yaml; do
    [ "$(basename "$file")" = kustomization.yaml ] || manifests+=("$file")
done

status=0
for version in $K8S_VERSIONS; do
    echo "== Kubernetes $version (strict): ${manifests[*]}"
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}" || status=1
done

echo "== kustomization.yaml lists every manifest"
for file in "${manifests[@]}"; do
    grep -qE "^  - $(basename "$file")\$" k8s/kustomization.yaml || { echo "not listed: $file"; status=1; }
done

echo "== compose.yaml against the Compose specification"
"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec compose.yaml || status=1

echo "== yamllint"
"$VENV/bin/yamllint" -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}}}' \
    k8s/*.yaml compose.yaml || status=1

if command -v nginx >/dev/null 2>&1; then
    echo "== nginx -t"
    scratch="$(mktemp -d)"
    sed -e 's/server jigsaw-[0-9]*:/server 127.0.0.1:/' nginx/nginx.conf > "$scratch/nginx.conf"
    nginx -t -q -p "$scratch" -e "$scratch/error.log" -c "$scratch/nginx.conf" && echo "nginx.conf: syntax ok" || status=1
    rm -rf "$scratch"
else
    echo "== nginx -t skipped: nginx is not installed (apt-get install nginx-light)"
fi

[ "$status" = 0 ] && echo "all deployment files valid" || echo "validation failed"
exit "$status"
