"""The output relay: a job's last batches reach the subscriber before the end of the stream."""
import asyncio

from mantis.runtime.output_server import OutputServer
from webapi import streams
from webapi.streams import OutputRelay


class JobStates:
    """A stand-in for the gateway: answers "get" with whatever job the test set last."""

    def __init__(self, job: dict):
        self.job = job

    async def ask(self, message, to="manager", timeout=10.0):
        return self.job


def running_job(port: int) -> dict:
    return {"state": "Launched", "workers": [
        {"workerId": "j-1/w1", "stageNum": 1, "state": "Started", "host": "127.0.0.1", "ports": [],
         "metrics": {"port": port}}]}


async def wait_until(condition, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_the_end_of_a_jobs_stream_comes_after_the_output_its_workers_wrote_last(monkeypatch):
    monkeypatch.setattr(streams, "FOLLOW_INTERVAL_S", 0.02)
    worker = OutputServer()

    async def main():
        gateway = JobStates(running_job(worker.port))
        relay = OutputRelay(gateway, "j-1")
        await relay.start()
        await wait_until(lambda: worker.connections == 1)
        worker.publish([{"n": 1}])
        gateway.job = {"state": "Completed", "workers": []}
        await wait_until(lambda: relay.ended_reason is not None)
        # The worker's last batch, still on its way when the relay learns the job ended.
        worker.publish([{"n": 2}])
        assert worker.drain(5)
        worker.close()
        got = [batch async for batch in relay.batches()]
        relay.close()
        return got, relay.ended_reason

    try:
        got, reason = asyncio.run(main())
    finally:
        worker.close()
    assert got == [[{"n": 1}], [{"n": 2}]]
    assert reason == "job j-1 is Completed"


def test_a_worker_that_never_closes_holds_the_end_back_only_for_a_while(monkeypatch):
    monkeypatch.setattr(streams, "FOLLOW_INTERVAL_S", 0.02)
    monkeypatch.setattr(streams, "END_DRAIN_S", 0.2)
    worker = OutputServer()

    async def main():
        gateway = JobStates(running_job(worker.port))
        relay = OutputRelay(gateway, "j-1")
        await relay.start()
        await wait_until(lambda: worker.connections == 1)
        gateway.job = {"state": "Failed", "workers": []}
        got = await asyncio.wait_for(_collect(relay), timeout=5)
        relay.close()
        return got

    try:
        assert asyncio.run(main()) == []
    finally:
        worker.close()


async def _collect(relay):
    return [batch async for batch in relay.batches()]
