"""Print the docs' zoo table: every entry's dataset, reported mIoU, parameters and GFLOPs (counted at its eval size),
where its weights come from and their licence.

    python -m hub.print_zoo_table
"""
from segzoo.tools.flops import count_flops
from segzoo.weights.model_card import neck_display_name
from segzoo.zoo import get_pretrained, list_pretrained


def main() -> None:
    print("| model | also | backbone | dataset | eval size | params (M) | GFLOPs | reported mIoU | weights | licence |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    entries = sorted((get_pretrained(name) for name in list_pretrained()),
                     key=lambda entry: (entry.dataset, entry.name))
    for entry in entries:
        name, config = entry.name, entry.config
        gflops, params = count_flops(name, config.input_size)
        structure = neck_display_name(config) or f"OS{config.output_stride}"
        miou = entry.metrics["mIoU"]
        height, width = config.input_size
        hosts = {"torchvision": "torchvision", "gdrive": "Google Drive"}
        weights = hosts.get(entry.file.host, entry.file.host) if entry.file else "none"
        print(f"| `{name}` | {', '.join(f'`{s}`' for s in entry.short_names)} | {config.backbone}, {structure} | "
              f"{entry.metrics['split']} | {height}x{width} | {params:.1f} | {gflops:.0f} | "
              f"{miou if miou is not None else 'not reported'} | {weights} | {entry.license} |")


if __name__ == "__main__":
    main()
