"""Print the docs' zoo table: every entry's dataset, reported mIoU, parameters and GFLOPs (counted at its eval size),
its source, where its weights come from and their licence.

    python -m maintainers.print_zoo_table > table.md

Entries that share a structure and eval size are counted once (on the meta device: nothing is computed).
"""
import json

from segzoo.tools.flops import count_flops
from segzoo.weights.model_card import neck_display_name
from segzoo.zoo import get_pretrained, list_pretrained

HOSTS = {"torchvision": "torchvision", "gdrive": "Google Drive", "openmmlab": "OpenMMLab", "hub": "Hugging Face Hub"}
HEADER = ("| model | also | backbone | dataset | eval size | params (M) | GFLOPs | mIoU | mIoU ms+flip | source "
          "| weights | licence |")


def _structure_key(config) -> str:
    """What the FLOP count depends on: everything but names, colours and the evaluation recipe."""
    ignored = ("class_names", "palette", "inference", "align_corners", "provenance")
    return json.dumps({k: v for k, v in config.to_dict().items() if k not in ignored}, sort_keys=True, default=str)


def rows() -> list[str]:
    """The table's lines, header first; entries sorted by dataset, then name."""
    lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    counted: dict[str, tuple[float, float]] = {}
    entries = sorted((get_pretrained(name) for name in list_pretrained()), key=lambda e: (e.dataset, e.name))
    for entry in entries:
        config = entry.config
        key = _structure_key(config)
        if key not in counted:
            counted[key] = count_flops(entry.name, config.input_size)
        gflops, params = counted[key]
        structure = neck_display_name(config) or f"OS{config.output_stride}"
        miou, ms_flip = entry.metrics["mIoU"], entry.metrics.get("mIoU_ms_flip")
        height, width = config.input_size
        weights = HOSTS.get(entry.file.host, entry.file.host) if entry.file else "none"
        lines.append(f"| `{entry.name}` | {', '.join(f'`{s}`' for s in entry.short_names)} | {config.backbone}, "
                     f"{structure} | {entry.metrics['split']} | {height}x{width} | {params:.1f} | {gflops:.0f} | "
                     f"{miou if miou is not None else 'not reported'} | {ms_flip if ms_flip is not None else '-'} | "
                     f"{entry.upstream} | {weights} | {entry.license} |")
    return lines


def main() -> None:
    print("\n".join(rows()))


if __name__ == "__main__":
    main()
