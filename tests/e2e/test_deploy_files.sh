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

# The Kubernetes manifests: parse, Pod Security "restricted" fields on every pod template,
# native sidecar with a startupProbe, Secret in its own file, sized emptyDirs, the relay tier's
# StatefulSet/PVC/Service/PDB wiring; each embedded portrelay.toml is written out for `check`.
/usr/bin/python3 - "$ROOT/deploy/kubernetes" "$WORK" <<'PY'
import glob, os, sys, yaml

directory, work = sys.argv[1], sys.argv[2]
files = {os.path.basename(p): list(yaml.safe_load_all(open(p))) for p in sorted(glob.glob(directory + "/*.yaml"))}
assert set(files) == {"sidecar.yaml", "secret.example.yaml", "relay-tier.yaml"}, sorted(files)
kinds = {name: [d["kind"] for d in docs] for name, docs in files.items()}
assert kinds["sidecar.yaml"] == ["ConfigMap", "Deployment"], kinds
assert kinds["secret.example.yaml"] == ["Secret"], kinds
assert sorted(kinds["relay-tier.yaml"]) == ["ConfigMap", "PodDisruptionBudget", "Service", "Service", "StatefulSet"], kinds
secret_names = {d["metadata"]["name"] for d in files["secret.example.yaml"]}
for name, docs in files.items():
    if name != "secret.example.yaml":
        assert "Secret" not in [d["kind"] for d in docs], f"{name}: a Secret next to the workload"

ALLOWED_VOLUMES = {"configMap", "secret", "emptyDir", "persistentVolumeClaim", "projected", "downwardAPI", "ephemeral", "csi"}
def check_restricted(where, spec):
    pod_sc = spec.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(key), f"{where}: {key}"
    containers = spec.get("initContainers", []) + spec["containers"]
    for c in containers:
        sc = c.get("securityContext", {})
        cw = f"{where}/{c['name']}"
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        assert seccomp in ("RuntimeDefault", "Localhost"), f"{cw}: seccompProfile {seccomp}"
        assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, f"{cw}: runAsNonRoot"
        assert sc.get("runAsUser", pod_sc.get("runAsUser", 1)) != 0, f"{cw}: runAsUser 0"
        assert sc.get("allowPrivilegeEscalation") is False, f"{cw}: allowPrivilegeEscalation"
        caps = sc.get("capabilities", {})
        assert caps.get("drop") == ["ALL"], f"{cw}: capabilities.drop {caps.get('drop')}"
        assert set(caps.get("add", [])) <= {"NET_BIND_SERVICE"}, f"{cw}: capabilities.add"
        assert not sc.get("privileged"), f"{cw}: privileged"
        if "portrelay" in c["image"]:
            assert sc.get("readOnlyRootFilesystem") is True, f"{cw}: readOnlyRootFilesystem"
            assert c["resources"]["limits"]["memory"], f"{cw}: memory limit"
    for v in spec.get("volumes", []):
        types = set(v) - {"name"}
        assert types <= ALLOWED_VOLUMES, f"{where}: volume {v['name']} is {types}"
        if "emptyDir" in v:
            assert v["emptyDir"].get("sizeLimit"), f"{where}: emptyDir {v['name']} has no sizeLimit"
    for c in containers:
        for ref in c.get("envFrom", []):
            if "secretRef" in ref:
                assert ref["secretRef"]["name"] in secret_names, f"{where}: secret {ref['secretRef']['name']} not in secret.example.yaml"
    return containers

checked = 0
for name, docs in files.items():
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            check_restricted(f"{name}:{d['kind']}", d["spec"]["template"]["spec"])
            checked += 1
        if d["kind"] == "ConfigMap":
            with open(os.path.join(work, f"{d['metadata']['name']}.toml"), "w") as out:
                out.write(d["data"]["portrelay.toml"])

# Native sidecar: portrelay is an init container that keeps running, with a startupProbe.
deployment = files["sidecar.yaml"][1]["spec"]["template"]["spec"]
sidecar = [c for c in deployment["initContainers"] if c["name"] == "portrelay"]
assert sidecar and sidecar[0].get("restartPolicy") == "Always", "portrelay is not a native sidecar"
assert "startupProbe" in sidecar[0], "the sidecar has no startupProbe: the app may start before the relay listens"
assert all(c["name"] != "portrelay" for c in deployment["containers"]), "portrelay also among containers"
assert sidecar[0]["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness must ask the event loop"
assert "--shutdown-grace" in sidecar[0]["args"] and deployment["terminationGracePeriodSeconds"] > 30

# Relay tier: StatefulSet with a spool PVC mounted, Services and PDB select its pods.
tier = {d["kind"] + ":" + d["metadata"]["name"]: d for d in files["relay-tier.yaml"]}
sts = tier["StatefulSet:portrelay"]
labels = sts["spec"]["template"]["metadata"]["labels"]
assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
mounts = {m["name"]: m["mountPath"] for m in sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
assert "spool" in claims and mounts.get("spool") == "/var/spool/portrelay", (claims, mounts)
assert sts["spec"]["replicas"] >= 2
relay = sts["spec"]["template"]["spec"]["containers"][0]
assert relay["livenessProbe"]["httpGet"]["path"] == "/healthz", relay["livenessProbe"]
assert relay["readinessProbe"]["httpGet"]["path"] == "/readyz", relay["readinessProbe"]
assert f"Service:{sts['spec']['serviceName']}" in tier and tier[f"Service:{sts['spec']['serviceName']}"]["spec"]["clusterIP"] == "None"
for key, d in tier.items():
    if d["kind"] == "Service":
        assert d["spec"]["selector"].items() <= labels.items(), f"{key} selects no tier pod"
pdb = tier["PodDisruptionBudget:portrelay"]
assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
assert "maxUnavailable" in pdb["spec"] or "minAvailable" in pdb["spec"]
print(f"ok: Kubernetes manifests: {checked} pod templates meet Pod Security restricted; native sidecar with startupProbe; Secret in its own file; emptyDirs sized; relay tier StatefulSet + spool PVC + Services + PDB")
PY

for config in "$WORK"/*.toml; do
  "$PORTRELAY" check --config "$config" > "$WORK/check.out"
  grep -q "smtp.sendgrid.net:587" "$WORK/check.out"
  echo "ok: ConfigMap $(basename "$config" .toml): portrelay check passes"
done

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
