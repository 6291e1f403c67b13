"""What probes and Prometheus read, without a token: `/healthz` and `/metrics`."""

from fastapi import APIRouter

from ..metrics import metrics_endpoint

router = APIRouter(include_in_schema=False)
router.add_route("/metrics", metrics_endpoint, include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
