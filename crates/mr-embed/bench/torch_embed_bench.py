#!/usr/bin/env python3
"""torch (Debian python3-torch 1.13, CPU) side of `cargo xtask bench embed`.

Embeds the same uint8 images the Rust side embeds ([N, H, W, 3] .npy) with the same
preprocessing, and prints one JSON object with images/s per model. Optionally saves the
features so that the caller can also compare them.

    /usr/bin/python3 crates/mr-embed/bench/torch_embed_bench.py --images imgs.npy \
        --inception default_1.pt [--effnet efficientnet-lite0-57934424.pth] \
        [--small-cnn small_cnn_weights.npz] \
        --threads 2 --batch 32 [--repeats 3] [--save-prefix out/torch_] [--device cuda]

Timing: median seconds of `--repeats` passes over all images, after one warm-up batch.

inception-fid: torch.jit.load(default_1.pt); bilinear (align_corners=False) to 299, x/128 - 1.
small-cnn: the bundled burn weights (as .npz) in the same 4-conv network written here; no
resize (F.interpolate to the same size is the identity), x/127.5 - 1; 128-d pooled features.
effnet-lite0: the state_dict loaded into a minimal EfficientNet-Lite0 written here (no
torchvision needed); bilinear to 224, (x - 127) / 128; 1280-d features after global pooling.
"""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def preprocess(imgs_u8, size, scale, device="cpu"):
    x = torch.from_numpy(imgs_u8).to(device).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return scale(x)


@torch.no_grad()
def timed(model, imgs, size, scale, batch, repeats, device="cpu"):
    # one warm-up batch, not timed; then `repeats` timed passes over all images (uint8 from
    # host memory each time, as the Rust side reads them; features copied back to the host)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    model(preprocess(imgs[:min(batch, len(imgs))], size, scale, device))
    sync()
    times = []
    for _ in range(repeats):
        feats = []
        t0 = time.perf_counter()
        for s in range(0, len(imgs), batch):
            feats.append(model(preprocess(imgs[s:s + batch], size, scale, device)).cpu())
        sync()
        times.append(time.perf_counter() - t0)
    return torch.cat(feats).numpy(), times


def effnet_lite0(state_dict):
    """EfficientNet-Lite0 (ReLU6, no SE, fixed stem/head) matching the lukemelas-style names."""
    # (repeats, kernel, stride, expand, in, out) per stage
    stages = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
              (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
              (1, 3, 1, 6, 192, 320)]

    class Block(nn.Module):
        def __init__(self, cin, cout, k, s, e):
            super().__init__()
            mid = cin * e
            self.e, self.k, self.s = e, k, s
            self.skip = s == 1 and cin == cout
            if e != 1:
                self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
                self._bn0 = nn.BatchNorm2d(mid, eps=1e-3)
            self._depthwise_conv = nn.Conv2d(mid, mid, k, s, groups=mid, bias=False)
            self._bn1 = nn.BatchNorm2d(mid, eps=1e-3)
            self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
            self._bn2 = nn.BatchNorm2d(cout, eps=1e-3)

        def forward(self, x):
            y = x
            if self.e != 1:
                y = F.relu6(self._bn0(self._expand_conv(y)))
            # TF "SAME" padding
            h = y.shape[-1]
            out = (h + self.s - 1) // self.s
            pad = max((out - 1) * self.s + self.k - h, 0)
            y = F.pad(y, [pad // 2, pad - pad // 2, pad // 2, pad - pad // 2])
            y = F.relu6(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            return x + y if self.skip else y

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self._conv_stem = nn.Conv2d(3, 32, 3, 2, bias=False)
            self._bn0 = nn.BatchNorm2d(32, eps=1e-3)
            blocks = []
            for r, k, s, e, cin, cout in stages:
                for i in range(r):
                    blocks.append(Block(cin if i == 0 else cout, cout, k, s if i == 0 else 1, e))
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
            self._bn1 = nn.BatchNorm2d(1280, eps=1e-3)
            self._fc = nn.Linear(1280, 1000)

        def features(self, x):
            h = x.shape[-1]
            pad = max((h + 1) // 2 * 2 - 2 + 3 - h, 0)
            x = F.pad(x, [pad // 2, pad - pad // 2, pad // 2, pad - pad // 2])
            x = F.relu6(self._bn0(self._conv_stem(x)))
            for b in self._blocks:
                x = b(x)
            x = F.relu6(self._bn1(self._conv_head(x)))
            return x.mean(dim=(2, 3))

        def forward(self, x):
            return self.features(x)

    net = Net()
    net.load_state_dict(state_dict, strict=True)
    return net.eval()


def small_cnn(npz):
    """small-cnn: [conv3x3 (no bias) -> BN -> ReLU] x 4 (3->32->64->128->128), max-pool 2 after
    the first three, global average pool -> 128-d features (the burn weights, exported as .npz
    with torch names by the Rust side)."""
    w = np.load(npz)
    widths = [w[f"b{i}.conv.weight"].shape[0] for i in range(4)]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            cin = 3
            self.b = nn.ModuleList()
            for c in widths:
                blk = nn.Module()
                blk.conv = nn.Conv2d(cin, c, 3, padding=1, bias=False)
                blk.bn = nn.BatchNorm2d(c, eps=1e-5)
                self.b.append(blk)
                cin = c
            self.fc = nn.Linear(cin, 10)

        def forward(self, x):
            for i, blk in enumerate(self.b):
                x = F.relu(blk.bn(blk.conv(x)))
                if i < len(self.b) - 1:
                    x = F.max_pool2d(x, 2)
            return x.mean(dim=(2, 3))

    net = Net()
    sd = {k.replace("b", "b.", 1) if k[0] == "b" else k: torch.from_numpy(w[k]) for k in w.files}
    missing, unexpected = net.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not m.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"small-cnn weights: missing {missing}, unexpected {unexpected}")
    return net.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", required=True)
    ap.add_argument("--inception")
    ap.add_argument("--effnet")
    ap.add_argument("--small-cnn")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--save-prefix")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the GPU check)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    imgs = np.load(a.images)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "n": len(imgs),
           "batch": a.batch, "device": a.device, "models": {}}
    jobs = []
    if a.inception:
        jobs.append(("inception-fid", torch.jit.load(a.inception, map_location=a.device).eval(), 299,
                     lambda x: x / 128.0 - 1.0))
    if a.effnet:
        sd = torch.load(a.effnet, map_location="cpu")
        jobs.append(("effnet-lite0", effnet_lite0(sd).to(a.device), 224, lambda x: (x - 127.0) / 128.0))
    if a.small_cnn:
        jobs.append(("small-cnn", small_cnn(a.small_cnn).to(a.device), 32, lambda x: x / 127.5 - 1.0))
    for name, model, size, scale in jobs:
        feats, times = timed(model, imgs, size, scale, a.batch, a.repeats, a.device)
        dt = float(np.median(times))
        out["models"][name] = {"seconds": dt, "all_seconds": times, "images_per_s": len(imgs) / dt}
        if a.save_prefix:
            np.save(f"{a.save_prefix}{name}.npy", feats.astype(np.float32))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
