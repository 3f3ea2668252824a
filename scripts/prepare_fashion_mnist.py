#!/usr/bin/env python3
"""Converts Debian's Fashion-MNIST (dataset-fashion-mnist, IDX files under
/usr/share/datasets/fashion-mnist) into the ImageNet layout every dataset of
this trainer uses:

    OUT/train/<class>/<index>.png    60,000 28x28 grayscale PNGs
    OUT/val/<class>/<index>.png      10,000
    OUT/classes.txt                  one "<class_dir> <name>" line per class, in label order

Class directories are named "<label>-<name>" so that their sorted order is the
label order. Standard library only (gzip, struct, zlib). Idempotent: a
complete OUT (marked by OUT/.complete) is left alone; an interrupted one is
rebuilt.
Usage: prepare_fashion_mnist.py [--src DIR] [--out DIR]
"""
import argparse
import gzip
import os
import shutil
import struct
import sys
import zlib

CLASSES = ["tshirt-top", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xff
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return shape, data[4 + 4 * dims:]


def png_gray(w, h, pixels):
    """A minimal 8-bit grayscale PNG of w x h bytes."""
    raw = b"".join(b"\x00" + pixels[y * w:(y + 1) * w] for y in range(h))

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def convert(src, out, split, prefix):
    (n, h, w), images = read_idx(os.path.join(src, prefix + "-images-idx3-ubyte.gz"))
    (nl,), labels = read_idx(os.path.join(src, prefix + "-labels-idx1-ubyte.gz"))
    if n != nl:
        sys.exit(f"prepare_fashion_mnist: {n} images but {nl} labels in {src}/{prefix}*")
    for k, c in enumerate(CLASSES):
        os.makedirs(os.path.join(out, split, f"{k}-{c}"), exist_ok=True)
    size = h * w
    for i in range(n):
        k = labels[i]
        path = os.path.join(out, split, f"{k}-{CLASSES[k]}", f"{i:05d}.png")
        with open(path, "wb") as f:
            f.write(png_gray(w, h, images[i * size:(i + 1) * size]))
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default="data/fashion-mnist")
    a = ap.parse_args()
    if os.path.exists(os.path.join(a.out, ".complete")):
        print(f"{a.out}: already prepared")
        return
    if not os.path.exists(os.path.join(a.src, "train-images-idx3-ubyte.gz")):
        sys.exit(f"prepare_fashion_mnist: no Fashion-MNIST in {a.src}; "
                 "install it with: apt-get install dataset-fashion-mnist")
    for split in ("train", "val"):
        shutil.rmtree(os.path.join(a.out, split), ignore_errors=True)
    os.makedirs(a.out, exist_ok=True)
    ntrain = convert(a.src, a.out, "train", "train")
    nval = convert(a.src, a.out, "val", "t10k")
    with open(os.path.join(a.out, "classes.txt"), "w") as f:
        for k, c in enumerate(CLASSES):
            f.write(f"{k}-{c} {NAMES[k]}\n")
    open(os.path.join(a.out, ".complete"), "w").close()
    print(f"{a.out}: {ntrain} training and {nval} validation images in {len(CLASSES)} classes")


if __name__ == "__main__":
    main()
