"""jobsctl: a command-line client for the jobsched gateway's REST API."""
