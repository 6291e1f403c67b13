"""The runner: dials the scheduler, runs the commands it is assigned and reports
their output and results."""

from jobsched_common.grpc_engine import use_polling_endpoints

use_polling_endpoints()
