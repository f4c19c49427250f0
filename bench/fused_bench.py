"""Hand-fused kernels of the three rule strategies: the floor the public path is held to (issue #14).

Each `fused_*` is one numba function that does what `run_strategy` + `signals_to_weights` + `backtest` +
`.stats` do for one rule on a gap-free panel: pass 1 walks each symbol's column once, computing the indicators
incrementally (ring buffers, running sums, Wilder averages) and the rule's state machine, and writes only the
int8 signal; pass 2 walks the columns again for the portfolio's gross return and turnover (equal weight 1/n_t,
capped); pass 3 compounds the book and computes total return, Sharpe and max drawdown. No metadata, no
confidence, no validation, no pandas: what a person would write by hand for speed. `fused_sweep_momentum` runs
K parameter combinations of momentum the same way. Imported by `backtest_bench.py`; run alone it times them:
`.venv/bin/python bench/fused_bench.py`.
"""
import time

import numba
import numpy as np


@numba.njit(cache=True)
def _book(c, sig, cap, cost_bps):
    "Passes 2, 3: equal-weight book of `sig` (T × N) on closes `c`, net of costs: return, Sharpe, drawdown."
    T, N = c.shape
    n = np.zeros(T)
    for j in range(N):
        for t in range(T): n[t] += sig[t, j] != 0
    size = np.empty(T)
    for t in range(T): size[t] = min(1.0 / max(n[t], 1.0), cap)
    gross, turnover = np.zeros(T), np.zeros(T)
    for j in range(N):
        for t in range(1, T):
            held = sig[t - 1, j] * size[t - 1]
            before = sig[t - 2, j] * size[t - 2] if t >= 2 else 0.0
            gross[t] += held * (c[t, j] / c[t - 1, j] - 1.0)
            turnover[t] += abs(held - before)
    wealth, peak, mdd, s1, s2 = 1.0, 1.0, 0.0, 0.0, 0.0
    for t in range(T):
        r = (1.0 - cost_bps / 10_000 * turnover[t]) * (1.0 + gross[t]) - 1.0
        wealth *= 1.0 + r
        peak = max(peak, wealth)
        mdd = min(mdd, wealth / peak - 1.0)
        s1 += r
        s2 += r * r
    mean = s1 / T
    sd = np.sqrt(max(s2 / T - mean * mean, 0.0) * T / (T - 1))
    return wealth - 1.0, mean / sd * np.sqrt(252.0), mdd


@numba.njit(cache=True)
def _momentum_column(c, v, j, n_s, n_l, rsi_n, vol_n, rsi_entry, vol_thr, allow_short, sig):
    "One symbol's momentum signals in one pass: c_t/c_{t-n} - 1 twice, Wilder RSI, volume over prior mean."
    T = c.shape[0]
    state, g, lo, vsum = 0, 0.0, 0.0, 0.0
    for t in range(T):
        x = c[t, j]
        if t >= 1:                                                # Wilder RSI of the changes
            ch = x - c[t - 1, j]
            up, down = max(ch, 0.0), max(-ch, 0.0)
            if t <= rsi_n:
                g += up
                lo += down
                if t == rsi_n: g, lo = g / rsi_n, lo / rsi_n
            else:
                g = (1.0 - 1.0 / rsi_n) * g + up / rsi_n
                lo = (1.0 - 1.0 / rsi_n) * lo + down / rsi_n
        if t >= 1: vsum += v[t - 1, j]                            # the prior vol_n volumes
        if t > vol_n: vsum -= v[t - 1 - vol_n, j]
        if t < n_l or t < rsi_n or t < vol_n:
            sig[t, j] = 0
            continue
        ms, ml = x / c[t - n_s, j] - 1.0, x / c[t - n_l, j] - 1.0
        rsi = 100.0 * g / (g + lo) if g + lo > 0 else 50.0
        heavy = v[t, j] >= vol_thr * (vsum / vol_n)
        enter_up = (ms > 0) & (ml > 0) & (rsi >= rsi_entry) & heavy
        enter_down = allow_short & (ms < 0) & (ml < 0) & (rsi <= 100.0 - rsi_entry) & heavy
        if enter_up != enter_down: state = 1 if enter_up else -1
        elif ((state == 1) & (ms <= 0)) | ((state == -1) & (ms >= 0)): state = 0
        sig[t, j] = state


@numba.njit(cache=True)
def fused_momentum(c, v, n_s, n_l, rsi_n, vol_n, rsi_entry, vol_thr, allow_short, cap, cost_bps):
    "Momentum: signals, weights, backtest, metrics in one compiled call; (return, Sharpe, drawdown), signals."
    T, N = c.shape
    sig = np.empty((N, T), np.int8).T
    for j in range(N): _momentum_column(c, v, j, n_s, n_l, rsi_n, vol_n, rsi_entry, vol_thr, allow_short, sig)
    return _book(c, sig, cap, cost_bps), sig


@numba.njit(cache=True)
def fused_mean_reversion(c, v, w, n_std, vol_n, vol_thr, exit_pct_b, allow_short, cap, cost_bps):
    "Bollinger mean reversion fused: running sum and sum of squares of the window, volume over prior mean."
    T, N = c.shape
    sig = np.empty((N, T), np.int8).T
    for j in range(N):
        state, s1, s2, vsum = 0, 0.0, 0.0, 0.0
        for t in range(T):
            x = c[t, j]
            s1 += x
            s2 += x * x
            if t >= w:
                y = c[t - w, j]
                s1 -= y
                s2 -= y * y
            if t >= 1: vsum += v[t - 1, j]
            if t > vol_n: vsum -= v[t - 1 - vol_n, j]
            if t < w - 1 or t < vol_n:
                sig[t, j] = 0
                continue
            mid = s1 / w
            sd = np.sqrt(max(s2 / w - mid * mid, 0.0))
            width = 2.0 * n_std * sd
            b = (x - (mid - n_std * sd)) / width if width > 0 else np.nan
            heavy = v[t, j] >= vol_thr * (vsum / vol_n)
            up, down = (b < 0) & heavy, allow_short & (b > 1) & heavy
            if b != b: state = 0
            elif up != down: state = 1 if up else -1
            elif ((state == 1) & (b >= exit_pct_b)) | ((state == -1) & (b <= 1.0 - exit_pct_b)): state = 0
            sig[t, j] = state
    return _book(c, sig, cap, cost_bps), sig


@numba.njit(cache=True)
def fused_breakout(c, h, lo, v, w, vol_n, vol_thr, allow_short, cap, cost_bps):
    "Breakout fused: prior-window max high / min low by blocks of w (van Herk), volume over its prior mean."
    T, N = c.shape
    sig = np.empty((N, T), np.int8).T
    hh, ht, lh, lt = np.empty(T), np.empty(T), np.empty(T), np.empty(T)
    for j in range(N):
        for t in range(T):                                        # running max/min from each block's start
            r = t % w
            hh[t] = h[t, j] if r == 0 else max(hh[t - 1], h[t, j])
            lh[t] = lo[t, j] if r == 0 else min(lh[t - 1], lo[t, j])
        for t in range(T - 1, -1, -1):                            # ... and to each block's end
            r = t % w
            ht[t] = h[t, j] if r == w - 1 or t == T - 1 else max(ht[t + 1], h[t, j])
            lt[t] = lo[t, j] if r == w - 1 or t == T - 1 else min(lt[t + 1], lo[t, j])
        state, vsum = 0, 0.0
        for t in range(T):
            if t >= 1: vsum += v[t - 1, j]
            if t > vol_n: vsum -= v[t - 1 - vol_n, j]
            if t < w or t < vol_n:
                sig[t, j] = 0
                continue
            e = t - 1                                             # window [t - w, t - 1]
            res, sup = max(ht[e - w + 1], hh[e]), min(lt[e - w + 1], lh[e])
            x = c[t, j]
            heavy = v[t, j] >= vol_thr * (vsum / vol_n)
            up, down = (x > res) & heavy, allow_short & (x < sup) & heavy
            if up != down: state = 1 if up else -1
            elif ((state == 1) & (x < 0.5 * (sup + res))) | ((state == -1) & (x > 0.5 * (sup + res))):
                state = 0
            sig[t, j] = state
    return _book(c, sig, cap, cost_bps), sig


@numba.njit(cache=True)
def fused_sweep_momentum(c, v, n_s, rsi_entry, vol_thr, n_l, rsi_n, vol_n, allow_short, cap, cost_bps):
    "K momentum combinations (n_s, rsi_entry, vol_thr: arrays of K): RSI, volume ratio once; rule + book."
    T, N = c.shape
    K = n_s.shape[0]
    rsi, vr = np.full((N, T), np.nan).T, np.full((N, T), np.nan).T   # the parameters the grid does not sweep
    for j in range(N):
        g, lo, vsum = 0.0, 0.0, 0.0
        for t in range(1, T):
            ch = c[t, j] - c[t - 1, j]
            up, down = max(ch, 0.0), max(-ch, 0.0)
            if t <= rsi_n:
                g += up
                lo += down
                if t == rsi_n: g, lo = g / rsi_n, lo / rsi_n
            else:
                g = (1.0 - 1.0 / rsi_n) * g + up / rsi_n
                lo = (1.0 - 1.0 / rsi_n) * lo + down / rsi_n
            if t >= rsi_n: rsi[t, j] = 100.0 * g / (g + lo) if g + lo > 0 else 50.0
            vsum += v[t - 1, j]
            if t > vol_n: vsum -= v[t - 1 - vol_n, j]
            if t >= vol_n: vr[t, j] = v[t, j] / (vsum / vol_n)
    out = np.empty((K, 3))
    sig = np.empty((N, T), np.int8).T
    start = max(n_l, rsi_n, vol_n)
    for k in range(K):
        for j in range(N):
            state = 0
            for t in range(T):
                if t < start:
                    sig[t, j] = 0
                    continue
                x = c[t, j]
                ms, ml, rr = x / c[t - n_s[k], j] - 1.0, x / c[t - n_l, j] - 1.0, rsi[t, j]
                heavy = vr[t, j] >= vol_thr[k]
                up = (ms > 0) & (ml > 0) & (rr >= rsi_entry[k]) & heavy
                down = allow_short & (ms < 0) & (ml < 0) & (rr <= 100.0 - rsi_entry[k]) & heavy
                if up != down: state = 1 if up else -1
                elif ((state == 1) & (ms <= 0)) | ((state == -1) & (ms >= 0)): state = 0
                sig[t, j] = state
        out[k, 0], out[k, 1], out[k, 2] = _book(c, sig, cap, cost_bps)
    return out


def main() -> None:
    from strategy_engine.data import synthetic_bars
    bars = synthetic_bars(500, n_days=5040, seed=11)
    c, h, lo = (np.asfortranarray(f.to_numpy(dtype=float)) for f in (bars.close, bars.high, bars.low))
    v = np.asfortranarray(bars.volume.to_numpy(dtype=float))
    runs = {"momentum": lambda: fused_momentum(c, v, 20, 60, 14, 20, 55.0, 1.5, True, 0.05, 10.0),
            "mean_reversion": lambda: fused_mean_reversion(c, v, 20, 2.0, 20, 1.2, 0.5, True, 0.05, 10.0),
            "breakout": lambda: fused_breakout(c, h, lo, v, 20, 20, 1.5, True, 0.05, 10.0)}
    for name, run in runs.items():
        run()
        best = min(_timed(run) for _ in range(5))
        print(f"hand-fused {name:15s} 500 × 5,040: {best * 1e3:6.1f} ms")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
