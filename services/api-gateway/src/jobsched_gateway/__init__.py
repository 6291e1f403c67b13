"""The api-gateway: the original REST API and the dashboard, over the scheduler's gRPC."""
