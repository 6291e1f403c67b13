"""The gateway's REST API: one method per endpoint; every failure is an ApiError."""

from __future__ import annotations

from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_URL = "http://127.0.0.1:8080"
TERMINAL = frozenset({"completed", "failed", "cancelled"})

Json = dict[str, Any]


class ApiError(Exception):
    """A call that failed: `status` is the HTTP status, or 0 when no answer came."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class Client:
    def __init__(self, url: str = DEFAULT_URL, token: str = "", timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        except httpx.InvalidURL as exc:
            raise ApiError(f"bad gateway URL {url!r}: {exc}") from exc

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            reply = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ApiError(
                f"cannot reach the gateway at {self.url}: is it running? (make run)"
            ) from exc
        except httpx.TimeoutException as exc:
            raise ApiError(f"the gateway at {self.url} did not answer in time") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ApiError(f"request to {self.url} failed: {exc}") from exc
        if reply.is_error:
            raise ApiError(_detail(reply), reply.status_code)
        return reply

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return _parse(self._call(method, path, **kwargs))

    def create_job(
        self,
        name: str,
        command: str,
        max_attempts: int | None = None,
        timeout_seconds: int | None = None,
        *,
        priority: int | None = None,
        run_at: str | None = None,
        delay_seconds: float | None = None,
        depends_on: list[int] | None = None,
        concurrency_key: str | None = None,
    ) -> Json:
        """The optional fields left None are left out: the API's defaults apply."""
        options = {
            "max_attempts": max_attempts,
            "timeout_seconds": timeout_seconds,
            "priority": priority,
            "run_at": run_at,
            "delay_seconds": delay_seconds,
            "depends_on": depends_on,
            "concurrency_key": concurrency_key,
        }
        body: Json = {"name": name, "command": command}
        body.update((key, value) for key, value in options.items() if value is not None)
        job: Json = self._json("POST", "/api/jobs/create", json=body)
        return job

    def create_jobs(self, jobs: list[Json], each_alone: bool = False) -> list[Json]:
        """Up to 1000 jobs in one request, all or none: the jobs. With `each_alone`, each
        job is created or refused on its own: one `{job}` or `{error}` a job."""
        body: Json = {"jobs": jobs, "each_alone": True} if each_alone else {"jobs": jobs}
        created: list[Json] = self._json("POST", "/api/jobs/bulk", json=body)
        return created

    def list_jobs(
        self,
        status: str | None = None,
        limit: int | None = None,
        page: str | None = None,
        search: str | None = None,
    ) -> tuple[list[Json], str | None]:
        """One page of jobs, newest first, and the next page's URL (from `Link`) if any.

        `page` is such a URL; it already carries the filters.
        """
        if page:
            reply = self._call("GET", page)
        else:
            params: dict[str, str | int] = {}
            if status:
                params["status"] = status
            if limit is not None:
                params["limit"] = limit
            if search:
                params["q"] = search
            reply = self._call("GET", "/api/jobs", params=params)
        jobs: list[Json] = _parse(reply)
        return jobs, reply.links.get("next", {}).get("url")

    def get_job(self, job_id: int) -> Json:
        job: Json = self._json("GET", f"/api/jobs/{job_id}")
        return job

    def get_output(self, job_id: int, attempt: int = 0) -> Json:
        params = {"attempt": attempt} if attempt else {}
        output: Json = self._json("GET", f"/api/jobs/{job_id}/output", params=params)
        return output

    def list_attempts(self, job_id: int) -> list[Json]:
        attempts: list[Json] = self._json("GET", f"/api/jobs/{job_id}/attempts")
        return attempts

    def cancel_job(self, job_id: int) -> Json:
        job: Json = self._json("POST", f"/api/jobs/{job_id}/cancel")
        return job

    def retry_job(self, job_id: int) -> Json:
        job: Json = self._json("POST", f"/api/jobs/{job_id}/retry")
        return job

    def bulk_action(self, action: str, target: Json) -> Json:
        """`cancel` or `retry` for `{"ids": [...]}` or `{"filter": {...}}`: how many changed."""
        result: Json = self._json("POST", f"/api/jobs/{action}", json=target)
        return result

    def delete_job(self, job_id: int) -> None:
        self._call("DELETE", f"/api/jobs/{job_id}")

    def explain_job(self, job_id: int) -> Json:
        """Why the job is not running (yet)."""
        explanation: Json = self._json("GET", f"/api/jobs/{job_id}/why")
        return explanation

    def get_config(self) -> Json:
        config: Json = self._json("GET", "/api/config")
        return config

    def set_config(
        self, max_concurrent_jobs: int | None = None, paused: bool | None = None
    ) -> Json:
        """Sets what is given: the limit, the pause or both."""
        body: Json = {"max_concurrent_jobs": max_concurrent_jobs, "paused": paused}
        given = {key: value for key, value in body.items() if value is not None}
        config: Json = self._json("PUT", "/api/config", json=given)
        return config

    def get_stats(self) -> Json:
        stats: Json = self._json("GET", "/api/stats")
        return stats

    def create_schedule(self, schedule: Json) -> Json:
        created: Json = self._json("POST", "/api/schedules", json=schedule)
        return created

    def list_schedules(self) -> list[Json]:
        schedules: list[Json] = self._json("GET", "/api/schedules")["schedules"]
        return schedules

    def get_schedule(self, name: str) -> Json:
        schedule: Json = self._json("GET", _schedule_path(name))
        return schedule

    def delete_schedule(self, name: str) -> None:
        self._call("DELETE", _schedule_path(name))

    def schedule_action(self, name: str, action: str) -> Json:
        """`pause` or `resume` (the schedule comes back), `trigger` (the job it made)."""
        answer: Json = self._json("POST", f"{_schedule_path(name)}/{action}")
        return answer

    def list_limits(self) -> list[Json]:
        limits: list[Json] = self._json("GET", "/api/limits")["limits"]
        return limits

    def get_limit(self, key: str) -> Json | None:
        """The key's limit and counts; None when it has no limit and no jobs."""
        try:
            limit: Json = self._json("GET", _limit_path(key))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return limit

    def set_limit(self, key: str, max_concurrent_jobs: int | None, paused: bool) -> Json:
        """Sets both: the limit (None: none of its own) and the pause."""
        body = {"max_concurrent_jobs": max_concurrent_jobs, "paused": paused}
        limit: Json = self._json("PUT", _limit_path(key), json=body)
        return limit

    def delete_limit(self, key: str) -> None:
        self._call("DELETE", _limit_path(key))

    def list_audit(
        self, limit: int | None = None, page: str | None = None
    ) -> tuple[list[Json], str | None]:
        """One page of the audit log, newest first, and the next page's URL if any."""
        if page:
            reply = self._call("GET", page)
        else:
            params = {} if limit is None else {"limit": limit}
            reply = self._call("GET", "/api/audit", params=params)
        entries: list[Json] = _parse(reply)
        return entries, reply.links.get("next", {}).get("url")


def _limit_path(key: str) -> str:
    return f"/api/limits/{quote(key, safe='')}"


def _schedule_path(name: str) -> str:
    return f"/api/schedules/{quote(name, safe='')}"


def _parse(reply: httpx.Response) -> Any:
    try:
        return reply.json()
    except ValueError as exc:
        raise ApiError(f"{reply.request.url} answered with something other than JSON") from exc


def _detail(reply: httpx.Response) -> str:
    """The API's `detail` message, readable; FastAPI's validation lists flattened."""
    try:
        body = reply.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        detail = "; ".join(_problem(p) for p in detail)
    if not isinstance(detail, str) or not detail:
        detail = f"HTTP {reply.status_code} {reply.reason_phrase}".strip()
    if reply.status_code == 401:
        detail += " (set JOBSCHED_TOKEN or pass --token)"
    return detail


def _problem(problem: Any) -> str:
    if not isinstance(problem, dict):
        return str(problem)
    where = [str(part) for part in problem.get("loc", [])[1:]]  # drop "body"/"query"/"path"
    message = str(problem.get("msg", problem))
    return f"{'.'.join(where)}: {message}" if where else message
