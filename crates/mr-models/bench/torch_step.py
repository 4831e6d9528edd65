#!/usr/bin/env python3
"""Torch reference networks for the mr-models benchmark and parameter counts.

Written for this project from the architecture descriptions (StudioGAN's CIFAR-10 `resnet`
(SAGAN) and `big_resnet` (BigGAN) configs; DCGAN-small as in crates/mr-models/src/dcgan.rs).
It times one G+D training iteration (`--d-steps` D steps + 1 G step, hinge loss, Adam) and
prints one JSON object per model on stdout.

    /usr/bin/python3 crates/mr-models/bench/torch_step.py --model dcgan-small --iters 5
    /usr/bin/python3 crates/mr-models/bench/torch_step.py --params-only
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def maybe_sn(module, sn):
    return nn.utils.spectral_norm(module, eps=1e-6) if sn else module


def conv(ci, co, k, stride=1, pad=0, sn=True, bias=True):
    return maybe_sn(nn.Conv2d(ci, co, k, stride, pad, bias=bias), sn)


def lin(ci, co, sn=True, bias=True):
    return maybe_sn(nn.Linear(ci, co, bias=bias), sn)


class CondBN(nn.Module):
    """bn(x) * (1 + gain(y)) + bias(y); y is one-hot (SAGAN) or [shared, z chunk] (BigGAN)."""

    def __init__(self, c, cond_dim, sn):
        super().__init__()
        self.bn = nn.BatchNorm2d(c, eps=1e-4, momentum=0.1, affine=False)
        self.gain = lin(cond_dim, c, sn, bias=False)
        self.bias = lin(cond_dim, c, sn, bias=False)

    def forward(self, x, y):
        n, c = x.shape[:2]
        return self.bn(x) * (1 + self.gain(y)).view(n, c, 1, 1) + self.bias(y).view(n, c, 1, 1)


class SelfAttn(nn.Module):
    def __init__(self, c, sn):
        super().__init__()
        self.theta = conv(c, c // 8, 1, sn=sn, bias=False)
        self.phi = conv(c, c // 8, 1, sn=sn, bias=False)
        self.g = conv(c, c // 2, 1, sn=sn, bias=False)
        self.out = conv(c // 2, c, 1, sn=sn, bias=False)
        self.sigma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        n, c, h, w = x.shape
        q = self.theta(x).view(n, c // 8, h * w)
        k = F.max_pool2d(self.phi(x), 2).view(n, c // 8, h * w // 4)
        a = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=-1)
        v = F.max_pool2d(self.g(x), 2).view(n, c // 2, h * w // 4)
        o = torch.bmm(v, a.transpose(1, 2)).view(n, c // 2, h, w)
        return x + self.sigma * self.out(o)


class GBlock(nn.Module):
    def __init__(self, ci, co, cond_dim, sn):
        super().__init__()
        self.bn1 = CondBN(ci, cond_dim, sn)
        self.bn2 = CondBN(co, cond_dim, sn)
        self.c0 = conv(ci, co, 1, sn=sn)
        self.c1 = conv(ci, co, 3, pad=1, sn=sn)
        self.c2 = conv(co, co, 3, pad=1, sn=sn)

    def forward(self, x, y):
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2, mode="nearest")
        h = self.c2(F.relu(self.bn2(self.c1(h), y)))
        return h + self.c0(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResG(nn.Module):
    def __init__(self, kind, z_dim, width, classes=10, shared_dim=128, sn=True):
        super().__init__()
        self.kind, self.classes, ch = kind, classes, 4 * width
        self.ch = ch
        if kind == "biggan":
            self.chunk = z_dim // 4
            self.shared = nn.Embedding(classes, shared_dim)
            cond_dim, z_in = self.chunk + shared_dim, self.chunk
        else:
            cond_dim, z_in = classes, z_dim
        self.linear0 = lin(z_in, ch * 16, sn)
        self.blocks = nn.ModuleList([GBlock(ch, ch, cond_dim, sn) for _ in range(3)])
        self.attn = SelfAttn(ch, sn)
        self.bn4 = nn.BatchNorm2d(ch, eps=1e-4)
        self.conv5 = conv(ch, 3, 3, pad=1, sn=sn)

    def forward(self, z, y):
        if self.kind == "biggan":
            zs = torch.split(z, self.chunk, 1)
            s = self.shared(y)
            z0, conds = zs[0], [torch.cat([s, c], 1) for c in zs[1:]]
        else:
            oh = F.one_hot(y, self.classes).float()
            z0, conds = z, [oh] * 3
        h = self.linear0(z0).view(-1, self.ch, 4, 4)
        for i, (b, c) in enumerate(zip(self.blocks, conds)):
            h = b(h, c)
            if i == 1:
                h = self.attn(h)
        return torch.tanh(self.conv5(F.relu(self.bn4(h))))


class DBlock(nn.Module):
    def __init__(self, ci, co, down, sn, first=False):
        super().__init__()
        self.first, self.down = first, down
        self.c0 = conv(ci, co, 1, sn=sn) if (down or ci != co) else None
        self.c1 = conv(ci, co, 3, pad=1, sn=sn)
        self.c2 = conv(co, co, 3, pad=1, sn=sn)

    def forward(self, x):
        if self.first:
            h = F.avg_pool2d(self.c2(F.relu(self.c1(x))), 2)
            return h + self.c0(F.avg_pool2d(x, 2))
        h = self.c2(F.relu(self.c1(F.relu(x))))
        s = x
        if self.c0 is not None:
            s = self.c0(x)
        if self.down:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        return h + s


class ResD(nn.Module):
    def __init__(self, width, classes=10, sn=True):
        super().__init__()
        c = 2 * width
        self.b0 = DBlock(3, c, True, sn, first=True)
        self.attn = SelfAttn(c, sn)
        self.blocks = nn.ModuleList([DBlock(c, c, d, sn) for d in (True, False, False)])
        self.linear1 = lin(c, 1, sn)
        self.embedding = maybe_sn(nn.Embedding(classes, c), sn)

    def forward(self, x, y):
        h = self.attn(self.b0(x))
        for b in self.blocks:
            h = b(h)
        h = torch.sum(F.relu(h), dim=[2, 3])
        return self.linear1(h).squeeze(1) + torch.sum(self.embedding(y) * h, 1)


class DcG(nn.Module):
    """`transposed`: 4x4 stride-2 transposed convolutions instead of nearest upsampling + 3x3."""

    def __init__(self, z_dim=128, w=64, transposed=False):
        super().__init__()
        self.w, self.transposed = w, transposed
        layer = (lambda ci, co: nn.ConvTranspose2d(ci, co, 4, 2, 1)) if transposed else (
            lambda ci, co: nn.Conv2d(ci, co, 3, 1, 1)
        )
        self.fc = nn.Linear(z_dim, 4 * w * 16)
        self.bn0 = nn.BatchNorm2d(4 * w)
        self.c1 = layer(4 * w, 2 * w)
        self.bn1 = nn.BatchNorm2d(2 * w)
        self.c2 = layer(2 * w, w)
        self.bn2 = nn.BatchNorm2d(w)
        self.c3 = layer(w, 3)

    def forward(self, z, y):
        up = (lambda t: t) if self.transposed else (
            lambda t: F.interpolate(t, scale_factor=2, mode="nearest")
        )
        h = F.relu(self.bn0(self.fc(z).view(-1, 4 * self.w, 4, 4)))
        h = F.relu(self.bn1(self.c1(up(h))))
        h = F.relu(self.bn2(self.c2(up(h))))
        return torch.tanh(self.c3(up(h)))


class DcD(nn.Module):
    def __init__(self, w=64, sn=True):
        super().__init__()
        self.c1 = conv(3, w, 4, 2, 1, sn=sn)
        self.c2 = conv(w, 2 * w, 4, 2, 1, sn=sn)
        self.c3 = conv(2 * w, 4 * w, 4, 2, 1, sn=sn)
        self.fc = lin(4 * w * 16, 1, sn)

    def forward(self, x, y):
        h = F.leaky_relu(self.c1(x), 0.2)
        h = F.leaky_relu(self.c2(h), 0.2)
        h = F.leaky_relu(self.c3(h), 0.2)
        return self.fc(h.flatten(1)).squeeze(1)


def ortho_init(model):
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
            w = m.weight_orig if hasattr(m, "weight_orig") else m.weight
            nn.init.orthogonal_(w)
            if getattr(m, "bias", None) is not None:
                m.bias.data.zero_()


def build(name):
    if name == "dcgan-small":
        return DcG(), DcD(), 128, 10
    if name == "dcgan32-convT":  # the cpu-gate's model
        return DcG(w=32, transposed=True), DcD(w=32), 128, 10
    if name == "sagan":
        g, d = ResG("sagan", 128, 64), ResD(64)
    elif name == "biggan":
        g, d = ResG("biggan", 80, 96), ResD(96)
    else:
        raise SystemExit(f"unknown model {name}")
    ortho_init(g)
    ortho_init(d)
    return g, d, (128 if name == "sagan" else 80), 10


def count(m):
    return sum(p.numel() for p in m.parameters())


def iteration(g, d, og, od, real, y_real, z_dim, classes, batch, d_steps, device="cpu"):
    for _ in range(d_steps):
        z = torch.randn(batch, z_dim, device=device)
        y = torch.randint(0, classes, (batch,), device=device)
        with torch.no_grad():
            fake = g(z, y)
        loss = F.relu(1 - d(real, y_real)).mean() + F.relu(1 + d(fake, y)).mean()
        od.zero_grad(set_to_none=True)
        loss.backward()
        od.step()
    z = torch.randn(batch, z_dim, device=device)
    y = torch.randint(0, classes, (batch,), device=device)
    loss = -d(g(z, y), y).mean()
    og.zero_grad(set_to_none=True)
    loss.backward()
    og.step()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", default=[])
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--d-steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--params-only", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the GPU check)")
    args = ap.parse_args()
    dev = args.device
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    models = args.model or ["dcgan-small", "sagan", "biggan"]
    for name in models:
        g, d, z_dim, classes = build(name)
        g, d = g.to(dev), d.to(dev)
        out = {"model": name, "torch": torch.__version__, "device": dev,
               "g_params": count(g), "d_params": count(d)}
        if not args.params_only:
            og = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
            od = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
            real = torch.rand(args.batch, 3, 32, 32, device=dev) * 2 - 1
            y_real = torch.randint(0, classes, (args.batch,), device=dev)
            times = []
            for i in range(args.warmup + args.iters):
                sync()
                t0 = time.perf_counter()
                iteration(g, d, og, od, real, y_real, z_dim, classes, args.batch, args.d_steps, dev)
                sync()
                if i >= args.warmup:
                    times.append(time.perf_counter() - t0)
            out.update(
                batch=args.batch,
                d_steps=args.d_steps,
                threads=args.threads,
                iter_s=times,
                median_s=statistics.median(times),
            )
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
