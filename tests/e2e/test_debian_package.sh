#!/usr/bin/env bash
# The Debian package end to end: dpkg-buildpackage builds it from this tree, lintian finds no
# error, and it is installed with apt (so its Depends are proved) into a throwaway Debian 12
# root, never onto this machine. There: the files, links, conffile, user and permissions; the
# issue's "Permission denied" as another user and none as the unit's user; the unit's
# ExecStartPre and ExecStart lines run as its User= (systemd is not PID 1 here) in a private
# network namespace, answering SMTP and sendmail; SIGTERM; then dpkg --purge leaves nothing.
# Needs root, debhelper, lintian, mmdebstrap and the Debian package registry. About 4 minutes.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/debian_root.sh
source "$E2E_DIR/debian_root.sh"
require_cmd dpkg-buildpackage dh lintian mmdebstrap
[[ $(id -u) -eq 0 ]] || fail "needs root (chroot, mounts, dpkg inside the throwaway root)"

# 1. Build from a copy of the tree (dpkg-buildpackage writes its results into ..).
version=$(sed -nE 's/^project\(portrelay VERSION ([0-9.]+).*/\1/p' "$REPO_ROOT/CMakeLists.txt")
mkdir -p "$WORK/pkg/portrelay-$version"
tar -C "$REPO_ROOT" --exclude='./build*' --exclude=./.git --exclude=./debian/portrelay \
  --exclude=./obj-* -cf - . | tar -C "$WORK/pkg/portrelay-$version" -xf -
started=$(date +%s)
(cd "$WORK/pkg/portrelay-$version" && DEB_BUILD_OPTIONS="parallel=$(nproc) nocheck" \
  timeout 900 dpkg-buildpackage -us -uc -b) >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log" >&2; fail "dpkg-buildpackage failed"; }
deb="$WORK/pkg/portrelay_${version}_$(dpkg --print-architecture).deb"
[[ -s $deb ]] || fail "no $deb after the build"
note "dpkg-buildpackage -us -uc -b: $(basename "$deb") in $(($(date +%s) - started)) s"

# 2. lintian: no errors (warnings are printed for the record).
lintian --fail-on error "$WORK/pkg/"*.changes >"$WORK/lintian.out" 2>&1 ||
  { cat "$WORK/lintian.out" >&2; fail "lintian reported errors"; }
note "lintian: $(grep -c '^E:' "$WORK/lintian.out" || true) errors, $(grep -c '^W:' "$WORK/lintian.out" || true) warnings"
sed 's/^/    /' "$WORK/lintian.out"

# 3. The package's metadata and contents.
fields=$(dpkg-deb -f "$deb" Provides Conflicts Replaces)
for field in Provides Conflicts Replaces; do
  grep -qx "$field: mail-transport-agent" <<<"$fields" || fail "control lacks '$field: mail-transport-agent': $fields"
done
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/portrelay/portrelay.toml ||
  fail "/etc/portrelay/portrelay.toml is not a conffile"
dpkg-deb -c "$deb" >"$WORK/contents"
for path in ./usr/sbin/portrelay ./lib/systemd/system/portrelay.service ./etc/portrelay/portrelay.toml \
  ./usr/share/man/man8/portrelay.8.gz ./usr/share/man/man5/portrelay.toml.5.gz ./usr/share/doc/portrelay/copyright; do
  grep -q " $path\$" "$WORK/contents" || fail "$path missing from the package"
done
grep -q ' ./usr/sbin/sendmail -> portrelay$' "$WORK/contents" || fail "no /usr/sbin/sendmail link"
grep -q ' ./usr/bin/mailq -> ../sbin/portrelay$' "$WORK/contents" || fail "no /usr/bin/mailq link"
note "control: Provides/Conflicts/Replaces mail-transport-agent; conffile, unit, man pages, sendmail/mailq links present"

# 4. Install with apt into a throwaway Debian 12 root.
ROOT="$WORK/root"
mkdir -p "$ROOT"
trap 'status=$?; debian_root_release "$ROOT"; (exit $status); cleanup' EXIT
debian_root_unpack "$ROOT"
cp "$deb" "$ROOT/tmp/portrelay.deb"
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
in_root sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends /tmp/portrelay.deb' \
  >"$WORK/install.log" 2>&1 || { tail -30 "$WORK/install.log" >&2; fail "apt-get install ./portrelay.deb failed in a fresh Debian 12 root"; }
[[ $(in_root dpkg-query -W -f='${Status}' portrelay) == "install ok installed" ]] || fail "portrelay not installed"
note "installed with apt (dependencies resolved from Debian 12) into a fresh root"

[[ $(readlink -f "$ROOT/usr/sbin/sendmail") == "$ROOT/usr/sbin/portrelay" ]] || fail "/usr/sbin/sendmail is not portrelay"
in_root mailq | grep -q 'Mail queue is empty' || fail "mailq did not run"
IFS=: read -r _ _ uid gid _ home shell < <(in_root getent passwd portrelay) || fail "no portrelay user"
((uid < 1000)) || fail "portrelay is not a system user (uid $uid)"
[[ $home == /nonexistent && $shell == /usr/sbin/nologin ]] || fail "portrelay user home/shell: $home $shell"
[[ $(in_root stat -c '%a %U %G' /etc/portrelay/portrelay.toml) == "640 root portrelay" ]] ||
  fail "config permissions: $(in_root stat -c '%a %U %G' /etc/portrelay/portrelay.toml)"
[[ -e $ROOT/etc/portrelay/unconfigured ]] || fail "no /etc/portrelay/unconfigured after the first install"
[[ -L $ROOT/etc/systemd/system/multi-user.target.wants/portrelay.service ]] || fail "portrelay.service is not enabled"
note "user portrelay (uid $uid), config 0640 root:portrelay, unit enabled, waiting for /etc/portrelay/unconfigured to go"

# 4b. cron mail while the package is not configured yet (the unit is held back): stored in the
# maildrop the package made, exit 0 (cron's own command line, as root, for a crontab with
# MAILTO=ops@example.test: mail for root itself needs [aliases], which the shipped file
# cannot know; the configured step below sets it).
[[ $(in_root stat -c '%a %U' /var/spool/portrelay/maildrop) == "3733 portrelay" ]] ||
  fail "maildrop is $(in_root stat -c '%a %U' /var/spool/portrelay/maildrop), want 3733 portrelay"
status=0
printf 'From: root (Cron Daemon)\nTo: ops@example.test\nSubject: Cron <root@vm> before configure\n\nnightly output\n' |
  in_root /usr/sbin/sendmail -FCronDaemon -i -B8BITMIME -oem ops@example.test >"$WORK/cron.out" 2>&1 || status=$?
[[ $status -eq 0 ]] || { cat "$WORK/cron.out" >&2; fail "cron's sendmail before configuration exited $status"; }
[[ $(find "$ROOT/var/spool/portrelay/maildrop" -maxdepth 1 -type f ! -name '.*' | wc -l) -eq 1 ]] ||
  fail "cron's mail is not in the maildrop"
note "before configuration: cron's sendmail exit 0, the message in /var/spool/portrelay/maildrop"

# 5. The issue: the config readable only through the group. Another user: Permission denied.
status=0
in_root setpriv --reuid 61234 --regid 61234 --clear-groups portrelay check --config /etc/portrelay/portrelay.toml \
  >"$WORK/other.out" 2>&1 || status=$?
[[ $status -eq 1 ]] && grep -q 'Permission denied' "$WORK/other.out" || { cat "$WORK/other.out" >&2; fail "uid 61234 could read the config (exit $status)"; }
note "as uid 61234: $(head -1 "$WORK/other.out")"

# The secrets file the README has the admin create; env_file in the shipped config reads it.
printf 'SENDGRID_API_KEY="from env_file"\n' >"$ROOT/etc/portrelay/env"
in_root chown root:portrelay /etc/portrelay/env
in_root chmod 0640 /etc/portrelay/env

# The unit's own lines, as its User=/Group=, in a network namespace of their own.
unit="$ROOT/lib/systemd/system/portrelay.service"
user=$(sed -n 's/^User=//p' "$unit")
pre=$(sed -n 's/^ExecStartPre=//p' "$unit")
start=$(sed -n 's/^ExecStart=//p' "$unit")
reload=$(sed -n 's/^ExecReload=//p' "$unit")
[[ $reload == /usr/sbin/portrelay\ reload* ]] || fail "ExecReload is not portrelay reload: $reload"
[[ $(grep -c '^ExecReload=.*/bin/kill' "$unit") -eq 0 ]] || fail "ExecReload still needs kill(1) (procps)"
# systemd puts the main PID in for $MAINPID; the script below has it in $daemon.
reload_command=${reload//\$MAINPID/\$daemon}

[[ $user == portrelay && -n $pre && -n $start ]] || fail "unit lacks User=portrelay, ExecStartPre= or ExecStart="
cat >"$ROOT/tmp/as-unit.sh" <<SCRIPT
set -u
as_unit() { setpriv --reuid $user --regid $user --init-groups --no-new-privs "\$@"; }
as_unit $pre >/tmp/pre.log 2>&1 || { echo "ExecStartPre failed: \$(cat /tmp/pre.log)"; exit 1; }
grep -q "SENDGRID_API_KEY is not set" /tmp/pre.log && { echo "check does not see SENDGRID_API_KEY in env_file: \$(cat /tmp/pre.log)"; exit 1; }
# Not through the function: \$! must be the daemon itself, not a subshell around it.
setpriv --reuid $user --regid $user --init-groups --no-new-privs $start 2>/tmp/run.log &
daemon=\$!
for i in \$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/2525) 2>/dev/null && break; sleep 0.1; done
exec 3<>/dev/tcp/127.0.0.1/2525 || { echo "nothing listens on 127.0.0.1:2525"; cat /tmp/run.log; exit 1; }
read -r greeting <&3; echo "greeting: \$greeting"; exec 3>&-
# sendmail as a user who cannot read the config: the relay answers; no upstream is reachable
# in this namespace, and the shipped config queues what cannot go now (spool_on_failure):
# exit 0, the message in the spool the package made, listed by mailq (as root).
printf 'Subject: t\n\nx\n' | setpriv --reuid 65534 --regid 65534 --clear-groups /usr/sbin/sendmail -v -i ops@example.test >/tmp/sendmail.out 2>&1
echo "sendmail exit: \$?"; grep -o 'queued as [0-9A-F]* for retry' /tmp/sendmail.out
mailq | grep -c 'ops@example.test' | sed 's/^/mailq lines: /'
stat -c 'spool: %a %U' /var/spool/portrelay /var/spool/portrelay/queue
grep -c 'event=maildrop_picked_up' /tmp/run.log | sed 's/^/picked up: /'
# ExecReload as the unit runs it (minbase has no procps: this is what failed with /bin/kill).
as_unit $reload_command >/tmp/reload.out 2>&1; echo "reload exit: \$?"; cat /tmp/reload.out
kill -TERM \$daemon; wait \$daemon; echo "daemon exit after SIGTERM: \$?"
grep -c 'event=started' /tmp/run.log | sed 's/^/started lines: /'
grep -c 'event=stopped' /tmp/run.log | sed 's/^/stopped lines: /'
SCRIPT
# The namespace's loopback is brought up with this machine's ip(8): minbase has no iproute2.
unshare --net sh -c 'ip link set lo up && exec "$@"' sh \
  chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 bash /tmp/as-unit.sh \
  >"$WORK/as-unit.out" 2>&1 || { cat "$WORK/as-unit.out" >&2; fail "the unit's commands did not run as $user"; }
grep -q '^greeting: 220 ' "$WORK/as-unit.out" || { cat "$WORK/as-unit.out" >&2; fail "no 220 greeting from ExecStart"; }
grep -q '^sendmail exit: 0$' "$WORK/as-unit.out" && grep -q 'for retry' "$WORK/as-unit.out" || { cat "$WORK/as-unit.out" >&2; fail "sendmail through the installed link: the message was not queued for retry (exit 0)"; }
# Two: this message and cron's of step 4b (MAILTO=ops@example.test), picked up from the maildrop.
grep -q '^mailq lines: 2$' "$WORK/as-unit.out" || { cat "$WORK/as-unit.out" >&2; fail "mailq does not list the queued messages"; }
grep -q '^spool: 711 portrelay$' "$WORK/as-unit.out" && grep -q '^spool: 700 portrelay$' "$WORK/as-unit.out" || { cat "$WORK/as-unit.out" >&2; fail "spool not 0711 (queue/ 0700) portrelay"; }
grep -q '^picked up: 1$' "$WORK/as-unit.out" || { cat "$WORK/as-unit.out" >&2; fail "the daemon did not pick up the dropped cron mail"; }
grep -q '^reload exit: 0$' "$WORK/as-unit.out" && grep -q '^reloaded /etc/portrelay/portrelay.toml' "$WORK/as-unit.out" || { cat "$WORK/as-unit.out" >&2; fail "ExecReload (portrelay reload) did not apply the file"; }
grep -q '^daemon exit after SIGTERM: 0$' "$WORK/as-unit.out" && grep -q '^stopped lines: 1$' "$WORK/as-unit.out" || { cat "$WORK/as-unit.out" >&2; fail "daemon did not exit 0 on SIGTERM"; }
note "as $user: ExecStartPre (check) OK, ExecStart listening ($(grep '^greeting:' "$WORK/as-unit.out")), sendmail -> queued for retry (exit 0) in /var/spool/portrelay (0711, queue/ 0700, portrelay), the dropped cron mail picked up, mailq lists it, SIGTERM -> exit 0"

# 5b. The operator configures the provider (here a test upstream in the namespace), starts the
# unit and runs `portrelay queue retry --all` (as root: it becomes the spool's owner): the
# cron mail of step 4b, queued since, is delivered.
UP_PORT=2587
cat >"$ROOT/etc/portrelay/portrelay.toml" <<TOML
[server]
listen = ["127.0.0.1:2525"]

[relay]
spool_on_failure = true

[[upstream]]
host = "127.0.0.1"
port = $UP_PORT
tls = "none"

[metrics]
enabled = false

# Local mail leaves as the identity the provider verified (README: "Sending as a verified
# identity"); mail accepted before this line keeps the identity it was accepted with.
[rewrite]
sender = "alerts@example.test"

# Mail for root reaches a person (README: [aliases]).
[aliases]
root = "ops@example.test"
TOML
rm "$ROOT/etc/portrelay/unconfigured"
mkdir -p "$WORK/mail"
cat >"$WORK/configured.sh" <<SCRIPT
set -u
ip link set lo up
"$PY" "$E2E_DIR/smtp_upstream.py" --label up --port $UP_PORT --outdir "$WORK/mail" --port-file "$WORK/up.port" 2>"$WORK/up.log" &
upstream=\$!
for i in \$(seq 100); do [ -s "$WORK/up.port" ] && break; sleep 0.1; done
chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  setpriv --reuid $user --regid $user --init-groups --no-new-privs $start 2>"$WORK/configured.log" &
daemon=\$!
for i in \$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/2525) 2>/dev/null && break; sleep 0.1; done
# The cron mail was tried against the example provider at step 5 and waits for its retry
# (30 s and more); the operator who just configured the provider sends it now.
chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 portrelay queue retry --all
for i in \$(seq 150); do [ -s "$WORK/mail/up-2.json" ] && break; sleep 0.1; done
# cron's own command line through the installed /usr/sbin/sendmail, as root, now configured.
printf 'From: root (Cron Daemon)\nTo: root\nSubject: after configure\n\nx\n' |
  chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  /usr/sbin/sendmail -FCronDaemon -i -B8BITMIME -oem root
for i in \$(seq 150); do [ -s "$WORK/mail/up-3.json" ] && break; sleep 0.1; done
kill -TERM \$daemon; wait \$daemon
kill \$upstream
SCRIPT
timeout 60 unshare --net bash "$WORK/configured.sh" >"$WORK/configured.out" 2>&1 || true
grep -l 'before configure' "$WORK"/mail/up-*.eml >/dev/null 2>&1 ||
  { cat "$WORK/configured.out" "$WORK/configured.log" "$WORK/up.log" >&2; fail "cron mail sent before configuration was not delivered after it"; }
cron_meta=$(grep -l 'before configure' "$WORK"/mail/up-*.eml | sed 's/\.eml$/.json/')
grep -q '"rcpt_tos": \["ops@example.test"\]' "$cron_meta" || fail "cron mail went to $(cat "$cron_meta")"
note "configured and started: the cron mail dropped before configuration is delivered ($(cat "$cron_meta"))"
after_eml=$(grep -l 'after configure' "$WORK"/mail/up-*.eml) ||
  { cat "$WORK/configured.out" "$WORK/configured.log" >&2; fail "cron mail sent after configuration was not delivered"; }
grep -q '"mail_from": "alerts@example.test"' "${after_eml%.eml}.json" ||
  fail "cron mail after configuration left as $(cat "${after_eml%.eml}.json"), not as alerts@example.test"
tr -d '\r' <"$after_eml" | grep -qx 'From: alerts@example.test (Cron Daemon)' ||
  fail "cron mail after configuration has $(tr -d '\r' <"$after_eml" | grep -i '^From:')"
note "cron's sendmail after configuration: MAIL FROM and From are the [rewrite] identity"

# 6. Purge: nothing of the package stays (the system user stays, as Debian packages do).
in_root dpkg --purge portrelay >"$WORK/purge.log" 2>&1 || { cat "$WORK/purge.log" >&2; fail "dpkg --purge failed"; }
for path in /usr/sbin/portrelay /usr/sbin/sendmail /usr/bin/mailq /etc/portrelay /var/spool/portrelay /lib/systemd/system/portrelay.service \
  /etc/systemd/system/multi-user.target.wants/portrelay.service; do
  [[ ! -e $ROOT$path && ! -L $ROOT$path ]] || fail "$path left after dpkg --purge"
done
if in_root dpkg-statoverride --list | grep -q portrelay; then fail "statoverride left after purge"; fi
note "dpkg --purge: binary, links, /etc/portrelay (with the env secrets file), the spool, unit and its enablement gone"
note "PASS"
