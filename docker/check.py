#!/usr/bin/env python3
"""Checks docker/compose.yaml and docker/Dockerfile without a Docker engine.

Parses the compose file and checks what the deployment relies on: a KRaft
broker reachable as kafka:9092, both programs built from docker/Dockerfile
and pointed at it, start order on the broker's health, and that every
program and path the files name exists in this repository.
"""
import pathlib
import sys

import yaml

root = pathlib.Path(__file__).resolve().parent.parent
compose = yaml.safe_load((root / "docker/compose.yaml").read_text())
dockerfile = (root / "docker/Dockerfile").read_text()
errors = []


def check(cond, what):
    if not cond:
        errors.append(what)


services = compose.get("services", {})
check(set(services) == {"kafka", "processor", "submitter"},
      f"services are {sorted(services)}")
kafka = services.get("kafka", {})
check(str(kafka.get("image", "")).startswith("apache/kafka:4."),
      "kafka image is Apache Kafka 4.x")
env = kafka.get("environment", {})
check(env.get("KAFKA_PROCESS_ROLES") == "broker,controller",
      "kafka runs KRaft broker+controller")
check("PLAINTEXT://kafka:9092" in env.get("KAFKA_ADVERTISED_LISTENERS", ""),
      "kafka advertises kafka:9092")
check("healthcheck" in kafka, "kafka has a healthcheck")
build = services.get("processor", {}).get("build", {})
check((root / "docker" / build.get("context", "") /
       build.get("dockerfile", "")).resolve() == root / "docker/Dockerfile",
      "processor builds docker/Dockerfile from the repository root")
for name in ("processor", "submitter"):
    svc = services.get(name, {})
    check(svc.get("image") == "batchbus-payments:latest",
          f"{name} uses the built image")
    check(svc.get("environment", {}).get("BATCHBUS_BROKERS") ==
          "kafka://kafka:9092", f"{name} points at kafka:9092")
    check(svc.get("depends_on", {}).get("kafka", {}).get("condition") ==
          "service_healthy", f"{name} waits for a healthy broker")
    program = svc.get("command", [""])[0]
    check(f"/build/examples/{program}" in dockerfile,
          f"{name} runs {program}, which the Dockerfile installs")
    check((root / "examples/payments" /
           (program.replace("payments_", "") + ".cc")).exists(),
          f"{program} has a source in examples/payments")
for line in dockerfile.splitlines():
    if line.startswith("COPY ") and "--from" not in line:
        src = line.split()[1]
        check((root / src).exists(), f"Dockerfile copies {src}, which exists")

if errors:
    print("docker/ check FAILED:\n  " + "\n  ".join(errors))
    sys.exit(1)
print("docker/ check: compose.yaml and Dockerfile are consistent")
