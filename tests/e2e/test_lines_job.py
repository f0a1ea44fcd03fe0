"""The lines example through a real master: a followed file becomes the job's output."""
import json
import threading
import time

from tests.sse_client import read_sse
from tests.support import job_id_of, started_workers, wait_for


def test_a_followed_files_json_lines_stream_to_a_subscriber(cluster, tmp_path):
    log = tmp_path / "events.log"
    log.write_text("")
    definition = {"name": "tailer", "url": "mantis.examples.lines:job",
                  "parameters": [{"name": "input", "value": f"tail:{log}"}, {"name": "json", "value": True}],
                  "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1,
                                                      "machineDefinition": {"cpuCores": 1, "memoryMB": 128}}}}}
    assert cluster.call("POST", "/api/v1/jobClusters", definition)[0] == 201
    job_id = job_id_of(cluster.call("POST", "/api/v1/jobClusters/tailer/jobs", {})[1])
    wait_for(lambda: started_workers(cluster.call("GET", f"/api/v1/jobs/{job_id}")[1]), timeout=60,
             what="the worker Started")
    stop = threading.Event()

    def append():  # a producer writing to the log while the subscriber reads
        n = 0
        while not stop.is_set() and n < 2000:
            with open(log, "a") as f:
                f.write(json.dumps({"n": n, "level": "error" if n % 2 else "info"}) + "\n")
                f.write("not json\n")
            n += 1
            time.sleep(0.01)

    writer = threading.Thread(target=append, daemon=True)
    writer.start()
    try:
        events = read_sse(f"{cluster.url}/api/v1/jobs/{job_id}/output?filter=level%20%3D%3D%20%27error%27", 10)
    finally:
        stop.set()
        writer.join(5)
    assert len(events) == 10 and all(e["level"] == "error" and e["n"] % 2 == 1 for e in events), events
