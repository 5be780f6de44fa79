#!/usr/bin/python3
"""Prints the table of bench/compare_builds.sh from its results TSV and checks the budget.

Usage: compare_summary.py RESULTS.tsv BUDGET   (BUDGET 0.05 = new may be at most 5% worse)

Rows of the TSV: "info KEY VALUE", "run LABEL SESSIONS ROUND SECONDS MSGS_PER_S CPU_MS
SCHED_CPU_MS LOAD1 MESSAGES USER_TICKS SYS_TICKS", "fail LABEL SESSIONS ROUND WHY", "ir LABEL SESSIONS RUN
INSTRUCTIONS_PER_MESSAGE" (callgrind). Exit status 0 whatever the verdict: the
verdict is for a person to read next to the machine's load, not for a script to act on.
"""
import statistics
import sys

SESSIONS = (20, 1)  # 20 decides (issue 7); 1 is the secondary figure


def load(path):
    info, runs, fails, irs = {}, [], [], []
    with open(path) as results:
        for line in results:
            fields = line.rstrip("\n").split("\t")
            if fields[0] == "info":
                info[fields[1]] = fields[2] if len(fields) > 2 else ""
            elif fields[0] == "run":
                label, sessions, round_, _, rate, cpu, sched, load1, count, user, system = \
                    fields[1:12]
                runs.append({"label": label, "sessions": int(sessions), "round": int(round_),
                             "rate": float(rate), "cpu": float(cpu), "sched": float(sched),
                             "load": float(load1), "count": int(count), "user": int(user),
                             "sys": int(system)})
            elif fields[0] == "ir":
                irs.append({"label": fields[1], "sessions": int(fields[2]),
                            "ir": int(fields[4])})
            elif fields[0] == "fail":
                fails.append(fields[1:])
    return info, runs, fails, irs


def cell(runs, label, sessions):
    return [r for r in runs if r["label"] == label and r["sessions"] == sessions]


def ratio(new, old):
    return new / old if old else float("nan")


def verdict(value, budget, higher_is_better):
    if value != value:  # NaN: the old figure was 0 (too few ticks to measure)
        return "n/a"
    ok = value >= 1 - budget if higher_is_better else value <= 1 + budget
    return "PASS" if ok else "MISS"


def table(header, rows):
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    line = lambda values: "  ".join(str(v).rjust(w) for v, w in zip(values, widths))
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def main():
    info, runs, fails, irs = load(sys.argv[1])
    budget = float(sys.argv[2])
    tick_ms = 1000 / int(info.get("clk_tck") or 100)
    print()
    print("Two builds, side by side: smtp-source -> portrelay (passthrough) -> smtp-sink, "
          "127.0.0.1, 4 KiB, a new session per message")
    for label in ("old", "new"):
        print(f"  {label}: {info.get('binary_' + label)}  ({info.get('version_' + label)}; "
              f"work tree HEAD {info.get('head_' + label)})")
    print(f"  rounds: {info.get('rounds_done')} of {info.get('rounds_wanted')} "
          f"(old and new alternate, order swapped every round); messages per load: "
          f"{info.get('msgs')}")
    print(f"  before: {info.get('uptime_before', '').strip()}")
    print(f"  after:  {info.get('uptime_after', '').strip()}")
    print()

    rows = []
    medians = {}
    for sessions in SESSIONS:
        for label in ("old", "new"):
            got = cell(runs, label, sessions)
            if not got:
                rows.append([sessions, label, 0, "-", "-", "-", "-", "-", "-", "-"])
                continue
            rates = [r["rate"] for r in got]
            messages = sum(r["count"] for r in got)
            m = {"rate": statistics.median(rates), "best": max(rates),
                 "cpu": statistics.median(r["cpu"] for r in got),
                 "sched": statistics.median(r["sched"] for r in got),
                 # Ticks are 10 ms: summed over all runs, not per run, to be worth reading.
                 "user": tick_ms * sum(r["user"] for r in got) / messages,
                 "sys": tick_ms * sum(r["sys"] for r in got) / messages}
            medians[(label, sessions)] = m
            rows.append([sessions, label, len(got), f"{m['rate']:.0f}", f"{m['best']:.0f}",
                         f"{min(rates):.0f}", f"{m['cpu']:.3f}", f"{m['sched']:.4f}",
                         f"{m['user']:.3f} / {m['sys']:.3f}",
                         f"{statistics.median(r['load'] for r in got):.2f}"])
    table(["sessions", "build", "runs", "median msgs/s", "best msgs/s", "worst msgs/s",
           "CPU ms/msg (stat)", "CPU ms/msg (schedstat)", "user / sys ms/msg (all runs)",
           "load1"], rows)
    rss = {label: int(info.get("peak_rss_kib_" + label) or 0) for label in ("old", "new")}
    print(f"  (medians over the runs; CPU = the relay's utime+stime per message; "
          f"load1 = median 1-minute load average at the start of each run)")
    print(f"  peak RSS (VmHWM over the whole comparison): old {rss['old'] / 1024:.1f} MiB, "
          f"new {rss['new'] / 1024:.1f} MiB")
    for fail in fails:
        print(f"  FAILED RUN: {' '.join(fail)}")
    print()

    print(f"Ratios new/old, budget: at most {budget:.0%} worse "
          f"(20 sessions decides, 1 session is secondary)")
    rows = []
    for sessions in SESSIONS:
        old, new = medians.get(("old", sessions)), medians.get(("new", sessions))
        if not old or not new:
            rows.append([sessions, "-", "-", "-", "-", "-", "-", "no runs"])
            continue
        # Paired: each round's new run against the old run next to it in time.
        paired = []
        for round_ in sorted({r["round"] for r in runs if r["sessions"] == sessions}):
            pair = {r["label"]: r["rate"] for r in runs
                    if r["sessions"] == sessions and r["round"] == round_}
            if "old" in pair and "new" in pair:
                paired.append(pair["new"] / pair["old"])
        rate = ratio(new["rate"], old["rate"])
        best = ratio(new["best"], old["best"])
        cpu = ratio(new["cpu"], old["cpu"])
        sched = ratio(new["sched"], old["sched"])
        user = ratio(new["user"], old["user"])
        system = ratio(new["sys"], old["sys"])
        rows.append([sessions,
                     f"{rate:.3f} {verdict(rate, budget, True)}",
                     f"{best:.3f}",
                     f"{statistics.median(paired):.3f} ({min(paired):.2f}-{max(paired):.2f})"
                     if paired else "-",
                     f"{cpu:.3f} {verdict(cpu, budget, False)}",
                     f"{sched:.3f} {verdict(sched, budget, False)}",
                     f"{user:.3f} / {system:.3f}",
                     f"{ratio(rss['new'], rss['old']):.3f}"])
    table(["sessions", "median msgs/s", "best msgs/s", "paired msgs/s: median (min-max)",
           "CPU/msg (stat)", "CPU/msg (schedstat)", "user / sys", "peak RSS"], rows)
    print("  throughput: PASS if new/old >= "
          f"{1 - budget:.2f}; CPU per message: PASS if new/old <= {1 + budget:.2f}")
    print()

    if not irs:
        print(f"Instructions per message (callgrind): {info.get('callgrind', 'not measured')}")
        return 0
    print("Instructions per message in the relay process (valgrind callgrind, user space only; "
          "does not depend on the machine's load)")
    rows = []
    for sessions in SESSIONS:
        got = {label: sorted(r["ir"] for r in irs
                             if r["label"] == label and r["sessions"] == sessions)
               for label in ("old", "new")}
        if not got["old"] or not got["new"]:
            continue
        old, new = statistics.median(got["old"]), statistics.median(got["new"])
        value = ratio(new, old)
        rows.append([sessions, f"{old:.0f}", f"{new:.0f}",
                     " ".join(map(str, got["old"])), " ".join(map(str, got["new"])),
                     f"{value:.3f} {verdict(value, budget, False)}"])
    table(["sessions", "old (median)", "new (median)", "old runs", "new runs", "new/old"], rows)
    print(f"  ({info.get('callgrind')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
