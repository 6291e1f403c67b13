"""The runner: dials the scheduler, runs the commands it is assigned and reports
their output and results."""
