"""What a worker announces and where (the ZooKeeper side is in tests/actors/test_worker_announcements.py)."""
from mantis import config
from mantis.runtime.announcer import AnnounceTarget, announce_target, member_record, stage_path


def test_a_member_has_aurora_serverset_shape():
    assert member_record("10.0.0.5", 31002, 3) == {
        "serviceEndpoint": {"host": "10.0.0.5", "port": 31002},
        "additionalEndpoints": {"output": {"host": "10.0.0.5", "port": 31002}},
        "status": "ALIVE", "shard": 3}


def test_members_of_a_stage_live_under_cluster_job_and_stage():
    assert stage_path("/mantis/", "clicks-12", 2) == "/mantis/announce/clicks/clicks-12/2"
    assert stage_path("/", "a_b.c-3", 1) == "/announce/a_b.c/a_b.c-3/1"


def test_announcing_follows_the_configured_zookeeper():
    assert announce_target(config.load(None)) is None  # no ZooKeeper anywhere: nothing announced
    elected = config.load(None, ['leader_election.hosts="zk:2181"'])
    assert announce_target(elected) == AnnounceTarget("zk:2181", "/mantis", 10.0)
    own = config.load(None, ['announce.hosts="zk2:2181"', 'announce.root="/x"', "announce.session_timeout_s=4"])
    assert announce_target(own) == AnnounceTarget("zk2:2181", "/x", 4.0)
    assert announce_target(config.load(None, ['leader_election.hosts="zk:2181"', "announce.enabled=false"])) is None
