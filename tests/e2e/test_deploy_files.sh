#!/usr/bin/env bash
# The deploy/ artifacts are checked by the tools that consume them: promtool for the alert
# rules, a YAML parser for the Kubernetes manifests, `portrelay check` for the embedded
# config, and systemd-analyze for the unit file (when systemd is present).
set -euo pipefail
PORTRELAY=$(realpath "${1:?usage: test_deploy_files.sh PORTRELAY_BINARY}")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

promtool check rules "$ROOT/deploy/prometheus/portrelay-rules.yml"
echo "ok: promtool check rules"

/usr/bin/python3 - "$ROOT/deploy/kubernetes/sidecar.yaml" "$WORK/portrelay.toml" <<'PY'
import sys, yaml
docs = list(yaml.safe_load_all(open(sys.argv[1])))
kinds = [d["kind"] for d in docs]
assert kinds == ["ConfigMap", "Secret", "Deployment"], kinds
open(sys.argv[2], "w").write(docs[0]["data"]["portrelay.toml"])
PY
echo "ok: Kubernetes manifest parses (ConfigMap, Secret, Deployment)"

"$PORTRELAY" check --config "$WORK/portrelay.toml" > "$WORK/check.out"
grep -q "smtp.sendgrid.net:587" "$WORK/check.out"
echo "ok: the ConfigMap's portrelay.toml passes portrelay check"

if command -v systemd-analyze > /dev/null 2>&1; then
  # verify wants the ExecStart binary to exist; point a copy of the unit at the built one.
  sed "s#/usr/local/bin/portrelay#$PORTRELAY#g" "$ROOT/deploy/systemd/portrelay.service" > "$WORK/portrelay.service"
  if systemd-analyze verify --man=no "$WORK/portrelay.service" 2> "$WORK/verify.err"; then
    echo "ok: systemd-analyze verify"
  elif grep -qiE "Failed to (connect|initialize)|not been booted with systemd|System has not been booted" "$WORK/verify.err"; then
    echo "skip: systemd-analyze cannot run here ($(head -1 "$WORK/verify.err"))"
  else
    cat "$WORK/verify.err" >&2
    exit 1
  fi
else
  echo "skip: systemd-analyze not installed"
fi
