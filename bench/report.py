#!/usr/bin/env python3
"""Summarises bench/results/*.json (written by scripts/bench): a table of
medians on stdout and in summary.md, and PNG plots when matplotlib is there.

    python3 bench/report.py bench/results
"""
import glob
import json
import os
import re
import statistics
import sys


def load(pattern):
    runs = []
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            runs.append(json.load(f))
    return runs


def median(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=0):
    if v is None:
        return "n/a"
    if isinstance(v, float) and digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


ROWS = [
    ("raw librdkafka msgs/s (one way)", "raw_msgs_per_s", 0),
    ("batchbus jobs/s (round trip)", "jobs_per_s", 0),
    ("ratio batchbus / raw", "ratio", 2),
    ("realtime p50 idle (us)", "rt_p50_us", 0),
    ("realtime p99 idle (us)", "rt_p99_us", 0),
    ("realtime p99 under slow backlog (us)", "rt_backlog_p99_us", 0),
    ("normal p50 idle (us)", "normal_p50_us", 0),
    ("CPU per job, whole process (us)", "cpu_us_per_job", 2),
    ("CPU per job / raw CPU per message", "cpu_ratio_to_raw", 2),
    ("backlog drain while probes flow (jobs/s)", "backlog_drain_jobs_per_s", 0),
    ("backlog drain with no probes (jobs/s)", "backlog_free_drain_jobs_per_s", 0),
    ("CPU per job without mock broker thread (us)", "cpu_us_per_job_excl_mock", 2),
    ("peak RSS (MiB)", "rss_mb", 0),
    ("RSS growth per in-flight job (B)", "inflight_rss_growth_per_job", 0),
    ("bytes_per_inflight_job (growth - data)", "bytes_per_inflight_job", 0),
    ("slow backlog (jobs)", "backlog_jobs", 0),
    ("lost", "lost", 0),
    ("duplicates", "duplicates", 0),
]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
    columns = []
    for label, pattern in [("mock://", "mock_all_*.json"),
                           ("kafka://", "kafka_all_*.json"),
                           ("Spring peer", "spring_*.json")]:
        runs = load(os.path.join(out, pattern))
        if runs:
            columns.append((label, runs))
    lines = []
    header = "| metric | " + " | ".join(
        f"{label} (n={len(runs)})" for label, runs in columns) + " |"
    lines.append(header)
    lines.append("|" + "---|" * (len(columns) + 1))
    for name, key, digits in ROWS:
        cells = [fmt(median(runs, key), digits) for _, runs in columns]
        if all(c == "n/a" for c in cells):
            continue
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    spring = dict(columns).get("Spring peer")
    kafka = dict(columns).get("kafka://")
    if spring and kafka:
        bb, sp = median(kafka, "jobs_per_s"), median(spring, "jobs_per_s")
        if bb and sp:
            lines.append(f"| batchbus / Spring jobs/s | {fmt(bb / sp, 1)}x | | |")

    sweep = {}
    for path in glob.glob(os.path.join(out, "sweep_*_b*_*.json")):
        m = re.search(r"sweep_(\w+)_b(\d+)_\d+\.json$", path)
        with open(path) as f:
            sweep.setdefault((m.group(1), int(m.group(2))), []).append(json.load(f))
    sweep_lines = []
    if sweep:
        sweep_lines.append("| broker | batch_max | batchbus jobs/s | raw msgs/s | ratio | CPU us/job |")
        sweep_lines.append("|---|---|---|---|---|---|")
        for (broker, b) in sorted(sweep):
            runs = sweep[(broker, b)]
            sweep_lines.append(
                f"| {broker} | {b} | {fmt(median(runs, 'jobs_per_s'))} | "
                f"{fmt(median(runs, 'raw_msgs_per_s'))} | "
                f"{fmt(median(runs, 'ratio'), 2)} | "
                f"{fmt(median(runs, 'cpu_us_per_job'), 2)} |")

    # Mixed steady load, pacing on (default) and off; codecs compared.
    extra_lines = []
    mixed = {}
    for path in glob.glob(os.path.join(out, "mixed_*_*_*.json")):
        m = re.search(r"mixed_(\w+?)_(on|off)_\d+\.json$", path)
        if m:
            with open(path) as f:
                mixed.setdefault((m.group(1), m.group(2)), []).append(json.load(f))
    if mixed:
        extra_lines.append("| broker | mixed load, pacing on (jobs/s) | pacing off (jobs/s) | on / off | BATCH_FAILED on / off |")
        extra_lines.append("|---|---|---|---|---|")
        for broker in sorted({b for b, _ in mixed}):
            on, off = mixed.get((broker, "on"), []), mixed.get((broker, "off"), [])
            a, b = median(on, "mixed_jobs_per_s"), median(off, "mixed_jobs_per_s")
            extra_lines.append(
                f"| {broker} | {fmt(a)} | {fmt(b)} | {fmt(a / b if a and b else None, 2)} | "
                f"{fmt(median(on, 'mixed_batch_failed'))} / {fmt(median(off, 'mixed_batch_failed'))} |")
        extra_lines.append("")
    codecs = {}
    for path in glob.glob(os.path.join(out, "codec_*_*_*.json")):
        m = re.search(r"codec_(\w+?)_(\w+)_\d+\.json$", path)
        if m:
            with open(path) as f:
                codecs.setdefault((m.group(1), m.group(2)), []).append(json.load(f))
    if codecs:
        extra_lines.append("| broker | codec | batchbus jobs/s | raw msgs/s | ratio | CPU us/job | CPU / raw |")
        extra_lines.append("|---|---|---|---|---|---|---|")
        for (broker, codec) in sorted(codecs):
            runs = codecs[(broker, codec)]
            extra_lines.append(
                f"| {broker} | {codec} | {fmt(median(runs, 'jobs_per_s'))} | "
                f"{fmt(median(runs, 'raw_msgs_per_s'))} | {fmt(median(runs, 'ratio'), 2)} | "
                f"{fmt(median(runs, 'cpu_us_per_job'), 2)} | {fmt(median(runs, 'cpu_ratio_to_raw'), 2)} |")
    sweep_lines += [""] + extra_lines if extra_lines else []

    machine = ""
    mpath = os.path.join(out, "machine.txt")
    if os.path.exists(mpath):
        with open(mpath) as f:
            machine = f.read()
    text = ("# batchbus benchmark summary\n\nGenerated by `scripts/bench`; "
            "medians of n runs. See docs/benchmarks.md.\n\n```\n" + machine +
            "```\n\n" + "\n".join(lines) + "\n\n" + "\n".join(sweep_lines) + "\n")
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    print("\n".join(lines))
    print()
    print("\n".join(sweep_lines))

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plots", file=sys.stderr)
        return

    if sweep:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for broker, marker in [("mock", "o"), ("kafka", "s")]:
            keys = sorted(b for (br, b) in sweep if br == broker)
            if not keys:
                continue
            ax.plot(keys, [median(sweep[(broker, b)], "jobs_per_s") for b in keys],
                    marker=marker, label=f"batchbus round trip ({broker})")
            raws = [median(sweep[(broker, b)], "raw_msgs_per_s") for b in keys]
            ax.plot(keys, raws, linestyle="--", marker=marker, alpha=0.6,
                    label=f"raw librdkafka one way ({broker})")
        ax.set_xscale("log")
        ax.set_xlabel("batch_max (jobs per batch message)")
        ax.set_ylabel("jobs/s (200-byte jobs)")
        ax.set_title("Throughput against batch size")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, "throughput_vs_batch.png"), dpi=110)
        plt.close(fig)

    panels = [(label, runs) for label, runs in columns if label != "Spring peer"]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5),
                                 squeeze=False)
        for ax, (label, runs) in zip(axes[0], panels):
            for key, name in [("samples_realtime_idle_us", "realtime, idle"),
                              ("samples_realtime_backlog_us", "realtime, slow backlog"),
                              ("samples_normal_idle_us", "normal, idle"),
                              ("samples_normal_backlog_us", "normal, slow backlog")]:
                xs = sorted(x for r in runs for x in r.get(key, []))
                if not xs:
                    continue
                ys = [(i + 1) / len(xs) for i in range(len(xs))]
                ax.plot([x / 1000 for x in xs], ys, label=f"{name} (n={len(xs)})")
            if label == "kafka://" and spring:
                xs = sorted(x for r in spring for x in r.get("samples_realtime_idle_us", []))
                if xs:
                    ax.plot([x / 1000 for x in xs], [(i + 1) / len(xs) for i in range(len(xs))],
                            linestyle=":", label=f"Spring ReplyingKafkaTemplate (n={len(xs)})")
            ax.set_xscale("log")
            ax.set_xlabel("round trip (ms)")
            ax.set_ylabel("fraction of jobs")
            ax.set_title(f"Round-trip latency CDF, {label}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "latency_cdf.png"), dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    main()
