"""Print the README's zoo table: parameters and GFLOPs (counted at each model's eval size) and reported mIoU.

    python -m hub.print_zoo_table
"""
from segzoo.tools.flops import count_flops
from segzoo.weights.model_card import neck_display_name
from segzoo.zoo import get_pretrained, list_pretrained


def main() -> None:
    print("| model | head options | dataset | eval size | params (M) | GFLOPs | reported mIoU |")
    print("|---|---|---|---|---|---|---|")
    entries = sorted((get_pretrained(name) for name in list_pretrained()),
                     key=lambda entry: (entry.dataset, entry.name))
    for entry in entries:
        name, config = entry.name, entry.config
        gflops, params = count_flops(name, config.input_size)
        structure = neck_display_name(config) or f"OS{config.output_stride}"
        miou = entry.metrics["mIoU"]
        height, width = config.input_size
        print(f"| `{name}` | {config.backbone}, {structure} | {entry.metrics['split']} | {height}x{width} | "
              f"{params:.1f} | {gflops:.0f} | {miou if miou is not None else 'not reported'} |")


if __name__ == "__main__":
    main()
