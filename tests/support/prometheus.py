#!/usr/bin/python3
"""Parses Prometheus text from stdin with prometheus_client's own parser and
prints one line per sample: `name{label=value,...} value`, labels sorted.
Exits non-zero (with the parser's error) when the text does not parse."""
import sys

from prometheus_client.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value!r}")
