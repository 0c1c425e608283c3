#!/usr/bin/env python3
"""Where an open-loop TACACS+ run's slow logins came from.

    tacacs-tail.py TRACE.csv [FTRACE.txt]

TRACE.csv is `portcullis-load tacacs --trace`; FTRACE.txt, optional, is the
kernel's sched_switch trace (tracefs, trace_clock mono) taken over the same
run, as scripts/tacacs-tail.sh takes it. Prints the latency split (start
lateness, authentication and authorization round trips), then the episodes
of slow logins (over 1 ms, grouped when under 5 ms apart) and, with the
ftrace, which threads held each core during each episode.
"""
import collections
import re
import sys


def q(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else 0.0


def main():
    trace = sys.argv[1]
    start_ns, logins, stalls = 0.0, [], []
    for line in open(trace):
        f = line.strip().split(",")
        if f[0] == "start_monotonic_ns":
            start_ns = float(f[1])
        elif f[0] == "login":
            logins.append(tuple(map(float, f[1:])))
        elif f[0] == "stall":
            stalls.append(tuple(map(float, f[1:])))
    logins.sort()
    total = [l[3] - l[0] for l in logins]
    print(f"{len(logins)} logins: p50 {q(total, .5):.0f} µs, p99 {q(total, .99):.0f}, p99.9 {q(total, .999):.0f}")
    for name, i, j in (("start lateness", 0, 1), ("authentication", 1, 2), ("authorization", 2, 3)):
        v = [l[j] - l[i] for l in logins]
        print(f"  {name:15} p50 {q(v, .5):6.0f}  p99 {q(v, .99):6.0f}  p99.9 {q(v, .999):6.0f} µs")
    print(f"generator woke > 200 µs late {len(stalls)} times, {sum(s[1] for s in stalls) / 1e3:.1f} ms in all")

    slow = [l for l in logins if l[3] - l[0] > 1000]
    episodes = []  # [first origin ms, last done ms, count]
    for l in slow:
        if episodes and l[0] / 1e3 - episodes[-1][1] < 5:
            episodes[-1][1] = max(episodes[-1][1], l[3] / 1e3)
            episodes[-1][2] += 1
        else:
            episodes.append([l[0] / 1e3, l[3] / 1e3, 1])
    print(f"{len(slow)} logins over 1 ms ({100 * len(slow) / max(1, len(logins)):.2f}%) in {len(episodes)} episodes")

    switches = collections.defaultdict(list)
    if len(sys.argv) > 2:
        rx = re.compile(r"\[(\d+)\]\s+\S+\s+([\d.]+): sched_switch: .*?==> next_comm=(.*?) next_pid=(\d+)")
        for line in open(sys.argv[2]):
            m = rx.search(line)
            if m:
                cpu, t, comm, pid = m.groups()
                switches[int(cpu)].append(((float(t) * 1e9 - start_ns) / 1e6, f"{comm}[{pid}]"))
    for a, b, n in sorted(episodes, key=lambda e: -e[2])[:10]:
        print(f"  {a:8.1f}-{b:8.1f} ms: {n:4d} slow logins")
        for cpu in sorted(switches):
            held, last = collections.Counter(), None
            for t, who in switches[cpu]:
                if last is not None:
                    lo, hi = max(last[0], a - 1), min(t, b)
                    if hi > lo:
                        held[last[1]] += hi - lo
                last = (t, who)
            top = ", ".join(f"{k} {v:.2f} ms" for k, v in held.most_common(4))
            print(f"      cpu{cpu}: {top}")


if __name__ == "__main__":
    main()
