"""Reference timings for `cargo xtask bench metrics`, on the same .npy files the Rust side uses.

Usage: python metrics_ref.py DATA_DIR REPEATS  (prints one JSON object on stdout)

Each reference is the published algorithm run with the standard Python tools:
  fid  pytorch-fid's formula: np.mean / np.cov (float64), scipy.linalg.sqrtm(sigma1 @ sigma2).
  fid_eigvals  torch-fidelity 0.4.0's route (metric_fid.py): np.mean / np.cov of the float32
       features, tr sqrt = sum of sqrt(np.linalg.eigvals(sigma1 @ sigma2)).real.
  ct   Meehan et al.'s data-copying test: sklearn KMeans cells fitted on train, per cell
       sklearn NearestNeighbors(n_neighbors=1) (Euclidean), scipy mannwhitneyu, weighted by P_n.
  nn   faiss-cpu IndexFlatIP on L2-normalised features, k = 1 (exact cosine 1-NN).
  prdc the prdc package's compute_prdc(fid_a, fid_b, nearest_k=5).
  authpct  dgm-eval's compute_authpct formula (train = fid_a, gen = fid_b) on scikit-learn's
       pairwise_distances instead of torch.cdist (torch is not in this environment).
  vendi    vendi-score's vendi.score_dual(fid_b, q=1).
ONLY (environment, comma-separated) restricts the parts, as `--only` does on the Rust side.
Missing packages are reported in the JSON instead of failing.
"""
import contextlib
import json
import os
import sys
import time

import numpy as np

data, repeats = sys.argv[1], int(sys.argv[2])
out = {"versions": {"numpy": np.__version__}, "threads": os.environ.get("OMP_NUM_THREADS")}


ONLY = [p for p in os.environ.get("ONLY", "").split(",") if p]


def want(part):
    return not ONLY or part in ONLY


def load(name):
    return np.load(os.path.join(data, name))


def median_time(fn):
    times, value = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), times, value


try:
    if not want("fid"):
        raise ImportError("not asked for (ONLY)")
    import scipy
    from scipy import linalg

    out["versions"]["scipy"] = scipy.__version__
    fa, fb = load("fid_a.npy"), load("fid_b.npy")

    def fid():
        a, b = fa.astype(np.float64), fb.astype(np.float64)
        mu1, s1 = a.mean(0), np.cov(a, rowvar=False)
        mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
        diff = mu1 - mu2
        covmean = linalg.sqrtm(s1.dot(s2))
        if isinstance(covmean, tuple):
            covmean = covmean[0]
        if not np.isfinite(covmean).all():
            off = np.eye(s1.shape[0]) * 1e-6
            covmean = linalg.sqrtm((s1 + off).dot(s2 + off))
        covmean = covmean.real
        return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))

    med, times, val = median_time(fid)
    out["fid"] = {"median_s": med, "times_s": times, "value": val}

    def fid_eigvals():
        mu1, s1 = np.mean(fa, axis=0), np.cov(fa, rowvar=False)
        mu2, s2 = np.mean(fb, axis=0), np.cov(fb, rowvar=False)
        diff = mu1 - mu2
        tr_covmean = np.sum(np.sqrt(np.linalg.eigvals(s1.dot(s2)).astype("complex128")).real)
        return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)

    med, times, val = median_time(fid_eigvals)
    out["fid_eigvals"] = {"median_s": med, "times_s": times, "value": val}
except ImportError as e:
    out["fid"] = {"error": str(e)}

try:
    if not want("ct"):
        raise ImportError("not asked for (ONLY)")
    import sklearn
    from scipy.stats import mannwhitneyu
    from sklearn.cluster import KMeans
    from sklearn.neighbors import NearestNeighbors

    out["versions"]["sklearn"] = sklearn.__version__
    T, P, Q = load("ct_train.npy"), load("ct_test.npy"), load("ct_gen.npy")
    k = int(os.environ.get("CT_CELLS", "10"))
    n_init = int(os.environ.get("CT_N_INIT", "4"))

    def zu(pn, qm, t):
        m, n = len(qm), len(pn)
        nn = NearestNeighbors(n_neighbors=1).fit(t)
        lq = nn.kneighbors(qm, n_neighbors=1)[0][:, 0]
        lp = nn.kneighbors(pn, n_neighbors=1)[0][:, 0]
        u = mannwhitneyu(lq, lp, alternative="less").statistic
        return (u - (n * m / 2 - 0.5)) / np.sqrt(n * m * (n + m + 1) / 12)

    def ct():
        km = KMeans(n_clusters=k, n_init=n_init, random_state=0).fit(T)
        tc, pc, qc = km.labels_, km.predict(P), km.predict(Q)
        m, n = len(Q), len(P)
        tau = 20 / m
        num = den = 0.0
        for c in range(k):
            if (qc == c).sum() / m > tau:
                w = (pc == c).sum() / n
                num += w * zu(P[pc == c], Q[qc == c], T[tc == c])
                den += w
        return float(num / den)

    med, times, val = median_time(ct)
    out["ct"] = {"median_s": med, "times_s": times, "value": val}
except ImportError as e:
    out["ct"] = {"error": str(e)}

try:
    if not want("nn"):
        raise ImportError("not asked for (ONLY)")
    import faiss

    out["versions"]["faiss"] = faiss.__version__
    X, Qn = load("ct_train.npy").copy(), load("ct_gen.npy").copy()
    faiss.normalize_L2(X)
    faiss.normalize_L2(Qn)

    def nn():
        index = faiss.IndexFlatIP(X.shape[1])
        index.add(X)
        s, i = index.search(Qn, 1)
        return float((1 - s[:, 0]).mean())

    med, times, val = median_time(nn)
    out["nn"] = {"median_s": med, "times_s": times, "value": val}
except ImportError as e:
    out["nn"] = {"error": str(e)}

try:
    if not want("fidelity"):
        raise ImportError("not asked for (ONLY)")
    from importlib.metadata import version

    import prdc
    from sklearn.metrics import pairwise_distances
    from vendi_score import vendi

    out["versions"]["prdc"] = version("prdc")
    out["versions"]["vendi-score"] = version("vendi-score")
    fa, fb = load("fid_a.npy"), load("fid_b.npy")
    def run_prdc():
        # compute_prdc prints its set sizes on stdout, which carries this script's JSON
        with contextlib.redirect_stdout(sys.stderr):
            return prdc.compute_prdc(fa, fb, nearest_k=5)

    med, times, val = median_time(run_prdc)
    out["prdc"] = {"median_s": med, "times_s": times, "value": {k: float(v) for k, v in val.items()}}

    def authpct():
        real = pairwise_distances(fa, fa)
        np.fill_diagonal(real, np.inf)
        gen = pairwise_distances(fa, fb)
        real_min, gen_arg, gen_min = real.min(axis=0), gen.argmin(axis=0), gen.min(axis=0)
        authen = real_min[gen_arg] < gen_min
        return float(100 * authen.sum() / len(authen))

    med, times, val = median_time(authpct)
    out["authpct"] = {"median_s": med, "times_s": times, "value": val}
    med, times, val = median_time(lambda: float(vendi.score_dual(fb, q=1)))
    out["vendi"] = {"median_s": med, "times_s": times, "value": val}
except ImportError as e:
    out["prdc"] = {"error": str(e)}

print(json.dumps(out))
