"""Benchmark (issue #14): the public path of each rule strategy against its peers, measured in the same run.

For momentum, mean reversion and breakout on 500 synthetic symbols × 5,040 days (20 years), the public path
`run_strategy` + `signals_to_weights` + `backtest` + `.stats` (signals, weights, backtest and metrics) is
timed next to
  * the hand-fused numba kernel of the same rule (`bench/fused_bench.py`): the floor; target within 3× of it;
  * vectorbt 1.2.0 (its indicators, `Portfolio.from_signals` on one cash-sharing book, its metrics): target ≤
    0.05×;
  * plain numpy (rolling sums, a loop over dates for the Wilder average and the state machine, whole-matrix
    book).
Threads: the package's rule kernels share blocks of symbols out over a thread pool (`core.run_blocks`, as
many at a time as numba's threads, `NUMBA_NUM_THREADS`, default every core); the hand-fused kernels, numpy
and vectorbt 1.2.0 (`Portfolio.from_signals` and its indicators, plain `njit`) run on one thread. So the
public path is timed twice, with numba's threads and pinned to one (`numba.set_num_threads(1)`), and both
ratios are printed: the one-thread figure is the like-for-like comparison. Then the 100-combination momentum
sweep (public `sweep` vs the hand-fused sweep vs vectorbt, which broadcasts all combinations as columns of one
call), one book per symbol (`backtest(books="symbol")` vs 500 single calls), and peak memory. Timings are best
of N wall time, with CPU time beside them: the machine is shared, so the load average is printed too. Not part
of the tests. Run:
`.venv/bin/python bench/backtest_bench.py [--quick]` (--quick: no vectorbt). Scaling over the universe (500 /
2,000 / 5,000 symbols): `bench/scaling_bench.py`; cold start, broken down: `bench/cold_start_bench.py`.
"""
import os
import resource
import sys
import time
import warnings

import numba
import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# noqa: E402
from fused_bench import fused_breakout, fused_mean_reversion, fused_momentum, fused_sweep_momentum

from strategy_engine.backtest import backtest, signals_to_weights  # noqa: E402
from strategy_engine.core import sample_data_dir  # noqa: E402
from strategy_engine.data import Bars, load_bars, synthetic_bars  # noqa: E402
from strategy_engine.strategies.base import StrategyConfig, load_config, run_strategy  # noqa: E402
from strategy_engine.sweep import sweep  # noqa: E402

STRATEGIES = ("momentum", "mean_reversion", "breakout")
GRID = {"momentum_period": [5, 10, 15, 20, 30], "rsi_entry": [52.0, 55.0, 60.0, 65.0],
        "volume_threshold": [1.0, 1.2, 1.5, 2.0, 2.5]}


def best(fn, repeat: int = 5) -> tuple[float, float]:
    "Best wall and best CPU time of `repeat` calls, in ms."
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall) * 1e3, min(cpu) * 1e3


def public(name: str, bars: Bars, cfg: StrategyConfig) -> pd.DataFrame:
    "The package's path: signals, weights, backtest, metrics."
    sf = run_strategy(name, bars, cfg, restrict_universe=False)
    return backtest(bars, signals_to_weights(sf.signal, cfg.risk_limits.max_position_size)).stats


def one_thread(fn):
    "`fn` run with numba pinned to one thread (the like-for-like figure against single-threaded peers)."
    def run():
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try: return fn()
        finally: numba.set_num_threads(threads)
    return run


def arrays(bars: Bars) -> dict[str, np.ndarray]:
    return {k: np.asfortranarray(getattr(bars, k).to_numpy(dtype=float))
            for k in ("close", "high", "low", "volume")}


def fused(name: str, a: dict, cfg: StrategyConfig):
    p, cap = cfg.parameters, cfg.risk_limits.max_position_size
    if name == "momentum":
        return fused_momentum(a["close"], a["volume"], p.momentum_period, p.long_momentum_period,
                              p.rsi_period, p.volume_window, p.rsi_entry, p.volume_threshold, p.allow_short,
                              cap, 10.0)
    if name == "mean_reversion":
        return fused_mean_reversion(a["close"], a["volume"], p.bb_window, p.n_std, p.volume_window,
                                    p.volume_threshold, p.exit_pct_b, p.allow_short, cap, 10.0)
    return fused_breakout(a["close"], a["high"], a["low"], a["volume"], p.window, p.volume_window,
                          p.volume_threshold, p.allow_short, cap, 10.0)


# ---- plain numpy: the same rules, whole-matrix where numpy can, a loop over dates where the rule is
# recursive
def _roll_mean_prior(x: np.ndarray, n: int) -> np.ndarray:
    cs = np.cumsum(x, axis=0)
    out = np.full_like(x, np.nan)
    out[n:] = (cs[n - 1:-1] - np.vstack([np.zeros((1, x.shape[1])), cs[:-n - 1]])) / n
    return out


def _latch(up: np.ndarray, down: np.ndarray, exit_long: np.ndarray, exit_short: np.ndarray,
           valid: np.ndarray):
    state = np.zeros(up.shape[1], np.int8)
    sig = np.zeros(up.shape, np.int8)
    for t in range(len(up)):
        enter = up[t] != down[t]
        state = np.where(~valid[t], 0, np.where(enter, np.where(up[t], 1, -1),
                         np.where(((state == 1) & exit_long[t]) | ((state == -1) & exit_short[t]), 0, state)))
        sig[t] = state
    return sig


def _numpy_book(c: np.ndarray, sig: np.ndarray, cap: float) -> tuple:
    w = sig * np.minimum(1.0 / np.maximum((sig != 0).sum(axis=1, keepdims=True), 1), cap)
    r = np.zeros_like(c)
    r[1:] = c[1:] / c[:-1] - 1
    held = np.vstack([np.zeros((1, c.shape[1])), w[:-1]])
    before = np.vstack([np.zeros((1, c.shape[1])), held[:-1]])
    ret = (1 - 0.001 * np.abs(held - before).sum(axis=1)) * (1 + (held * r).sum(axis=1)) - 1
    wealth = np.cumprod(1 + ret)
    return (
        wealth[-1] - 1,
        ret.mean() / ret.std(ddof=1) * np.sqrt(252),
        (wealth / np.maximum.accumulate(wealth) - 1).min(),
    )


def numpy_path(name: str, a: dict, cfg: StrategyConfig) -> tuple:
    p, c, v = cfg.parameters, a["close"], a["volume"]
    vr = v / _roll_mean_prior(v, p.volume_window)
    with np.errstate(invalid="ignore", divide="ignore"):
        if name == "momentum":
            def roc(n):
                out = np.full_like(c, np.nan)
                out[n:] = c[n:] / c[:-n] - 1
                return out
            ms, ml = roc(p.momentum_period), roc(p.long_momentum_period)
            ch = np.diff(c, axis=0, prepend=np.nan)
            g, lo = np.maximum(ch, 0), np.maximum(-ch, 0)
            rsi = np.full_like(c, np.nan)
            n = p.rsi_period
            ag, al = g[1:n + 1].mean(axis=0), lo[1:n + 1].mean(axis=0)
            for t in range(n, len(c)):                               # Wilder: recursive, one row at a time
                if t > n: ag, al = ag + (g[t] - ag) / n, al + (lo[t] - al) / n
                rsi[t] = np.where(ag + al > 0, 100 * ag / (ag + al), 50.0)
            heavy = vr >= p.volume_threshold
            up = (ms > 0) & (ml > 0) & (rsi >= p.rsi_entry) & heavy
            down = (ms < 0) & (ml < 0) & (rsi <= 100 - p.rsi_entry) & heavy & p.allow_short
            valid = np.isfinite(ms) & np.isfinite(ml) & np.isfinite(rsi) & np.isfinite(vr)
            sig = _latch(up, down, ms <= 0, ms >= 0, valid)
        elif name == "mean_reversion":
            w = p.bb_window
            cs, cs2 = np.cumsum(c, axis=0), np.cumsum(c * c, axis=0)
            s1, s2 = np.full_like(c, np.nan), np.full_like(c, np.nan)
            s1[w - 1:] = cs[w - 1:] - np.vstack([np.zeros((1, c.shape[1])), cs[:-w]])
            s2[w - 1:] = cs2[w - 1:] - np.vstack([np.zeros((1, c.shape[1])), cs2[:-w]])
            mid = s1 / w
            sd = np.sqrt(np.maximum(s2 / w - mid * mid, 0))
            b = (c - (mid - p.n_std * sd)) / (2 * p.n_std * sd)
            heavy = vr >= p.volume_threshold
            sig = _latch((b < 0) & heavy, (b > 1) & heavy & p.allow_short, b >= p.exit_pct_b,
                         b <= 1 - p.exit_pct_b, np.isfinite(b) & np.isfinite(vr))
        else:
            h, lo_, w = pd.DataFrame(a["high"]), pd.DataFrame(a["low"]), p.window
            res, sup = h.rolling(w).max().shift(1).to_numpy(), lo_.rolling(w).min().shift(1).to_numpy()
            heavy = vr >= p.volume_threshold
            mid = 0.5 * (sup + res)
            sig = _latch((c > res) & heavy, (c < sup) & heavy & p.allow_short, c < mid, c > mid,
                         np.isfinite(res) & np.isfinite(vr))
    return _numpy_book(c, sig, cfg.risk_limits.max_position_size)


# ---- vectorbt: its indicators, its signal portfolio on one cash-sharing book, its metrics
def vectorbt_path(name: str, bars: Bars, cfg: StrategyConfig, vbt) -> tuple:
    p, close, vol = cfg.parameters, bars.close, bars.volume.astype(float)
    vr = vol / vbt.MA.run(vol, p.volume_window).ma.shift(1).to_numpy()
    if name == "momentum":
        ms, ml = close.pct_change(p.momentum_period), close.pct_change(p.long_momentum_period)
        rsi = vbt.RSI.run(close, p.rsi_period, ewm=True).rsi.to_numpy()
        heavy = vr >= p.volume_threshold
        entries = (ms > 0) & (ml > 0) & (rsi >= p.rsi_entry) & heavy
        short_entries = (ms < 0) & (ml < 0) & (rsi <= 100 - p.rsi_entry) & heavy
        exits, short_exits = ms <= 0, ms >= 0
    elif name == "mean_reversion":
        bb = vbt.BBANDS.run(close, p.bb_window, alpha=p.n_std)
        pct_b = bb.percent_b
        heavy = vr >= p.volume_threshold
        entries, short_entries = (pct_b < 0) & heavy, (pct_b > 1) & heavy
        exits, short_exits = pct_b >= p.exit_pct_b, pct_b <= 1 - p.exit_pct_b
    else:
        res, sup = bars.high.rolling(p.window).max().shift(1), bars.low.rolling(p.window).min().shift(1)
        heavy = vr >= p.volume_threshold
        entries, short_entries = (close > res) & heavy, (close < sup) & heavy
        exits, short_exits = close < 0.5 * (sup + res), close > 0.5 * (sup + res)
    pf = vbt.Portfolio.from_signals(close, entries, exits, short_entries=short_entries,
                                    short_exits=short_exits, size=cfg.risk_limits.max_position_size * 1e10,
                                    size_type="value", fees=0.001, init_cash=1e10, group_by=True,
                                    cash_sharing=True, call_seq="auto", freq="1D")
    return pf.total_return(), pf.sharpe_ratio(), pf.max_drawdown()


def vectorbt_sweep(bars: Bars, cfg: StrategyConfig, vbt) -> pd.Series:
    "The 100 combinations as 100 column groups of one vectorbt call (its idiomatic sweep)."
    p, close, vol = cfg.parameters, bars.close, bars.volume.astype(float)
    vr = vol / vol.rolling(p.volume_window).mean().shift(1)
    rsi = vbt.RSI.run(close, p.rsi_period, ewm=True).rsi
    ml = close.pct_change(p.long_momentum_period)
    ent, ext, sent, sext, keys = [], [], [], [], []
    for n in GRID["momentum_period"]:
        ms = close.pct_change(n)
        for e in GRID["rsi_entry"]:
            for thr in GRID["volume_threshold"]:
                heavy = vr >= thr
                ent.append((ms > 0) & (ml > 0) & (rsi >= e) & heavy)
                sent.append((ms < 0) & (ml < 0) & (rsi <= 100 - e) & heavy)
                ext.append(ms <= 0)
                sext.append(ms >= 0)
                keys.append((n, e, thr))
    names = pd.MultiIndex.from_tuples(keys, names=["momentum_period", "rsi_entry", "volume_threshold"])
    stack = lambda frames: pd.concat(frames, axis=1, keys=names)
    wide = stack([close] * len(keys))
    pf = vbt.Portfolio.from_signals(wide, stack(ent), stack(ext), short_entries=stack(sent),
                                    short_exits=stack(sext), size=cfg.risk_limits.max_position_size * 1e10,
                                    size_type="value", fees=0.001, init_cash=1e10, group_by=list(names.names),
                                    cash_sharing=True, call_seq="auto", freq="1D")
    return pf.sharpe_ratio()


def fused_sweep(bars: Bars, cfg: StrategyConfig):
    # the kernel assumes no gaps
    close = np.asfortranarray(bars.close.ffill().bfill().to_numpy(dtype=float))
    volume = np.asfortranarray(bars.volume.fillna(0).to_numpy(dtype=float))
    combos = [(n, e, t)
              for n in GRID["momentum_period"] for e in GRID["rsi_entry"] for t in GRID["volume_threshold"]]
    n_s, e, thr = (np.array(x) for x in zip(*combos, strict=True))
    p = cfg.parameters
    return fused_sweep_momentum(close, volume, n_s.astype(np.int64),
                                e.astype(float), thr.astype(float), p.long_momentum_period, p.rsi_period,
                                p.volume_window, p.allow_short, cfg.risk_limits.max_position_size, 10.0)


def main() -> None:
    quick = "--quick" in sys.argv
    vbt = None
    if not quick:
        warnings.filterwarnings("ignore")
        import vectorbt as vbt
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (figures are best of N; CPU time "
          "beside)")
    cfgs = {n: load_config(n) for n in STRATEGIES}
    t0 = time.perf_counter()
    warm = synthetic_bars(5, n_days=300)
    for n in STRATEGIES: public(n, warm, cfgs[n])
    print(f"first calls (numba kernels from the cache, or compiled): {(time.perf_counter() - t0) * 1e3:.0f} "
          "ms")
    print(f"threads: public path {numba.get_num_threads()} (the rules' blocks on a thread pool; the backtest "
          f"on numba's {numba.threading_layer()} layer) and 1 (pinned); hand-fused, numpy and vectorbt 1 "
          "(single-threaded code)")

    big = synthetic_bars(500, n_days=5040, seed=11)
    a = arrays(big)
    print(f"\n{big.label}: 500 symbols × 5,040 days; signals + weights + backtest + metrics, ms (wall / CPU)")
    threads = numba.get_num_threads()
    print(f"  {'strategy':15s} {'public':>15s} {'public, 1 thr':>15s} {'hand-fused':>15s} {'numpy':>15s} "
          f"{'vectorbt':>15s}   {'÷ fused':>8s} {'÷ numpy':>8s} {'÷ vectorbt':>10s}  signals = fused")
    for n in STRATEGIES:
        ours = best(lambda n=n: public(n, big, cfgs[n]))
        single = best(one_thread(lambda n=n: public(n, big, cfgs[n])))
        floor = best(lambda n=n: fused(n, a, cfgs[n]))
        plain = best(lambda n=n: numpy_path(n, a, cfgs[n]), repeat=2)
        peer = best(lambda n=n: vectorbt_path(n, big, cfgs[n], vbt), repeat=3) if vbt else (float("nan"),) * 2
        sig = run_strategy(n, big, cfgs[n], restrict_universe=False).signal.to_numpy()
        agree = (sig == fused(n, a, cfgs[n])[1]).mean()
        fmt = lambda x: f"{x[0]:7.1f} / {x[1]:5.0f}"
        ratios = lambda x, i, f=floor, p=plain, v=peer: (
            f"{x[i] / f[i]:7.2f}× {x[i] / p[i]:7.2f}× {x[i] / v[i]:9.3f}×"
        )
        print(f"  {n:15s} {fmt(ours):>15s} {fmt(single):>15s} {fmt(floor):>15s} {fmt(plain):>15s} "
              f"{fmt(peer):>15s}   {ratios(ours, 0)}  {agree:.4%}   ({threads} threads, wall)")
        print(f"  {'':15s} {'':>15s} {'':>15s} {'':>15s} {'':>15s} {'':>15s}   {ratios(single, 0)}   (1 "
              "thread, wall)")
        print(f"  {'':15s} {'':>15s} {'':>15s} {'':>15s} {'':>15s} {'':>15s}   {ratios(single, 1)}   (1 "
              "thread, CPU)")

    cfg = cfgs["momentum"]
    nse = sample_data_dir()
    b20 = (
        load_bars(nse, symbols=list(cfg.universe), start="2014-11-22")
        if nse
        else synthetic_bars(20, n_days=2520)
    )
    sweep("momentum", b20, GRID)
    fused_sweep(b20, cfg)
    ours = best(lambda: sweep("momentum", b20, GRID))
    floor = best(lambda: fused_sweep(b20, cfg))
    peer = best(lambda: vectorbt_sweep(b20, cfg, vbt), repeat=2) if vbt else (float("nan"),) * 2
    print(f"\nSweep: momentum, 100 combinations × {b20.close.shape[1]} symbols × {b20.close.shape[0]} days "
          f"({b20.label}): public {ours[0]:.1f} ms (CPU {ours[1]:.0f}), hand-fused {floor[0]:.1f} ms, "
          f"vectorbt {peer[0]:.0f} ms: {ours[0] / floor[0]:.2f}× fused, {ours[0] / peer[0]:.3f}× vectorbt; "
          f"best Sharpe {sweep('momentum', b20, GRID).best()['sharpe_ratio']:.2f}")

    sf = run_strategy("momentum", big, cfg, restrict_universe=False)
    w = signals_to_weights(sf.signal, cfg.risk_limits.max_position_size)
    backtest(big, w, books="symbol")
    books = best(lambda: backtest(big, w, books="symbol").stats, repeat=3)
    loop = best(lambda: [backtest(big.close[[s]], w[[s]]).stats for s in big.symbols], repeat=1)
    one = synthetic_bars(1, n_days=2520, seed=3)
    w1 = signals_to_weights(run_strategy("momentum", one, cfg, restrict_universe=False).signal, 1.0)
    single = best(lambda: backtest(one, w1), repeat=200)
    single_stats = best(lambda: backtest(one, w1).stats, repeat=200)
    print(f"\nOne book per symbol, 500 × 5,040, with stats: backtest(books='symbol') {books[0]:.0f} ms, "
          f"500 single calls {loop[0]:.0f} ms ({loop[0] / books[0]:.0f}× slower)")
    print(f"Single-symbol backtest over 2,520 days: {single[0]:.2f} ms (with stats {single_stats[0]:.2f} ms)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory (max RSS of this process, vectorbt and the sweeps included): {peak:.0f} MB; "
          "without peers: bench/scaling_bench.py")


if __name__ == "__main__":
    main()
