"""Train a segzoo model with the reference recipe, on one process or many (DistributedDataParallel).

    python examples/train.py --model fcn_resnet50s --dataset voc --data-root ~/data
    torchrun --nproc_per_node=4 examples/train.py --model ocnet_resnet101s --neck jpu --aux --dataset citys

Across nodes, start the same command on every node with torchrun's --nnodes/--node_rank/--rdzv_* options.
The run directory gets metrics.jsonl (one JSON object per logged step and per evaluation), resumable
checkpoints (checkpoint-<iteration>/, each loadable with create_model("local-dir:...")) and final/.
Interrupted? Run the same command with --resume <run dir>: it goes on from the last checkpoint (given more
--iters, the schedule is extended). A run directory that already holds a run is refused unless --resume
continues it or --overwrite replaces it. Under torchrun, an error found before training is one line from rank 0.
"""
import argparse
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

import segzoo
from segzoo.data import DATASET_DEFAULTS, EvalTransform, TrainTransform, create_dataset
from segzoo.errors import CheckpointError, ConfigError, SegzooError
from segzoo.evaluation import evaluate
from segzoo.files import describe_os_error, lock_folder, output_error
from segzoo.tools.arguments import integer, key_value, positive_number
from segzoo.train import (
    MaskClassificationLoss,
    MetricsLog,
    PolyLR,
    SegmentationLoss,
    SharedError,
    all_gather_objects,
    all_reduce_mean,
    barrier,
    broadcast_buffers,
    build_optimizer,
    capture_rng,
    cleanup_distributed,
    eval_loader,
    init_distributed,
    rank0_first,
    restore_rng,
    resume_from,
    run_collectively,
    save_checkpoint,
    scaled_lr,
    start_epoch,
    train_loader,
    train_step,
)

BASE_LR = {"voc": 0.001, "citys": 0.01}  # per 8 images; the reference's learning rates
ADAMW_LR = 5e-6  # per 8 images, the backbone's (the head's: 10 times): Mask2Former's 1e-5 per 16


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--model", required=True, help="zoo name, <head>_<backbone>, hf-hub:org/name or local-dir:DIR")
    add("--pretrained", action="store_true", help="start from the zoo/Hub weights of --model")
    add("--pretrained-backbone", action="store_true", help="start from ImageNet backbone weights")
    add("--neck", choices=["jpu"], help="JPU neck (output stride 32)")
    add("--output-stride", type=int, choices=[8, 16, 32])
    add("--aux", action=argparse.BooleanOptionalAction, default=True, help="aux FCN head on c3 (default on)")
    add("--aux-weight", type=positive_number, help="weight of each aux loss (default: the head's, else 0.4)")
    add("--ohem", action="store_true", help="online hard example mining loss (the same as --loss ohem)")
    add("--loss", default="ce", help="a loss or a weighted sum: ce, ohem, dice, focal, lovasz, tversky, "
                                     "'ce+dice', 'ce:1+lovasz:0.5' (default ce); on the main and aux outputs")
    add("--loss-option", type=key_value, action="append", default=[], metavar="NAME=VALUE",
        help="an option of the loss terms, e.g. gamma=2, smooth=1, tversky_alpha=0.3 (repeatable)")
    add("--class-weight", type=positive_number, nargs="+", metavar="W", help="one weight per class (label)")
    add("--task", choices=["multiclass", "binary", "multilabel"], default="multiclass",
        help="binary (0/1 or 0/255 masks) and multilabel (masks/<label>/ or .npy) read --dataset folder")
    add("--ignore-value", type=integer(0), help="binary / multilabel masks: the stored value of pixels to ignore")
    add("--in-chans", type=integer(1), help="input bands: 1 greyscale, 3 RGB (default: the model's), N for .npy "
                                            "images of N bands")
    add("--dataset", required=True, help="voc, citys, ade or folder (--data-root is then the folder)")
    add("--data-root", help="data root (default: $SEGZOO_DATA)")
    add("--train-split", help="default: train_aug for voc, train otherwise")
    add("--val-split", default="val")
    add("--base-size", type=integer(1), help="augmentation base size (default: the dataset's)")
    add("--crop-size", type=integer(1), help="training crop (default: the dataset's)")
    add("--epochs", type=integer(1), default=50)
    add("--iters", type=integer(1), help="total iterations (overrides --epochs)")
    add("--batch-size", type=integer(1), default=8, help="images per process")
    add("--lr", type=positive_number, help="base learning rate per 8 images (default: 0.001 voc, 0.01 otherwise; "
                                            "with AdamW 5e-6, Mask2Former's)")
    add("--optimizer", choices=["sgd", "adamw"], help="default: adamw (weight decay 0.05) for mask classification "
                                                      "heads (Mask2Former's recipe), sgd otherwise")
    add("--warmup-iters", type=integer(0), default=200)
    add("--workers", type=integer(0), default=4)
    add("--sync-bn", choices=["auto", "on", "off"], default="auto", help="auto: on when distributed on GPUs")
    add("--amp", choices=["auto", "off", "fp16", "bf16"], default="auto", help="auto: bf16/fp16 on GPU, off on CPU")
    add("--device", help="cuda or cpu (default: cuda if available)")
    add("--output", default="runs/train", help="run directory")
    add("--resume", help="a run directory or checkpoint-* directory to continue from")
    add("--overwrite", action="store_true", help="replace the run --output holds (checkpoints, final/, log)")
    add("--checkpoint-every", type=integer(1), default=1000, help="iterations between checkpoints")
    add("--eval-every", type=integer(0), default=5, help="epochs between evaluations (0: only at the end)")
    add("--log-every", type=integer(1), default=20, help="iterations between log lines")
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


# --- the run directory: never mix two runs, never destroy one unasked ----------------------------------------------

LOG_NAME, FINAL_NAME, LATEST_NAME = "metrics.jsonl", "final", "latest"
LOCK_NAME = ".train.lock"  # held (flock, segzoo.files.lock_folder) by rank 0 while a run writes into --output


def run_entries(output: Path) -> list[Path]:
    """What of a training run ``output`` holds: its log, checkpoints, ``latest`` and ``final/``."""
    if not output.is_dir():
        return []
    return sorted(path for path in output.iterdir() if path.name in (LOG_NAME, FINAL_NAME, LATEST_NAME)
                  or path.name.startswith(("checkpoint-", ".tmp-")))


def resumes_into(resume: str, output: Path) -> bool:
    """Whether ``--resume`` names ``output`` itself or one of its checkpoints."""
    resume_path = Path(resume).resolve()
    return output.resolve() in (resume_path, resume_path.parent)


def check_output(output: Path, resume: str | None, overwrite: bool) -> None:
    """Refuse an --output that holds another run, unless --resume continues it or --overwrite replaces it."""
    if output.exists() and not output.is_dir():
        raise SegzooError(f"--output {output} is a file, not a folder: name a new or empty folder")
    entries = run_entries(output)
    continues = resume is not None and resumes_into(resume, output)
    if overwrite and continues:
        raise SegzooError(f"--overwrite would delete the checkpoint --resume {resume} continues from: drop "
                          f"--overwrite to continue the run in {output}, or write the new run to another --output")
    if not entries or overwrite or continues:
        return
    names = ", ".join(path.name + ("/" if path.is_dir() else "") for path in entries[:4])
    names += f" and {len(entries) - 4} more" if len(entries) > 4 else ""
    if resume is not None:
        raise SegzooError(f"--output {output} already holds another run ({names}) and --resume {resume} continues "
                          f"a different one: give --output the run being resumed or an empty folder, or add "
                          f"--overwrite to replace {output}")
    raise SegzooError(f"--output {output} already holds a training run ({names}): continue it with --resume "
                      f"{output}, or replace it with --overwrite")


def clear_run(output: Path) -> None:
    """Delete the run ``output`` holds (--overwrite): its log, checkpoints, ``latest`` and ``final/``."""
    try:
        for path in run_entries(output):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    except OSError as err:  # a read-only run: one line naming --output
        raise output_error(output, err) from err


# --- resuming: the same recipe, or a refusal naming what differs ---------------------------------------------------

def check_recipe(directory: Path, iteration: int, saved: dict | None, current: dict, total_iters: int) -> None:
    """Refuse a resume whose data order or learning-rate scale would silently differ from the checkpointed run's.

    The images per step (processes x batch) set the learning-rate scale and, with the training set, the
    iterations per epoch, which place a resumed run in its epoch; the seed sets the epoch's order. The schedule
    (--iters, --lr, --warmup-iters) may change: the rest of the run follows the new one (see PolyLR.reschedule).
    """
    way_out = f"or start a new run from its weights with --model local-dir:{directory}"
    if iteration > total_iters:
        raise CheckpointError(f"checkpoint {directory} is at iteration {iteration}, past this run's "
                              f"{total_iters} iterations: give --iters {iteration} or more, {way_out}")
    if saved is None:
        return
    was, now = saved["world_size"] * saved["batch_size"], current["world_size"] * current["batch_size"]
    if was != now:
        processes = "on 1 process" if saved["world_size"] == 1 else \
            f"with torchrun --nproc_per_node={saved['world_size']}"
        raise CheckpointError(
            f"checkpoint {directory} was trained on {saved['world_size']} process(es) x batch "
            f"{saved['batch_size']} ({was} images per step), this run has {current['world_size']} process(es) x "
            f"batch {current['batch_size']} ({now}): the learning-rate scale and the iterations per epoch would "
            f"change; resume {processes} and --batch-size {saved['batch_size']}, {way_out}")
    if saved["iters_per_epoch"] != current["iters_per_epoch"]:
        raise CheckpointError(
            f"checkpoint {directory} was trained on {saved['train_images']} training images "
            f"({saved['iters_per_epoch']} iterations per epoch), this training set has {current['train_images']} "
            f"({current['iters_per_epoch']}): the epoch and the place in it would be wrong; resume with the same "
            f"training set, {way_out}")
    if saved["seed"] != current["seed"]:
        raise CheckpointError(f"checkpoint {directory} was trained with --seed {saved['seed']}, this run has "
                              f"--seed {current['seed']}: the rest of the epoch would repeat some images and skip "
                              f"others; resume with --seed {saved['seed']}, {way_out}")


def schedule_changes(scheduler: PolyLR, total_iters: int, warmup_iters: int, base_lrs: list[float]) -> list[str]:
    """How the checkpoint's schedule (loaded into ``scheduler``) differs from the one this run asks for."""
    changes = []
    if scheduler.total_iters != total_iters:
        changes.append(f"{scheduler.total_iters} -> {total_iters} iterations")
    if scheduler.warmup_iters != warmup_iters:
        changes.append(f"warm-up {scheduler.warmup_iters} -> {warmup_iters} iterations")
    if [round(lr, 12) for lr in scheduler.base_lrs] != [round(lr, 12) for lr in base_lrs]:
        changes.append(f"learning rate {scheduler.base_lrs[0]:g} -> {base_lrs[0]:g}")
    return changes


def restore_rank_rng(extra: dict, ctx, seed: int, iteration: int) -> None:
    """Give every rank back its own RNG state (resume_from restored rank 0's on all of them).

    On another number of processes the ranks past rank 0 are reseeded from (seed, rank, iteration): they must
    not all draw rank 0's numbers."""
    states = extra.get("rank_rng")
    if states and len(states) == ctx.world_size:
        restore_rng(states[ctx.rank])
    elif ctx.rank:
        seed_everything(seed + ctx.rank + 1_000_003 * iteration)


def resume_training(args, ctx, recipe: dict, *, model, optimizer, scheduler: PolyLR, scaler):
    """Load --resume into the model, optimizer, scheduler and scaler, on every rank together.

    Refuses another model first (the most basic difference), then another recipe (``check_recipe``). Every rank
    gets its own RNG state back, and the scheduler this run's schedule (``load_state_dict`` brought back the
    checkpoint's: with more --iters the extra ones would train at learning rate 0).

    Returns:
        (the ``TrainingState``, the schedule's changes as text).
    """
    planned = (scheduler.total_iters, scheduler.warmup_iters, list(scheduler.base_lrs))

    def load():
        loaded = resume_from(args.resume, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)
        check_recipe(loaded.path, loaded.iteration, loaded.extra.get("recipe"), recipe, planned[0])
        return loaded

    state = run_collectively(load)
    restore_rank_rng(state.extra, ctx, args.seed, state.iteration)
    changes = schedule_changes(scheduler, *planned)
    scheduler.reschedule(*planned)
    return state, changes


# --- training ------------------------------------------------------------------------------------------------------

def read_datasets(args):
    """The training and validation sets (their file lists; nothing is decoded yet)."""
    train_split = args.train_split or ("train_aug" if args.dataset.lower() == "voc" else "train")
    task = {}
    if args.task != "multiclass":
        if args.dataset != "folder":
            raise SegzooError(f"--task {args.task} reads a folder dataset of {args.task} masks (--dataset folder); "
                              f"{args.dataset} is a multiclass dataset")
        task = {"task": args.task, "ignore_value": args.ignore_value}
    return (create_dataset(args.dataset, args.data_root, split=train_split, **task),
            create_dataset(args.dataset, args.data_root, split=args.val_split, **task))


def check_data(train_set, val_set) -> None:
    """Every mask's values and size, before the first iteration (cached: a second run reads only changed files)."""
    train_set.check()
    val_set.check()


def check_class_weight(weights, train_set) -> None:
    """One --class-weight per class of the dataset, checked before the model is built (not at the first loss)."""
    if weights and len(weights) != train_set.num_classes:
        raise SegzooError(f"--class-weight gives {len(weights)} weight(s) for the dataset's {train_set.num_classes} "
                          f"classes ({', '.join(train_set.class_names)}): give one per class")


def main(args):
    ctx = init_distributed(args.device)
    seed_everything(args.seed + ctx.rank)  # different augmentation per rank, reproducible per run
    output = Path(args.output)
    # Checks that can fail run on every rank together (or on rank 0 for all): a failure is one line from rank 0.
    run_collectively(lambda: check_output(output, args.resume, args.overwrite), rank0_only=True)
    run_collectively(lambda: lock_folder(output, "--output", LOCK_NAME), rank0_only=True)

    # Read the datasets first: a wrong data root or a bad mask fails before any model is built or downloaded.
    train_set, val_set = run_collectively(lambda: read_datasets(args))
    if ctx.is_main:
        print(f"checking the masks of {len(train_set)} training and {len(val_set)} validation images")
    run_collectively(lambda: check_data(train_set, val_set), rank0_only=True)
    run_collectively(lambda: check_class_weight(args.class_weight, train_set))
    dataset_key = train_set.name  # "voc", "citys", "ade" or "folder", whatever alias was given
    defaults = DATASET_DEFAULTS[dataset_key]

    loader = run_collectively(lambda: train_loader(
        train_set, args.batch_size, rank=ctx.rank, world_size=ctx.world_size, seed=args.seed, workers=args.workers,
        pin_memory=ctx.device.type == "cuda"))  # too few images for a batch fails on every rank
    val_batches = eval_loader(val_set, rank=ctx.rank, world_size=ctx.world_size, workers=args.workers)
    iters_per_epoch = len(loader)
    total_iters = args.iters or args.epochs * iters_per_epoch
    recipe = {"world_size": ctx.world_size, "batch_size": args.batch_size, "train_images": len(train_set),
              "iters_per_epoch": iters_per_epoch, "seed": args.seed}
    model = rank0_first(lambda: segzoo.create_model(
        args.model, pretrained=args.pretrained, pretrained_backbone=args.pretrained_backbone,
        num_classes=train_set.num_classes, aux=args.aux, neck=args.neck, output_stride=args.output_stride,
        mode=args.task, in_chans=args.in_chans))
    model.to(ctx.device).train()
    mean, std = model.config.mean, model.config.std  # the normalisation the model was (pre)trained with
    train_set.in_chans = val_set.in_chans = model.config.in_chans  # images are read with the model's bands
    train_set.transform = TrainTransform(args.base_size or defaults["base_size"], args.crop_size or defaults[
        "crop_size"], mean=mean, std=std, ignore_index=train_set.ignore_index)
    val_set.transform = EvalTransform("testval", mean=mean, std=std, ignore_index=val_set.ignore_index)
    if args.sync_bn == "on" or (args.sync_bn == "auto" and ctx.distributed and ctx.device.type == "cuda"):
        if not ctx.distributed:
            print("--sync-bn ignored: a single process has nothing to synchronise")
        else:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    autocast_dtype, scaler = amp_settings(args.amp, ctx.device)

    mask_classification = getattr(model.head, "mask_classification", False)
    algorithm = args.optimizer or ("adamw" if mask_classification else "sgd")
    # Mask2Former's recipe: AdamW, 1e-4 for the head and a tenth of it for the backbone per 16 images
    default_lr = ADAMW_LR if algorithm == "adamw" else BASE_LR.get(dataset_key, 0.01)
    lr = scaled_lr(args.lr or default_lr, args.batch_size, ctx.world_size)
    optimizer = build_optimizer(model, lr, algorithm=algorithm, weight_decay=0.05 if algorithm == "adamw" else 1e-4)
    scheduler = PolyLR(optimizer, total_iters, warmup_iters=min(args.warmup_iters, total_iters // 2))
    aux_weight = args.aux_weight if args.aux_weight is not None else (model.head.aux_loss_weight or 0.4)
    if mask_classification:  # Mask2Former: queries matched to segments, its own loss
        if args.loss != "ce" or args.ohem or args.loss_option or args.class_weight:
            raise ConfigError(f"{args.model} trains with its own loss (queries matched to segments: class, mask and "
                              f"dice terms); --loss, --ohem, --loss-option and --class-weight are for per-pixel heads")
        criterion = MaskClassificationLoss(train_set.num_classes, ignore_index=train_set.ignore_index)
    else:
        criterion = SegmentationLoss(args.loss, aux_weight=aux_weight, ignore_index=train_set.ignore_index,
                                     ohem=args.ohem, mode=args.task, class_weight=args.class_weight,
                                     **dict(args.loss_option))

    def evaluation_due(done: int) -> bool:
        """Whether an evaluation follows iteration ``done``: after every --eval-every epochs, and at the end."""
        epochs, rest = divmod(done, iters_per_epoch)
        return done == total_iters or bool(done and not rest and args.eval_every and epochs % args.eval_every == 0)

    iteration = 0
    log = MetricsLog(output / LOG_NAME, enabled=ctx.is_main)
    if args.resume:
        state, changes = resume_training(args, ctx, recipe, model=model, optimizer=optimizer, scheduler=scheduler,
                                         scaler=scaler)
        iteration = state.iteration
        # The records of a crashed run past its last checkpoint, and the evaluation at it, which is redone.
        dropped = log.truncate_after(iteration, redo=("eval",) if evaluation_due(iteration) else ())
        if ctx.is_main:
            print(f"resumed from {state.path} at iteration {iteration}"
                  + (f"; schedule changed: {', '.join(changes)}, followed from here on" if changes else "")
                  + (f"; dropped {dropped} log record(s) past it" if dropped else ""))
    if args.overwrite and ctx.is_main:  # only now: a run that fails to start leaves the old one alone
        clear_run(output)
    barrier()  # nobody writes before rank 0 has cleared or truncated
    # No find_unused_parameters: every parameter is used (the aux head exists only when it is trained).
    ddp_model = DistributedDataParallel(
        model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None) if ctx.distributed else model

    if ctx.is_main:
        print(f"{args.model}: {len(train_set)} training images, {ctx.world_size} process(es) x batch "
              f"{args.batch_size}, {iters_per_epoch} iterations per epoch, {total_iters} in all, lr {lr:g}")
        log.write(event="start", model=args.model, dataset=args.dataset, world_size=ctx.world_size,
                  total_iters=total_iters, iteration=iteration, args=vars(args))

    def run_evaluation(epoch):
        broadcast_buffers(model)  # score rank 0's BatchNorm statistics, the ones it saves, on every rank
        metrics = evaluate(model, val_batches, val_set.num_classes, device=ctx.device, progress=ctx.is_main)
        log.write(event="eval", iteration=iteration, epoch=epoch, pixAcc=metrics["pixAcc"], mIoU=metrics["mIoU"],
                  IoU=metrics["IoU"])
        if ctx.is_main:
            print(f"iteration {iteration}: pixAcc {metrics['pixAcc']:.4f} mIoU {metrics['mIoU']:.4f}")

    def checkpoint(epoch):
        rank_rng = all_gather_objects(capture_rng())  # every rank's, so that each resumes its own
        if ctx.is_main:
            save_checkpoint(output, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                            epoch=epoch, iteration=iteration,
                            extra={"model_name": args.model, "recipe": recipe, "rank_rng": rank_rng})
        barrier()

    progress = None
    if ctx.is_main:
        from tqdm.auto import tqdm
        progress = tqdm(total=total_iters, initial=iteration, desc="train", dynamic_ncols=True)
    try:  # the bar is closed on the way out too: an error line is not glued to it
        epoch = max(iteration - 1, 0) // iters_per_epoch  # the epoch of the last iteration done, as in the loop
        if args.resume and iteration < total_iters and evaluation_due(iteration):
            run_evaluation(epoch)  # a crash after the checkpoint may have cost it; its record was dropped above
        tic = time.perf_counter()
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
            if iteration < total_iters and evaluation_due(iteration):
                run_evaluation(epoch)
    finally:
        if progress is not None:
            progress.close()
    if ctx.is_main:  # saved before the final evaluation, so that a failing evaluation cannot cost it
        segzoo.save_pretrained(model, output / FINAL_NAME)
    run_evaluation(epoch)
    if ctx.is_main:
        print(f"saved {output / FINAL_NAME} (load with segzoo.create_model('local-dir:{output / FINAL_NAME}'))")
    cleanup_distributed()


def launch_rank() -> int:
    """This process's rank as torchrun set it (0 without torchrun), known even without a process group."""
    return int(os.environ.get("RANK", "0") or 0)


def report_and_exit(message: str | None, code: int = 1):
    """Exit with ``error: message`` (prefixed with the rank but on rank 0), or quietly when ``message`` is None:
    another rank reports the error (see run_collectively)."""
    rank = launch_rank()
    if message is not None:
        print(f"error: {message}" if rank == 0 else f"error: [rank {rank}] {message}", file=sys.stderr, flush=True)
    else:
        time.sleep(2)  # torchrun stops every worker once one exits: leave the reporting rank the time to say it
    cleanup_distributed()
    raise SystemExit(code)


def interrupted(output: Path) -> str:
    if (output / LATEST_NAME).is_file():
        return f"interrupted; continue with the same command and --resume {output}"
    return "interrupted before the first checkpoint; nothing to resume"


if __name__ == "__main__":
    arguments = parse_args()
    try:
        main(arguments)
    except SharedError:  # another rank failed and says why
        report_and_exit(None)
    except SegzooError as err:  # bad input: the message says what is wrong, no traceback needed
        report_and_exit(str(err))
    except KeyboardInterrupt:  # Ctrl-C reaches every rank: rank 0 says how to go on
        report_and_exit(interrupted(Path(arguments.output)) if launch_rank() == 0 else None, code=130)
    except OSError as err:  # the file system said no where segzoo does not name the path itself: one line
        report_and_exit(f"{err.filename + ': ' if err.filename else ''}{describe_os_error(err)}")
