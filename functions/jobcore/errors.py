"""Errors the state machine retries or catches by name: Lambda reports an unhandled exception under its
class name (errorType), and the ASL's Retry/Catch match it, so these class names are part of the
contract with statemachine/job.asl.json and must not change."""

from __future__ import annotations


class SpotmapError(Exception):
    """Base class; never raised itself."""


class CapacityUnavailable(SpotmapError):
    """RunTask answered with a capacity failure (no Spot capacity right now): retried with backoff."""


class LaunchThrottled(SpotmapError):
    """RunTask was throttled (or ECS had a transient server error): retried with backoff, bounded by
    time rather than by a count (the item's ItemTimeoutMinutes, then LaunchTimedOut)."""


class LaunchTimedOut(SpotmapError):
    """The item's launch waited its ItemTimeoutMinutes while RunTask kept refusing it (throttled):
    caught and recorded as its failure."""


class AttemptsExhausted(SpotmapError):
    """The item already used every launch it is allowed: caught and recorded as its failure."""


class LaunchFailed(SpotmapError):
    """RunTask failed for a reason a retry will not fix: caught and recorded as its failure."""


class PollThrottled(SpotmapError):
    """DescribeTasks stayed throttled through the SDK's retries: retried by the state machine."""


class StopTasksThrottled(SpotmapError):
    """StopTask stayed throttled through the SDK's retries for some of a job's tasks: StopJobTasks fails
    after stopping the others, so that the status event's delivery is retried (it stops only what still
    runs)."""


class JobStartFailed(SpotmapError):
    """At least one upload of an event could not be turned into a job (the event is retried)."""


class JobNotFound(SpotmapError):
    """EvaluateJob found no job descriptor: uncaught, it fails the execution, so a job that does not
    exist never gets a SUCCEEDED verdict (nor summary)."""
