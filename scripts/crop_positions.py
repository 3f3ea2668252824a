#!/usr/bin/python3
"""crop_positions.py: each crop of the paper's 10-crop evaluation on its own.

`googlenet eval --crops 10` averages 10 crops per image (4 corners and the
centre of the image resized to 256/224 of the crop, and their mirrors). To see
what each position costs, this script writes, for N images of a class tree
(evenly spaced, as `eval --subset N` picks them), one dataset per position of
crop x crop images holding exactly that crop's box of the source image:

    OUT/whole/<class>/<file>.png         the whole image (eval --resize 224)
    OUT/centre/..., OUT/top-left/..., OUT/top-right/..., OUT/bottom-left/..., OUT/bottom-right/...

`googlenet eval --ckpt C --data OUT/<position> --crops 1 --resize 224` then
scores the model on that crop alone (a crop x crop image evaluated at crop is
taken whole). The boxes are dataloader/crops.h's; the resampling is PIL's bilinear,
close to but not bit for bit the trainer's (OUT/whole against eval's own
--crops 1 --resize 224 shows how close). --montage PNG draws the six views of
a few images of the named classes, enlarged, one image per row.

    /usr/bin/python3 scripts/crop_positions.py --data data/fashion-mnist/val --out /tmp/crops \
        --subset 1000 --crop 64 --montage docs/crops.png --montage-classes 4-Coat,6-Shirt
"""
import argparse
import os
import sys

from PIL import Image

POSITIONS = ["whole", "centre", "top-left", "top-right", "bottom-left", "bottom-right"]


def boxes(w, h, crop, resize):
    """Source-pixel boxes (x0, y0, x1, y1) of each position, as dataloader/crops.h cuts them."""
    s_short = round(resize * crop / 224)
    if w <= h:
        rw, rh = s_short, int(s_short * h / w)
    else:
        rw, rh = int(s_short * w / h), s_short
    sx, sy = w / rw, h / rh  # source pixels per resized pixel

    def half_away(v):
        return int(v + 0.5) if v >= 0 else -int(-v + 0.5)

    cx, cy = half_away((rw - crop) / 2), half_away((rh - crop) / 2)
    at = {"centre": (cx, cy), "top-left": (0, 0), "top-right": (rw - crop, 0),
          "bottom-left": (0, rh - crop), "bottom-right": (rw - crop, rh - crop)}
    out = {"whole": (0, 0, w, h)}
    for name, (x, y) in at.items():
        out[name] = (x * sx, y * sy, (x + crop) * sx, (y + crop) * sy)
    return out


def items(root):
    """(class, file) in the trainer's order: class directories, then files, in sorted byte order."""
    classes = sorted(d for d in os.listdir(root) if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
    for c in classes:
        for f in sorted(os.listdir(os.path.join(root, c)), key=lambda s: s.encode()):
            if not f.startswith("."):
                yield c, f


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--subset", type=int, default=1000)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--resize", type=int, default=256)
    ap.add_argument("--montage")
    ap.add_argument("--montage-classes", default="")
    ap.add_argument("--montage-rows", type=int, default=3)
    a = ap.parse_args()
    all_items = list(items(a.data))
    stride = max(1, len(all_items) // a.subset) if a.subset else 1
    chosen = all_items[::stride][: a.subset or None]
    rows = {c: [] for c in a.montage_classes.split(",") if c}
    for c, f in chosen:
        im = Image.open(os.path.join(a.data, c, f)).convert("RGB")
        views = {}
        for name, box in boxes(im.width, im.height, a.crop, a.resize).items():
            views[name] = im.resize((a.crop, a.crop), Image.BILINEAR, box=box)
            d = os.path.join(a.out, name, c)
            os.makedirs(d, exist_ok=True)
            views[name].save(os.path.join(d, os.path.splitext(f)[0] + ".png"))
        if c in rows and len(rows[c]) < a.montage_rows:
            rows[c].append(views)
    print(f"{len(chosen)} images x {len(POSITIONS)} views of {a.crop}x{a.crop} in {a.out}")
    if a.montage:
        lines = [v for c in rows for v in rows[c]]
        if not lines:
            sys.exit("crop_positions.py: no image of --montage-classes in the subset")
        z, pad = 3, 6
        cell = a.crop * z + pad
        sheet = Image.new("RGB", (cell * len(POSITIONS) + pad, cell * len(lines) + pad), "white")
        for r, views in enumerate(lines):
            for k, name in enumerate(POSITIONS):
                sheet.paste(views[name].resize((a.crop * z, a.crop * z), Image.NEAREST), (pad + k * cell, pad + r * cell))
        sheet.save(a.montage)
        print(f"montage: {a.montage} (columns: {', '.join(POSITIONS)}; rows: {', '.join(f'{c} x{len(v)}' for c, v in rows.items())})")


if __name__ == "__main__":
    main()
