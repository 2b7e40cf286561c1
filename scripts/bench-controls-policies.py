#!/usr/bin/env python3
"""Writes the request-controls variant of the bundled policies (issue 15) for the benchmarks.

    scripts/bench-controls-policies.py <bundled policies dir> <output dir>

The output is a copy of the bundled policies in which deploy-bot's credential is also bound to
the request: an allowedNetworks list and a CEL condition on request.ip and request.time. The
benchmarks serve it with --trusted-proxies 127.0.0.1/32 and send X-Forwarded-For: 198.51.100.7
(scripts/bench-load.sh, scripts/bench-instructions.sh).
"""
import shutil
import sys
from pathlib import Path

ANCHOR = "    subject: repo:contoso/infra:ref:refs/heads/main"
CONTROLS = (
    "    allowedNetworks: [10.0.0.0/8, 198.51.100.0/24, 2001:db8::/32]\n"
    "    condition: >-\n"
    "      cidr('198.51.100.0/24').containsIP(request.ip) &&\n"
    "      request.time > timestamp('2020-01-01T00:00:00Z')\n"
)


def main() -> None:
    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(source, out)
    path = out / "contoso.yaml"
    text = path.read_text()
    if ANCHOR not in text:
        sys.exit("the bundled deploy-bot credential moved: update scripts/bench-controls-policies.py")
    path.write_text(text.replace(ANCHOR, CONTROLS + ANCHOR, 1))


if __name__ == "__main__":
    main()
