"""Mirror the zoo on the Hub: the maintainer's one step to publish every zoo model as safetensors.

    python -m maintainers.mirror_zoo [PATTERN ...] [--organisation segzoo] [--endpoint URL] [--token TOKEN]
        [--manifest segzoo/zoo/published.json]

For every zoo entry with an upstream checkpoint (or those whose names match a PATTERN, fnmatch style): fetch the
upstream file (segzoo's upstream source: download, hash check, conversion, cached as safetensors), push it with
its model card (upstream, licence, reported metrics) to ``<organisation>/<zoo name>``, and record the repo, the
pushed commit and the sha256 of the pushed ``model.safetensors`` (as the Hub reports it) in the manifest, which
``create_model(name, pretrained=True)`` then reads to take the mirror first.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from pathlib import Path
from typing import Optional

from segzoo.errors import SegzooError
from segzoo.model import SegmentationModel
from segzoo.tools.arguments import add_hub_options
from segzoo.weights import WEIGHTS_NAME, push_to_hub
from segzoo.weights.checkpoint import load_weights
from segzoo.weights.sources import UpstreamSource
from segzoo.zoo import HUB_ORGANISATION, get_pretrained, list_pretrained
from segzoo.zoo.manifest import DEFAULT_MANIFEST, write_manifest_record

__all__ = ["mirror", "mirrorable"]


def mirrorable(patterns: Optional[list[str]] = None) -> list[str]:
    """Zoo names with an upstream checkpoint, those matching any of ``patterns`` when given."""
    names = [name for name in list_pretrained() if get_pretrained(name).file is not None]
    if patterns:
        names = [name for name in names if any(fnmatch.fnmatch(name, pattern) for pattern in patterns)]
    return names


def _pushed_sha256(repo_id: str, revision: str, endpoint: Optional[str], token: Optional[str]) -> str:
    from huggingface_hub import HfApi

    (info,) = HfApi(endpoint=endpoint, token=token).get_paths_info(repo_id, [WEIGHTS_NAME], revision=revision)
    return info.lfs.sha256


def mirror(name: str, organisation: str = HUB_ORGANISATION, endpoint: Optional[str] = None,
           token: Optional[str] = None, manifest: str | Path = DEFAULT_MANIFEST) -> dict:
    """Fetch, convert and push zoo model ``name``, record it in ``manifest``; return the record."""
    entry = get_pretrained(name)
    if entry.file is None:
        raise SegzooError(f"{entry.name} has no upstream checkpoint to mirror")
    config, state = UpstreamSource(entry).fetch()
    model = SegmentationModel(config)
    load_weights(model, state, source=entry.name)
    repo_id = f"{organisation}/{entry.name}"
    commit_url = push_to_hub(model, repo_id, token=token, endpoint=endpoint, commit_message=f"Mirror {entry.name}",
                             card_data={"metrics": entry.metrics, "dataset": entry.dataset})
    revision = commit_url.rstrip("/").split("/")[-1]
    record = {"repo_id": repo_id, "revision": revision,
              "sha256": _pushed_sha256(repo_id, revision, endpoint, token), "metrics": entry.metrics,
              "source": entry.source, "upstream": UpstreamSource(entry).url()}
    write_manifest_record(entry.name, record, manifest)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maintainers.mirror_zoo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("patterns", nargs="*", metavar="PATTERN", help="zoo names or fnmatch patterns (default: all)")
    parser.add_argument("--organisation", default=HUB_ORGANISATION, help="Hub namespace to push to")
    add_hub_options(parser)
    parser.add_argument("--manifest", default=str(DEFAULT_MANIFEST), help="manifest to update")
    args = parser.parse_args(argv)
    names = mirrorable(args.patterns)
    if not names:
        print(f"error: no zoo entry with an upstream checkpoint matches {' '.join(args.patterns)}", file=sys.stderr)
        return 1
    failed = 0
    for name in names:
        try:
            record = mirror(name, args.organisation, args.endpoint, args.token, args.manifest)
        except SegzooError as err:
            print(f"error: {name}: {err}", file=sys.stderr)
            failed += 1
            continue
        print(json.dumps({name: record}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
