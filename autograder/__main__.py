"""Command line of the course: ``python -m autograder {build,demo} ...``."""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="regenerate release/ and notebooks/ from source/")
    build.add_argument("--no-execute", action="store_true",
                       help="write the self-study notebooks without running them (no outputs)")
    demo = commands.add_parser("demo", help="grade the bundled sample submissions with nbgrader")
    demo.add_argument("--out", default="demo-output", help="course directory to create (default: demo-output)")
    args = parser.parse_args(argv)

    if args.command == "build":
        from .build import build as run_build
        run_build(run=not args.no_execute)
    elif args.command == "demo":
        from .demo import run_demo
        run_demo(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
