#!/usr/bin/python3
"""Times the PyTorch-ecosystem baseline for `googlenet bench-loader`: PIL decoding
plus torchvision's RandomResizedCrop, RandomHorizontalFlip, ToTensor and
Normalize (the standard ImageNet training transform), on the same files, in one
process and one thread (img/s per core).

  /usr/bin/python3 scripts/bench_loader_pil.py --data DIR [--images 640] [--crop 224]
                                              [--eval] [--color] [--json]

--eval times Resize(256 * crop / 224) + CenterCrop instead. --color adds
ColorJitter(0.4, 0.4, 0.4) (the loader's photometric distortions without the
PCA lighting). The normalisation is the loader's default (image.h:
IMAGE_MEAN_RGB / IMAGE_STD_RGB). Needs Debian's python3-torchvision and
python3-pil, hence /usr/bin/python3.
"""
import argparse
import json
import os
import sys
import time

MEAN = [0.485, 0.456, 0.406]  # dataloader/image.h IMAGE_MEAN_RGB
STD = [0.229, 0.224, 0.225]   # dataloader/image.h IMAGE_STD_RGB


def list_files(root):
    out = []
    for d in sorted(os.listdir(root)):
        p = os.path.join(root, d)
        if os.path.isdir(p) and not d.startswith("."):
            out += [os.path.join(p, f) for f in sorted(os.listdir(p)) if not f.startswith(".")]
    return out


def main():
    ap = argparse.ArgumentParser(description="PIL + torchvision loader baseline")
    ap.add_argument("--data", required=True, help="class tree DIR/<class>/<image>")
    ap.add_argument("--images", type=int, default=640, help="images timed (after 32 warm-up)")
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--eval", action="store_true")
    ap.add_argument("--color", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    try:
        import torch
        from PIL import Image
        from torchvision import transforms as T
    except ImportError as e:
        sys.exit("bench_loader_pil.py: %s; run it with /usr/bin/python3 (python3-torchvision, python3-pil)" % e)
    torch.set_num_threads(1)
    files = list_files(a.data)
    if not files:
        sys.exit("bench_loader_pil.py: no files under %s/<class>/" % a.data)
    if a.eval:
        tf = [T.Resize(round(a.crop * 256 / 224)), T.CenterCrop(a.crop)]
    else:
        tf = [T.RandomResizedCrop(a.crop), T.RandomHorizontalFlip()]
        if a.color:
            tf.append(T.ColorJitter(0.4, 0.4, 0.4))
    tf = T.Compose(tf + [T.ToTensor(), T.Normalize(MEAN, STD)])
    torch.manual_seed(1)

    def one(i):
        with open(files[i % len(files)], "rb") as f:
            img = Image.open(f).convert("RGB")
        return tf(img)

    for i in range(32):
        one(i)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(a.images):
        one(32 + i)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    ips = a.images / secs
    print("bench_loader_pil: %s, %s transform, crop %d: %.1f img/s on 1 core (%.1f img/s per CPU-second)" %
          (a.data, "evaluation" if a.eval else "training", a.crop, ips, a.images / cpu))
    if a.json:
        print(json.dumps({"img_per_s": round(ips, 2), "img_per_cpu_s": round(a.images / cpu, 2),
                          "mode": "eval" if a.eval else "train", "crop": a.crop, "images": a.images}))


if __name__ == "__main__":
    main()
