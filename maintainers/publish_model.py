"""Publish a converted zoo checkpoint: push it with its model card and record it in the manifest.

    python -m maintainers.publish_model CONVERTED_DIR ZOO_NAME --results results.json [--repo-id ORG/NAME]
        [--endpoint URL] [--token TOKEN] [--manifest segzoo/zoo/published.json]

CONVERTED_DIR comes from ``segzoo convert``; its config must be the zoo entry's config (class names aside).
``results.json`` holds the evaluation results, e.g. ``{"mIoU": 78.9, "pixAcc": 95.6, "split": "Pascal VOC
2012 val", "eval": "single scale"}``; they go into the model card's model-index and the manifest. The
manifest records repo id, the pushed commit, the sha256 of ``model.safetensors`` and the metrics; it is
what ``create_model(ZOO_NAME, pretrained=True)`` reads.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import segzoo
from segzoo.errors import ConfigError, SegzooError
from segzoo.tools.arguments import add_hub_options
from segzoo.weights import WEIGHTS_NAME
from segzoo.zoo import get_pretrained, list_pretrained
from segzoo.zoo.manifest import DEFAULT_MANIFEST, write_manifest_record


def publish(directory: str, name: str, results: dict, repo_id: str | None = None, endpoint: str | None = None,
            token: str | None = None, manifest: str | Path = DEFAULT_MANIFEST) -> dict:
    """Push ``directory`` as zoo model ``name`` and write its manifest record; returns the record."""
    entry = get_pretrained(name)
    model = segzoo.create_model(f"local-dir:{directory}")
    comparable = model.config.replace(provenance={}, class_names=entry.config.class_names,
                                      input_size=entry.config.input_size)
    if comparable != entry.config:
        raise ConfigError(f"{directory} is not a {entry.name} model: its config differs from the zoo entry's "
                          f"(compare segzoo.get_pretrained({entry.name!r}).config)")
    model.config = entry.config  # the zoo's class names and eval size go into the card
    repo_id = repo_id or entry.hf_hub_id
    metrics = {**{k: v for k, v in entry.metrics.items() if not isinstance(v, (int, float))}, **results}
    commit_url = segzoo.push_to_hub(model, repo_id, token=token, endpoint=endpoint,
                                    commit_message=f"Publish {entry.name}",
                                    card_data={"metrics": metrics, "dataset": entry.dataset})
    weights = Path(directory) / WEIGHTS_NAME
    record = {"repo_id": repo_id, "revision": commit_url.rstrip("/").split("/")[-1],
              "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(), "metrics": metrics,
              "source": "segzoo evaluation of the published weights"}
    write_manifest_record(entry.name, record, manifest)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maintainers.publish_model", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", help="a converted checkpoint directory (segzoo convert)")
    parser.add_argument("name", choices=list_pretrained(), metavar="ZOO_NAME", help="the zoo name it is")
    parser.add_argument("--results", required=True, help="JSON file of evaluation results")
    parser.add_argument("--repo-id", help="Hub repo (default: the zoo entry's)")
    add_hub_options(parser)
    parser.add_argument("--manifest", default=str(DEFAULT_MANIFEST), help="manifest to update")
    args = parser.parse_args(argv)
    try:
        record = publish(args.directory, args.name, json.loads(Path(args.results).read_text()), args.repo_id,
                         args.endpoint, args.token, args.manifest)
    except SegzooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps({args.name: record}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
