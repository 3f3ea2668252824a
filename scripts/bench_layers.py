#!/usr/bin/python3
"""bench_layers.py: `googlenet bench --layers` of several variants, alternated in one run,
layer by layer: where the time goes, and what each change bought.

  bench_layers.py [--mode train|eval] [--rounds 3] [--steps 2] [--batch 32] [--crop 224]
                  [--threads 2] VARIANT...

A VARIANT is LABEL=COMMAND: a bench command line without its common flags, e.g.
  base=/work/base/bin/googlenet
  gemm="bin/googlenet --conv-algo gemm"
  avx2="GOOGLENET_SIMD=avx2 bin/googlenet"
(VAR=value words before the binary are set in its environment; words after it are
extra bench flags). Every variant runs without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
(a user's machine does not set them). Each round runs every variant once, in a
rotating order; the per-layer figure is the median over the rounds. Prints the
img/s of each variant with its ratio to the first one in the same round (median),
the time by layer kind, and every layer's forward and backward milliseconds with
the algorithm the last variant chose; --markdown prints the tables for docs/.
"""
import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys

LINE = re.compile(r"^\s+(\S+)\s+(conv|maxpool|avgpool|lrn|flatten|fc|dropout|loss)\s+([\d.]+)\s+([\d.]+)\s*(.*)$")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("train", "eval"), default="train")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("variants", nargs="+", metavar="LABEL=COMMAND")
    a = ap.parse_args(argv)
    vs = []
    for v in a.variants:
        if "=" not in v:
            ap.error(f"a variant is LABEL=COMMAND, got '{v}'")
        label, cmd = v.split("=", 1)
        words = shlex.split(cmd)
        env = {}
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            k, val = words.pop(0).split("=", 1)
            env[k] = val
        if not words or not os.access(words[0], os.X_OK):
            ap.error(f"variant '{label}': '{words[0] if words else ''}' is not an executable")
        vs.append((label, env, words[0], words[1:]))
    return a, vs


def run(a, variant):
    label, env_extra, binary, extra = variant
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(env_extra)
    cmd = [binary, "bench", "--layers", "--batch", str(a.batch), "--crop", str(a.crop), "--threads", str(a.threads),
           "--steps", str(a.steps), "--warmup", "1"] + (["--eval"] if a.mode == "eval" else []) + extra
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"bench_layers.py: {label} failed (exit {p.returncode}): {p.stderr.strip()[-300:]}")
    out = {"layers": {}, "kinds": {}}
    for line in p.stdout.splitlines():
        m = re.search(r"([\d.]+) img/s", line)
        if m and "img_s" not in out:
            out["img_s"] = float(m.group(1))
        m = re.search(r"peak RSS (\d+) MB", line)
        if m:
            out["rss"] = float(m.group(1))
        if line.strip().startswith("time by layer kind:"):
            for k, v in re.findall(r"(\w[\w+]*) ([\d.]+)%", line):
                out["kinds"][k] = float(v)
        if line.strip().startswith("kernels:"):
            out["kernels"] = line.strip()[len("kernels: "):]
        m = LINE.match(line)
        if m:
            name, kind, fwd, _gf, rest = m.groups()
            r = rest.split()
            bwd = float(r[0]) if a.mode == "train" and r and re.match(r"^[\d.]+$", r[0]) else 0.0
            r = r[2 if a.mode == "train" else 0:]
            r = [x for x in r if not x.endswith("%")]
            num = re.compile(r"^[\d.]+$")
            if len(r) >= 3 and r[1] == "+" and num.match(r[0]) and num.match(r[2]):  # the backward's data + weights split
                r = r[3:]
            algo = " ".join(r)
            out["layers"][name] = (kind, float(fwd), bwd, algo)
    return out


def main(argv):
    a, vs = parse_args(argv)
    rows = {v[0]: [] for v in vs}
    for r in range(a.rounds):
        order = vs[r % len(vs):] + vs[:r % len(vs)]
        for v in order:
            res = run(a, v)
            rows[v[0]].append(res)
            print(f"  round {r + 1} {v[0]:<12} {res.get('img_s', 0):7.2f} img/s  peak RSS {res.get('rss', 0):.0f} MB"
                  f"  {res.get('kernels', '')}", flush=True)
    med = statistics.median
    labels = [v[0] for v in vs]
    first = labels[0]
    md = a.markdown
    print()
    head = ["variant", "img/s", f"vs {first}", "peak RSS MB"]
    print(("| " + " | ".join(head) + " |\n|" + "---|" * len(head)) if md else "  ".join(f"{h:>12}" for h in head))
    for lab in labels:
        ratio = med(x["img_s"] / y["img_s"] for x, y in zip(rows[lab], rows[first]))
        vals = [lab, f"{med(x['img_s'] for x in rows[lab]):.2f}", f"{ratio:.2f}x", f"{med(x['rss'] for x in rows[lab]):.0f}"]
        print(("| " + " | ".join(vals) + " |") if md else "  ".join(f"{v:>12}" for v in vals))
    print()
    kinds = sorted({k for lab in labels for x in rows[lab] for k in x["kinds"]})
    head = ["share of the step"] + labels
    print(("| " + " | ".join(head) + " |\n|" + "---|" * len(head)) if md else "  ".join(f"{h:>14}" for h in head))
    for k in kinds:
        vals = [k] + [f"{med(x['kinds'].get(k, 0) for x in rows[lab]):.1f}%" for lab in labels]
        print(("| " + " | ".join(vals) + " |") if md else "  ".join(f"{v:>14}" for v in vals))
    print()
    names = sorted({n for x in rows[labels[-1]] for n in x["layers"]},
                   key=lambda n: -med(x["layers"][n][1] + x["layers"][n][2] for x in rows[first] if n in x["layers"])
                   if any(n in x["layers"] for x in rows[first]) else 0)
    unit = "fwd+bwd ms" if a.mode == "train" else "fwd ms"
    head = ["layer"] + [f"{lab} {unit}" for lab in labels] + [f"{labels[-1]} algorithm"]
    print(("| " + " | ".join(head) + " |\n|" + "---|" * len(head)) if md else "  ".join(f"{h:>16}" for h in head))
    for n in names:
        vals = [n]
        for lab in labels:
            xs = [x["layers"][n] for x in rows[lab] if n in x["layers"]]
            vals.append(f"{med(t[1] + t[2] for t in xs):.1f}" if xs else "-")
        last = [x["layers"][n][3] for x in rows[labels[-1]] if n in x["layers"]]
        vals.append(last[-1] if last else "")
        print(("| " + " | ".join(vals) + " |") if md else "  ".join(f"{v:>16}" for v in vals))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
