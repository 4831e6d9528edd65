#!/usr/bin/env python3
"""Extra parity cases for `inception-fid` (beyond the 20 CIFAR-10 PNGs of the shared fixture).

Writes crates/mr-embed/tests/fixtures/inception_extra.npz, read by tests/inception_extra.rs.
Run with Debian's python3-torch (torch 1.13, CPU), numpy and PIL:

    /usr/bin/python3 crates/mr-embed/scripts/gen_inception_parity.py \
        datasets/cache/weights/inception-fid/default_1.pt

Cases (images are seeded uniform noise plus smooth gradients, uint8 HWC):
- a: 3 images 32x32, bilinear (align_corners=False) to 299, x/128 - 1       -> feats_a_div128
     same images, x/127.5 - 1 (pytorch-fid scaling)                          -> feats_a_div127_5
     same images, PIL bicubic on float32 channels (clean-fid style), x/128-1 -> feats_a_bicubic
- c: 2 images 48x40 (non-square upsampling), bilinear, x/128 - 1            -> feats_c
- d: 1 image 302x300 (downsampling, torch bilinear has no antialias), x/128 - 1 -> feats_d
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

torch.set_num_threads(2)
here = os.path.dirname(os.path.abspath(__file__))
weights = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    here, "../../../datasets/cache/weights/inception-fid/default_1.pt")
out = os.path.join(here, "../tests/fixtures/inception_extra.npz")

model = torch.jit.load(weights, map_location="cpu").eval()
rng = np.random.default_rng(20240601)


def images(n, h, w):
    noise = rng.integers(0, 256, size=(n, h, w, 3))
    yy, xx = np.meshgrid(np.linspace(0, 255, h), np.linspace(0, 255, w), indexing="ij")
    grad = np.stack([yy, xx, 255 - yy], axis=-1)[None]
    mix = rng.uniform(0.2, 0.8, size=(n, 1, 1, 1))
    return np.clip(mix * noise + (1 - mix) * grad, 0, 255).round().astype(np.uint8)


def nchw(imgs):
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float()


@torch.no_grad()
def feats_bilinear(imgs, div=None, sub=1.0):
    x = F.interpolate(nchw(imgs), size=(299, 299), mode="bilinear", align_corners=False)
    x = x / 128.0 - 1.0 if div is None else x / div - sub
    return model(x).numpy().astype(np.float32)


@torch.no_grad()
def feats_bicubic(imgs):
    # clean-fid style: PIL bicubic resize of each float32 channel (mode "F"), no uint8 rounding.
    out = []
    for img in imgs:
        chans = [np.asarray(Image.fromarray(img[:, :, c].astype(np.float32), mode="F")
                            .resize((299, 299), resample=Image.BICUBIC)) for c in range(3)]
        out.append(np.stack(chans, axis=0))
    x = torch.from_numpy(np.stack(out)).float() / 128.0 - 1.0
    return model(x).numpy().astype(np.float32)


a = images(3, 32, 32)
c = images(2, 48, 40)
d = images(1, 302, 300)
arrays = dict(
    imgs_a=a,
    feats_a_div128=feats_bilinear(a),
    feats_a_div127_5=feats_bilinear(a, div=127.5),
    feats_a_bicubic=feats_bicubic(a),
    imgs_c=c,
    feats_c=feats_bilinear(c),
    imgs_d=d,
    feats_d=feats_bilinear(d),
)
os.makedirs(os.path.dirname(out), exist_ok=True)
np.savez(out, **arrays)
print("wrote", os.path.normpath(out), {k: v.shape for k, v in arrays.items()})
