"""Train a segzoo model with the reference recipe, on one process or many (DistributedDataParallel).

    python examples/train.py --model fcn_resnet50s --dataset voc --data-root ~/data
    torchrun --nproc_per_node=4 examples/train.py --model ocnet_resnet101s --neck jpu --aux --dataset citys

Across nodes, start the same command on every node with torchrun's --nnodes/--node_rank/--rdzv_* options.
The run directory gets metrics.jsonl (one JSON object per logged step and per evaluation), resumable
checkpoints (checkpoint-<iteration>/, each loadable with create_model("local-dir:...")) and final/.
Interrupted? Run the same command with --resume <run dir>: it goes on from the last checkpoint.
"""
import argparse
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

import segzoo
from segzoo.data import DATASET_DEFAULTS, EvalTransform, TrainTransform, create_dataset
from segzoo.errors import SegzooError
from segzoo.evaluation import evaluate
from segzoo.train import (
    MetricsLog,
    PolyLR,
    SegmentationLoss,
    all_reduce_mean,
    barrier,
    build_optimizer,
    cleanup_distributed,
    eval_loader,
    init_distributed,
    rank0_first,
    resume_from,
    save_checkpoint,
    scaled_lr,
    start_epoch,
    train_loader,
    train_step,
)

BASE_LR = {"voc": 0.001, "citys": 0.01}  # per 8 images; the reference's learning rates


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--model", required=True, help="zoo name, <head>_<backbone>, hf-hub:org/name or local-dir:DIR")
    add("--pretrained", action="store_true", help="start from the zoo/Hub weights of --model")
    add("--pretrained-backbone", action="store_true", help="start from ImageNet backbone weights")
    add("--neck", choices=["jpu"], help="JPU neck (output stride 32)")
    add("--output-stride", type=int, choices=[8, 16, 32])
    add("--aux", action=argparse.BooleanOptionalAction, default=True, help="aux FCN head on c3 (default on)")
    add("--aux-weight", type=float, help="weight of each aux loss (default: the head's, else 0.4)")
    add("--ohem", action="store_true", help="online hard example mining loss")
    add("--dataset", required=True, help="voc, citys, ade or folder (--data-root is then the folder)")
    add("--data-root", help="data root (default: $SEGZOO_DATA)")
    add("--train-split", help="default: train_aug for voc, train otherwise")
    add("--val-split", default="val")
    add("--base-size", type=int, help="augmentation base size (default: the dataset's)")
    add("--crop-size", type=int, help="training crop (default: the dataset's)")
    add("--epochs", type=int, default=50)
    add("--iters", type=int, help="total iterations (overrides --epochs)")
    add("--batch-size", type=int, default=8, help="images per process")
    add("--lr", type=float, help="base learning rate per 8 images (default: 0.001 voc, 0.01 otherwise)")
    add("--warmup-iters", type=int, default=200)
    add("--workers", type=int, default=4)
    add("--sync-bn", choices=["auto", "on", "off"], default="auto", help="auto: on when distributed on GPUs")
    add("--amp", choices=["auto", "off", "fp16", "bf16"], default="auto", help="auto: bf16/fp16 on GPU, off on CPU")
    add("--device", help="cuda or cpu (default: cuda if available)")
    add("--output", default="runs/train", help="run directory")
    add("--resume", help="a run directory or checkpoint-* directory to continue from")
    add("--checkpoint-every", type=int, default=1000, help="iterations between checkpoints")
    add("--eval-every", type=int, default=5, help="epochs between evaluations (0: only at the end)")
    add("--log-every", type=int, default=20, help="iterations between log lines")
    add("--seed", type=int, default=0)
    return parser.parse_args()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def amp_settings(choice: str, device: torch.device):
    """(autocast dtype or None, GradScaler or None)."""
    if choice == "auto":
        choice = "off" if device.type != "cuda" else ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    if choice == "off":
        return None, None
    if choice == "fp16":
        return torch.float16, torch.amp.GradScaler(device.type)
    return torch.bfloat16, None


def main():
    args = parse_args()
    ctx = init_distributed(args.device)
    seed_everything(args.seed + ctx.rank)  # different augmentation per rank, reproducible per run
    train_split = args.train_split or ("train_aug" if args.dataset.lower() == "voc" else "train")

    # Read the datasets first: a wrong data root fails before any model is built or downloaded.
    train_set = create_dataset(args.dataset, args.data_root, split=train_split)
    val_set = create_dataset(args.dataset, args.data_root, split=args.val_split)
    dataset_key = train_set.name  # "voc", "citys", "ade" or "folder", whatever alias was given
    defaults = DATASET_DEFAULTS[dataset_key]

    model = rank0_first(lambda: segzoo.create_model(
        args.model, pretrained=args.pretrained, pretrained_backbone=args.pretrained_backbone,
        num_classes=train_set.num_classes, aux=args.aux, neck=args.neck, output_stride=args.output_stride))
    model.to(ctx.device).train()
    mean, std = model.config.mean, model.config.std  # the normalisation the model was (pre)trained with
    train_set.transform = TrainTransform(args.base_size or defaults["base_size"], args.crop_size or defaults[
        "crop_size"], mean=mean, std=std, ignore_index=train_set.ignore_index)
    val_set.transform = EvalTransform("testval", mean=mean, std=std, ignore_index=val_set.ignore_index)
    if args.sync_bn == "on" or (args.sync_bn == "auto" and ctx.distributed and ctx.device.type == "cuda"):
        if not ctx.distributed:
            print("--sync-bn ignored: a single process has nothing to synchronise")
        else:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    autocast_dtype, scaler = amp_settings(args.amp, ctx.device)

    loader = train_loader(train_set, args.batch_size, rank=ctx.rank, world_size=ctx.world_size, seed=args.seed,
                          workers=args.workers, pin_memory=ctx.device.type == "cuda")
    val_batches = eval_loader(val_set, rank=ctx.rank, world_size=ctx.world_size, workers=args.workers)
    iters_per_epoch = len(loader)
    total_iters = args.iters or args.epochs * iters_per_epoch
    lr = scaled_lr(args.lr or BASE_LR.get(dataset_key, 0.01), args.batch_size, ctx.world_size)
    optimizer = build_optimizer(model, lr)
    scheduler = PolyLR(optimizer, total_iters, warmup_iters=min(args.warmup_iters, total_iters // 2))
    aux_weight = args.aux_weight if args.aux_weight is not None else (model.head.aux_loss_weight or 0.4)
    criterion = SegmentationLoss(aux_weight=aux_weight, ignore_index=train_set.ignore_index, ohem=args.ohem)

    iteration = 0
    if args.resume:
        state = resume_from(args.resume, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)
        iteration = state.iteration
        if ctx.is_main:
            print(f"resumed from {state.path} at iteration {iteration}")
    # No find_unused_parameters: every parameter is used (the aux head exists only when it is trained).
    ddp_model = DistributedDataParallel(
        model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None) if ctx.distributed else model

    output = Path(args.output)
    log = MetricsLog(output / "metrics.jsonl", enabled=ctx.is_main)
    if ctx.is_main:
        print(f"{args.model}: {len(train_set)} training images, {ctx.world_size} process(es) x batch "
              f"{args.batch_size}, {iters_per_epoch} iterations per epoch, {total_iters} in all, lr {lr:g}")
        log.write(event="start", model=args.model, dataset=args.dataset, world_size=ctx.world_size,
                  total_iters=total_iters, iteration=iteration, args=vars(args))

    def run_evaluation(epoch):
        metrics = evaluate(model, val_batches, val_set.num_classes, device=ctx.device, progress=ctx.is_main)
        log.write(event="eval", iteration=iteration, epoch=epoch, pixAcc=metrics["pixAcc"], mIoU=metrics["mIoU"],
                  IoU=metrics["IoU"])
        if ctx.is_main:
            print(f"iteration {iteration}: pixAcc {metrics['pixAcc']:.4f} mIoU {metrics['mIoU']:.4f}")

    def checkpoint(epoch):
        if ctx.is_main:
            save_checkpoint(output, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                            epoch=epoch, iteration=iteration, extra={"model_name": args.model})
        barrier()

    progress = None
    if ctx.is_main:
        from tqdm.auto import tqdm
        progress = tqdm(total=total_iters, initial=iteration, desc="train", dynamic_ncols=True)
    tic = time.perf_counter()
    epoch = iteration // iters_per_epoch
    while iteration < total_iters:
        epoch, done_in_epoch = divmod(iteration, iters_per_epoch)
        start_epoch(loader, epoch, skip_batches=done_in_epoch)
        for images, masks in loader:
            images = images.to(ctx.device, non_blocking=True)
            masks = masks.to(ctx.device, non_blocking=True)
            current_lr = optimizer.param_groups[0]["lr"]
            loss = train_step(ddp_model, images, masks, criterion, optimizer, scaler=scaler,
                              autocast_dtype=autocast_dtype, scheduler=scheduler)
            iteration += 1
            if iteration % args.log_every == 0 or iteration == total_iters:
                loss = all_reduce_mean(loss)
                seconds = (time.perf_counter() - tic) / args.log_every
                log.write(event="train", iteration=iteration, epoch=epoch, loss=loss, lr=current_lr,
                          seconds_per_iter=seconds)
                if progress is not None:
                    progress.set_postfix(loss=f"{loss:.4f}", lr=f"{current_lr:.2e}")
                tic = time.perf_counter()
            if progress is not None:
                progress.update(1)
            if iteration % args.checkpoint_every == 0 or iteration == total_iters:
                checkpoint(epoch)
            if iteration == total_iters:
                break
        finished_epoch = iteration % iters_per_epoch == 0
        if finished_epoch and args.eval_every and (iteration // iters_per_epoch) % args.eval_every == 0 \
                and iteration < total_iters:
            run_evaluation(epoch)
    if progress is not None:
        progress.close()
    run_evaluation(epoch)
    if ctx.is_main:
        segzoo.save_pretrained(model, output / "final")
        print(f"saved {output / 'final'} (load with segzoo.create_model('local-dir:{output / 'final'}'))")
    cleanup_distributed()


if __name__ == "__main__":
    try:
        main()
    except SegzooError as err:  # bad input: the message says what is wrong, no traceback needed
        raise SystemExit(f"error: {err}") from None
