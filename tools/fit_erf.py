#!/usr/bin/env python3
"""Fits the coefficients of `fastErf` (Sources/Kernels/FastMath.swift) and checks them in float32.

erf(x) is evaluated branch-free in two pieces:
  |x| < 1:      erf(x) = x · P(x²),                       P of degree 5 (relative error)
  1 ≤ |x| ≤ 4:  erf(x) = sign(x) · (1 − exp(−x²) · Q(1/|x|)),  Q of degree 9 fitting erfcx(x) = exp(x²)·erfc(x)
(above 4, erfc < 2e-8 and erf rounds to ±1). Each polynomial is a weighted least-squares fit on Chebyshev
nodes with Lawson reweighting toward the minimax relative error, against mpmath at 40 digits. The check
evaluates both pieces in float32 (Horner, as the Swift code does) over [−6, 6] and near 0 and prints the
error in units in the last place against the correctly rounded erf, next to glibc's erff.

Usage: python3 tools/fit_erf.py   (needs numpy and mpmath)
"""
import ctypes
import numpy as np
import mpmath as mp

mp.mp.dps = 40
CUT, TOP = 1.0, 4.0


def chebyshev_nodes(a, b, n):
    k = np.arange(n)
    return (a + b) / 2 + (b - a) / 2 * np.cos((2 * k + 1) * np.pi / (2 * n))


def fit_relative(f, var, degree, rounds=30):
    """Coefficients c (increasing powers of var) minimizing max |Σ c_k var^k − f| / |f| (approximately)."""
    A = np.vander(var, degree + 1, increasing=True)
    w = np.ones_like(f)
    for _ in range(rounds):
        W = w / np.abs(f)
        c, *_ = np.linalg.lstsq(A * W[:, None], f * W, rcond=None)
        w = w * np.sqrt(np.abs(A @ c - f) / np.abs(f))
        w /= w.max()
    return np.float32(c)


def horner32(c, v):
    p = np.full_like(v, c[-1])
    for a in c[-2::-1]:
        p = p * v + a
    return p


def fast_erf32(x, p, q):
    x = np.float32(x)
    a = np.abs(x)
    small = x * horner32(p, x * x)
    b = np.minimum(a, np.float32(TOP))
    e = np.float32(np.exp(-np.float64(b * b)))
    large = np.copysign(np.float32(1) - e * horner32(q, np.float32(1) / b), x)
    return np.where(a < CUT, small, large).astype(np.float32)


def ulps(a, b):
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))


def main():
    z = chebyshev_nodes(0, CUT, 4000)
    p = fit_relative(np.array([float(mp.erf(t) / t) for t in z]), z * z, 5)
    z = chebyshev_nodes(CUT, TOP, 4000)
    q = fit_relative(np.array([float(mp.exp(t * t) * mp.erfc(t)) for t in z]), 1 / z, 9)
    xs = np.float32(np.concatenate([np.linspace(-6, 6, 40001), np.geomspace(1e-6, 1, 2001)]))
    exact = np.array([np.float32(float(mp.erf(float(t)))) for t in xs])
    libm = ctypes.CDLL("libm.so.6")
    libm.erff.restype, libm.erff.argtypes = ctypes.c_float, [ctypes.c_float]
    glibc = np.array([libm.erff(float(t)) for t in xs], dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        fast = fast_erf32(xs, p, q)
    print(f"float32 check on {len(xs)} points: fastErf max {ulps(fast, exact).max()} ulp (mean {ulps(fast, exact).mean():.3f}), "
          f"glibc erff max {ulps(glibc, exact).max()} ulp (mean {ulps(glibc, exact).mean():.3f})")
    print("P (x², from x⁰):", ", ".join(f"{float(c):.9e}" for c in p))
    print("Q (1/|x|, from (1/|x|)⁰):", ", ".join(f"{float(c):.9e}" for c in q))


if __name__ == "__main__":
    main()
