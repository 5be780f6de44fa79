#!/usr/bin/python3
"""Prints the benchmark summary from bench/run.sh's results.tsv: tables, ratios and the
targets (met / missed by how much). Usage: summarize.py results.tsv"""
import statistics
import sys
from collections import defaultdict


def load(path):
    rows = []
    with open(path) as results:
        for line in results:
            line = line.rstrip("\n")
            if line:
                rows.append(line.split("\t"))
    return rows


def median(values):
    return statistics.median(values) if values else None


def fmt(value, pattern="{:.0f}"):
    return "n/a" if value is None else pattern.format(value)


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def table(headers, rows):
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows)]
    # first column (a label) left-aligned, numbers right-aligned
    line = lambda cells: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def main():
    rows = load(sys.argv[1])
    info = {r[1]: r[2] for r in rows if r[0] == "info"}
    notes = [(r[1], r[2]) for r in rows if r[0] == "note"]
    targets = []  # (name, target, measured, met, comment)

    print("\n==================== portrelay benchmark summary ====================")
    print(f"machine: {info.get('nproc', '?')} CPUs, {info.get('cpu', '?')}, "
          f"kernel {info.get('kernel', '?')}")
    print(f"load average at start {info.get('loadavg_start', '?')}, at end "
          f"{info.get('loadavg_end', '?')}; {info.get('portrelay', '')}; "
          f"Postfix {info.get('postfix', 'n/a')}; medians of {info.get('repeat', '?')} runs")
    for key, text in notes:
        print(f"note: {key}: {text}")

    # 1. throughput
    rates = defaultdict(list)
    relay_cpu = defaultdict(list)
    for r in rows:
        if r[0] == "tp":
            rates[(int(r[1]), int(r[2]), r[3])].append(float(r[6]))
            if r[3] == "portrelay" and len(r) > 7 and r[7] != "-":
                relay_cpu[(int(r[1]), int(r[2]))].append(float(r[7]))
    failures = [r for r in rows if r[0] == "tp_fail"]
    if rates:
        print("\n1. Throughput, msgs/s (smtp-source -> X -> smtp-sink; a new SMTP session per "
              "message)")
        cells = sorted({(size, sessions) for size, sessions, _ in rates})
        out = []
        for size, sessions in cells:
            a = median(rates.get((size, sessions, "direct"), []))
            b = median(rates.get((size, sessions, "portrelay"), []))
            c = median(rates.get((size, sessions, "postfix"), []))
            out.append([f"{size // 1024} KiB", sessions, fmt(a), fmt(b), fmt(c),
                        fmt(ratio(b, a), "{:.2f}"), fmt(ratio(b, c), "{:.2f}"),
                        fmt(median(relay_cpu.get((size, sessions), [])), "{:.2f}")])
            if size == 4096 and sessions == 20:
                ba, bc = ratio(b, a), ratio(b, c)
                if ba is not None:
                    # On a shared machine the fastest run of each is the least disturbed one.
                    best = ratio(max(rates[(size, sessions, "portrelay")]),
                                 max(rates[(size, sessions, "direct")]))
                    targets.append(("4 KiB, 20 clients: portrelay / direct", ">= 0.80",
                                    f"{ba:.2f} (best runs {best:.2f})", ba >= 0.8,
                                    "" if ba >= 0.8 else f"short by {0.8 - ba:.2f}"))
                if bc is not None:
                    targets.append(("4 KiB, 20 clients: portrelay / Postfix", ">= 2.0",
                                    f"{bc:.2f}", bc >= 2.0,
                                    "" if bc >= 2.0 else f"short by {2.0 - bc:.2f}"))
        table(["size", "sessions", "(a) direct", "(b) portrelay", "(c) Postfix", "b/a", "b/c",
               "portrelay CPU ms/msg"], out)
        for r in failures:
            print("  failed run: " + " ".join(r[1:]))

    # 2. failover
    fo = defaultdict(list)
    lost = defaultdict(int)
    for r in rows:
        if r[0] == "fo":
            if r[4] == "lost":
                lost[(r[1], r[2])] += 1
            else:
                fo[(r[1], r[2])].append(float(r[4]))
    attempts = {r[1]: r[2] for r in rows if r[0] == "fo_attempts"}
    if fo or lost:
        print("\n2. Failover, first endpoint silently dropping SYNs: submission -> delivery, "
              "seconds")
        out = []
        for who in ("portrelay", "postfix_30s", "postfix_5s"):
            first = fo.get((who, "first"), [])
            nxt = fo.get((who, "next"), [])
            if not first and not nxt and not lost.get((who, "first")):
                continue
            label = {"portrelay": "portrelay (stagger 250ms)",
                     "postfix_30s": "Postfix smtp_connect_timeout=30s",
                     "postfix_5s": "Postfix smtp_connect_timeout=5s"}[who]
            out.append([label, fmt(first[0] if first else None, "{:.3f}"),
                        fmt(min(nxt) if nxt else None, "{:.3f}"),
                        fmt(median(nxt), "{:.3f}"), fmt(max(nxt) if nxt else None, "{:.3f}"),
                        lost.get((who, "first"), 0) + lost.get((who, "next"), 0),
                        attempts.get(who, "-")])
        table(["relay", "1st msg", "next 10 min", "median", "max", "lost",
               "connects to blocked port"], out)
        first = fo.get(("portrelay", "first"), [])
        if first:
            targets.append(("first message, blocked first endpoint", "<= 0.500 s",
                            f"{first[0]:.3f} s", first[0] <= 0.5,
                            "" if first[0] <= 0.5 else f"over by {first[0] - 0.5:.3f} s"))
        if "portrelay" in attempts:
            ok = attempts["portrelay"] == "1"
            targets.append(("connects to the blocked port over 11 messages", "1",
                            attempts["portrelay"], ok, ""))

    # 3. memory
    for r in rows:
        if r[0] == "mem":
            count, opened, baseline, rss, hwm, upstream = r[1:7]
            print(f"\n3. Memory: {opened}/{count} idle client sessions open (after EHLO)")
            mib = lambda kib: int(kib) / 1024
            print(f"   portrelay RSS before {mib(baseline):.1f} MiB, while held {mib(rss):.1f} MiB,"
                  f" peak (VmHWM) {mib(hwm):.1f} MiB; "
                  f"{(int(rss) - int(baseline)) / max(1, int(opened)):.1f} KiB per idle session;"
                  f" upstream connections held meanwhile: {upstream}")
            ok = mib(hwm) <= 64 and opened == count
            targets.append((f"peak RSS with {count} idle sessions", "<= 64 MiB",
                            f"{mib(hwm):.1f} MiB ({opened} open)", ok,
                            "" if ok else (f"over by {mib(hwm) - 64:.1f} MiB" if mib(hwm) > 64
                                           else "not all sessions opened")))
    if "portrelay_peak_rss_kib_throughput" in info:
        print(f"   (peak RSS over the whole throughput phase: "
              f"{int(info['portrelay_peak_rss_kib_throughput']) / 1024:.1f} MiB)")

    # 4. TLS
    tls = defaultdict(list)
    for r in rows:
        if r[0] == "tls":
            tls[(r[1], int(r[2]))].append((float(r[5]), int(r[6]), int(r[7])))
    if tls:
        print("\n4. Upstream TLS (4 KiB messages, portrelay -> portrelay_bench_sink): msgs/s and "
              "TLS handshakes the sink counted in each run")
        out = []
        for (variant, sessions), runs in sorted(tls.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            out.append([variant, sessions, fmt(median([r for r, _, _ in runs])),
                        "/".join(str(m) for _, m, _ in runs),
                        " ".join(str(h) for _, _, h in runs)])
        table(["variant", "sessions", "msgs/s", "messages per run", "handshakes per run"], out)
        for sessions in sorted({s for _, s in tls}):
            plain = median([r for r, _, _ in tls.get(("plain_pool_default", sessions), [])])
            pooled = median([r for r, _, _ in tls.get(("tls_pool_default", sessions), [])])
            unpooled = median([r for r, _, _ in tls.get(("tls_pool0", sessions), [])])
            runs = tls.get(("tls_pool_default", sessions), [])
            per_1000 = " ".join(f"{h * 1000 / max(1, m):.1f}" for _, m, h in runs)
            print(f"   {sessions} sessions: TLS(default pool) / plaintext = "
                  f"{fmt(ratio(pooled, plain), '{:.2f}')}, "
                  f"TLS default pool / pool 0 = {fmt(ratio(pooled, unpooled), '{:.2f}')}, "
                  f"handshakes per 1,000 messages (default pool): {per_1000 or 'n/a'}")
        runs = tls.get(("tls_pool_default", 20), [])
        if runs:
            worst = max(h * 1000 / max(1, m) for _, m, h in runs)
            targets.append(("TLS handshakes per 1,000 messages, default pool, 20 clients",
                            "<= 25", f"{worst:.1f} (worst run)", worst <= 25,
                            "" if worst <= 25 else f"over by {worst - 25:.1f}"))
            plain = median([r for r, _, _ in tls.get(("plain_pool_default", 20), [])])
            pooled = median([r for r, _, _ in runs])
            r = ratio(pooled, plain)
            if r is not None:
                targets.append(("TLS / plaintext, default pool, 20 clients", ">= 0.9",
                                f"{r:.2f}", r >= 0.9, "" if r >= 0.9 else f"short by {0.9 - r:.2f}"))

    if targets:
        print("\nTargets")
        table(["target", "wanted", "measured", "result", ""],
              [[n, t, m, "MET" if ok else "MISSED", c] for n, t, m, ok, c in targets])
    print()


if __name__ == "__main__":
    main()
