#!/usr/bin/env python3
"""Re-derives the long-run numbers quoted in README.md from data.csv (numpy only).

    python3 results/cpu-gate/long_runs.py SETUP [SETUP ...]

Per setup: the final C_T per seed, mean ± std (ddof 1) and a 95 % t interval over seeds; the
mean over seeds of C_T and KID in 6,000-step blocks; the lowest single evaluation; per seed a
least-squares slope of C_T per 1,000 steps from step 6,500 on (standard error from the
residuals, which ignores the correlation of neighbouring evaluations, so it is too small).
"""
import csv
import sys
from collections import defaultdict

import numpy as np

T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571}

rows = list(csv.DictReader(open(__file__.rsplit("/", 1)[0] + "/data.csv")))
for setup in sys.argv[1:]:
    by_seed = defaultdict(list)
    for r in rows:
        if r["setup"] == setup:
            by_seed[int(r["seed"])].append((int(r["step"]), float(r["ct"]), float(r["kid"]),
                                            float(r["nn_gen"]), float(r["nn_test"])))
    if not by_seed:
        print(f"{setup}: no rows")
        continue
    print(f"== {setup}: seeds {sorted(by_seed)}")
    finals = []
    for s, ev in sorted(by_seed.items()):
        ev.sort()
        step, ct, kid, nng, nnt = ev[-1]
        finals.append(ct)
        x = np.array([e[0] for e in ev if e[0] >= 6500], float) / 1000
        y = np.array([e[1] for e in ev if e[0] >= 6500])
        lo = min(ev, key=lambda e: e[1])
        line = ""
        if len(x) > 2:
            A = np.vstack([x, np.ones_like(x)]).T
            coef, res, *_ = np.linalg.lstsq(A, y, rcond=None)
            resid = y - A @ coef
            se = np.sqrt(resid @ resid / (len(x) - 2) / ((x - x.mean()) ** 2).sum())
            line = f"slope from 6.5k {coef[0]:+.3f} ± {se:.3f} per 1k ({len(x)} evals)"
        print(f"  seed {s}: final step {step} C_T {ct:+.2f} KID {kid:.3f} NN gen {nng:.4f} "
              f"test {nnt:.4f}; lowest {lo[1]:+.2f} at {lo[0]}; {line}")
    f = np.array(finals)
    if len(f) > 1:
        sd = f.std(ddof=1)
        h = T975[len(f) - 1] * sd / np.sqrt(len(f))
        print(f"  final C_T {f.mean():+.2f} ± {sd:.2f} (std, {len(f)} seeds); "
              f"95 % t interval [{f.mean() - h:+.2f}, {f.mean() + h:+.2f}]")
    steps = sorted({e[0] for ev in by_seed.values() for e in ev})
    blocks = [(500, 6000)] + [(a, a + 5500) for a in range(6500, max(steps), 6000)]
    for a, b in blocks:
        ct = [e[1] for ev in by_seed.values() for e in ev if a <= e[0] <= b]
        kid = [e[2] for ev in by_seed.values() for e in ev if a <= e[0] <= b]
        if ct:
            print(f"  steps {a}-{b}: mean C_T {np.mean(ct):+.2f}, lowest {min(ct):+.2f}, "
                  f"mean KID {np.mean(kid):.3f} ({len(ct)} evaluations)")
    mean_curve = {st: np.mean([e[1] for ev in by_seed.values() for e in ev if e[0] == st])
                  for st in steps}
    st_min = min(mean_curve, key=mean_curve.get)
    print(f"  seed-mean curve: lowest {mean_curve[st_min]:+.2f} at step {st_min}")
