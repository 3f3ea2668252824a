#!/usr/bin/python3
"""reference_googlenet.py: GoogLeNet (Caffe's bvlc_googlenet) written independently in
PyTorch, to check bin/googlenet's maths against, and to time the same network
(scripts/bench_pytorch.py imports GoogLeNet from here).

It shares no code with nn/: the architecture is transcribed from the paper's table
(shared/reference/googlenet.md) and every layer is a stock PyTorch op. It never
writes files; it reads a dump of tests/helper_parity_dump and judges it.

  reference_googlenet.py compare DIR [--tol 1e-4] [--all]
      DIR holds what helper_parity_dump wrote: params.npy, params.txt, input.npy,
      labels.npy, logits_{main,aux1,aux2,eval,infer}.npy, loss.npy, grads.npy.
      Loads the C parameters into this network by name, runs it in float64 on the
      same input (dropout 0, as the dump), and compares the three heads' logits,
      the total loss, every parameter's gradient and the eval-mode logits.
      Metric, per quantity: max|c - ref| / max|ref| (the largest absolute error
      relative to the largest reference magnitude of that tensor; for the scalar
      loss |c - ref| / |ref|). Exit 0 when every one is <= tol, 1 otherwise,
      2 when the dump is missing or does not fit this network.
  reference_googlenet.py count [--crop 224] [--classes 1000]
      Parameter counts and multiply-adds of this network.

Run it with Debian's /usr/bin/python3 (python3-torch); the default python3 may lack torch.
"""
import argparse
import math
import os
import sys


def _blas_coretype():
    """OpenBLAS misdetects this VM's CPU and falls back to slow kernels (see
    trainer/main.c); the choice is made when the library loads, so the variable
    must be set before torch is imported. A value already set is kept."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((l.split(":", 1)[1].split() for l in f if l.startswith("flags")), [])
    except OSError:
        return None
    fl = set(flags)
    if {"avx512f", "avx512bw", "avx512vl"} <= fl:
        if "amx_tile" in fl and "avx512_bf16" in fl:
            return "SapphireRapids"
        return "Cooperlake" if "avx512_bf16" in fl else "SkylakeX"
    if {"avx2", "fma"} <= fl:
        return "Haswell"
    return None


if "OPENBLAS_CORETYPE" not in os.environ and _blas_coretype():
    os.environ["OPENBLAS_CORETYPE"] = _blas_coretype()  # before torch loads OpenBLAS

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # the program edge: say what to install
    sys.stderr.write(f"reference_googlenet.py: {e}; run it with /usr/bin/python3 after "
                     "`apt-get install python3-torch python3-numpy`\n")
    sys.exit(2)

# (name, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj): the paper's Table 1.
INCEPTION = {
    "inception_3a": (64, 96, 128, 16, 32, 32),
    "inception_3b": (128, 128, 192, 32, 96, 64),
    "inception_4a": (192, 96, 208, 16, 48, 64),
    "inception_4b": (160, 112, 224, 24, 64, 64),
    "inception_4c": (128, 128, 256, 24, 64, 64),
    "inception_4d": (112, 144, 288, 32, 64, 64),
    "inception_4e": (256, 160, 320, 32, 128, 128),
    "inception_5a": (256, 160, 320, 32, 128, 128),
    "inception_5b": (384, 192, 384, 48, 128, 128),
}
AUX_WEIGHT = 0.3
LRN = dict(size=5, alpha=1e-4, beta=0.75, k=1.0)  # Caffe's; torch divides alpha by size as Caffe does


class Tap:
    """Where GoogLeNet.forward passes each named activation (bin/googlenet's tensor
    names: "conv1/7x7_s2", "inception_3a/pool", "loss1/fc"). The plain tap just
    applies the op; compare() uses AlignTap to record the activations and to take
    ReLU and max-pool decisions from C."""

    def relu(self, name, z):
        return F.relu(z)

    def max_pool(self, name, in_name, x, k, stride, pad):
        """Max pooling with the output size rounded up, as Caffe's (112->56->28->14->7)."""
        return F.max_pool2d(x, k, stride, padding=pad, ceil_mode=True)

    def out(self, name, y):
        return y


class Inception(nn.ModuleDict):
    """Four branches concatenated along channels: 1x1; 1x1 -> 3x3; 1x1 -> 5x5; maxpool 3x3/1 -> 1x1."""

    def __init__(self, name, cin, c1, c3r, c3, c5r, c5, cp):
        super().__init__()
        self.name = name
        # registration order = Caffe's prototxt order = the parameter layout
        self["1x1"] = nn.Conv2d(cin, c1, 1)
        self["3x3_reduce"] = nn.Conv2d(cin, c3r, 1)
        self["3x3"] = nn.Conv2d(c3r, c3, 3, padding=1)
        self["5x5_reduce"] = nn.Conv2d(cin, c5r, 1)
        self["5x5"] = nn.Conv2d(c5r, c5, 5, padding=2)
        self["pool_proj"] = nn.Conv2d(cin, cp, 1)
        self.out_channels = c1 + c3 + c5 + cp

    def conv(self, tap, what, x):
        return tap.relu(f"{self.name}/{what}", self[what](x))

    def forward(self, x, tap, in_name):
        b1 = self.conv(tap, "1x1", x)
        b2 = self.conv(tap, "3x3", self.conv(tap, "3x3_reduce", x))
        b3 = self.conv(tap, "5x5", self.conv(tap, "5x5_reduce", x))
        pooled = tap.max_pool(f"{self.name}/pool", in_name, x, 3, 1, 1)
        b4 = self.conv(tap, "pool_proj", pooled)
        return tap.out(f"{self.name}/output", torch.cat([b1, b2, b3, b4], 1))


class AuxHead(nn.ModuleDict):
    """loss1 / loss2: avg pool to 4x4, 1x1 conv 128 + ReLU, FC 1024 + ReLU, dropout, FC."""

    def __init__(self, name, cin, classes, dropout):
        super().__init__()
        self.name = name
        self["conv"] = nn.Conv2d(cin, 128, 1)
        self["fc"] = nn.Linear(128 * 4 * 4, 1024)
        self["classifier"] = nn.Linear(1024, classes)
        self.dropout = dropout

    def forward(self, x, tap):
        n = self.name
        if x.shape[-2:] == (14, 14):
            x = F.avg_pool2d(x, 5, 3, ceil_mode=True)  # Caffe's 5x5/3 at crop 224
        else:
            x = F.adaptive_avg_pool2d(x, 4)
        x = tap.out(f"{n}/ave_pool", x)
        x = tap.relu(f"{n}/conv", self["conv"](x))
        x = tap.out(f"{n}/flatten", torch.flatten(x, 1))  # (c, h, w) order
        x = tap.relu(f"{n}/fc", self["fc"](x))
        x = tap.out(f"{n}/drop_fc", F.dropout(x, self.dropout, self.training))
        return tap.out(f"{n}/classifier", self["classifier"](x))


class GoogLeNet(nn.Module):
    """Caffe's bvlc_googlenet. Parameter names, with '.' read as '/', are Caffe's
    layer names ("inception_4a/5x5_reduce/weight"). In training mode with aux
    heads forward returns (main, aux1, aux2) logits, otherwise the main logits."""

    def __init__(self, classes=1000, aux=True, head_dropout=0.4, aux_dropout=0.7):
        super().__init__()
        self.aux = aux
        self.head_dropout = head_dropout
        self.tap = Tap()
        self.conv1 = nn.ModuleDict({"7x7_s2": nn.Conv2d(3, 64, 7, stride=2, padding=3)})
        self.conv2 = nn.ModuleDict({"3x3_reduce": nn.Conv2d(64, 64, 1),
                                    "3x3": nn.Conv2d(64, 192, 3, padding=1)})
        cin = 192
        for name, spec in INCEPTION.items():
            self.add_module(name, Inception(name, cin, *spec))
            cin = getattr(self, name).out_channels
            if aux and name in ("inception_4a", "inception_4d"):
                head = "loss1" if name == "inception_4a" else "loss2"
                self.add_module(head, AuxHead(head, cin, classes, aux_dropout))
        self.loss3 = nn.ModuleDict({"classifier": nn.Linear(cin, classes)})
        self.lrn = nn.LocalResponseNorm(**LRN)

    def forward(self, x):
        t = self.tap
        x = t.out("data", x)
        x = t.relu("conv1/7x7_s2", self.conv1["7x7_s2"](x))
        x = t.max_pool("pool1/3x3_s2", "conv1/7x7_s2", x, 3, 2, 0)
        x = t.out("pool1/norm1", self.lrn(x))
        x = t.relu("conv2/3x3_reduce", self.conv2["3x3_reduce"](x))
        x = t.relu("conv2/3x3", self.conv2["3x3"](x))
        x = t.out("conv2/norm2", self.lrn(x))
        x = t.max_pool("pool2/3x3_s2", "conv2/norm2", x, 3, 2, 0)
        x = self.inception_3a(x, t, "pool2/3x3_s2")
        x = self.inception_3b(x, t, "inception_3a/output")
        x = t.max_pool("pool3/3x3_s2", "inception_3b/output", x, 3, 2, 0)
        x = self.inception_4a(x, t, "pool3/3x3_s2")
        heads = self.aux and self.training
        aux1 = self.loss1(x, t) if heads else None
        x = self.inception_4b(x, t, "inception_4a/output")
        x = self.inception_4c(x, t, "inception_4b/output")
        x = self.inception_4d(x, t, "inception_4c/output")
        aux2 = self.loss2(x, t) if heads else None
        x = self.inception_4e(x, t, "inception_4d/output")
        x = t.max_pool("pool4/3x3_s2", "inception_4e/output", x, 3, 2, 0)
        x = self.inception_5a(x, t, "pool4/3x3_s2")
        x = self.inception_5b(x, t, "inception_5a/output")
        x = t.out("pool5/7x7_s1", x.mean((2, 3)))  # = Caffe's avg 7x7/1 at crop 224
        x = t.out("pool5/drop_7x7_s1", F.dropout(x, self.head_dropout, self.training))
        main = t.out("loss3/classifier", self.loss3["classifier"](x))
        return (main, aux1, aux2) if heads else main

    def caffe_parameters(self):
        """[(Caffe name, parameter)] in layout order."""
        return [(n.replace(".", "/"), p) for n, p in self.named_parameters()]

    @torch.no_grad()
    def init_caffe_(self, seed=1):
        """Caffe's xavier (uniform +-sqrt(3 / fan_in)) and biases 0.2, classifiers 0."""
        g = torch.Generator().manual_seed(seed)
        for name, p in self.caffe_parameters():
            if name.endswith("/bias"):
                p.fill_(0.0 if "/classifier/" in name else 0.2)
            else:
                a = math.sqrt(3.0 / (p[0].numel()))
                p.copy_((torch.rand(p.shape, generator=g, dtype=torch.float64) * 2 - 1) * a)


def total_loss(outputs, labels):
    """Mean over the batch of CE(main) + 0.3 CE(aux1) + 0.3 CE(aux2)."""
    main, aux1, aux2 = outputs
    return (F.cross_entropy(main, labels)
            + AUX_WEIGHT * F.cross_entropy(aux1, labels) + AUX_WEIGHT * F.cross_entropy(aux2, labels))


def count_macs(model, crop, training, dtype=torch.float32):
    """Multiply-adds of convolutions and fully connected layers for one image,
    counted as bin/googlenet bench does: a forward pass (main path only when not
    training), and for training forward + backward, where backward costs twice
    the forward (dW and dX) except for layers fed the image itself (dW only)."""
    total = 0.0
    hooks = []

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            f = out[0].numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        else:
            f = mod.in_features * mod.out_features * (out.numel() // out.shape[-1])
        total += f if not training else f * (2 if inp[0] is image else 3)

    for mod in model.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            hooks.append(mod.register_forward_hook(hook))
    was_training = model.training
    model.train(training)
    image = torch.zeros(1, 3, crop, crop, dtype=dtype)
    try:
        with torch.no_grad():
            model(image)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total


# ---- comparing with a dump of tests/helper_parity_dump ----

class DumpError(Exception):
    pass


def _load(d, name):
    path = os.path.join(d, name)
    if not os.path.exists(path):
        raise DumpError(f"{path} is missing; run tests/helper_parity_dump --out {d} first")
    return np.load(path)


def load_c_params(model, d, dtype):
    """Copies params.npy into the model by the names and offsets of params.txt.
    The names, their order, shapes and offsets must match this network's exactly."""
    flat = _load(d, "params.npy")
    path = os.path.join(d, "params.txt")
    if not os.path.exists(path):
        raise DumpError(f"{path} is missing; run tests/helper_parity_dump --out {d} first")
    rows = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) < 4:
                raise DumpError(f"{path}:{lineno}: expected 'name offset count shape...', got {line.strip()!r}")
            rows.append((parts[0], int(parts[1]), int(parts[2]), tuple(int(s) for s in parts[3:])))
    ref = model.caffe_parameters()
    ours = [n for n, _ in ref]
    theirs = [r[0] for r in rows]
    if set(ours) != set(theirs):
        missing = sorted(set(ours) - set(theirs))[:3]
        extra = sorted(set(theirs) - set(ours))[:3]
        raise DumpError(f"{path}: parameter names differ from the reference: missing {missing}, unexpected {extra}")
    if ours != theirs:
        i = next(i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b)
        raise DumpError(f"{path}: parameter order differs from Caffe's at tensor {i}: C has {theirs[i]}, "
                        f"the reference {ours[i]}")
    params = dict(ref)
    expect = 0
    for name, off, count, shape in rows:
        p = params[name]
        if tuple(p.shape) != shape or p.numel() != count:
            raise DumpError(f"{path}: {name} has shape {shape} ({count}), the reference {tuple(p.shape)}")
        if off != expect:
            raise DumpError(f"{path}: {name} starts at {off}, expected {expect} (tensors must be contiguous)")
        expect += count
    if expect != flat.size:
        raise DumpError(f"params.npy has {flat.size} floats, params.txt describes {expect}")
    with torch.no_grad():
        for name, off, count, shape in rows:
            params[name].copy_(torch.from_numpy(flat[off:off + count].reshape(shape).astype(np.float64)).to(dtype))
    return rows


def rel_err(c, ref):
    """max|c - ref| / max|ref|, and the flat index of the largest |c - ref|."""
    c = np.asarray(c, dtype=np.float64).ravel()
    ref = np.asarray(ref, dtype=np.float64).ravel()
    diff = np.abs(c - ref)
    i = int(np.argmax(diff))
    scale = float(np.max(np.abs(ref)))
    err = float(diff[i]) / scale if scale > 0 else float(diff[i])
    if not np.all(np.isfinite(c)):
        err = math.inf
    return err, scale, float(diff[i]), i


class _ReluAs(torch.autograd.Function):
    """max(z, 0) forward; backward passes the gradient where `mask` (C's decision) is set."""

    @staticmethod
    def forward(ctx, z, mask):
        ctx.save_for_backward(mask)
        return z.clamp_min(0)

    @staticmethod
    def backward(ctx, dy):
        (mask,) = ctx.saved_tensors
        return dy * mask, None


class _MaxPoolAs(torch.autograd.Function):
    """Max pooling forward; backward routes each window's gradient to `idx` (C's choice)."""

    @staticmethod
    def forward(ctx, x, idx, k, stride, pad):
        ctx.save_for_backward(idx)
        ctx.shape = x.shape
        return F.max_pool2d(x, k, stride, padding=pad, ceil_mode=True)

    @staticmethod
    def backward(ctx, dy):
        (idx,) = ctx.saved_tensors
        n, c, h, w = ctx.shape
        dx = torch.zeros(n, c, h * w, dtype=dy.dtype)
        dx.scatter_add_(2, idx.flatten(2), dy.flatten(2))
        return dx.view(n, c, h, w), None, None, None, None


class AlignTap(Tap):
    """Records every activation of the reference; with C's activations (the dump's
    acts/), takes the non-differentiable decisions from C: the ReLU masks and
    the position each max-pool window's gradient goes to. At a near-tie (a ReLU
    input or two window values within float32 rounding of each other) float32
    and float64 may decide differently; each such choice moves whole gradient
    tensors by up to 1e-3 in any float32 implementation, PyTorch's included, so a
    sharp comparison must make the same choice as C. Values stay float64: a
    wrong C decision away from a tie still shows as a wrong activation."""

    def __init__(self, acts):
        self.acts = acts or {}
        self.values = {}
        self.disagree = []  # (name, kind, count, largest margin relative to the layer's max)

    def out(self, name, y):
        self.values[name] = y.detach()
        return y

    def relu(self, name, z):
        c = self.acts.get(name)
        if c is None:
            return self.out(name, F.relu(z))
        mask = torch.from_numpy(c.reshape(z.shape) > 0).to(z.dtype)
        zd = z.detach()
        wrong = (zd > 0).to(z.dtype) != mask
        if wrong.any():
            scale = float(zd.abs().max())
            self.disagree.append((name, "relu", int(wrong.sum()), float(zd[wrong].abs().max()) / scale))
        return self.out(name, _ReluAs.apply(z, mask))

    def max_pool(self, name, in_name, x, k, stride, pad):
        c = self.acts.get(in_name)
        if c is None:
            return self.out(name, super().max_pool(name, in_name, x, k, stride, pad))
        xc = torch.from_numpy(c).to(x.dtype)
        _, idx = F.max_pool2d(xc, k, stride, padding=pad, ceil_mode=True, return_indices=True)
        xd = x.detach()
        best, own = F.max_pool2d(xd, k, stride, padding=pad, ceil_mode=True, return_indices=True)
        wrong = idx != own
        if wrong.any():
            chosen = xd.flatten(2).gather(2, idx.flatten(2)).view(idx.shape)
            gap = float((best - chosen)[wrong].max()) / float(xd.abs().max())
            self.disagree.append((name, "max pool", int(wrong.sum()), gap))
        return self.out(name, _MaxPoolAs.apply(x, idx, k, stride, pad))


def load_acts(d):
    """C's activations from DIR/acts (index.txt: name file C H W), or None without them."""
    path = os.path.join(d, "acts", "index.txt")
    if not os.path.exists(path):
        return None
    acts = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) != 5:
                raise DumpError(f"{path}:{lineno}: expected 'name file C H W', got {line.strip()!r}")
            a = _load(os.path.join(d, "acts"), parts[1])
            if a.ndim != 4 or tuple(a.shape[1:]) != tuple(int(v) for v in parts[2:]):
                raise DumpError(f"{path}:{lineno}: {parts[1]} has shape {a.shape}, expected (N, {', '.join(parts[2:])})")
            acts[parts[0]] = a
    return acts


def compare(d, tol, show_all):
    input_np = _load(d, "input.npy")
    labels_np = _load(d, "labels.npy")
    c = {k: _load(d, f"{k}.npy") for k in
         ("logits_main", "logits_aux1", "logits_aux2", "logits_eval", "logits_infer", "loss", "grads")}
    if input_np.ndim != 4 or input_np.shape[1] != 3 or input_np.shape[2] != input_np.shape[3]:
        raise DumpError(f"input.npy has shape {input_np.shape}, expected (N, 3, S, S)")
    n, crop, classes = input_np.shape[0], input_np.shape[2], c["logits_main"].shape[1]
    for k in ("logits_main", "logits_aux1", "logits_aux2", "logits_eval", "logits_infer"):
        if c[k].shape != (n, classes):
            raise DumpError(f"{k}.npy has shape {c[k].shape}, expected {(n, classes)}")
    acts = load_acts(d)

    dtype = torch.float64
    model = GoogLeNet(classes, aux=True, head_dropout=0.0, aux_dropout=0.0).to(dtype)
    rows = load_c_params(model, d, dtype)
    if c["grads"].size != sum(r[2] for r in rows):
        raise DumpError(f"grads.npy has {c['grads'].size} floats, params.txt describes {sum(r[2] for r in rows)}")

    x = torch.from_numpy(input_np.astype(np.float64))
    labels = torch.from_numpy(labels_np.astype(np.int64))
    tap = AlignTap(acts)
    model.tap = tap
    model.train()
    outs = model(x)
    loss = total_loss(outs, labels)
    loss.backward()
    model.tap = Tap()
    model.eval()
    with torch.no_grad():
        eval_logits = model(x)

    results = []  # (err, name, shape, max|ref|, max|diff|, worst index)

    def add(name, cval, rval):
        rval = np.asarray(rval)
        err, scale, diff, i = rel_err(cval, rval)
        where = np.unravel_index(i, rval.shape) if rval.ndim else ()
        results.append((err, name, tuple(rval.shape), scale, diff, tuple(int(v) for v in where)))

    for k, o in zip(("logits_main", "logits_aux1", "logits_aux2"), outs):
        add(k, c[k], o.detach().numpy())
    add("loss", c["loss"].reshape(()), loss.detach().numpy())
    add("logits_eval", c["logits_eval"], eval_logits.numpy())
    add("logits_infer", c["logits_infer"], eval_logits.numpy())
    missing = []
    for name, a in (acts or {}).items():
        if name not in tap.values:
            missing.append(name)
            continue
        add(f"act {name}", a.reshape(a.shape[0], -1), tap.values[name].numpy().reshape(a.shape[0], -1))
    params = dict(model.caffe_parameters())
    grads = c["grads"]
    for name, off, count, shape in rows:
        add(f"grad {name}", grads[off:off + count].reshape(shape), params[name].grad.numpy())

    results.sort(key=lambda r: -r[0])
    bad = [r for r in results if not r[0] <= tol]
    print(f"reference_googlenet.py compare {d}: crop {crop}, batch {n}, {classes} classes, "
          f"{sum(r[2] for r in rows)} parameters in {len(rows)} tensors; torch {torch.__version__}, float64")
    print(f"loss: C {float(c['loss'].reshape(())):.7f}  reference {loss.item():.7f}")
    if acts is None:
        print("decisions: the reference's own (no acts/ in the dump): near-ties may move gradients by up to 1e-3")
    else:
        print(f"decisions: ReLU masks and max-pool choices taken from C's {len(acts)} activations; "
              f"C decided differently from float64 at:" + ("" if tap.disagree else " none"))
        for name, kind, cnt, margin in tap.disagree[:12]:
            print(f"    {name:<28} {kind:<8} {cnt:4d} position(s), largest margin {margin:.1e} of the layer's max")
        if len(tap.disagree) > 12:
            print(f"    ... and {len(tap.disagree) - 12} more layers; margins above ~1e-6 mean C computes "
                  "something else there")
        if missing:
            print(f"    C tensors the reference has no counterpart for: {', '.join(missing)}")
    print("metric per quantity: max|c - ref| / max|ref|   (tolerance %g)" % tol)
    print(f"{'rel err':>10} {'max|ref|':>10} {'max|diff|':>10}  {'quantity':<44} {'shape':<18} worst at")
    shown = results if show_all else results[:max(20, len(bad))]
    for err, name, shape, scale, diff, where in shown:
        flag = "  FAIL" if not err <= tol else ""
        print(f"{err:10.2e} {scale:10.3e} {diff:10.3e}  {name:<44} {str(shape):<18} {where}{flag}")
    if len(shown) < len(results):
        print(f"  ... {len(results) - len(shown)} more below {shown[-1][0]:.2e} (--all lists them)")
    if bad:
        print(f"FAIL: {len(bad)} of {len(results)} quantities exceed {tol:g}; worst {bad[0][1]} at {bad[0][0]:.3e}")
        bad_names = {r[1] for r in bad}
        first = next((f"act {k}" for k in tap.values if f"act {k}" in bad_names), None)
        if first:
            print(f"      the first activation beyond {tol:g} in forward order is {first[4:]}: "
                  "look there (or just before it) first")
        return 1
    print(f"PASS: all {len(results)} quantities within {tol:g}; worst {results[0][1]} at {results[0][0]:.3e}")
    return 0


def count(crop, classes):
    full = GoogLeNet(classes, aux=True)
    main = GoogLeNet(classes, aux=False)
    print(f"parameters: {sum(p.numel() for p in full.parameters()):,} with aux heads, "
          f"{sum(p.numel() for p in main.parameters()):,} without ({classes} classes)")
    print(f"multiply-adds per image at crop {crop}: {count_macs(full, crop, False) / 1e9:.4f} G forward (main path), "
          f"{count_macs(full, crop, True) / 1e9:.4f} G training step (forward + backward, aux heads)")
    return 0


def main(argv):
    ap = argparse.ArgumentParser(description="GoogLeNet in PyTorch: the independent reference for bin/googlenet.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    cp = sub.add_parser("compare", help="compare a helper_parity_dump directory with this reference")
    cp.add_argument("dir")
    cp.add_argument("--tol", type=float, default=1e-4, help="largest accepted max|c-ref|/max|ref| (default 1e-4)")
    cp.add_argument("--all", action="store_true", help="list every quantity, not only the worst 20")
    cp.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    cn = sub.add_parser("count", help="parameter and multiply-add counts")
    cn.add_argument("--crop", type=int, default=224)
    cn.add_argument("--classes", type=int, default=1000)
    a = ap.parse_args(argv)
    if a.cmd == "count":
        return count(a.crop, a.classes)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    try:
        return compare(a.dir, a.tol, a.all)
    except DumpError as e:
        sys.stderr.write(f"reference_googlenet.py: {e}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
