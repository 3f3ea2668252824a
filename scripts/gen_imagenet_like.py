#!/usr/bin/python3
"""Generates benchmark and test trees for the data loader.

  gen_imagenet_like.py --out DIR [--classes 10] [--per-class 50] [--size 500x375]
                       [--quality 90] [--seed 1]
      An ImageNet-layout tree DIR/nXXXXXXXX/nXXXXXXXX_K.JPEG of JPEGs about
      500x375 (a quarter of them portrait 375x500) at JPEG quality 90, 4:2:0,
      with natural-ish content: smooth colour gradients, blurred shapes, texture
      and sensor-like noise, so decoding costs what real photographs cost
      (flat colour would decode several times faster).

  gen_imagenet_like.py --out DIR --tiny N [--classes 1000]
      A tree of N tiny files (a few bytes each) spread over the classes, for
      measuring how long indexing a large tree takes. Delete it afterwards.

Needs numpy and PIL: run it with /usr/bin/python3 (Debian's python3-pil).
"""
import argparse
import os
import sys


def synset(i):
    return "n%08d" % (1440764 + 7919 * i)


def tiny_tree(out, n, classes):
    os.makedirs(out, exist_ok=True)
    per = (n + classes - 1) // classes
    made = 0
    for c in range(classes):
        d = os.path.join(out, synset(c))
        os.makedirs(d, exist_ok=True)
        for k in range(per):
            if made == n:
                return
            with open(os.path.join(d, "%s_%d.JPEG" % (synset(c), k)), "wb") as f:
                f.write(b"\xff\xd8\xff tiny")
            made += 1


def natural_image(rng, w, h):
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        base = rng.uniform(40, 200)
        field = np.full((h, w), base, np.float32)
        for _ in range(4):  # low-frequency waves: sky, walls, skin
            fx, fy = rng.uniform(0.2, 3.0) / w, rng.uniform(0.2, 3.0) / h
            ph = rng.uniform(0, 6.283)
            field += rng.uniform(10, 40) * np.cos(6.283 * (fx * xx + fy * yy) + ph)
        img[..., c] = field
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(6, 16))):  # objects with edges
        x0, y0 = int(rng.integers(-50, w)), int(rng.integers(-50, h))
        x1, y1 = x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x1, y1], fill=col)
        else:
            draw.rectangle([x0, y0, x1, y1], fill=col)
    pil = pil.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.6, 2.0))))
    arr = np.asarray(pil).astype(np.float32)
    # fine texture (foliage, fur) in patches, and sensor noise everywhere
    tex = rng.normal(0, 1, (h // 4 + 1, w // 4 + 1, 1)).astype(np.float32)
    tex = np.kron(tex, np.ones((4, 4, 1), np.float32))[:h, :w]
    mask = (np.cos(xx / w * rng.uniform(2, 8)) * np.sin(yy / h * rng.uniform(2, 8)) > 0)[..., None]
    arr += 24 * tex * mask + rng.normal(0, 9, arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def jpeg_tree(out, classes, per_class, size, quality, seed):
    import numpy as np

    w, h = size
    rng = np.random.default_rng(seed)
    for c in range(classes):
        d = os.path.join(out, synset(c))
        os.makedirs(d, exist_ok=True)
        for k in range(per_class):
            portrait = rng.random() < 0.25
            iw, ih = (h, w) if portrait else (w, h)
            natural_image(rng, iw, ih).save(os.path.join(d, "%s_%d.JPEG" % (synset(c), k)), "JPEG",
                                            quality=quality)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--classes", type=int, default=None)
    ap.add_argument("--per-class", type=int, default=50)
    ap.add_argument("--size", default="500x375")
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tiny", type=int, default=0, help="make N tiny files instead of JPEGs")
    a = ap.parse_args()
    if a.tiny:
        tiny_tree(a.out, a.tiny, a.classes or 1000)
    else:
        try:
            size = tuple(int(v) for v in a.size.split("x"))
        except ValueError:
            sys.exit("gen_imagenet_like.py: --size must look like 500x375")
        jpeg_tree(a.out, a.classes or 10, a.per_class, size, a.quality, a.seed)


if __name__ == "__main__":
    main()
