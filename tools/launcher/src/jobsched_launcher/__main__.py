"""`python -m jobsched_launcher`: the same as `jobsched-launcher`."""

from .main import main

main()
