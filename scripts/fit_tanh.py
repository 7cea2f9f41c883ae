#!/usr/bin/env python3
"""Fits the rational tanh of packets/src/kernels.rs: tanh(x) ≈ x·P(x²)/Q(x²) on [0, 9].

P has 6 coefficients, Q 4 (P(0) = Q(0) = 1 up to the fit). The fit is iteratively
reweighted linear least squares on the relative error (weights 1 / (tanh(x)·Q(x²)) from
the previous iterate), in float64; the coefficients are then rounded to f32 and the
approximation is evaluated in f32, as the runtime computes it (Horner, then clamped to
[-1, 1]), to report its worst error in ulps.

Usage: python3 -m venv /tmp/fit && /tmp/fit/bin/pip install numpy &&
       /tmp/fit/bin/python scripts/fit_tanh.py
"""

import numpy as np

CLAMP = 9.0
x = np.concatenate([np.linspace(1e-4, 1, 4000), np.linspace(1, CLAMP, 8000)])
t = np.tanh(x)
s = x * x


def fit(n_p, n_q, iterations=30):
    q = np.ones_like(x)
    for _ in range(iterations):
        w = 1.0 / (t * q)
        a = np.hstack(
            [x[:, None] * s[:, None] ** np.arange(n_p), -(t[:, None] * s[:, None] ** np.arange(1, n_q))]
        )
        coef, *_ = np.linalg.lstsq(a * w[:, None], t * w, rcond=None)
        p, qq = coef[:n_p], np.concatenate([[1.0], coef[n_p:]])
        q = np.polyval(qq[::-1], s)
    return p.astype(np.float32), qq.astype(np.float32)


def eval_f32(p, q, xs):
    xs = np.clip(xs.astype(np.float32), -CLAMP, CLAMP)
    ss = xs * xs
    num = p[-1]
    for c in p[-2::-1]:
        num = num * ss + c
    den = q[-1]
    for c in q[-2::-1]:
        den = den * ss + c
    return np.clip(xs * num / den, np.float32(-1), np.float32(1))


p, q = fit(6, 4)
xs = np.concatenate([np.geomspace(1e-30, 1, 400001), np.linspace(1, 30, 400001)]).astype(np.float32)
exact = np.tanh(xs.astype(np.float64))
got = eval_f32(p, q, xs).astype(np.float64)
ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
print("P =", [float(c) for c in p])
print("Q =", [float(c) for c in q])
print("worst error: %.1f ulp, relative %.2e" % ((np.abs(got - exact) / ulp).max(), (np.abs(got - exact) / exact).max()))
