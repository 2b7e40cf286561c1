#!/usr/bin/env python3
"""Secrets hygiene over a full test run.

`cargo test` leaves, under target/tmp/test-logs/ (see tests/integration/support/logs.rs), every
operational log line and audit record the integration tests' gateways wrote, the output of every
`trustbridge` process they ran (child-*.log), every token and signature the test servers minted or
received (secrets-*.txt), and every Redis password the tests configured (passwords-*.txt). This
fails when any log, audit or output line carries any of them. `.ci/run` clears the directory before the suite and runs this after it.
"""
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/tmp/test-logs")
secret_files = sorted(root.glob("secrets-*.txt"))
password_files = sorted(root.glob("passwords-*.txt"))
log_files = sorted(root.glob("run-*.jsonl")) + sorted(root.glob("audit-*.jsonl")) + sorted(root.glob("child-*.log"))
secrets = {line.strip() for f in secret_files for line in f.read_text().splitlines() if len(line.strip()) >= 16}
passwords = {line.strip() for f in password_files for line in f.read_text().splitlines() if len(line.strip()) >= 16}
if not secrets or not log_files:
    print(f"log scan: nothing to scan in {root} ({len(secrets)} secrets, {len(log_files)} logs); run cargo test first")
    sys.exit(1)

lines = 0
leaks = []
for f in log_files:
    for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
        lines += 1
        for secret in secrets:
            if secret in line:
                leaks.append(f"{f.name}:{n}: carries a token or signature ({secret[:12]}...)")
                break
        for password in passwords:
            if password in line:
                leaks.append(f"{f.name}:{n}: carries a Redis password ({password[:4]}...)")
                break
for leak in leaks[:20]:
    print(leak)
print(f"log scan: {lines} log, audit and output lines in {len(log_files)} files checked against {len(secrets)} tokens and signatures and {len(passwords)} passwords: {len(leaks)} leaks")
sys.exit(1 if leaks else 0)
