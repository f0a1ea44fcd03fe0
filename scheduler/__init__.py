"""Placement of workers onto agents: a Fenzo-style matcher in pure Python.

Build an :class:`AgentPool`, add agents' :class:`AgentOffer` s, describe each waiting
worker as a :class:`WorkerRequest` (constraint specs in job-definition vocabulary are
parsed there) and call :meth:`Matcher.schedule_once` once per round: it returns the
assignments it recorded in the pool and the reasons each other worker is pending.
"""
from scheduler.agent_pool import AgentPool, AgentState
from scheduler.constraints import Constraint, parse_constraint
from scheduler.fitness import (
                               average_of,
                               balanced_bin_packing,
                               cpu_bin_packing,
                               cpu_mem_network_bin_packing,
                               memory_bin_packing,
                               network_bin_packing,
)
from scheduler.matcher import Matcher, ScheduleResult
from scheduler.resources import AgentOffer, Assignment, WorkerRequest

__all__ = ["AgentOffer", "AgentPool", "AgentState", "Assignment", "Constraint", "Matcher", "ScheduleResult",
           "WorkerRequest", "average_of", "balanced_bin_packing", "cpu_bin_packing", "cpu_mem_network_bin_packing",
           "memory_bin_packing", "network_bin_packing", "parse_constraint"]
