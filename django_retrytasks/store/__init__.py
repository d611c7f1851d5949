"""The only writer of job state: every change of a job, a run or a worker row goes through here."""
