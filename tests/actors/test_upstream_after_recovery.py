"""A worker's upstream reaches it even when its job tells it before its agent has
(re-)registered with the scheduler, as a recovered job does after a failover."""
import contextlib
import time

from actors.hosting import MessageBatch
from actors.messages import AgentOfferInfo, RegisterAgent, UpdateUpstream, WorkerSpec

ENDPOINTS = [("x-1/w1", "127.0.0.1", 31001)]


def received(handle, seconds: float) -> list:
    """Every message ``handle`` receives within ``seconds`` (batches unwrapped)."""
    out: list = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = handle.listen(0.2)
        if message is None:
            continue
        out.extend(message.messages if isinstance(message, MessageBatch) else [message])
    return out


def test_an_upstream_told_before_the_workers_agent_registers_is_delivered_when_it_registers(master):
    scheduler = master.actors.scheduler
    spec = WorkerSpec(worker_key="x-1/w2", job_id="x-1", stage=2, index=0, number=2, entry_point="m:j",
                      parameters={}, cpus=0.5, mem_mb=64, disk_mb=0, network_mbps=0, num_ports=1,
                      ports=[31000], host="127.0.0.1", agent_id="ghost")
    # The recovered job tells worker 2 where stage 1 is; no agent runs it yet.
    master.system.tell(scheduler, UpdateUpstream("x-1/w2", ENDPOINTS))
    offer = AgentOfferInfo("ghost", "127.0.0.1", 4.0, 4096.0, 1000.0, 1000.0, [(31000, 31010)])
    # The agent comes back with the worker: it is told the upstream it missed.
    # (A private handle plays the agent where the system base has them.)
    private = master.system.private() if master.base == "multiprocTCPBase" else contextlib.nullcontext(master.system)
    with private as agent:
        agent.tell(scheduler, RegisterAgent(offer, [spec]))
        upstreams = [m for m in received(agent, 3.0) if isinstance(m, UpdateUpstream)]
    assert [(m.worker_key, [tuple(e) for e in m.endpoints]) for m in upstreams] == [("x-1/w2", ENDPOINTS)]
