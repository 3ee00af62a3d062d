"""Runner: ``python -m benchmarks`` runs all, ``python -m benchmarks pool sim`` some."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(here)])
                  if m.name.startswith("bench_"))


def main(argv: list[str] | None = None) -> int:
    names = available()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of: {', '.join(names)}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(names))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {names}")
    for name in args.names or names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"== {name}: {(module.__doc__ or '').strip().splitlines()[0]}")
        start = time.perf_counter()
        for figure in module.run():
            print(figure.line())
        print(f"  ({time.perf_counter() - start:.1f} s)")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
