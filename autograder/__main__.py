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
    grade = commands.add_parser(
        "grade", help="grade a batch of submissions in a sandbox (see autograder/grade.py)",
        description="Grade submissions as received (folders of notebooks, LMS zips, nbgrader's submitted/ "
                    "tree) into the nbgrader gradebook, grading/<assignment>/grades.csv (one row per input "
                    "file), feedback/ and a summary.")
    grade.add_argument("assignment", help="assignment name, e.g. resnet18")
    grade.add_argument("inputs", nargs="+", help="folders, zip files or notebooks")
    grade.add_argument("--course-dir", default=None, help="nbgrader course directory (default: this repository)")
    grade.add_argument("--roster", help="CSV with columns student_id and match (or file) to name students")
    grade.add_argument("--jobs", type=int, default=None,
                       help="submissions in flight (default: all cores, or every thread of the Dask cluster)")
    grade.add_argument("--force", action="store_true", help="regrade submissions already graded and unchanged")
    grade.add_argument("--timeout", type=int, default=180, help="wall-clock seconds per submission")
    grade.add_argument("--cpu", type=int, default=300, help="CPU seconds per submission")
    grade.add_argument("--memory", type=int, default=4096, help="memory limit per submission, MiB")
    grade.add_argument("--no-sandbox", action="store_true",
                       help="run without bubblewrap (no file-system or network isolation; rlimits only)")
    grade.add_argument("--no-progress", action="store_true", help="no progress bar")
    grade.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the submissions on a Dask cluster, e.g. tcp://10.0.0.5:8786 (see README)")
    grade.add_argument("--db-url", help="gradebook database, e.g. postgresql://grader@dbhost/resnet "
                                        "(default: nbgrader's CourseDirectory.db_url)")
    args = parser.parse_args(argv)

    if args.command == "build":
        from .assign.build import build as run_build
        run_build(run=not args.no_execute)
    elif args.command == "grade":
        from . import course
        from .grade.batch import grade as run_grade
        from .grade.sandbox.pool import Limits
        rows = run_grade(args.assignment, args.inputs, course_dir=args.course_dir or course.ROOT,
                         roster=args.roster, jobs=args.jobs, force=args.force,
                         limits=Limits(wall_seconds=args.timeout, cpu_seconds=args.cpu,
                                       memory_bytes=args.memory << 20),
                         sandbox=not args.no_sandbox, progress=not args.no_progress,
                         scheduler=args.scheduler, db_url=args.db_url)
        graded = sum(r["status"] == "graded" for r in rows)
        print(f"{len(rows)} files: {graded} graded, {len(rows) - graded} not gradable. "
              f"See grading/{args.assignment}/grades.csv, summary.png, pass_rates.csv and feedback/.")
    elif args.command == "demo":
        from .assign.demo import run_demo
        run_demo(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
