"""The ``segzoo`` command: a thin layer over the library's functions."""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import sys

from .arguments import add_hub_options, existing_folder, folder, integer, output_file, positive_number

__all__ = ["main"]


# Options that several verbs take, each declared once so that it parses and reads the same in every verb.

def _add_num_classes(parser, default: str = "the model's own; another number re-initialises the classifiers of "
                                            "a model with weights") -> None:
    parser.add_argument("--num-classes", type=integer(1), metavar="N", help=f"number of classes (default: {default})")


def _add_size(parser, help: str, default: tuple[int, int] | None = None) -> None:
    parser.add_argument("--size", nargs=2, type=integer(1), default=default, metavar=("H", "W"), help=help)


def _add_device(parser, auto: bool) -> None:
    """``--device``; with ``auto`` its default is auto (CUDA when available), else cpu."""
    choices = "cpu, cuda or cuda:N"
    if auto:
        choices = f"auto (CUDA when available, else CPU), {choices}"
    parser.add_argument("--device", default="auto" if auto else "cpu", metavar="DEVICE",
                        help=f"{choices} (default: {'auto' if auto else 'cpu'})")


def _add_list(commands) -> None:
    parser = commands.add_parser("list", help="list model names, zoo names, heads or necks",
                                 description="List model names: zoo names and '<head>_<backbone>' names on the "
                                             "ResNet backbones (any timm feature model works as a backbone).")
    parser.add_argument("pattern", nargs="?", help="fnmatch pattern, e.g. 'fcn_*' or '*_voc' (with --heads / --necks: "
                                                   "of their names, e.g. 'psp*')")
    parser.add_argument("--pretrained", action="store_true",
                        help="the zoo: each entry's name, short names, dataset, reported mIoU, where its weights "
                             "are and their licence")
    for field, example in (("head", "pspnet"), ("backbone", "'resnet101*'"), ("dataset", "'*cityscapes*'"),
                           ("source", "mmseg, torchvision or reference"), ("license", "apache-2.0 or 'bsd-*'")):
        parser.add_argument(f"--{field}", metavar="PATTERN",
                            help=f"with --pretrained: only entries whose {field} matches (e.g. {example})")
    parser.add_argument("--heads", action="store_true",
                        help="list the heads with the distribution and version providing each")
    parser.add_argument("--necks", action="store_true",
                        help="list the necks with the distribution and version providing each")
    parser.set_defaults(run=_run_list)


def _run_list(args) -> int:
    if args.heads or args.necks:
        from ..registry import list_heads, list_necks

        asked = [(kind, lister) for kind, lister, wanted in (("heads", list_heads, args.heads),
                                                             ("necks", list_necks, args.necks)) if wanted]
        # PATTERN filters the plug-in names as it filters model names
        kinds = [(kind, [info for info in lister(include_failed=True)
                         if args.pattern is None or fnmatch.fnmatch(info.name, args.pattern)])
                 for kind, lister in asked]
        if not any(infos for _, infos in kinds):  # as for model names: nothing listed is exit 1, said on stderr
            print(f"no {' or '.join(kind[:-1] for kind, _ in asked)} matches {args.pattern!r}", file=sys.stderr)
            return 1
        kinds = [(kind, infos) for kind, infos in kinds if infos or args.pattern is None]
        for kind, infos in kinds:
            if len(kinds) > 1:  # --heads --necks: each list under its name
                print(f"{kind}:")
            for info in infos:
                status = "" if info.ok else f"  (failed to load: {type(info.error).__name__}: {info.error})"
                print(f"{info.name:<16} {info.distribution} {info.version}  {info.entry_point}{status}")
        return 0
    from ..factory import list_models

    filters = {field: getattr(args, field) for field in ("head", "backbone", "dataset", "source", "license")
               if getattr(args, field) is not None}
    if filters and not args.pretrained:
        print(f"error: --{', --'.join(filters)} filter the zoo: add --pretrained", file=sys.stderr)
        return 2
    names = list_models(args.pattern, pretrained=args.pretrained, **filters)
    if not names:  # an empty list reads as success to a script: say so, as grep does, with exit 1
        what = f" {args.pattern!r}" if args.pattern else " these filters"
        print(f"no {'zoo entry' if args.pretrained else 'model name'} matches{what}", file=sys.stderr)
        return 1
    print(_zoo_listing(names) if args.pretrained else "\n".join(names))
    return 0


def _zoo_listing(names: list[str]) -> str:
    """The zoo table; entries whose upstream published no checkpoint (metrics only) in a table of their own."""
    from ..zoo import get_pretrained, license_flag

    def has_weights(name: str) -> bool:
        entry = get_pretrained(name)
        return entry.published or entry.file is not None

    with_weights = [name for name in names if has_weights(name)]
    without = [name for name in names if not has_weights(name)]
    parts = [_zoo_table(with_weights)] if with_weights else []
    if without:
        parts.append(f"No weights anywhere ({len(without)}: their upstream reports results but published no "
                     f"checkpoint; pretrained=False builds the architecture):\n{_zoo_table(without)}")
    if any(license_flag(get_pretrained(name).license, get_pretrained(name).terms) for name in with_weights):
        parts.append("(!) non-commercial licence or unknown terms: read them (segzoo info NAME) before using the "
                     "weights; --license apache-2.0 (or another licence) lists only those under it")
    return "\n\n".join(parts)


def _zoo_table(names: list[str]) -> str:
    from ..zoo import get_pretrained, license_flag

    rows = [("name", "also", "dataset", "mIoU", "source", "weights", "licence")]
    for name in names:
        entry = get_pretrained(name)
        miou = entry.metrics.get("mIoU")
        weights = "segzoo mirror" if entry.published else (entry.file.host if entry.file else "none published")
        rows.append((name, ",".join(entry.short_names), entry.dataset, "-" if miou is None else f"{miou:g}",
                     entry.upstream, weights, _flagged(entry.license, license_flag(entry.license, entry.terms))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def _flagged(license: str, flag) -> str:
    return f"{license} (!) {flag}" if flag else license


def _add_info(commands) -> None:
    parser = commands.add_parser(
        "info", help="describe a model: config, parameters, GFLOPs, classes, metrics, weights",
        description="Describe NAME (a zoo name, '<head>_<backbone>', hf-hub:org/name[@rev] or local-dir:DIR): "
                    "its config, parameters, GFLOPs at its eval size (counted without computing), classes, "
                    "the metrics reported for it and their source, and where its weights live and whether "
                    "they are in the Hub cache. hf-hub: names download config.json only.")
    parser.add_argument("name", metavar="NAME", help="model name")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_hub_options(parser, cache_dir=True)
    parser.set_defaults(run=_run_info)


def _run_info(args) -> int:
    from .info import format_info, model_info

    info = model_info(args.name, cache_dir=args.cache_dir, token=args.token, endpoint=args.endpoint)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def _add_benchmark(commands) -> None:
    parser = commands.add_parser(
        "benchmark", help="latency, GFLOPs, GFLOP/s and peak memory of models",
        description="Benchmark models, each in its own process: median latency over --runs after --warmup, "
                    "images/s, GFLOPs (torch's FLOP counter; a multiply-add is 2 FLOPs), GFLOP/s and peak "
                    "memory (CPU: peak RSS of the process and its growth during the timed runs; CUDA: max "
                    "allocated). Peers: 'tv:' names are torchvision segmentation models, e.g. "
                    "tv:deeplabv3_resnet101, 'smp:<Arch>:<encoder>' segmentation_models_pytorch models, e.g. "
                    "smp:DeepLabV3:resnet101 (random weights). The options apply to every row; a suffix "
                    "@word,word gives one row its own: contiguous / channels_last, fp32 / bf16 / int8 / auto, "
                    "eager / compile / onnxruntime, optimized / plain (e.g. tv:deeplabv3_resnet101@contiguous,plain "
                    "is torchvision as users run it).")
    parser.add_argument("models", nargs="+", metavar="NAME",
                        help="segzoo model name, tv:<torchvision name> or smp:<Arch>:<encoder>, optionally "
                             "@options")
    _add_size(parser, "input size (default: 480 480)", default=(480, 480))
    parser.add_argument("--batch", type=integer(1), default=1, help="batch size")
    _add_device(parser, auto=False)
    parser.add_argument("--channels-last", dest="channels_last", action=argparse.BooleanOptionalAction, default=True,
                        help="channels-last memory format (default: on)")
    parser.add_argument("--train", action="store_true", help="time a training step instead of inference")
    parser.add_argument("--compile", action="store_true", help="the same as --runtime compile")
    parser.add_argument("--optimize", choices=("segzoo", "all", "none"), default="segzoo",
                        help="run these models through segzoo.optimize_for_inference first (eager, eval only): segzoo "
                             "models (default, as segzoo predict runs them), all (peers too) or none")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "int8"), default="fp32",
                        help="inference precision of every row without its own (segzoo models and peers alike; each "
                             "row says what it ran in): fp32 (default), bf16 (CPU; emulated and slow without native "
                             "bfloat16), int8 (ONNX Runtime static quantization, calibrated on the random input: "
                             "speed only) or auto (bf16 where the CPU has native bfloat16, else fp32: segzoo "
                             "predict's path when its agreement check passes)")
    parser.add_argument("--runtime", choices=("eager", "compile", "onnxruntime"),
                        help="runtime of every row without its own: eager (default), compile (torch.compile with "
                             "freezing, compiled in the warm-up) or onnxruntime (the ONNX export; default for int8)")
    parser.add_argument("--roof", action="store_true",
                        help="also measure the machine's roof (a square GEMM, up to 2048, in fp32 and bf16) and show "
                             "each row's share of it")
    parser.add_argument("--warmup", type=integer(0), default=1, help="untimed runs first")
    parser.add_argument("--runs", type=integer(1), default=3, help="timed runs (the median is reported)")
    parser.add_argument("--rounds", type=integer(1), default=1,
                        help="run the whole list this many times in turn and report each model's median round "
                             "(steadier on a shared machine)")
    _add_num_classes(parser)
    parser.add_argument("--reference", help="a NAME among the models (as given, with its @options): print latency "
                                               "and GFLOP/s ratios against it")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=_run_benchmark)


def _run_benchmark(args) -> int:
    from ..errors import ConfigError
    from .benchmark import benchmark, format_table, results_as_dicts

    if args.reference is not None and args.reference not in {*args.models, *(m.split("@")[0] for m in args.models)}:
        raise ConfigError(f"--reference {args.reference!r} is not among the models benchmarked "
                          f"({', '.join(args.models)})")
    results = benchmark(args.models, size=tuple(args.size), batch=args.batch, device=args.device,
                        channels_last=args.channels_last, train=args.train, warmup=args.warmup, runs=args.runs,
                        compile=args.compile, optimize=args.optimize, rounds=args.rounds,
                        precision=args.precision, runtime=args.runtime, roof=args.roof,
                        num_classes=args.num_classes)
    print(json.dumps(results_as_dicts(results), indent=2) if args.json else format_table(results, args.reference))
    return 0


def _add_convert(commands) -> None:
    from ..upstreams import convert_sources
    from ..weights.convert import list_kinds

    parser = commands.add_parser(
        "convert",
        help="convert an upstream .pth checkpoint (reference, PyTorch-Encoding, torchvision, mmseg) to segzoo files",
        description="Convert an upstream .pth checkpoint to segzoo's model.safetensors + config.json, loadable "
                    "with create_model('local-dir:OUT_DIR'): the reference zoo's (base*/JPU.), PyTorch-Encoding / "
                    "FastFCN's (pretrained./jpu.), torchvision's segmentation models' (backbone./classifier.) or "
                    "mmsegmentation's (backbone./decode_head./auxiliary_head.; meta and optimizer state ignored). "
                    "Every key must be placed and every shape must fit; the .pth is read with "
                    "torch.load(weights_only=True), never unpickling code.")
    parser.add_argument("src", help="the .pth checkpoint")
    parser.add_argument("out_dir", type=folder, help="output directory (created if needed)")
    parser.add_argument("--from", dest="source", choices=sorted(convert_sources()), default="reference",
                        help="the upstream whose layout the file has (default: reference; encoding is its "
                             "PyTorch-Encoding variant, detected from the keys either way)")
    parser.add_argument("--model", metavar="NAME",
                        help="the zoo name the file is (its entry gives what the keys cannot tell: PSP bins, DANet's "
                             "softmax axis, dilations, align_corners, class names and palette), or a reference kind ("
                             + ", ".join(list_kinds()) + "); default: what the keys tell")
    parser.add_argument("--backbone", help="timm backbone (default: inferred from the layer3 depth)")
    parser.add_argument("--backbone-weights", metavar="PTH",
                        help="the backbone's own .pth where the upstream publishes it apart from the head's "
                             "(DINOv2's dinov2_<arch>_pretrain.pth)")
    _add_num_classes(parser, default="from the classifier")
    parser.add_argument("--class-names", help="comma-separated class names to record in config.json")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the model OUT_DIR holds (default: an error); the old one stays intact until "
                             "the new one is complete")
    parser.set_defaults(run=_run_convert)


def _refuse_a_model_folder(folder, option: str) -> None:
    """Outputs are never replaced unasked: an ``OutputError`` when ``folder`` holds a model (checked before any
    work; ``--overwrite`` skips the check). ``option`` names the folder's argument in the message."""
    from ..errors import OutputError
    from ..weights.checkpoint import CONFIG_NAME, WEIGHTS_NAME, holds_model

    if holds_model(folder):
        raise OutputError(f"{folder} holds a model already ({CONFIG_NAME} / {WEIGHTS_NAME}); pass --overwrite "
                          f"to replace it, or choose another {option}")


def _run_convert(args) -> int:
    from ..weights.convert import convert_file

    if not args.overwrite:  # before the checkpoint is read
        _refuse_a_model_folder(args.out_dir, "OUT_DIR")
    class_names = [name.strip() for name in args.class_names.split(",")] if args.class_names else None
    report = convert_file(args.src, args.out_dir, args.model, backbone=args.backbone,
                          num_classes=args.num_classes, class_names=class_names, source=args.source,
                          backbone_weights=args.backbone_weights)
    print(report.summary())
    return 0


def _add_push(commands) -> None:
    parser = commands.add_parser(
        "push", help="push a saved model directory to the Hub",
        description="Upload DIR (model.safetensors + config.json, as written by segzoo.save_pretrained) to the "
                    "Hub repo REPO_ID with a generated README.md model card, in one commit. Creates the repo "
                    "if needed; pushing identical files makes no commit. Prints the commit URL.")
    parser.add_argument("directory", metavar="DIR", type=existing_folder,
                        help="a directory written by segzoo.save_pretrained")
    parser.add_argument("repo_id", metavar="REPO_ID", help="namespace/name")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--message", help="commit message")
    add_hub_options(parser, revision="branch to commit to (created if needed; default main)")
    parser.set_defaults(run=_run_push)


def _run_push(args) -> int:
    from ..factory import create_model
    from ..weights.hub import push_to_hub

    model = create_model(f"local-dir:{args.directory}")
    print(push_to_hub(model, args.repo_id, private=args.private or None, revision=args.revision,
                      commit_message=args.message, token=args.token, endpoint=args.endpoint))
    return 0


def _add_pull(commands) -> None:
    parser = commands.add_parser(
        "pull", help="download a model (a Hub repo or a zoo model's weights) into the cache",
        description="Download REPO_ID's config.json and model.safetensors into the Hub cache, checking each "
                    "file against the hash the Hub reported, and print where they are. A zoo name instead fetches "
                    "that model's trained weights from its first source (segzoo's Hub mirror, else the upstream "
                    "file, converted once into segzoo's cache). With --to, also copy config.json and "
                    "model.safetensors (not the model card) into a directory usable as local-dir:DIR.")
    parser.add_argument("repo_id", metavar="REPO_ID", help="namespace/name[@revision], or a zoo name")
    parser.add_argument("--to", metavar="DIR", type=folder,
                        help="copy config.json and model.safetensors (not the model card) into DIR, created if "
                             "needed")
    parser.add_argument("--local-files-only", action="store_true", help="use the cache only")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the model --to DIR holds (default: an error; it is replaced whole)")
    add_hub_options(parser, cache_dir=True, revision="branch, tag or commit")
    parser.set_defaults(run=_run_pull)


def _run_pull(args) -> int:
    from ..errors import WeightsUnavailableError
    from ..weights.hub import copy_model_files, download_model_files, parse_hub_name
    from ..weights.resolver import HF_HUB_PREFIX, resolve_model_name
    from ..weights.sources import HubOptions, first_available
    from ..zoo import is_pretrained_name

    if args.to and not args.overwrite:  # before anything is downloaded
        _refuse_a_model_folder(args.to, "--to DIR")
    if is_pretrained_name(args.repo_id):
        options = HubOptions(cache_dir=args.cache_dir, token=args.token, revision=args.revision,
                             endpoint=args.endpoint, local_files_only=args.local_files_only)
        resolved = resolve_model_name(args.repo_id)
        if not resolved.weights:
            raise WeightsUnavailableError(resolved.missing_weights())
        _, snapshot = first_available(resolved.weights, options, resolved.name)
        # segzoo's cache holds the tensors only (the config is the entry's): --to saves the model local-dir: reads
        print(_save_zoo_model(args.repo_id, options, args.to) if args.to else snapshot)
        return 0
    repo_id, revision = parse_hub_name(args.repo_id.removeprefix(HF_HUB_PREFIX))
    snapshot = download_model_files(repo_id, args.revision or revision, cache_dir=args.cache_dir, token=args.token,
                                    endpoint=args.endpoint, local_files_only=args.local_files_only)
    print(copy_model_files(snapshot, args.to) if args.to else snapshot)
    _warn_if_plugin_missing(snapshot)
    return 0


def _save_zoo_model(name: str, options, directory) -> str:
    """A zoo model with its fetched weights, saved as ``local-dir:`` reads it (config.json + model.safetensors)."""
    from ..factory import create_model
    from ..weights.checkpoint import save_pretrained

    model = create_model(name, pretrained=True, cache_dir=options.cache_dir, token=options.token,
                         revision=options.revision, endpoint=options.endpoint,
                         local_files_only=options.local_files_only)
    return str(save_pretrained(model, directory))  # a model there is replaced whole


def _warn_if_plugin_missing(snapshot) -> None:
    """The files are here, but building the model needs its head's plug-in: say which package to install."""
    from ..config import ModelConfig
    from ..errors import UnknownModelError
    from ..registry import check_plugins_installed
    from ..weights.checkpoint import CONFIG_NAME

    config = ModelConfig.load(os.path.join(snapshot, CONFIG_NAME))
    try:
        check_plugins_installed(config.head, config.provenance)
    except UnknownModelError as err:
        print(f"warning: {err}", file=sys.stderr)


def _add_predict(commands) -> None:
    """``segzoo predict``: see segzoo/predict.py."""
    parser = commands.add_parser(
        "predict", help="segment image files: palette masks, colour overlays, class-map arrays",
        description="Segment images and write, per image <stem>, into --out: <stem>_mask.png (the class map as a "
                    "palette PNG in the dataset's colours: VOC, Cityscapes, ADE20K or a generic palette; pixel "
                    "values are the class indices), <stem>_overlay.png (the colours blended over the image) and "
                    "with --npy <stem>.npy. Masks have the image's size after EXIF orientation. Unreadable files "
                    "are reported and skipped. Exit status 0 when at least one image was segmented.")
    parser.add_argument("images", nargs="+", metavar="IMAGES",
                        help="image files (any extension), folders (searched recursively for .jpg/.png/.bmp/"
                             ".gif/.tif/.webp/...; sub-folders are mirrored in --out) or quoted glob patterns "
                             "('photos/*.jpg', '**' recurses)")
    parser.add_argument("--model", required=True, metavar="NAME",
                        help="a model name create_model accepts: a zoo name (run with its trained weights), "
                             "'<head>_<backbone>' (random weights), 'hf-hub:org/name[@rev]' or 'local-dir:DIR'")
    parser.add_argument("--out", default="predictions", metavar="DIR", type=folder,
                        help="output folder, created if needed (default: predictions)")
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--skip-existing", dest="existing", action="store_const", const="skip", default="error",
                          help="skip the images whose outputs are all in --out already (resumes an interrupted run: "
                               "every file is written whole or not at all)")
    existing.add_argument("--overwrite", dest="existing", action="store_const", const="overwrite",
                          help="replace outputs in --out (default: an error naming them)")
    parser.add_argument("--npy", action="store_true",
                        help="also write <stem>.npy, the raw class map (uint8; int16 above 256 classes)")
    parser.add_argument("--no-overlay", dest="overlay", action="store_false",
                        help="do not write the <stem>_overlay.png colour overlays")
    parser.add_argument("--max-size", type=integer(1), metavar="N",
                        help="run images whose long side exceeds N pixels by sliding window, in windows of the "
                             "model's input_size with 2/3-window stride, overlaps averaged (default: as the model's "
                             "recipe says: mmseg's entries rescale to their test size, some slide; else whole)")
    parser.add_argument("--no-recipe", dest="recipe", action="store_false",
                        help="run every image whole at its own size, not as the model's upstream evaluated it")
    parser.add_argument("--scales", type=positive_number, nargs="+", default=[1.0], metavar="S",
                        help="test-time scales, e.g. --scales 0.75 1.0 1.25: the image is resized by each, and "
                             "the logits, resized back, are averaged (default: 1.0); give the IMAGES before it")
    parser.add_argument("--flip", action="store_true",
                        help="also average the prediction of the left-right mirrored image")
    parser.add_argument("--batch-size", type=integer(1), default=1, metavar="B",
                        help="run up to B images of the same size together (images are never padded to "
                             "share a batch; default: 1)")
    _add_device(parser, auto=True)
    parser.add_argument("--half", action="store_true",
                        help="float16 autocast, on a CUDA device only (an error on the CPU)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "int8"), default="auto",
                        help="auto (default: float32, or where --runtime auto / a CPU with native bfloat16 / "
                             "--calibration leave several paths, the fastest that agrees with float32 on >= 99.5%% "
                             "of the first batch's pixels, measured on the images being segmented and remembered "
                             "for this model, CPU and image size), fp32, bf16 (CPU; emulated and slow without "
                             "native bfloat16) or int8 (ONNX Runtime, static quantization; needs --calibration)")
    parser.add_argument("--runtime", choices=("eager", "compile", "onnxruntime", "auto"),
                        help="eager PyTorch (default; onnxruntime for int8), compile (torch.compile with freezing: "
                             "compiles per image size), onnxruntime (exports the model first; pip install "
                             "'segzoo[onnx]') or auto (eager or onnxruntime, whichever is faster on the first batch)")
    parser.add_argument("--calibration", action="append", metavar="PATH",
                        help="an image file, folder or pattern to calibrate int8 on (repeatable; a handful of "
                             "images like the ones to segment)")
    _add_num_classes(parser)
    parser.add_argument("--remeasure", action="store_true",
                        help="measure --precision auto's choice again, even where one is remembered for this model, "
                             "CPU and image size (also SEGZOO_REMEASURE=1)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar (it is shown only when stderr is a terminal anyway)")
    parser.add_argument("--quiet", action="store_true",
                        help="print only errors and the closing count: no progress bar, no 'inference:' line")
    parser.set_defaults(run=_run_predict)


def _run_predict(args) -> int:
    from ..inference.predict import predict

    created = not os.path.exists(args.out)
    try:
        results = predict(args.images, args.model, out_dir=args.out, save_npy=args.npy, overlay=args.overlay,
                          max_size=args.max_size, scales=tuple(args.scales), flip=args.flip,
                          batch_size=args.batch_size, device=args.device, half=args.half, progress=args.progress,
                          num_classes=args.num_classes, keep_masks=False, recipe=args.recipe,
                          precision=args.precision, runtime=args.runtime, calibration=args.calibration,
                          remeasure=args.remeasure, quiet=args.quiet, existing=args.existing,
                          lock_out="--out")  # a second predict into the same folder is refused, naming this one
    except KeyboardInterrupt:
        print(f"interrupted: every file in {args.out} is complete; run the same command with --skip-existing to do "
              f"the rest", file=sys.stderr)
        return 130
    finally:
        # a run that wrote nothing leaves no folder behind (the lock made one)
        if created and os.path.isdir(args.out) and os.listdir(args.out) == [".segzoo.lock"]:
            shutil.rmtree(args.out, ignore_errors=True)
    done = sum(result.done for result in results)
    written = sum(result.ok for result in results) - done
    skipped = len(results) - written - done
    already = f"{done} already done, " if done else ""
    print(f"{written} written, {already}{skipped} skipped (outputs in {args.out})")
    return 0 if written or done else 1


def _add_export(commands) -> None:
    """``segzoo export``: see segzoo/inference/export.py."""
    parser = commands.add_parser(
        "export", help="export a model to ONNX or torch.export (.pt2) and check it against eager PyTorch",
        description="Export NAME (a zoo name, '<head>_<backbone>', 'hf-hub:org/name[@rev]' or 'local-dir:DIR') "
                    "in eval mode to ONNX (torch.onnx.export with the torch.export-based exporter) or to a "
                    "torch.export program saved with torch.export.save. Batch, height and width are dynamic by "
                    "default. The file is then run (ONNX: onnxruntime on the CPU) at the export size and, when "
                    "dynamic, at a second size and batch, and compared with the eager model: the max abs "
                    "difference must be within 1e-4 of the output scale. It is written and checked under a "
                    "temporary name beside --out and renamed to --out only when the check passes: a file that "
                    "fails it is deleted, and an existing --out stays as it was. Prints the check and the path.")
    parser.add_argument("name", metavar="NAME", help="model name, as segzoo.create_model takes it")
    parser.add_argument("--format", choices=("onnx", "torch.export"), default="onnx",
                        help="onnx (a .onnx file, default) or torch.export (a .pt2 file for torch.export.load)")
    parser.add_argument("--dynamic", action=argparse.BooleanOptionalAction, default=True,
                        help="dynamic batch, height and width (default); --no-dynamic fixes the input to "
                             "1 x 3 x H x W at --size")
    _add_size(parser, "example input size (default: the model's input_size from its config); with --dynamic the "
                      "file takes any size, this is where it is traced and checked")
    parser.add_argument("--out", metavar="PATH", type=output_file,
                        help="output file (default: ./<model name>.onnx or .pt2; parent directories are created)")
    parser.add_argument("--opset", type=integer(1), metavar="N",
                        help="ONNX opset version (default: the exporter's; it converts its graph to other opsets, "
                             "and a model it cannot convert is an error)")
    _add_num_classes(parser)
    parser.add_argument("--no-check", dest="check", action="store_false",
                        help="do not run the exported file and compare it with the eager model")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out file (default: an error); it stays as it was unless the "
                             "new export passes its check")
    parser.set_defaults(run=_run_export)


def _run_export(args) -> int:
    import re

    from ..factory import create_model
    from ..files import refuse_existing
    from ..inference.export import DEFAULT_SUFFIXES, check_arguments, export

    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", args.name.split(":", 1)[-1].rstrip("/\\").rsplit("/", 1)[-1]) or "model"
    out = args.out or f"{stem}{DEFAULT_SUFFIXES[args.format]}"
    check_arguments(out, args.format, args.size, args.opset)
    if not args.overwrite:  # before the model is built
        refuse_existing(out, "a file")
    model = create_model(args.name, num_classes=args.num_classes)
    size = tuple(args.size) if args.size else tuple(model.config.input_size)
    runner = "onnxruntime (CPU)" if args.format == "onnx" else "torch.export.load"

    def report(results) -> None:  # each check, passed or not, before the file is put in place (or not)
        for result in results:
            print(f"check, {runner} vs eager: {result}")

    # written and checked under a temporary name: a failed check leaves nothing at --out (ExportCheckError)
    path = export(model, out, args.format, size=size, dynamic=args.dynamic, opset=args.opset, check=args.check,
                  report=report)
    shape = "dynamic batch, height and width" if args.dynamic else f"input 1x3x{size[0]}x{size[1]}"
    print(f"wrote {path} ({args.format}, {shape})")
    return 0


def _build_parser() -> argparse.ArgumentParser:
    from ..version import __version__

    parser = argparse.ArgumentParser(
        prog="segzoo",
        description="segzoo: a plug-in model zoo for semantic segmentation on timm backbones.",
    )
    parser.add_argument("--version", action="version", version=f"segzoo {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_list(commands)
    _add_info(commands)
    _add_benchmark(commands)
    _add_convert(commands)
    _add_push(commands)
    _add_pull(commands)
    _add_predict(commands)
    _add_export(commands)
    return parser


def _quiet_hub_retries() -> None:
    """Keep huggingface_hub's log (a line per retry of a failed request) off the terminal: a failure ends in one
    ``error:`` line that says what failed and how often it was retried."""
    import logging

    import huggingface_hub.utils.logging  # noqa: F401 - sets up the handler that prints huggingface_hub's log

    for handler in logging.getLogger("huggingface_hub").handlers:
        handler.setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``segzoo`` console script."""
    parser = _build_parser()
    args = parser.parse_args(argv)  # a usage error (a missing COMMAND too) exits 2 with the usage on stderr
    _quiet_hub_retries()
    from ..errors import SegzooError

    try:
        return args.run(args)
    except SegzooError as err:  # a clear message, not a traceback
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`segzoo list | head`): stop quietly, as Unix tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as err:  # the file system said no: one line naming the path and the cause
        from ..files import describe_os_error

        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{describe_os_error(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
