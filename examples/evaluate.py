"""Evaluate a segzoo model on a dataset split: pixAcc, mIoU and a per-class IoU table, optionally as JSON.

    python examples/evaluate.py --model local-dir:runs/train/final --dataset voc --data-root ~/data
    python examples/evaluate.py --model deeplabv3_resnet101_voc --pretrained --dataset voc \
        --scales 0.5 0.75 1 1.25 1.5 1.75 --flip
    torchrun --nproc_per_node=2 examples/evaluate.py --model hf-hub:someone/my-model --dataset citys --window 768

Under torchrun each process evaluates its share of the images and the confusion matrices are summed, so
the result equals a single-process run.
"""
import argparse
import json
import time
from pathlib import Path

import segzoo
from segzoo.data import EvalTransform, create_dataset
from segzoo.errors import SegzooError
from segzoo.evaluation import evaluate, format_metrics_table
from segzoo.files import check_output_file, describe_os_error, output_error, refuse_existing
from segzoo.inference.paths import candidate_paths, check_path, default_runtime
from segzoo.inference.precision import inference_precision, inference_runtime
from segzoo.inference.predict import load_calibration_images
from segzoo.inference.tta import recipe_options
from segzoo.tools.arguments import integer, positive_number
from segzoo.train import cleanup_distributed, eval_loader, init_distributed, json_safe, rank0_first
from segzoo.weights.checkpoint import atomic_write


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--model", required=True, help="zoo name, hf-hub:org/name[@rev], local-dir:DIR (save_pretrained or "
                                        "a training checkpoint-* directory) or <head>_<backbone>")
    add("--pretrained", action="store_true", help="the published weights of a zoo name")
    add("--dataset", required=True, help="voc, citys, ade, context, context59, coco_stuff164k, coco_stuff10k, loveda, "
                                          "potsdam, vaihingen, isaid or folder (--data-root is then the folder)")
    add("--data-root", help="data root (default: $SEGZOO_DATA)")
    add("--split", default="val")
    add("--mode", choices=["testval", "val"], default="testval",
        help="testval: every image at its own size; val: short side resized to --crop-size, centre crop")
    add("--crop-size", type=integer(1), default=480, help="crop of --mode val")
    add("--scales", type=positive_number, nargs="+", default=[1.0], help="multi-scale, e.g. 0.5 0.75 1 1.25 1.5 1.75")
    add("--flip", action="store_true", help="also average the left-right mirrored image")
    add("--window", type=integer(1), help="sliding-window size (windows every 2/3 of it, or --stride)")
    add("--stride", type=integer(1))
    add("--no-recipe", dest="recipe", action="store_false",
        help="ignore the model's recipe (config.inference: mmseg's entries rescale to their test size and some "
             "slide); the default follows it unless --window is given")
    add("--ignore-value", type=integer(0), help="binary / multilabel masks: the stored value of pixels to ignore")
    add("--workers", type=integer(0), default=2)
    add("--device", help="cuda or cpu (default: cuda if available)")
    add("--precision", choices=["auto", "fp32", "bf16", "int8"], default="auto",
        help="auto (default: float32, or where several paths are possible the fastest that agrees with float32 on "
             ">= 99.5%% of the pixels of the first --check-images images), fp32, bf16 (CPU; emulated and slow "
             "without native bfloat16) or int8 (ONNX Runtime; needs --calibration)")
    add("--runtime", choices=["eager", "compile", "onnxruntime", "auto"],
        help="eager (default; onnxruntime for int8), compile (torch.compile with freezing), onnxruntime or auto "
             "(see segzoo.optimize)")
    add("--calibration", action="append", metavar="PATH",
        help="image file / folder / pattern to calibrate int8 on (repeatable; not the evaluation images)")
    add("--check-images", type=integer(1), default=2, metavar="N",
        help="how many of the evaluation images auto measures the candidate paths on (default: 2)")
    add("--json", help="write the metrics (and the per-class IoU) to this file")
    add("--overwrite", action="store_true", help="replace an existing --json file (default: an error)")
    args = parser.parse_args()
    # the inference path is checked before the model and the data are read
    if args.precision == "int8" and not args.calibration:
        parser.error("--precision int8 needs --calibration PATH (images to measure the quantization scales on)")
    if args.calibration and args.precision not in ("int8", "auto"):
        parser.error(f"--calibration serves --precision int8 (or auto), not {args.precision}")
    try:
        check_path(args.precision, default_runtime(args.precision, args.runtime), args.device or "cpu")
    except SegzooError as err:
        parser.error(str(err))
    return args


def check_json(path: Path, overwrite: bool) -> None:
    """Refuse a --json that could not be written, or that exists, now: not after the whole evaluation."""
    check_output_file(path)
    if not overwrite:
        refuse_existing(path, "a metrics file")


def write_json(path: Path, record: dict) -> None:
    """Write the metrics whole or not at all (a temporary name, then a rename); a failure is one line naming path."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise output_error(path, err) from None
    text = json.dumps(json_safe(record), indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def main():
    args = parse_args()
    if args.json:  # before any model is built or image read
        check_json(Path(args.json), args.overwrite)
    ctx = init_distributed(args.device)
    model = rank0_first(lambda: segzoo.create_model(args.model, pretrained=args.pretrained)).to(ctx.device)
    config = model.config
    runtime = default_runtime(args.precision, args.runtime)
    paths = candidate_paths(args.precision, runtime, ctx.device, calibration=bool(args.calibration))
    # a binary / multi-label model reads a folder of its kind of masks
    task = {"task": config.mode, "ignore_value": args.ignore_value} if config.mode != "multiclass" else {}
    if task and args.dataset != "folder":
        raise SegzooError(f"{args.model} is a {config.mode} model: evaluate it on --dataset folder of "
                          f"{config.mode} masks")
    dataset = create_dataset(args.dataset, args.data_root, split=args.split, transform=EvalTransform(
        args.mode, crop_size=args.crop_size, mean=config.mean, std=config.std), **task)
    dataset.in_chans = config.in_chans  # images are read with the model's bands
    if dataset.num_classes != config.num_classes:
        raise SystemExit(f"{args.model} predicts {config.num_classes} classes but {args.dataset} has "
                         f"{dataset.num_classes}: evaluate it on a dataset with its classes")
    # the inference path: BatchNorm folded at least; where several are possible, measured on the first images
    check = [dataset[i][0] for i in range(min(args.check_images, len(dataset)))] if len(paths) > 1 else None
    calibration = load_calibration_images(args.calibration, config, ctx.device) if args.calibration else None
    model = segzoo.optimize(model, args.precision, runtime, check_images=check, calibration_images=calibration,
                            inplace=True)
    if check is not None and ctx.is_main:
        print(f"inference path: {model.optimize_report}")
    batches = eval_loader(dataset, rank=ctx.rank, world_size=ctx.world_size, workers=args.workers)
    # as the model's upstream measured its mIoU (config.inference), unless a window is asked for
    options = ({"window": args.window, "stride": args.stride} if args.window or not args.recipe
               else recipe_options(config))
    start = time.perf_counter()
    metrics = evaluate(model, batches, dataset.num_classes, device=ctx.device, ignore_index=dataset.ignore_index,
                       scales=args.scales, flip=args.flip, progress=ctx.is_main, **options)
    seconds = time.perf_counter() - start
    if ctx.is_main:
        print(f"{args.model} on {args.dataset} {args.split} ({len(dataset)} images, {ctx.world_size} process(es), "
              f"{inference_precision(model)} on {inference_runtime(model)}, "
              f"scales {args.scales}{', flip' if args.flip else ''}"
              f"{', ' + str(options) if options.get('window') or options.get('resize') else ''}, {seconds:.1f} s)")
        print(format_metrics_table(metrics, dataset.class_names))
        if args.json:
            record = {"model": args.model, "dataset": args.dataset, "split": args.split, "mode": args.mode,
                      "scales": args.scales, "flip": args.flip, "window": options.get("window"),
                      "resize": options.get("resize"), "images": len(dataset), "precision": inference_precision(model),
                      "runtime": inference_runtime(model),
                      "class_names": list(dataset.class_names), **metrics}
            write_json(Path(args.json), record)
    cleanup_distributed()


if __name__ == "__main__":
    try:
        main()
    except SegzooError as err:  # bad input: the message says what is wrong, no traceback needed
        raise SystemExit(f"error: {err}") from None
    except OSError as err:  # the file system said no: one line naming the path and the cause
        raise SystemExit(f"error: {err.filename + ': ' if err.filename else ''}{describe_os_error(err)}") from None
