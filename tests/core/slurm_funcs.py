"""Functions the Slurm tests run in job steps. Stdlib only: the agent imports this file from the
controller through the import hook."""

import os
import time


def where():
    """(node, job, step) as Slurm told this job step."""
    return (os.environ["SLURMD_NODENAME"], os.environ["SLURM_JOB_ID"], os.environ["SLURM_STEP_ID"])


def sleep_then_write(path, seconds):
    """Write ``path`` after ``seconds``: if the call is cancelled, the file never appears."""
    time.sleep(seconds)
    with open(path, "w") as f:
        f.write("the call was not cancelled")
    return path
