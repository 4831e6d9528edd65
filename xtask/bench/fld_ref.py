"""FLD with the authors' own code, for a side-by-side timing with `mr-metrics fld`
(results/bench/fld.md). The `fld` package is not on PyPI: put a checkout of github
marcojira/fld (ffbbf20 was measured) on PYTHONPATH. Its MoG.py imports matplotlib, seaborn and
tqdm for plots and bars it does not draw here; they are stubbed.

Usage: PYTHONPATH=<fld checkout> python fld_ref.py DIR THREADS
  DIR holds train.npy, test.npy, gen.npy (float32 [N, D]); prints one JSON line.
The driver repeats what fld/metrics/FLD.py does for the three values with one fit (the package
fits a new, identical mixture per value): test-standardised features, MoG at the generated
samples fitted to the training set, baseline MoG at a random half of the training set.
"""
import json
import sys
import time
import types

import numpy as np
import torch

data, threads = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(threads)
for m in ["matplotlib", "matplotlib.pyplot", "seaborn"]:
    sys.modules.setdefault(m, types.ModuleType(m))
tq = types.ModuleType("tqdm")
tq.tqdm = lambda x, **_k: x
sys.modules["tqdm"] = tq
from fld.MoG import MoG, preprocess_feat  # noqa: E402

train, test, gen = [torch.tensor(np.load(f"{data}/{n}.npy")) for n in ("train", "test", "gen")]
np.random.seed(0)
t = time.perf_counter()
tr, te, ge = preprocess_feat(train, test, gen)
mog = MoG(ge)
_, losses = mog.fit(tr)
nll_test = mog.get_dim_adjusted_nlls(te).mean().item()
nll_train = mog.get_dim_adjusted_nlls(tr).mean().item()
perm = np.random.permutation(len(tr))
split = min(len(ge), len(tr) // 2)
base = MoG(tr[perm[:split]])
_, base_losses = base.fit(tr[perm[split:]])
nll_base = base.get_dim_adjusted_nlls(te).mean().item()
print(json.dumps({
    "seconds": time.perf_counter() - t,
    "fld_test": 100 * (nll_test - nll_base),
    "fld_train": 100 * (nll_train - nll_base),
    "fld_gap": 100 * (nll_train - nll_test),
    "epochs_run": len(losses),
    "baseline_epochs_run": len(base_losses),
    "torch": torch.__version__,
}))
