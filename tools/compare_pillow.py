#!/usr/bin/env python3
"""Write Pillow's decoded pixels and timm-style crops of a folder of images, for the
ignored Rust test `pillow_dump_matches` in tests/image_preprocess.rs.

For every image the script stores Pillow's `Image.open(path).convert("RGB")` pixels and
the 224 x 224 crop of torchvision's `Resize(248, BICUBIC)` + `CenterCrop(224)`, the
evaluation transform timm uses for vit_tiny_patch16_224.augreg_in21k_ft_in1k.

torchvision itself is not needed. The script applies torchvision's geometry with Pillow's
`Image.resize`, which is what torchvision calls for a PIL image: the shorter side becomes
248, the longer side int(248 * long / short), and the crop offset is
round((size - 224) / 2).

Usage (needs only Pillow):

    python3 -m venv /tmp/ivit-pillow && /tmp/ivit-pillow/bin/pip install Pillow
    /tmp/ivit-pillow/bin/python tools/compare_pillow.py ../shared/data/imagenet-sample-dev --out /tmp/ivit-pillow-dump
    IVIT_PILLOW_DUMP=/tmp/ivit-pillow-dump cargo test --release --test image_preprocess -- --ignored pillow_dump

Output files in --out: `index.json` (one entry per image: name, source path, decoded
width and height, Exif orientation), `<name>.decoded.rgb` and `<name>.crop.rgb` (raw
interleaved 8-bit RGB, row-major).
"""
import argparse
import json
import os
import sys

import PIL
from PIL import Image

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".webp", ".gif", ".bmp")


def torchvision_crop(image, resize=248, crop=224):
    """Resize the shorter side to `resize` and centre-crop `crop`, as torchvision does."""
    width, height = image.size
    short, long = min(width, height), max(width, height)
    new_short, new_long = resize, int(resize * long / short)
    new_width, new_height = (new_short, new_long) if width <= height else (new_long, new_short)
    resized = image.resize((new_width, new_height), Image.Resampling.BICUBIC)

    left = int(round((new_width - crop) / 2.0))
    top = int(round((new_height - crop) / 2.0))
    return resized.crop((left, top, left + crop, top + crop))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="folder of JPEG, PNG, WebP, GIF or BMP images")
    parser.add_argument("--out", required=True, help="output folder, created if missing")
    args = parser.parse_args()

    names = sorted(f for f in os.listdir(args.folder) if f.lower().endswith(IMAGE_SUFFIXES))
    if not names:
        sys.exit(f"error: no images in {args.folder}")
    os.makedirs(args.out, exist_ok=True)

    index = []
    for name in names:
        path = os.path.abspath(os.path.join(args.folder, name))
        with Image.open(path) as opened:
            orientation = opened.getexif().get(0x0112, 1)
            rgb = opened.convert("RGB")

        stem = os.path.splitext(name)[0]
        with open(os.path.join(args.out, f"{stem}.decoded.rgb"), "wb") as f:
            f.write(rgb.tobytes())
        with open(os.path.join(args.out, f"{stem}.crop.rgb"), "wb") as f:
            f.write(torchvision_crop(rgb).tobytes())
        index.append({"name": stem, "source": path, "width": rgb.width, "height": rgb.height, "orientation": orientation})

    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump({"pillow": PIL.__version__, "images": index}, f, indent=1)
    print(f"wrote {len(index)} images with Pillow {PIL.__version__} to {args.out}")


if __name__ == "__main__":
    main()
