#!/usr/bin/env python3
"""release_build.py - which idbmount a benchmark measures, decided in one place.

Every benchmark takes the same two options (add_arguments):

  --build DIR  (default build-release/) a Release build is configured and
               built there first (cmake -DCMAKE_BUILD_TYPE=Release; when it
               is up to date that takes a second), so a figure is never of
               a debug build by accident;
  --bin DIR    the binaries already in DIR, measured as they are: nothing
               is built, and their CMAKE_BUILD_TYPE is said.

binaries() returns the two programs and a sentence saying which build they
are, which the benchmark prints with its table. Run as a script (the
browser benchmarks do, from release_build.mjs), it prints the same as JSON:

    python3 tests/bench/release_build.py [--build DIR | --bin DIR]
"""
import argparse
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def add_arguments(parser):
    parser.add_argument("--build", default=os.path.join(REPO, "build-release"),
                        help="Release build directory, built first (default build-release)")
    parser.add_argument("--bin", help="directory holding idbmount and idbmountctl, measured "
                                      "as they are (nothing is built)")


def build_type(directory):
    """The CMAKE_BUILD_TYPE of the build in `directory`, or "unknown"."""
    try:
        with open(os.path.join(directory, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_BUILD_TYPE:"):
                    return line.split("=", 1)[1].strip() or "(none)"
    except OSError:
        pass
    return "unknown"


def given(directory):
    """(idbmount, idbmountctl, where) of binaries measured as they are."""
    d = os.path.abspath(directory)
    for name in ("idbmount", "idbmountctl"):
        if not os.access(os.path.join(d, name), os.X_OK):
            raise SystemExit("%s: no %s in %s" % (os.path.basename(sys.argv[0]), name, d))
    return (os.path.join(d, "idbmount"), os.path.join(d, "idbmountctl"),
            "binaries from %s (CMAKE_BUILD_TYPE %s)" % (d, build_type(d)))


def release(directory):
    """(idbmount, idbmountctl, where), built as Release in `directory`."""
    d = os.path.abspath(directory)
    print("building a Release daemon in %s" % d, file=sys.stderr, flush=True)
    subprocess.run(["cmake", "-S", REPO, "-B", d, "-DCMAKE_BUILD_TYPE=Release"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", d, "--parallel", str(os.cpu_count() or 2),
                    "--target", "idbmount", "idbmountctl"], check=True,
                   stdout=subprocess.DEVNULL)
    return (os.path.join(d, "idbmount"), os.path.join(d, "idbmountctl"),
            "Release build in %s (built by the benchmark)" % d)


def binaries(a):
    """What parsed options `a` (add_arguments) ask for."""
    return given(a.bin) if a.bin else release(a.build)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(ap)
    idbmount, idbmountctl, where = binaries(ap.parse_args())
    print(json.dumps({"idbmount": idbmount, "idbmountctl": idbmountctl, "where": where}))


if __name__ == "__main__":
    main()
