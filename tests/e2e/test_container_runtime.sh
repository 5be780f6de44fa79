#!/usr/bin/env bash
# The container image's runtime closure without Docker: the runtime stage's package list, taken
# from deploy/docker/Dockerfile, is installed with apt into a bare Debian 12 root (as the
# Dockerfile's RUN line does on debian:12-slim), the built binary and the example config are
# copied to the image's paths, and `portrelay version` and `portrelay check` (the CMD's default
# config path) run there as 65534:65534, the image's USER. Also: .dockerignore keeps build/
# out. Needs root, mmdebstrap and the Debian package registry; about a minute.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/debian_root.sh
source "$E2E_DIR/debian_root.sh"
require_cmd mmdebstrap
[[ $(id -u) -eq 0 ]] || fail "needs root (chroot and mounts in a throwaway root)"
dockerfile="$REPO_ROOT/deploy/docker/Dockerfile"

# The runtime stage's packages: the apt-get install between the markers.
packages=$(sed -n '/# runtime-packages-begin/,/# runtime-packages-end/p' "$dockerfile" |
  tr '\\\n' '  ' | sed -E 's/.*--no-install-recommends (.*)&&.*/\1/' | xargs)
[[ -n $packages && $packages != *'#'* ]] || fail "cannot read the runtime package list from $dockerfile"
note "runtime stage packages: $packages"

ROOT="$WORK/root"
mkdir -p "$ROOT"
trap 'status=$?; debian_root_release "$ROOT"; (exit $status); cleanup' EXIT
debian_root_unpack "$ROOT"
install -D -m 0755 "$PORTRELAY" "$ROOT/usr/local/bin/portrelay"
install -D -m 0644 "$REPO_ROOT/conf/portrelay.toml" "$ROOT/etc/portrelay/portrelay.toml"
as_image_user() { chroot --userspec=65534:65534 "$ROOT" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin "$@"; }

# Before the packages: the check can fail (the issue's exit 127 on a missing library).
status=0
as_image_user portrelay version >"$WORK/before.out" 2>&1 || status=$?
[[ $status -eq 127 ]] || { cat "$WORK/before.out" >&2; fail "portrelay ran (exit $status) in a root without its libraries: the test proves nothing"; }
note "without the runtime packages: exit 127, $(head -1 "$WORK/before.out")"

# shellcheck disable=SC2086  # the list is words
chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $packages" >"$WORK/apt.log" 2>&1 ||
  { tail -20 "$WORK/apt.log" >&2; fail "apt-get install of the runtime packages failed"; }
missing=$(chroot "$ROOT" ldd /usr/local/bin/portrelay | grep 'not found' || true)
[[ -z $missing ]] || fail "libraries not found in the runtime root: $missing"

as_image_user portrelay version >"$WORK/version.out" 2>&1 || { cat "$WORK/version.out" >&2; fail "portrelay version failed as 65534 in the runtime root"; }
grep -q '^portrelay ' "$WORK/version.out" || fail "version printed: $(cat "$WORK/version.out")"
as_image_user portrelay check >"$WORK/check.out" 2>&1 || { cat "$WORK/check.out" >&2; fail "portrelay check (default config path) failed as 65534 in the runtime root"; }
grep -q '^config OK: ' "$WORK/check.out" || fail "check printed: $(cat "$WORK/check.out")"
note "as 65534:65534: $(cat "$WORK/version.out"); check: $(grep '^config OK' "$WORK/check.out")"

# .dockerignore: a host build/ (and .git, package build output) stays out of the context.
ignore="$REPO_ROOT/.dockerignore"
[[ -f $ignore ]] || fail "no .dockerignore"
for pattern in .git build 'build-*' 'obj-*' '*.deb'; do
  grep -qxF "$pattern" "$ignore" || fail ".dockerignore does not exclude $pattern"
done
grep -q '^CMD \["run"\]' "$dockerfile" || fail "the image's CMD is not the default-config run"
note ".dockerignore excludes .git, build, build-*, obj-*, *.deb"
note "PASS"
