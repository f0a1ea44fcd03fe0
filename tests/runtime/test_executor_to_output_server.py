"""A worker's two halves together: the executor publishes into the output server, readers read."""
from mantis.runtime.output_server import OutputServer
from mantis.runtime.stage_executor import StageExecutor
from mantis.sdk.job_dsl import Context, load_job, resolve_parameters
from tests.runtime.readers import FrameCollector
from tests.support import wait_for


def test_readers_receive_the_whole_output_of_a_limited_job_in_order():
    job = load_job("mantis.examples.synthetic:job")
    params = resolve_parameters(job, {"rate": "0", "limit": "5000", "kinds": "view,click,add_to_cart,purchase"})
    with OutputServer(buffer_batches=64) as server:
        readers = [FrameCollector(server.port) for _ in range(2)]
        wait_for(lambda: server.connections == 2, timeout=5, interval=0.01, what="readers")
        executor = StageExecutor(job, Context("synthetic-1", parameters=params), server.publish)
        executor.start()
        assert executor.wait(20)
        assert executor.state == "completed", executor.error
        for reader in readers:
            events = reader.wait_for_events(5000)
            assert [e["id"] for e in events] == list(range(5000))
            assert all(len(batch) <= 1000 for batch in reader.batches)
            reader.close()
        assert server.dropped_events == 0
