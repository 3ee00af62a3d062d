"""``asic-reservoir tpf``: the probability-filter study on fresh work, or the window-level
filter on a recorded run file (see :mod:`asic_reservoir.tpf.evaluate`)."""

from __future__ import annotations

import argparse
import json
import os

from asic_reservoir.cli import CommandError
from asic_reservoir.drivers.stratum.work import WorkError
from asic_reservoir.experiment.runs import RunFileError, RunReader
from asic_reservoir.progress import progress_bar
from asic_reservoir.tpf.evaluate import PREDICTORS, evaluate, format_table, result_json
from asic_reservoir.tpf.rounds import ROUNDS_PER_NONCE
from asic_reservoir.tpf.stats import StatsError
from asic_reservoir.tpf.sweep import DEFAULT_ROUNDS, SweepConfig, TpfError, sweep
from asic_reservoir.tpf.window import LeakageError, WindowError, window_study


def tpf_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, nargs="+", default=list(DEFAULT_ROUNDS), metavar="K",
                        help=f"global rounds 1..{ROUNDS_PER_NONCE} (65..128 = second hash); "
                             f"default {' '.join(map(str, DEFAULT_ROUNDS))}")
    parser.add_argument("--difficulty-bits", type=int, default=SweepConfig.difficulty_bits,
                        metavar="D", help="a share has >= D leading zero bits (default %(default)s)")
    parser.add_argument("--hashes", type=int, default=SweepConfig.hashes, metavar="N",
                        help="nonces to hash in total (default %(default)s)")
    parser.add_argument("--nonces-per-header", type=int, default=SweepConfig.nonces_per_header)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes for the sweep (<= 1: in this process; default %(default)s)")
    parser.add_argument("--scheduler", metavar="ADDR", default=None,
                        help="run the sweep on a Dask cluster (needs the 'dask' extra)")
    parser.add_argument("--abort", type=float, default=0.9, metavar="S",
                        help="abort fraction reported per round (default %(default)s)")
    parser.add_argument("--abort-fractions", type=float, nargs="+", default=[0.5, 0.9, 0.99],
                        metavar="S", help="operating points: recall, lift, energy and a "
                                          "binomial test at each (default 0.5 0.9 0.99)")
    parser.add_argument("--predictors", nargs="+", default=list(PREDICTORS), choices=PREDICTORS)
    parser.add_argument("--train-negatives", type=int, default=10000,
                        help="non-shares sampled for training (all training shares are used)")
    parser.add_argument("--json", action="store_true", help="print a JSON report")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    window = parser.add_argument_group("window-level filter on a recorded run (instead of the sweep)")
    window.add_argument("--run-file", metavar="PATH", help="run file to read telemetry and shares from")
    window.add_argument("--unit", help="unit name in the run file (default: its only unit)")
    window.add_argument("--run", type=int, default=0, help="run index (default %(default)s)")
    window.add_argument("--lookback", type=float, default=None, metavar="SECONDS",
                        help="telemetry history per window (default: 3 windows)")
    window.add_argument("--gap", type=float, default=0.0, metavar="SECONDS",
                        help="history must end this long before the window (default 0)")


def tpf_main(args: argparse.Namespace) -> int:
    if args.run_file:
        return _window_main(args)
    progress = None
    try:
        config = SweepConfig(rounds=tuple(args.rounds), difficulty_bits=args.difficulty_bits,
                             hashes=args.hashes, nonces_per_header=args.nonces_per_header,
                             seed=args.seed)
        predictors = list(dict.fromkeys(args.predictors))
        if any(not 0 < f < 1 for f in [args.abort, *args.abort_fractions]):
            raise TpfError("abort fractions must lie in (0, 1)")
        progress = progress_bar(config.n_chunks + len(config.rounds), "tpf",
                                enabled=not (args.quiet or args.json))
        data = sweep(config, args.workers, args.scheduler, on_chunk=lambda: progress.update(1))
        result = evaluate(data, config, predictors, abort_fractions=tuple(args.abort_fractions),
                          abort_fraction=args.abort,
                          train_negatives=args.train_negatives, workers=args.workers,
                          on_round=lambda: progress.update(1))
    except (TpfError, WorkError) as exc:
        raise CommandError(str(exc), status=2) from exc
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        print(json.dumps(result_json(result), indent=2))
    else:
        print(format_table(result))
    return 0


def _window_main(args: argparse.Namespace) -> int:
    try:
        unit = args.unit
        if unit is None:
            with RunReader(args.run_file) as reader:
                names = [u.name for u in reader.meta.units]
            if len(names) != 1:
                raise WindowError(f"the run file has units {names}: choose one with --unit")
            unit = names[0]
        report = window_study(args.run_file, unit, args.run, args.lookback, args.gap)
    except (RunFileError, WindowError, LeakageError, StatsError, OSError) as exc:
        raise CommandError(str(exc), status=2) from exc
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        lo, hi = report["auc_ci95"]
        print(f"window filter on {report['run_file']} unit {report['unit']} run {report['run']}: "
              f"{report['windows']} windows, lookback {report['lookback_s']:g} s, gap {report['gap_s']:g} s")
        print(f"test windows {report['n_test']} (later in time than {report['n_train']} training "
              f"windows), share rate {report['test_positive_rate']:.3f}")
        print(f"AUC {report['auc']:.4f} [{lo:.4f}, {hi:.4f}]  p={report['p_value']:.3g}")
        print("verdict: " + report["verdict"])
    return 0
