"""The api-gateway: the original REST API and the dashboard, over the scheduler's gRPC."""

from jobsched_common.grpc_engine import use_polling_endpoints

use_polling_endpoints()
