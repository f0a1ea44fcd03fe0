"""This process's CPU and memory as a worker reports them."""
from mantis.runtime.process_stats import ProcessStats, cpu_seconds, rss_mb


def test_cpu_share_is_measured_since_the_previous_sample():
    clock = iter([0.0, 2.0, 4.0])
    cpu = iter([10.0, 11.0, 11.0])  # one CPU-second over the first two seconds, none after
    stats = ProcessStats(clock=lambda: next(clock), cpu=lambda: next(cpu))
    first, second = stats.sample(), stats.sample()
    assert first["cpuPercent"] == 50.0 and first["cpuSeconds"] == 11.0
    assert second["cpuPercent"] == 0.0


def test_busy_work_shows_as_cpu_time_and_allocation_as_resident_memory():
    before_cpu, before_rss = cpu_seconds(), rss_mb()
    total = 0
    for i in range(3_000_000):
        total += i * i
    block = bytearray(64 * 1024 * 1024)
    for offset in range(0, len(block), 4096):  # touch every page so it is resident
        block[offset] = 1
    assert cpu_seconds() > before_cpu
    assert rss_mb() > before_rss + 48
    sample = ProcessStats().sample()
    assert set(sample) == {"cpuSeconds", "cpuPercent", "rssMB"} and sample["rssMB"] > 48
    del block
