"""config/README.md is the config schema rendered: every key described, and the file cannot drift from the schema."""

from __future__ import annotations

import re

import yaml
from snakemake_run import ROOT

from mammo.configdoc import SCHEMA, render, rows


def test_config_readme_is_the_rendered_schema():
    expected = render(yaml.safe_load(SCHEMA.read_text()))
    assert (ROOT / "config" / "README.md").read_text() == expected, "regenerate: python -m mammo.configdoc > config/README.md"


def test_every_config_key_has_a_meaning():
    schema = yaml.safe_load(SCHEMA.read_text())
    table = rows(schema, schema, "")
    assert len(table) > 100
    assert [path for path, _, _, meaning in table if not meaning] == []


def test_every_key_of_the_default_config_is_documented():
    schema = yaml.safe_load(SCHEMA.read_text())
    # documented keys as tuples (user names such as "1.0.0.35" hold dots); <name> is any key, "roi (method N)" is roi
    documented = [tuple(re.sub(r" \(method \d\)", "", path).split(".")) for path, _, _, _ in rows(schema, schema, "")]
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())

    def paths(node, prefix=()):
        for key, value in node.items():
            yield (*prefix, key)
            if isinstance(value, dict):
                yield from paths(value, (*prefix, key))

    def matches(path, pattern):
        return len(path) == len(pattern) and all(part == "<name>" or part == key for key, part in zip(path, pattern))

    undocumented = [path for path in paths(config) if not any(matches(path, pattern) for pattern in documented)]
    assert undocumented == []
