#!/usr/bin/env python3
"""Writes the no-claim-mapping variant of the bundled policies for the ablation runs.

    scripts/bench-ablation-policies.py <bundled policies dir> <output dir>

The output is a copy of the bundled policies in which deploy-bot's credential has no
claimMappings: the exchange the load benchmark sends then evaluates no CEL at all. It is
served only by `ABLATE=1 scripts/bench-load.sh`, to measure what the mapping costs.
"""
import shutil
import sys
from pathlib import Path

MAPPING = (
    "    claimMappings:\n"
    "      repository: 'has(claims.repository) ? claims.repository : \"unknown\"'\n"
)


def main() -> None:
    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(source, out)
    path = out / "contoso.yaml"
    text = path.read_text()
    if MAPPING not in text:
        sys.exit("the bundled deploy-bot mapping moved: update scripts/bench-ablation-policies.py")
    path.write_text(text.replace(MAPPING, "", 1))


if __name__ == "__main__":
    main()
