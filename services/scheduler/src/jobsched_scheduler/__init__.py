"""The scheduler: owns the database, the config, the slot calculation and the job
state machine, and serves the jobsched.v1 gRPC API to the gateway and the runners."""

from jobsched_common.grpc_engine import use_polling_endpoints

use_polling_endpoints()
