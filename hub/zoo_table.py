"""Print the README's zoo table: parameters and GFLOPs (counted at each model's eval size) and reported mIoU.

    python -m hub.zoo_table
"""
from segzoo.benchmark import count_flops
from segzoo.pretrained import PRETRAINED


def main() -> None:
    print("| model | head options | dataset | eval size | params (M) | GFLOPs | reported mIoU |")
    print("|---|---|---|---|---|---|---|")
    for name, entry in sorted(PRETRAINED.items(), key=lambda item: (item[1].dataset, item[0])):
        config = entry.config
        gflops, params = count_flops(name, config.input_size)
        structure = "JPU" if config.neck == "jpu" else f"OS{config.output_stride}"
        miou = entry.metrics["mIoU"]
        height, width = config.input_size
        print(f"| `{name}` | {config.backbone}, {structure} | {entry.metrics['split']} | {height}x{width} | "
              f"{params:.1f} | {gflops:.0f} | {miou if miou is not None else 'not reported'} |")


if __name__ == "__main__":
    main()
