"""Record verdicts with nbgrader: ``python -m autograder.grade.record COURSE_DIR ASSIGNMENT VERDICT_DIR DB_URL``.

Each line read on stdin asks for one round: nbgrader's own Autograde
converter (with ApplyVerdicts in place of its executor, see
nbgrader_config.py), then its GenerateFeedback converter, over every
submission of the assignment that has no autograded copy or feedback yet.
It answers ``ok`` or ``failed`` (nbgrader refused some submission and went on
with the others) on stdout. The batch grader starts it before anything else,
so nbgrader's imports overlap the sandbox's warm-up, and asks for a round
while the sandbox is still busy with later submissions, then a last one.
"""
import os
import sys


def main(course_dir, assignment, verdict_dir, db_url):
    os.environ["RESNET_VERDICTS"] = str(verdict_dir)
    from nbgrader.converters import Autograde, GenerateFeedback
    from nbgrader.converters.base import NbGraderException
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course_dir)).load_config()
    coursedir = CourseDirectory(root=str(course_dir), config=config)
    coursedir.assignment_id = assignment
    coursedir.db_url = db_url
    for _ in sys.stdin:
        ok = True
        for converter in (Autograde, GenerateFeedback):
            try:
                converter(coursedir=coursedir, config=config).start()
            except NbGraderException:
                ok = False
        print("ok" if ok else "failed", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
