"""The keyed count example across stage workers on loopback: exactly the single-process counts."""
import multiprocessing
from collections import Counter

from reactivex.subject import Subject

from mantis.examples import keyed_count
from mantis.runtime.stage_worker import StageWorker
from mantis.sdk.job_dsl import Context, load_job, resolve_parameters
from tests.examples.stage_processes import run_stage_worker_process
from tests.runtime.readers import FrameCollector
from tests.support import wait_for

ENTRY_POINT = "mantis.examples.keyed_count:job"


def final_counts(collectors):
    """user -> final count (from the workers' summaries), and user -> the stage 2 workers
    that emitted it; checks that the running counts lead to the summaries."""
    final, emitted_by, running = {}, {}, {}
    for index, collector in enumerate(collectors):
        for update in collector.events:
            user = update["user"]
            assert update["worker"] == index
            emitted_by.setdefault(user, set()).add(index)
            if update.get("final"):
                assert user not in final  # one summary line per user, from its one worker
                final[user] = update["count"]
            else:
                assert update["count"] > running.get(user, 0)  # a running count only grows
                running[user] = update["count"]
        summary_at = [i for i, u in enumerate(collector.events) if u.get("final")]
        assert summary_at == list(range(len(collector.events) - len(summary_at), len(collector.events)))
    assert running == final  # each user's last running count is its final count
    return final, emitted_by


def last_ids(limit, keys, min_value=0):
    make_event = keyed_count.make_event_factory(keys)
    last = {}
    for event in map(make_event, range(limit)):
        if event["value"] >= min_value:
            last[event["user"]] = event["id"]
    return last


def run_in_threads(supplied, stage1_workers=1, stage2_workers=2):
    """Every worker of the job as a StageWorker in this process; the subscribers' collectors."""
    job = load_job(ENTRY_POINT)
    params = resolve_parameters(job, supplied)

    def context(stage, index, workers):
        return Context("keyed_count-1", worker_index=index, stage_number=stage,
                       workers_in_stage=workers, parameters=params)

    firsts = [StageWorker(job, context(1, i, stage1_workers)) for i in range(stage1_workers)]
    seconds = [StageWorker(job, context(2, i, stage2_workers),
                           upstream_endpoints=[(i, "127.0.0.1", w.port) for i, w in enumerate(firsts)])
               for i in range(stage2_workers)]
    collectors = [FrameCollector(w.port) for w in seconds]
    wait_for(lambda: all(w.output.connections == 1 for w in seconds), timeout=5, interval=0.01,
             what="subscribers connected")
    workers = seconds + firsts
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            assert worker.wait(30)
            assert worker.state == "completed", worker.error
    finally:
        for worker in workers:
            worker.stop(5)
    for collector in collectors:
        assert collector.eof.wait(5)
    return collectors, firsts, seconds


def test_the_job_has_two_processing_stages_and_stage_one_is_keyed_by_user():
    job = load_job(ENTRY_POINT)
    assert job.stage_count == 2
    assert job.worker_plan(1).stage.keyed and job.worker_plan(1).reads_source
    assert job.worker_plan(1).stage.key_function({"user": "user-1"}) == "user-1"
    assert job.worker_plan(2).is_last
    assert {p.name for p in job.all_parameters} == {"rate", "keys", "limit", "min_value"}


def test_a_keyed_run_over_loopback_gives_exactly_the_counts_one_process_computes():
    collectors, firsts, seconds = run_in_threads({"rate": 0, "limit": 30_000, "keys": 200, "min_value": 30})
    final, emitted_by = final_counts(collectors)
    assert final == dict(keyed_count.expected_counts(30_000, 200, 30))
    assert all(len(workers) == 1 for workers in emitted_by.values())  # each user on one worker
    assert all(collector.events for collector in collectors)  # both workers got a share
    summaries = [u for c in collectors for u in c.events if u.get("final")]
    assert {u["user"]: u["lastId"] for u in summaries} == last_ids(30_000, 200, 30)
    assert sum(w.metrics().events_in for w in seconds) == firsts[0].metrics().events_out
    assert sum(w.metrics().dropped_events for w in firsts + seconds) == 0


def test_two_upstream_workers_route_every_user_to_the_same_downstream_worker():
    # Each stage 1 worker runs the (deterministic) source, so every event arrives twice,
    # from two workers routing independently: they must agree on every user's owner.
    collectors, _, _ = run_in_threads({"rate": 0, "limit": 10_000, "keys": 100}, stage1_workers=2,
                                      stage2_workers=3)
    final, emitted_by = final_counts(collectors)
    expected = keyed_count.expected_counts(10_000, 100)
    assert final == {user: 2 * count for user, count in expected.items()}
    assert all(len(workers) == 1 for workers in emitted_by.values())


def test_a_keyed_run_with_every_worker_in_its_own_process_gives_the_same_counts():
    spawn = multiprocessing.get_context("spawn")
    params = {"rate": "0", "limit": "20000", "keys": "150"}
    layout = [(1, 0, 1), (2, 0, 2), (2, 1, 2)]  # (stage, index, workers in stage)
    processes, pipes = [], []
    try:
        for stage, index, workers in layout:
            mine, theirs = spawn.Pipe()
            process = spawn.Process(target=run_stage_worker_process,
                                    args=(ENTRY_POINT, stage, index, workers, params, theirs), daemon=True)
            process.start()
            processes.append(process)
            pipes.append(mine)
        ports = []
        for pipe in pipes:
            assert pipe.poll(30), "a worker process did not report its port"
            ports.append(pipe.recv()[1])
        collectors = [FrameCollector(port) for port in ports[1:]]
        pipes[0].send(("go", []))
        for pipe in pipes[1:]:
            pipe.send(("go", [("worker-1", "127.0.0.1", ports[0])]))
        for pipe in pipes:
            assert pipe.poll(60), "a worker process did not finish"
            _, state, error = pipe.recv()
            assert state == "completed", error
        for collector in collectors:
            assert collector.eof.wait(10)
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
    final, emitted_by = final_counts(collectors)
    assert final == dict(keyed_count.expected_counts(20_000, 150))
    assert all(len(workers) == 1 for workers in emitted_by.values())


def test_expected_counts_agree_with_a_plain_count_of_the_source():
    make_event = keyed_count.make_event_factory(7)
    events = [make_event(n) for n in range(1000)]
    assert keyed_count.expected_counts(1000, 7, 50) == Counter(e["user"] for e in events if e["value"] >= 50)
    assert {e["user"] for e in events} == {f"user-{k}" for k in range(7)}
    assert {e["value"] for e in events} <= set(range(100))


def test_counts_name_their_worker_and_a_summary_follows_only_a_completed_input():
    context = Context("keyed_count-1", worker_index=1, worker_number=7, stage_number=2)
    completed, disposed = Subject(), Subject()
    out, out_of_disposed = [], []
    keyed_count.count_per_user(completed, context).subscribe(out.append)
    subscription = keyed_count.count_per_user(disposed, context).subscribe(out_of_disposed.append)
    batch = [{"id": 3, "user": "a"}, {"id": 5, "user": "b"}, {"id": 9, "user": "a"}]
    for subject in (completed, disposed):
        subject.on_next(batch)
    tag = {"worker": 1, "workerNumber": 7}
    assert out == [[{"user": "a", "count": 2, "lastId": 9, **tag}, {"user": "b", "count": 1, "lastId": 5, **tag}]]
    completed.on_completed()
    assert out[-1] == [{"user": "a", "count": 2, "lastId": 9, **tag, "final": True},
                       {"user": "b", "count": 1, "lastId": 5, **tag, "final": True}]
    subscription.dispose()  # a stopped worker: no summary
    disposed.on_completed()
    assert len(out_of_disposed) == 1
