"""One compiled signature per kernel (issue 14): a daily run on one symbol calls what a run on many compiled.

numba types an array by its layout, and a one-symbol panel (a single column) is both C- and F-ordered, which
numba calls C. Before `core.call_kernel`, a run on one symbol compiled every kernel a second time: after a
warm-up on many symbols (the image's), `run daily --symbols TCS` took 49 s, 45 s of it compiling."""
import sys

from numba.core.registry import CPUDispatcher

from strategy_engine.stages import daily


def signatures() -> dict[str, set[str]]:
    "Each package kernel's signatures compiled or loaded from the cache in this process."
    return {f"{name}.{attr}": {str(sig) for sig in obj.signatures}
            for name, module in list(sys.modules.items()) if name.startswith("strategy_engine")
            for attr, obj in vars(module).items() if isinstance(obj, CPUDispatcher)}


def run_day(symbols):
    run = daily.start_daily("2024-11-22", symbols=symbols, data="synthetic")
    for step in (daily.load_data, daily.compute):
        step(run)
    daily.performance(run)
    daily.risk_table(run)
    assert run.status == "running", run.reason
    return run


def test_a_day_on_one_symbol_calls_the_kernels_of_a_day_on_many():
    many = run_day(None)
    assert len(many.bars.symbols) > 1
    before = signatures()
    assert sum(map(len, before.values())) >= 8        # strategies, risk, backtest: their kernels were called
    one = run_day([many.bars.symbols[0]])
    assert one.bars.symbols == [many.bars.symbols[0]]
    after = signatures()
    added = {k: sorted(v - before.get(k, set())) for k, v in after.items() if v - before.get(k, set())}
    assert added == {}, added
