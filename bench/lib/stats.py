"""Small statistics shared by the benchmark reports. Standard library only."""


def pct(v, p):
    """The p-th percentile of v (0-100), linearly interpolated between the nearest ranks;
    None for no values."""
    v = sorted(v)
    if not v:
        return None
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)
