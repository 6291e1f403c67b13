"""Helpers shared by the jobsched services: logging, shutdown and gRPC health."""
