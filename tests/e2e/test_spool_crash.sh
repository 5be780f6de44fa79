#!/usr/bin/env bash
# Crash safety of the durable spool (about 30-60 s, bounded at 160 s): 20 smtplib clients
# submit 1,000 uniquely tokened messages to portrelay in mode = "spool" while the daemon is
# SIGKILLed at random moments (at least 10 times) and restarted at once on the same spool;
# then the last daemon drains the queue and is stopped with SIGTERM.
# Asserts (spool_crash.py): every message acknowledged with 250 reached the upstream at
# least once; queue/, tmp/, failed/ and corrupt/ are empty; every restart came up on the
# stale spool; the final daemon exits 0. Duplicates are reported, not asserted.
# SIGKILL loses no page cache: this checks the acknowledge-after-store ordering and the
# recovery, not whether fsync reached the disk (that needs a power cut or a faulty device).
# SPOOL_CRASH_ARGS passes options to the driver, e.g. "--seed 42" to repeat a run, or
# "--lose-one-queued-file" to check that the test catches a lost acknowledged message.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd setpriv timeout

status=0
# shellcheck disable=SC2086  # SPOOL_CRASH_ARGS is a list of options
timeout -k 5 160 "$PY" "$E2E_DIR/spool_crash.py" --portrelay "$PORTRELAY" --work "$WORK" \
  ${SPOOL_CRASH_ARGS:-} >"$WORK/driver.out" 2>&1 || status=$?
cat "$WORK/driver.out"
if [[ $status -ne 0 ]]; then
  for log in "$WORK"/portrelay-*.log; do
    [[ -e "$log" ]] || continue
    grep -E ' (error|warn) event=' "$log" | tail -5 | sed "s|^|$(basename "$log"): |" >&2 || true
  done
  [[ $status -eq 124 ]] && fail "the crash driver did not finish within 160 s"
  fail "spool crash test failed (driver exit $status)"
fi
note "PASS: $(sed -n 's/^RESULT //p' "$WORK/driver.out")"
