#!/usr/bin/env python3
"""Validate policy documents against schema/policy.schema.json with check-jsonschema (issue #16).

check-jsonschema reads one document per YAML file (its issue #222: "expected a single document
in the stream"), while policy files hold several separated by `---`. So this splits every file,
and every fenced ```yaml block of the docs whose documents have a `kind`, into one JSON file per
document, named after where the document starts (`policies/contoso.yaml:12.json`), then runs
check-jsonschema on them all.

usage: validate-policy-schema.py [--check-jsonschema PATH] FILE_OR_DIR...
  directories: every *.yaml/*.yml file except *.test.yaml; *.md files: their yaml blocks.
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import yaml

SCHEMA = pathlib.Path(__file__).resolve().parent.parent / "schema" / "policy.schema.json"
FENCE = re.compile(r"^```ya?ml\n(.*?)^```", re.S | re.M)


def policy_files(arg):
    path = pathlib.Path(arg)
    if path.is_dir():
        for f in sorted(path.rglob("*")):
            if f.suffix in (".yaml", ".yml") and not f.name.endswith((".test.yaml", ".test.yml")):
                yield f
    else:
        yield path


def sources(arg):
    """(name, first line, text) of each YAML source: a policy file, or a docs block."""
    for f in policy_files(arg):
        text = f.read_text()
        if f.suffix == ".md":
            for m in FENCE.finditer(text):
                yield f, text[: m.start(1)].count("\n") + 1, m.group(1)
        else:
            yield f, 1, text


def documents(name, first_line, text):
    """(label, document) for each policy document: docs blocks also show other YAML."""
    try:
        nodes = list(yaml.compose_all(text))
        datas = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        # A docs block that shows something other than a policy (elided with `...`) is skipped;
        # a policy example that does not parse is an error.
        if re.search(r"^kind:", text, re.M) or str(name).endswith((".yaml", ".yml")):
            sys.exit(f"{name}:{first_line}: not YAML: {e}")
        return
    for node, data in zip(nodes, datas):
        # Kubernetes objects in the docs have a `kind` too, and an `apiVersion`.
        if node is None or not isinstance(data, dict) or "kind" not in data or "apiVersion" in data:
            continue
        yield f"{name}:{first_line + node.start_mark.line}", data


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--check-jsonschema", default="check-jsonschema")
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        written = []
        for arg in args.paths:
            for name, first_line, text in sources(arg):
                for label, data in documents(name, first_line, text):
                    target = os.path.join(out, label.replace("/", "__") + ".json")
                    with open(target, "w") as f:
                        json.dump(data, f)
                    written.append(target)
        if not written:
            sys.exit("no policy documents found in " + " ".join(args.paths))
        print(f"{len(written)} policy documents")
        cmd = [args.check_jsonschema, "--schemafile", str(SCHEMA), *written]
        sys.exit(subprocess.run(cmd).returncode)


if __name__ == "__main__":
    main()
