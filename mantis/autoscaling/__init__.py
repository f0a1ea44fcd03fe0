"""Autoscaling: the Job Master (a hidden stage 0 worker) and the strategies it runs.

``policy`` reads a stage's ``scalingPolicy`` (Mantis' shape), ``sampling`` turns the
workers' metric snapshots into one sample per stage, ``strategies`` holds the rule,
Clutch (PID) and one-step strategies as pure state machines on an injected clock,
``stage_scaler`` applies a stage's cooldown and min/max and records every decision,
and ``job_master`` is the worker that follows the job and asks the master to scale.
"""
