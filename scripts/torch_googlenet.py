#!/usr/bin/python3
"""torch_googlenet.py: converts weights between this project's checkpoints and the
PyTorch GoogLeNet of scripts/reference_googlenet.py, in both directions, through
the flat float32 .npy that `googlenet ckpt export` writes and `ckpt import` reads.

  torch_googlenet.py to-torch WEIGHTS.npy --classes K [--no-aux] --out MODEL.pt
      WEIGHTS.npy from `googlenet ckpt export CKPT --section average|weights
      --out WEIGHTS.npy`; writes the state_dict of
      reference_googlenet.GoogLeNet(K, aux) (float32) for torch.load.
  torch_googlenet.py from-torch MODEL.pt --out WEIGHTS.npy
      MODEL.pt: a state_dict of that module (aux heads or not, any class
      count), e.g. after fine-tuning in PyTorch; writes the flat .npy for
      `googlenet ckpt import WEIGHTS.npy --out CKPT.gnck --like OTHER.gnck`
      (or --classes K [--no-aux]).

The parameter names of the PyTorch module, with '.' read as '/', are the
checkpoint's ("inception_4a/5x5_reduce/weight") and its registration order is the
checkpoint's parameter order, so a conversion is a reshape, never a reordering;
the count is checked against the architecture. The input normalisation is not
part of either file: feed PyTorch (RGB/255 - mean) / std with the checkpoint's
mean and std (`googlenet ckpt info` shows them; ImageNet's when it records none).
Run it with Debian's /usr/bin/python3 (python3-torch).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_googlenet import GoogLeNet, np, torch  # noqa: E402  (sets OPENBLAS_CORETYPE first)


class ConvertError(Exception):
    pass


def to_torch(npy, classes, aux, out):
    flat = np.load(npy)
    if flat.dtype != np.float32 or flat.ndim != 1:
        raise ConvertError(f"{npy} holds {flat.dtype} of shape {flat.shape}; expected the flat float32 array of "
                           "`googlenet ckpt export --out F.npy`")
    model = GoogLeNet(classes, aux=aux).float()
    params = model.caffe_parameters()
    need = sum(p.numel() for _, p in params)
    if flat.size != need:
        raise ConvertError(f"{npy} holds {flat.size} floats but GoogLeNet with {classes} classes "
                           f"{'with' if aux else 'without'} aux heads has {need}; check --classes and --no-aux "
                           "(`googlenet ckpt info` shows both)")
    off = 0
    with torch.no_grad():
        for _, p in params:
            p.copy_(torch.from_numpy(flat[off:off + p.numel()].reshape(p.shape)))
            off += p.numel()
    torch.save(model.state_dict(), out)
    print(f"wrote {out}: state_dict of reference_googlenet.GoogLeNet({classes}, aux={aux}), {need} parameters")


def from_torch(pt, out):
    state = torch.load(pt, map_location="cpu")
    if not isinstance(state, dict) or "loss3.classifier.weight" not in state:
        raise ConvertError(f"{pt} is not a state_dict of reference_googlenet.GoogLeNet (no loss3.classifier.weight)")
    classes = state["loss3.classifier.weight"].shape[0]
    aux = "loss1.conv.weight" in state
    model = GoogLeNet(classes, aux=aux).float()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ConvertError(f"{pt} does not fit GoogLeNet({classes}, aux={aux}): {str(e).splitlines()[0]}")
    flat = np.concatenate([p.detach().float().numpy().ravel() for _, p in model.caffe_parameters()])
    np.save(out, flat.astype("<f4"))
    print(f"wrote {out}: {flat.size} float32 parameters ({classes} classes, aux heads {'on' if aux else 'off'}); "
          f"googlenet ckpt import {out} --out CKPT.gnck --like OTHER.gnck (or --classes {classes}"
          f"{'' if aux else ' --no-aux'})")


def main(argv):
    ap = argparse.ArgumentParser(description="Weights between googlenet checkpoints (.npy) and PyTorch.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("to-torch", help=".npy of `googlenet ckpt export` -> PyTorch state_dict")
    t.add_argument("npy")
    t.add_argument("--classes", type=int, required=True)
    t.add_argument("--no-aux", action="store_true", help="the weights have no auxiliary heads")
    t.add_argument("--out", required=True)
    f = sub.add_parser("from-torch", help="PyTorch state_dict -> .npy for `googlenet ckpt import`")
    f.add_argument("pt")
    f.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "to-torch":
            to_torch(a.npy, a.classes, not a.no_aux, a.out)
        else:
            from_torch(a.pt, a.out)
    except (ConvertError, OSError, ValueError) as e:
        sys.stderr.write(f"torch_googlenet.py: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
