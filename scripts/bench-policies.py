#!/usr/bin/env python3
"""Writes a variant of the bundled policies for the benchmarks.

    scripts/bench-policies.py <controls|no-mapping> <bundled policies dir> <output dir>

The output is a copy of the bundled policies with deploy-bot's credential changed:

- controls: also bound to the request (issue 15), by an allowedNetworks list and a CEL condition
  on request.ip and request.time. The benchmarks serve it with --trusted-proxies 127.0.0.1/32
  and send X-Forwarded-For: 198.51.100.7 (scripts/bench-load.sh, scripts/bench-instructions.sh).
- no-mapping: without its CEL claim mapping, so that the measured exchange evaluates no CEL at
  all (`ABLATE=1 scripts/bench-load.sh`, `KINDS=no-mapping scripts/bench-instructions.sh`).
"""
import shutil
import sys
from pathlib import Path

SUBJECT = "    subject: repo:contoso/infra:ref:refs/heads/main"
CONTROLS = (
    "    allowedNetworks: [10.0.0.0/8, 198.51.100.0/24, 2001:db8::/32]\n"
    "    condition: >-\n"
    "      cidr('198.51.100.0/24').containsIP(request.ip) &&\n"
    "      request.time > timestamp('2020-01-01T00:00:00Z')\n"
)
MAPPING = (
    "    claimMappings:\n"
    "      repository: 'has(claims.repository) ? claims.repository : \"unknown\"'\n"
)
# variant: (text of the bundled contoso.yaml to find, what replaces it)
VARIANTS = {
    "controls": (SUBJECT, CONTROLS + SUBJECT),
    "no-mapping": (MAPPING, ""),
}


def main() -> None:
    if len(sys.argv) != 4 or sys.argv[1] not in VARIANTS:
        sys.exit(f"usage: {sys.argv[0]} <{'|'.join(VARIANTS)}> <policies dir> <output dir>")
    find, replace = VARIANTS[sys.argv[1]]
    source, out = Path(sys.argv[2]), Path(sys.argv[3])
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(source, out)
    path = out / "contoso.yaml"
    text = path.read_text()
    if find not in text:
        sys.exit(f"the bundled deploy-bot credential changed: update {sys.argv[0]}")
    path.write_text(text.replace(find, replace, 1))


if __name__ == "__main__":
    main()
