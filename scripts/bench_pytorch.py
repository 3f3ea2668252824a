#!/usr/bin/python3
"""bench_pytorch.py: times GoogLeNet in PyTorch the way `bin/googlenet bench` times ours,
so that the two can be compared side by side (scripts/bench_vs_pytorch.sh does that).

  bench_pytorch.py [--batch 32] [--threads 2] [--crop 224] [--eval] [--steps 5] [--warmup 1]
                   [--classes 1000] [--torchvision] [--plain] [--json]

Default: the same network as ours (Caffe's bvlc_googlenet with LRN and both aux heads,
scripts/reference_googlenet.py), float32. Training step: forward, backward of
CE(main) + 0.3 CE(aux1) + 0.3 CE(aux2), SGD with momentum 0.9 (biases lr x2 and no
weight decay, as ours) and the Polyak average update ours does; --eval: inference of
the main head (no aux, no autograd). --torchvision times torchvision.models.googlenet
instead (BatchNorm, no LRN; its aux logits in training), random weights, no download.
Random data, one process, torch.set_num_threads(--threads); OpenBLAS (which this torch
uses for Linear) gets the same thread count and the kernels ours gets.

As a careful user runs PyTorch on a CPU: the model and the input in
torch.channels_last (oneDNN's blocked convolutions without NCHW reorders), and
run it under tcmalloc (LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4;
scripts/bench_vs_pytorch.sh does that): glibc malloc's page faults and the
reorders slow this PyTorch down 1.6-2.8x here. --plain keeps the default NCHW
layout, for reference. The JSON says which allocator and layout ran.

Prints img/s, ms per step, GFLOP/s (2 x the multiply-adds ours counts: convolutions and
fully connected layers, backward 2x forward except for the first convolution) and
peak RSS (ru_maxrss); with --json the last line is one JSON object with img_per_s,
step_ms, gflops and peak_rss_mb.
"""
import argparse
import json
import os
import resource
import sys
import time


def parse(argv):
    ap = argparse.ArgumentParser(description="Time GoogLeNet training steps or inference in PyTorch.")
    ap.add_argument("--batch", type=int, default=32, help="images per step (default 32)")
    ap.add_argument("--threads", type=int, default=2, help="torch and OpenBLAS threads (default 2)")
    ap.add_argument("--crop", type=int, default=224, help="input height and width (default 224)")
    ap.add_argument("--eval", action="store_true", help="time inference (main head only) instead of training")
    ap.add_argument("--steps", type=int, default=5, help="timed steps (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    ap.add_argument("--classes", type=int, default=1000, help="classifier outputs (default 1000)")
    ap.add_argument("--torchvision", action="store_true", help="time torchvision's googlenet instead")
    ap.add_argument("--plain", action="store_true", help="default NCHW layout instead of channels_last")
    ap.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    a = ap.parse_args(argv)
    for name, lo in (("batch", 1), ("threads", 1), ("crop", 32), ("steps", 1), ("warmup", 0), ("classes", 2)):
        if getattr(a, name) < lo:
            ap.error(f"--{name} must be at least {lo}, got {getattr(a, name)}")
    return a


def main(argv):
    a = parse(argv)
    # before torch loads its libraries: they read these once
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import reference_googlenet as ref  # sets OPENBLAS_CORETYPE as bin/googlenet does, then imports torch
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)

    if a.torchvision:
        import torchvision
        model = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True,
                                            num_classes=a.classes)
        name = f"torchvision {torchvision.__version__} googlenet (BatchNorm, no LRN)"
    else:
        model = ref.GoogLeNet(a.classes, aux=True)
        model.init_caffe_(1)
        name = "the same network (scripts/reference_googlenet.py)"
    params = sum(p.numel() for p in model.parameters())
    g = torch.Generator().manual_seed(7)
    x = torch.rand(a.batch, 3, a.crop, a.crop, generator=g) * 2 - 1
    layout = "nchw" if a.plain else "channels_last"
    if not a.plain:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    allocator = "tcmalloc" if "tcmalloc" in os.environ.get("LD_PRELOAD", "") else "glibc"
    labels = torch.arange(a.batch) % a.classes

    if a.eval:
        model.eval()

        def step():
            with torch.inference_mode():
                model(x)
    else:
        model.train()
        weights = [p for n, p in model.named_parameters() if not n.endswith("bias")]
        biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
        lr = 1e-4
        opt = torch.optim.SGD([{"params": weights, "lr": lr, "weight_decay": 2e-4},
                               {"params": biases, "lr": 2 * lr, "weight_decay": 0.0}], lr=lr, momentum=0.9)
        plist = list(model.parameters())
        avg = [p.detach().clone() for p in plist]

        def step():
            opt.zero_grad(set_to_none=True)
            out = model(x)
            main, aux_a, aux_b = out[0], out[1], out[2]  # torchvision: (logits, aux2, aux1)
            loss = F.cross_entropy(main, labels) + 0.3 * (F.cross_entropy(aux_a, labels)
                                                          + F.cross_entropy(aux_b, labels))
            loss.backward()
            opt.step()
            with torch.no_grad():
                torch._foreach_mul_(avg, 0.999)
                torch._foreach_add_(avg, [p.detach() for p in plist], alpha=0.001)

    total = 0.0
    for s in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        step()
        if s >= a.warmup:
            total += time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    step_s = total / a.steps
    macs = ref.count_macs(model, a.crop, training=not a.eval) * a.batch
    gflops = 2 * macs / step_s / 1e9
    mode = "inference" if a.eval else "training"
    print(f"pytorch bench: {mode}, {name}, batch {a.batch}, crop {a.crop}, {a.classes} classes, "
          f"{a.threads} thread{'s' if a.threads != 1 else ''}, {params} parameters, torch {torch.__version__}, "
          f"{layout}, {allocator} malloc")
    print(f"  {a.batch / step_s:.2f} img/s   {step_s * 1e3:.1f} ms/step   {gflops:.1f} GFLOP/s   "
          f"peak RSS {peak:.0f} MB")
    if a.json:
        print(json.dumps({"impl": "torchvision" if a.torchvision else "pytorch", "mode": "eval" if a.eval else "train",
                          "batch": a.batch, "crop": a.crop, "threads": a.threads,
                          "img_per_s": round(a.batch / step_s, 3), "step_ms": round(step_s * 1e3, 2),
                          "gflops": round(gflops, 2), "peak_rss_mb": round(peak, 1), "params": params,
                          "torch": torch.__version__, "layout": layout, "allocator": allocator},
                         separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
