"""Command line of the course: ``python -m autograder {build,demo,grade,publish} ...``."""
import argparse
import os
import sys


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def run_summary(rows, assignment):
    """One line on a batch run: what was graded now, what was unchanged, what could not be graded."""
    files = [r for r in rows if r["status"] != "missing"]
    graded = sum(r["status"] == "graded" and r["this_run"] == "graded" for r in files)
    skipped = sum(r["this_run"] == "unchanged, skipped" for r in files)
    not_gradable = sum(r["status"] != "graded" for r in files)
    return (f"{len(files)} files: {graded} graded, {skipped} unchanged (skipped), {not_gradable} not gradable"
            + (f"; {len(rows) - len(files)} roster students sent nothing" if len(rows) > len(files) else "")
            + f". See grading/{assignment}/ and feedback/.")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="regenerate release/ and notebooks/ from source/")
    build.add_argument("--no-execute", action="store_true",
                       help="write the self-study notebooks without running them (no outputs)")
    demo = commands.add_parser("demo", help="grade the bundled sample submissions with nbgrader")
    demo.add_argument("--out", default="demo-output", help="course directory to create (default: demo-output)")
    grade = commands.add_parser(
        "grade", help="grade a batch of submissions in a sandbox (see the README, \"For instructors\")",
        description="Grade submissions as received (folders of notebooks, LMS zips, nbgrader's submitted/ "
                    "tree) into the nbgrader gradebook and feedback/. Writes grading/<assignment>/runs/<time>.csv "
                    "(one row per input file of this run), grades.csv (one row per student, over every run), "
                    "scores.csv and pass_rates.csv. Without --roster, student ids come from the file names.")
    grade.add_argument("assignment", help="assignment name, e.g. resnet18")
    grade.add_argument("inputs", nargs="+", help="folders, zip files or notebooks")
    grade.add_argument("--course-dir", default=None, help="nbgrader course directory (default: this repository)")
    grade.add_argument("--roster", help="CSV with columns student_id and match (or file) to name students, "
                                        "or a Canvas gradebook export (then canvas_import.csv is written too)")
    grade.add_argument("--jobs", type=int, default=None,
                       help="submissions in flight (default: all cores, or every thread of the Dask cluster)")
    grade.add_argument("--force", action="store_true", help="regrade submissions already graded and unchanged")
    grade.add_argument("--timeout", type=int, default=180, help="wall-clock seconds per submission (default: %(default)s)")
    grade.add_argument("--cpu", type=int, default=300, help="CPU seconds per submission (default: %(default)s)")
    grade.add_argument("--memory", type=int, default=4096,
                       help="memory limit per submission, MiB (default: %(default)s)")
    grade.add_argument("--processes", type=_positive, default=256,
                       help="processes and threads a submission may start (default: %(default)s)")
    grade.add_argument("--disk", type=_positive, default=256,
                       help="MiB a submission may write to its private /tmp, held in memory (default: %(default)s)")
    grade.add_argument("--no-sandbox", action="store_true",
                       help="run without bubblewrap (no file-system, network or disk isolation; rlimits only)")
    grade.add_argument("--no-progress", action="store_true", help="no progress bar")
    grade.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the submissions on a Dask cluster, e.g. tcp://10.0.0.5:8786 (see README)")
    grade.add_argument("--db-url", help="gradebook database, e.g. postgresql://grader@dbhost/resnet "
                                        "(default: nbgrader's CourseDirectory.db_url)")
    grade.add_argument("--recorders", type=_positive, metavar="N",
                       help="at most N nbgrader processes recording verdicts and writing feedback, on this "
                            "machine (default: one per core)")
    publish = commands.add_parser(
        "publish", help="write the student or self-study edition: a public repository without the answers",
        description="Write an edition of the course into OUT, to push as a public GitHub repository: "
                    "'students' (release notebooks, student runtime, README; no solution, hidden test or "
                    "grader) or 'self-study' (the complete notebooks with outputs, the same runtime).")
    publish.add_argument("edition", choices=["students", "self-study"])
    publish.add_argument("out", help="folder to write (empty, new, or an earlier edition of the same kind)")
    publish.add_argument("--repository", help="the public GitHub repository, OWNER/NAME, the edition is pushed to")
    publish.add_argument("--branch", default="main", help="its branch (default: main)")
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
                                       memory_bytes=args.memory << 20, processes=args.processes,
                                       disk_bytes=args.disk << 20),
                         sandbox=not args.no_sandbox, progress=not args.no_progress,
                         scheduler=args.scheduler, db_url=args.db_url, recorders=args.recorders)
        print(run_summary(rows, args.assignment))
        for message in rows.messages:
            print(message)
    elif args.command == "publish":
        from .assign.publish import Refused, publish as run_publish
        try:
            files = run_publish(args.edition, args.out, args.repository, args.branch)
        except Refused as refusal:
            print(f"publish: {refusal}", file=sys.stderr)
            return 2
        print(f"The {args.edition} edition for {args.repository} ({len(files)} files) is in {args.out}.")
    elif args.command == "demo":
        from .assign.demo import run_demo
        run_demo(args.out)
    return 0


if __name__ == "__main__":
    status = main()
    if sys.argv[1:2] == ["grade"]:
        # Every file is written and closed, every worker, recorder and thread stopped: end without
        # Python's teardown of the modules loaded (about half a second after grading one file).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
