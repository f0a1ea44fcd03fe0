"""The Host: many logical actors in one real actor, with turns, timers and isolation."""
import time

from thespian.actors import ActorAddress, WakeupMessage

from actors.base import MantisActor
from actors.hosting import Envelope, Host, LogicalAddress, MessageBatch
from actors.messages import Done, Rejected, Tick


class Owner:
    """Stands in for the shard: records what the host sends out of the process."""

    def __init__(self):
        self.sent = []

    def send(self, target, message):
        self.sent.append((target, message))


class Counter(MantisActor):
    """Counts what it is told; ``boom`` raises; ``ping <address>`` forwards a ping."""

    ACCEPTS = {"new": (str, int)}

    def __init__(self):
        super().__init__()
        self.count = 0
        self.ticks = 0

    def receiveMsg_str(self, msg, sender):
        if msg == "boom":
            raise RuntimeError("handler bug")
        self.count += 1
        self.send(sender, Done({"count": self.count}))

    def receiveMsg_int(self, msg, sender):
        for _ in range(msg):  # a message storm to itself
            self.send(self.myAddress, "tick")

    def on_tick(self, now):
        self.ticks += 1


SHARD = ActorAddress("shard-0")
ASKER = ActorAddress("asker")
SCHEDULER = ActorAddress("scheduler")


def make_host():
    owner = Owner()
    return owner, Host(owner, SHARD, peers=lambda: [SCHEDULER])


def test_an_exception_in_one_hosted_actor_rejects_that_message_and_leaves_the_others_running():
    owner, host = make_host()
    host.create(Counter, "a")
    host.create(Counter, "b")
    host.deliver("a", "boom", ASKER)
    host.deliver("b", "hello", ASKER)
    host.deliver("a", "hello", ASKER)
    host.drain()
    host.end_turn()
    replies = [m for _, m in owner.sent]
    assert isinstance(replies[0], Rejected) and replies[0].status == 500 and "handler bug" in replies[0].reason
    assert replies[1:] == [Done({"count": 1}), Done({"count": 1})]
    assert host.failures == 1 and set(host.actors) == {"a", "b"}


def test_nothing_leaves_the_host_before_the_turn_ends_and_failed_writers_answers_become_503():
    owner, host = make_host()
    host.create(Counter, "a")
    host.create(Counter, "b")
    host.deliver("a", "x", ASKER)
    host.deliver("b", "x", ASKER)
    host.drain()
    assert owner.sent == []  # held until the turn is durable
    failed = host.end_turn(lambda: {"a"})
    assert failed == {"a"}
    assert [m for _, m in owner.sent] == [Rejected(503, "the change could not be stored; nothing was changed"),
                                          Done({"count": 1})]


def test_a_busy_actor_yields_after_its_budget_and_its_neighbour_is_served_in_the_same_turn():
    owner, host = make_host()
    host.create(Counter, "busy")
    host.create(Counter, "quiet")
    host.deliver("busy", 500, ASKER)
    host.deliver("quiet", "hi", ASKER)
    more = host.drain(budget=100)
    assert more  # the storm did not fit in one turn
    assert host.actors["quiet"].count == 1
    assert host.actors["busy"].count == 99  # 100 messages: the storm itself and 99 of its ticks
    while host.drain(budget=100):
        pass
    assert host.actors["busy"].count == 500


def test_messages_between_hosted_actors_stay_local_and_to_peers_go_as_one_coalesced_batch():
    from actors.messages import JobSummary

    owner, host = make_host()
    a = host.create(Counter, "a")
    assert isinstance(a, LogicalAddress) and a.shard == SHARD and a.name == "a"
    host.post("b", a, "local")  # from a hosted sender to a hosted receiver: the queue
    assert list(host.queue)[-1][0] == "a" and owner.sent == []
    host.post("a", SCHEDULER, JobSummary("j-1", "j", {"state": "Accepted"}))
    host.post("a", SCHEDULER, JobSummary("j-2", "j", {"state": "Accepted"}))
    host.post("a", SCHEDULER, JobSummary("j-1", "j", {"state": "Launched"}))
    host.post("a", LogicalAddress(ActorAddress("shard-1"), "job:x-1"), "elsewhere")
    host.end_turn()
    (to_other_shard, envelope), (to_scheduler, batch) = owner.sent
    assert to_other_shard == ActorAddress("shard-1") and envelope == Envelope("job:x-1", "elsewhere", a)
    assert to_scheduler == SCHEDULER and isinstance(batch, MessageBatch)
    assert [(m.job_id, m.summary["state"]) for m in batch.messages] == [("j-1", "Launched"), ("j-2", "Accepted")]


def test_hosted_timers_share_one_heap_and_fire_in_order():
    owner, host = make_host()
    host.create(Counter, "a")
    host.create(Counter, "b")
    host.actors["a"].start_ticking(0.05)
    host.actors["b"].start_ticking(0.0)
    assert len(host.timers) == 2
    time.sleep(0.06)
    host.run_timers()
    assert [type(m) for _, m, _ in host.queue] == [WakeupMessage, WakeupMessage]
    assert [name for name, _, _ in host.queue] == ["b", "a"]
    assert isinstance(host.queue[0][1].payload, Tick)
    host.drain()
    assert host.actors["a"].ticks == 1 and host.actors["b"].ticks == 1
    assert len(host.timers) == 2  # each re-armed its next tick


def test_a_removed_actor_answers_nothing_but_a_404_to_whoever_asks_it():
    owner, host = make_host()
    host.create(Counter, "a")
    host.remove("a")
    host.deliver("a", "hello", ASKER)
    host.drain()
    host.end_turn()
    ((target, reply),) = owner.sent
    assert target == ASKER and reply.status == 404


def test_a_tick_whose_wakeup_was_dropped_is_made_up_on_the_next_message():
    # Thespian drops wakeups that fall due while a process has ~1,000 sends queued.
    owner, host = make_host()
    host.create(Counter, "a")
    actor = host.actors["a"]
    actor.start_ticking(0.05)
    host.timers = type(host.timers)()  # the wakeup is lost
    actor._last_tick -= 2.0  # and longer ago than the actor tolerates
    host.deliver("a", "hello", ASKER)
    host.drain()
    assert actor.ticks == 1 and len(host.timers) == 1  # ticked now, and ticking again


def test_an_actor_with_a_batch_window_sends_what_came_within_it_as_one_batch():
    owner, host = make_host()

    class Windowed(Counter):
        BATCH_WINDOW_S = 60.0

        def receiveMsg_str(self, msg, sender):
            self.send_batched(SCHEDULER, msg)

    host.create(Windowed, "w")
    for text in ("one", "two", "three"):
        host.deliver("w", text, ASKER)
        host.drain()
        host.end_turn()
    assert owner.sent == []  # held for the window, with a wakeup set to end it
    assert len(host.timers) == 1
    actor = host.actors["w"]
    actor._batch_opened -= 61.0
    host.deliver("w", "four", ASKER)
    host.drain()
    host.end_turn()
    ((target, batch),) = owner.sent
    assert target == SCHEDULER and batch.messages == ["one", "two", "three", "four"]
