#!/usr/bin/env python3
"""Redo burn's recorded D+G exchange in torch and summarise the results (issue 16, item 4).

The inputs come from this project's side (initial weights and spectral-norm vectors, the real
batch, every step's latents and labels):

    cargo run -p mr-models --example torch_step_case -- dcgan-small /tmp/case
    /usr/bin/python3 crates/mr-models/bench/torch_step_check.py /tmp/case \
        > crates/mr-models/tests/fixtures/torch-step-dcgan-small.json

The networks are this directory's torch reimplementations (`torch_step.py`); torch's own
`nn.utils.spectral_norm` (one power iteration per forward in training mode), `nn.BatchNorm2d`,
`torch.optim.Adam` and autograd do the rest. The JSON summarises, under burn's module paths,
each step's loss, the gradients of the first D and the first G step, and the change of every
tensor over the exchange (final − initial), each as L2 norm, sum and eight entries
(`floor(i·(len−1)/7)`), so `crates/mr-models/tests/torch_step.rs` can hold burn to it.
"""
import json
import os
import re
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_step  # noqa: E402  (the torch networks of the benchmark)

def torch_name(burn_name, sn_modules):
    """Map a burn module path (with the `Dcgan.`/`ResNet.` variant) to torch's state-dict key."""
    name = burn_name.split(".", 1)[1]
    name = re.sub(r"^opt_block\.", "b0.", name)
    name = re.sub(r"\.conv([012])\.", r".c\1.", name)
    name = re.sub(r"^attn\.attn\.", "attn.out.", name)
    name = re.sub(r"^up(\d)\.(Nearest|Transposed)\.", r"c\1.", name)
    name = re.sub(r"^conv([123])\.", r"c\1.", name)  # DCGAN-small D (BigGAN G keeps conv5)
    name = re.sub(r"^(bn\d)\.Plain\.", r"\1.", name)
    name = re.sub(r"^bn4\.gamma$", "bn4.weight", name)
    name = re.sub(r"^bn4\.beta$", "bn4.bias", name)
    name = re.sub(r"^(bn\d)\.gamma$", r"\1.weight", name)
    name = re.sub(r"^(bn\d)\.beta$", r"\1.bias", name)
    name = re.sub(r"\.sn\.sn_u$", ".weight_u", name)
    name = re.sub(r"\.sn\.sn_v$", ".weight_v", name)
    module = name.rsplit(".", 1)[0]
    if name.endswith(".weight") and module in sn_modules:
        name = module + ".weight_orig"
    return name


def summary(name, t):
    a = t.detach().double().reshape(-1).numpy()
    n = a.size
    idx = list(range(n)) if n <= 8 else [i * (n - 1) // 7 for i in range(8)]
    return {
        "name": name,
        "shape": list(t.shape),
        "norm": float(np.sqrt(np.sum(a * a))),
        "sum": float(np.sum(a)),
        "probes": [float(a[i]) for i in idx],
    }


def run(index, arrays, dtype):
    """The exchange in torch with every tensor in `dtype`; returns its summaries."""
    arrays = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in arrays.items()}
    torch.manual_seed(0)
    torch.set_num_threads(1)
    g, d, z_dim, _classes = torch_step.build(index["model"])
    g, d = g.to(dtype), d.to(dtype)
    assert z_dim == index["z_dim"], (z_dim, index["z_dim"])
    players = {"g": g, "d": d}
    sn = {
        p: {n for n, m in net.named_modules() if hasattr(m, "weight_orig")}
        for p, net in players.items()
    }
    states = {p: net.state_dict(keep_vars=True) for p, net in players.items()}
    names = {}  # "g.<burn path>" -> torch key
    for key, value in arrays.items():
        if key[:2] not in ("g.", "d."):
            continue
        p = key[0]
        tname = torch_name(key[2:], sn[p])
        if tname not in states[p]:
            raise SystemExit(f"{key}: no torch tensor {tname!r} in {sorted(states[p])}")
        target = states[p][tname]
        if tuple(target.shape) != tuple(value.shape):
            raise SystemExit(f"{key} -> {tname}: shape {tuple(value.shape)} vs {tuple(target.shape)}")
        with torch.no_grad():
            target.copy_(value)
        names[key] = tname
    for p in players:
        loaded = {t for k, t in names.items() if k[0] == p}
        missing = [k for k in states[p] if k not in loaded and not k.endswith("num_batches_tracked")]
        if missing:
            raise SystemExit(f"torch tensors of {p} not set from burn's: {missing}")
    g.train()
    d.train()
    adam = lambda net: torch.optim.Adam(
        net.parameters(), lr=index["lr"], betas=(index["beta_1"], index["beta_2"]), eps=index["epsilon"]
    )
    og, od = adam(g), adam(d)
    real, y_real = arrays["real"], arrays["real_labels"]

    def grads(p):
        return [
            summary(k[2:], states[p][t].grad)
            for k, t in names.items()
            if k[0] == p and states[p][t].grad is not None
        ]

    losses, fakes, grads_d1, grads_g1 = [], [], None, None
    for it in range(1, index["iterations"] + 1):
        z, y = arrays[f"z_d{it}"], arrays[f"labels_d{it}"]
        with torch.no_grad():
            fake = g(z, y)
        fakes.append(summary(f"fake_d{it}", fake))
        d_real, d_fake = d(real, y_real), d(fake, y)
        fakes += [summary(f"d_real_d{it}", d_real), summary(f"d_fake_d{it}", d_fake)]
        loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        od.zero_grad(set_to_none=True)
        loss.backward()
        losses.append(loss.item())
        if it == 1:
            grads_d1 = grads("d")
        od.step()
        z, y = arrays[f"z_g{it}"], arrays[f"labels_g{it}"]
        loss = -d(g(z, y), y).mean()
        og.zero_grad(set_to_none=True)
        loss.backward()
        losses.append(loss.item())
        if it == 1:
            grads_g1 = grads("g")
        og.step()

    deltas = {
        p: [summary(k[2:], states[p][t].detach() - arrays[k]) for k, t in names.items() if k[0] == p]
        for p in players
    }
    return {
        "losses": losses,
        "fakes": fakes,
        "grads_d1": grads_d1,
        "grads_g1": grads_g1,
        "delta_g": deltas["g"],
        "delta_d": deltas["d"],
    }


def main():
    args = [a for a in sys.argv[1:] if a != "--no-float64"]
    if len(args) != 1:
        raise SystemExit("usage: torch_step_check.py DIR [--no-float64]  (DIR written by the torch_step_case example)")
    case = args[0]
    with open(os.path.join(case, "inputs.json")) as f:
        index = json.load(f)
    raw = open(os.path.join(case, "inputs.bin"), "rb").read()
    arrays = {}
    for e in index["tensors"]:
        dtype = np.float32 if e["dtype"] == "f32" else np.int64
        count = int(np.prod(e["shape"])) if e["shape"] else 1
        a = np.frombuffer(raw, dtype=dtype, count=count, offset=e["offset"]).reshape(e["shape"])
        arrays[e["name"]] = torch.from_numpy(a.copy())

    out = {
        "generated_by": [
            f"cargo run -p mr-models --example torch_step_case -- {index['model']} DIR",
            "/usr/bin/python3 crates/mr-models/bench/torch_step_check.py DIR",
        ],
        "torch": torch.__version__,
        "model": index["model"],
        "seed": index["seed"],
        "batch": index["batch"],
        "iterations": index["iterations"],
        "init_checksum": {k: float(v.double().sum()) for k, v in arrays.items() if k[:2] in ("g.", "d.")},
        **run(index, arrays, torch.float32),
        # The same exchange in float64 from the same (f32) start: how far f32 arithmetic alone
        # moves each number (the test prints burn's and torch-f32's distance to it).
        "float64": None if "--no-float64" in sys.argv else run(index, arrays, torch.float64),
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    sys.exit(main())
